"""``--show-config`` (and the master's SIGUSR1 dump): the exported options as an ini
block before the banner, as 2.0.30's ``show_config()`` logs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _uwsgi_process import run_with

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n"
# a placeholder and --set make exported options too; %n and %(x) are expanded; the
# date format is fixed text, so the real and simulated lines can be compared as they are
INI = ("[uwsgi]\nshow-config = true\nwsgi-file = app.py\nmaster = true\nset-ph = x=%n\n"
       "logdate = [%(x)]\nenv = A=1\nmyplace = here\n")
ARGV = ["--ini", "sc.ini", "--processes", "1", "--set", "y=2"]
# observed on pyuwsgi 2.0.30 (run_with adds its --http-socket last): one uwsgi_log call
# holds the blank line and the two lines after it, another the last line and a blank one
EXPECTED = ["[sc] - ", ";uWSGI instance configuration", "[uwsgi]", "[sc] - ini = sc.ini",
            "[sc] - show-config = true", "[sc] - wsgi-file = app.py",
            "[sc] - master = true", "[sc] - set-ph = x=sc", "[sc] - x = sc",
            "[sc] - logdate = [sc]", "[sc] - env = A=1", "[sc] - myplace = here",
            "[sc] - processes = 1", "[sc] - set = y=2", "[sc] - y = 2",
            "[sc] - http-socket = ADDRESS", "[sc] - ;end of configuration", ""]


def _block(lines: list[str]) -> list[str]:
    start = lines.index("[sc] - ")
    end = lines.index("[sc] - ;end of configuration", start)
    return [re.sub(r"127\.0\.0\.1:\d+", "ADDRESS", line) for line in lines[start:end + 2]]


def test_show_config(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "sc.ini").write_text(INI)
    with Simulation([*ARGV, "--http-socket", "127.0.0.1:9"], app_dir=tmp_path) as sim:
        log = list(sim.log)
    assert _block(log) == EXPECTED
    assert log.index("[sc] - ;end of configuration") < next(
        i for i, line in enumerate(log) if "*** Starting uWSGI" in line)


@pytest.mark.real
def test_real_show_config(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "sc.ini").write_text(INI)
    lines = run_with(ARGV, tmp_path)
    assert _block(lines) == EXPECTED


def test_without_show_config_no_block(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--wsgi-file", "app.py", "--master"], app_dir=tmp_path) as sim:
        assert ";uWSGI instance configuration" not in sim.log
