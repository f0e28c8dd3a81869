"""``--log-master`` (and the options that imply it): the log's lines are the same, but
the master's log pipes are opened before the sockets, so the sockets' descriptors start
at 6 (8 with a request logger's pipe too): the start line, ``uwsgi.sockets`` and the
reload's ``found fd`` lines say so (observed on 2.0.30; the ``real`` test asks again).
"""

from __future__ import annotations

import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import uwsgi

def application(env, start_response):
    start_response("200 OK", [])
    return [repr(uwsgi.sockets).encode()]
"""
CASES = [([], 3), (["--log-master"], 6), (["--log-master", "--threaded-logger"], 6),
         (["--req-logger", "file:{dir}/requests.log"], 8)]


def _argv(extra: list[str], tmp_path) -> list[str]:
    return ["--master", "--wsgi-file", "app.py", "--http-socket", "127.0.0.1:0",
            *[arg.format(dir=tmp_path) for arg in extra]]


def _fd_of(log: list[str]) -> int:
    line = next(line for line in log if line.startswith("uwsgi socket 0 bound to"))
    return int(line.rsplit(" ", 1)[1])


@pytest.mark.parametrize("extra, fd", CASES)
def test_the_sockets_come_after_the_log_pipes(tmp_path, extra, fd):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_argv(extra, tmp_path), app_dir=tmp_path) as sim:
        assert sim.get("/").body == f"[{fd}]".encode()
        sim.reload()
        sim.advance(3)
        log = list(sim.log)
    assert _fd_of(log) == fd
    assert [line for line in log if line.startswith("found fd")] == \
        [f"found fd {fd} mapped to socket 0 (127.0.0.1:0)"]
    assert not [line for line in log if "not simulated" in line]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("extra, fd", CASES)
def test_the_same_descriptors_on_the_real_server(tmp_path, extra, fd):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    argv = ["--master", "--wsgi-file", "app.py", *[a.format(dir=tmp_path) for a in extra]]
    with RealUwsgi(argv, app_dir=tmp_path) as real:
        body = real.get("/", timeout=5).body
        time.sleep(0.3)
        log = real.app_log()
    assert body == f"[{fd}]".encode()
    if "--req-logger" not in extra:
        assert _fd_of(log) == fd
