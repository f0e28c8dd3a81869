"""The app's ``logging``: the root logger is the app's while the simulation runs, as a
fresh interpreter has it (no handler, level WARNING). Under pytest the root logger holds
pytest's handlers, so the app's ``logging.basicConfig()`` did nothing and its records
went to pytest's capture instead of the instance's log; the real server (the ``real``
test) logs them. The test's own handlers and level are untouched."""

from __future__ import annotations

import logging
import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import logging
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
log = logging.getLogger("shop")
log.info("loaded")

def application(environ, start_response):
    log.warning("order %s", environ["PATH_INFO"])
    logging.getLogger("shop.quiet").debug("not shown")
    start_response("200 OK", [])
    return [b"ok"]
"""
ARGV = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
LINES = ["INFO shop: loaded", "WARNING shop: order /1", "WARNING shop: order /2"]


def _shop(log: list[str]) -> list[str]:
    return [line for line in log if "shop" in line]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_app_configures_its_own_root_logger(tmp_path, mode, caplog):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with Simulation(ARGV, app_dir=tmp_path, mode=mode) as sim:
        sim.get("/1")
        assert root.handlers == handlers and root.level == level  # the test's, between
        sim.get("/2")
        assert _shop(sim.log) == LINES
    assert root.handlers == handlers and root.level == level
    assert not [record for record in caplog.records if record.name.startswith("shop")]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_lines_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(ARGV, app_dir=tmp_path) as real:
        real.get("/1", timeout=5)
        real.get("/2", timeout=5)
        time.sleep(0.5)
        assert _shop(real.app_log()) == LINES
