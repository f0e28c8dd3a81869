"""--harakiri-graceful-timeout and --harakiri-graceful-signal (``Instance._worker_harakiri``),
with the lines observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from _overlap import started_together
from _uwsgi_process import get, run_with, undated

from simuwsgi import Simulation

SLOW = ("import time\n"
        "def application(e, s):\n"
        "    if e['PATH_INFO'] == '/slow':\n"
        "        for _ in range(40):\n            time.sleep(0.25)\n"
        "    s('200 OK', [])\n    return [b'ok']\n")
OPTIONS = ["--master", "--wsgi-file", "app.py", "--harakiri", "2",
           "--harakiri-graceful-timeout", "3"]


def _masked(lines: list[str]) -> list[str]:
    """From the first HARAKIRI line to the respawn: dates cut, pids and times masked."""
    out = [re.sub(r"\d{6,}", "T", re.sub(r"pid: \d+", "pid: P", undated(line)))
           for line in lines]
    first = next(i for i, line in enumerate(out) if "HARAKIRI" in line)
    last = next(i for i, line in enumerate(out) if line.startswith("Respawned"))
    return out[first:last + 1]


def _cut_slow_request(url: str) -> None:
    """GET /slow on the real server: the harakiri closes it without a response."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(b"GET /slow HTTP/1.0\r\n\r\n")
        assert conn.recv(100) == b""
    # answered by the new worker: its Respawned line written, and not stopped while it
    # starts (a slow stop)
    assert get(url, wait=15) == b"ok"


SIGTERM_LINES = [
    "*** HARAKIRI ON WORKER 1 (pid: P, try: 1, graceful: yes) ***",
    "HARAKIRI !!! worker 1 status !!!",
    "HARAKIRI [core 0] 127.0.0.1 - GET /slow since T",
    "HARAKIRI !!! end of worker 1 status !!!",
    "HARAKIRI: graceful termination attempt on worker 1 with signal 15. Next harakiri: T",
    "HARAKIRI triggered by worker 1 core 0 !!!",
    "DAMN ! worker 1 (pid: P) died :( trying respawn ...",
    "Respawned uWSGI worker 1 (new pid: P)",
]
# SIGWINCH does nothing to a worker: the second attempt, graceful-timeout seconds
# later, is a SIGKILL
SIGWINCH_LINES = [
    "*** HARAKIRI ON WORKER 1 (pid: P, try: 1, graceful: yes) ***",
    "HARAKIRI !!! worker 1 status !!!",
    "HARAKIRI [core 0] 127.0.0.1 - GET /slow since T",
    "HARAKIRI !!! end of worker 1 status !!!",
    "HARAKIRI: graceful termination attempt on worker 1 with signal 28. Next harakiri: T",
    "HARAKIRI triggered by worker 1 core 0 !!!",
    "*** HARAKIRI ON WORKER 1 (pid: P, try: 2, graceful: no) ***",
    "HARAKIRI !!! worker 1 status !!!",
    "HARAKIRI [core 0] 127.0.0.1 - GET /slow since T",
    "HARAKIRI !!! end of worker 1 status !!!",
    "HARAKIRI: graceful termination attempt on worker 1 with signal 28. Next harakiri: T",
    "HARAKIRI triggered by worker 1 core 0 !!!",
    "DAMN ! worker 1 (pid: P) died, killed by signal 9 :( trying respawn ...",
    "Respawned uWSGI worker 1 (new pid: P)",
]
CASES = [([], SIGTERM_LINES), (["--harakiri-graceful-signal", "28"], SIGWINCH_LINES)]


@pytest.mark.parametrize(("extra", "expected"), CASES)
def test_graceful_harakiri(tmp_path: Path, extra: list[str], expected: list[str]) -> None:
    (tmp_path / "app.py").write_text(SLOW)
    with Simulation(OPTIONS + extra, app_dir=tmp_path) as sim:
        sim.advance(1.5)
        handle = sim.submit("GET", "/slow")
        sim.advance(2)  # the first attempt at 3 (uwsgi_now() 1 + 2)
        assert handle.done is (not extra)
        sim.advance(4)
        assert handle.done and handle.response.status is None
        assert _masked(sim.log) == expected
        assert sim.inst.workers[1].harakiri_count == 1
        assert sim.inst.workers[1].pending_harakiri == 0  # reset by the respawn
        when = [t for t, _p, line in sim.inst.log_lines if "HARAKIRI ON WORKER" in line]
        assert when == ([3.0, 6.0] if extra else [3.0])  # then deadline + graceful timeout


