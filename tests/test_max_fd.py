"""``--max-fd N``: the descriptor limit uWSGI sets and logs (``core/uwsgi.c``
``uwsgi_start``); the test process's own limit is left alone."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest
from _uwsgi_process import run_with

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n"
DENIED = "setrlimit(): Operation not permitted [core/uwsgi.c line 2691]"


def _fd_lines(log: list[str]) -> list[str]:
    return [line for line in log if "max file descriptor" in line or "setrlimit" in line]


def test_max_fd_is_the_limit_logged(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    with Simulation(["--wsgi-file", "app.py", "--max-fd", "2048"], app_dir=tmp_path) as sim:
        assert _fd_lines(sim.log) == ["detected max file descriptor number: 2048"]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        assert _fd_lines(sim.log) == ["detected max file descriptor number: 1024"]


def test_above_the_hard_limit_only_root_may_raise_it(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    # the simulated machine: not root, hard limit 524288, soft 1024
    with Simulation(["--wsgi-file", "app.py", "--max-fd", "600000"], app_dir=tmp_path) as sim:
        assert _fd_lines(sim.log) == [DENIED, "detected max file descriptor number: 1024"]
    with Simulation(["--wsgi-file", "app.py", "--max-fd", "600000"], app_dir=tmp_path,
                    machine="host") as sim:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if os.getuid() == 0 or hard == resource.RLIM_INFINITY or hard >= 600000:
            assert _fd_lines(sim.log) == ["detected max file descriptor number: 600000"]
        else:
            assert _fd_lines(sim.log) == [DENIED, f"detected max file descriptor number: {soft}"]


@pytest.mark.real
def test_real_max_fd_is_the_limit_logged(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    lines = run_with(["--wsgi-file", "app.py", "--max-fd", "2048"], tmp_path)
    assert _fd_lines(lines) == ["detected max file descriptor number: 2048"]