def test_without_graceful_timeout_the_first_attempt_kills(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(SLOW)
    with Simulation(OPTIONS[:-2] + ["--harakiri-graceful-signal", "28"], app_dir=tmp_path) as sim:
        sim.advance(1.5)
        handle = sim.submit("GET", "/slow")
        sim.advance(3)
        assert handle.done
        assert not any("graceful termination" in line for line in sim.log)
        assert any("killed by signal 9" in line for line in sim.log)


@pytest.mark.real
@pytest.mark.parametrize(("case", "expected"),
                         [("sigterm", SIGTERM_LINES), ("sigwinch", SIGWINCH_LINES)])
def test_real_graceful_harakiri(real_runs, case: str, expected: list[str]) -> None:
    assert _masked(real_runs[case].result()) == expected


USER_APP = ("import time, uwsgi\n"
            "def application(e, s):\n    if e['PATH_INFO'] == '/slow':\n"
            "        uwsgi.set_user_harakiri(2)\n"
            "        for _ in range(120):\n            time.sleep(0.25)\n"
            "    s('200 OK', [])\n    return [b'ok']\n")
USER_OPTIONS = ["--master", "--wsgi-file", "app.py", "--harakiri-graceful-timeout", "5",
                "--harakiri-graceful-signal", "28"]
# 2.0.30 moves the request deadline on (workers[w].harakiri), not the user one: the
# user deadline, still past, kills the worker at the next check
USER_LINES = [
    "*** HARAKIRI ON WORKER 1 (pid: P, try: 1, graceful: yes) ***",
    "HARAKIRI: graceful termination attempt on worker 1 with signal 28. Next harakiri: T",
    "HARAKIRI (user) triggered by worker 1 core 0 !!!",
    "*** HARAKIRI ON WORKER 1 (pid: P, try: 2, graceful: no) ***",
    "HARAKIRI: graceful termination attempt on worker 1 with signal 28. Next harakiri: T",
    "HARAKIRI (user) triggered by worker 1 core 0 !!!",
    "DAMN ! worker 1 (pid: P) died, killed by signal 9 :( trying respawn ...",
]


def _user_lines(lines: list[str]) -> list[str]:
    return [line for line in _masked(lines) if "triggered" in line or "try:" in line
            or "graceful termination" in line or line.startswith("DAMN")]


def test_a_user_harakiri_is_killed_at_the_next_check(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(USER_APP)
    with Simulation(USER_OPTIONS, app_dir=tmp_path) as sim:
        sim.advance(1.5)
        sim.submit("GET", "/slow")
        sim.advance(4)
        assert _user_lines(sim.log) == USER_LINES
        # the user deadline + 5, both times
        assert sum("Next harakiri: 1767225608" in line for line in sim.log) == 2
        when = [t for t, _p, line in sim.inst.log_lines if "HARAKIRI ON WORKER" in line]
        assert when == [3.0, 4.0]


@pytest.mark.real
@pytest.mark.parametrize("case", ["user"])
def test_real_a_user_harakiri_is_killed_at_the_next_check(real_runs, case: str) -> None:
    assert _user_lines(real_runs[case].result()) == USER_LINES


#: The real runs by case: the app and the options of a harakiri of GET /slow.
REAL_CASES = {"sigterm": (SLOW, OPTIONS + CASES[0][0]),
              "sigwinch": (SLOW, OPTIONS + CASES[1][0]),
              "user": (USER_APP, USER_OPTIONS)}


def _real(case: str) -> list[str]:
    app, options = REAL_CASES[case]
    with tempfile.TemporaryDirectory() as path:
        (Path(path) / "app.py").write_text(app)
        return run_with(options, Path(path), _cut_slow_request)


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[list[str]]]]:
    """The real runs of this module's selected tests, started together (each mostly
    waits for its harakiri)."""
    yield from started_together(request, _real)
