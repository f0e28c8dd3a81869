"""``uwsgi.after_req_hook``: a function the app puts in the ``uwsgi`` module at import,
called with no argument after each request's response, before its log line
(``plugins/python/wsgi_handlers.c`` ``uwsgi_after_request_wsgi``), compared with 2.0.30."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _uwsgi_process import get, running, undated

from simuwsgi import Simulation

APP = """import sys, time, uwsgi
last = ['']
def hook():
    print('HOOK', last[0], flush=True)
    if last[0] == '/b':
        raise ValueError('in the hook')
    if last[0] == '/c':
        time.sleep(3)  # a slow hook: still under --harakiri
uwsgi.after_req_hook = hook
def application(e, s):
    last[0] = e['PATH_INFO']
    print('APP', last[0], flush=True)
    s('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']
"""
OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "app.py", "--harakiri", "1"]


def _story(lines: list[str]) -> list[str]:
    """The lines the requests made, masked (pids, dates, sizes, times)."""
    out = []
    for line in map(undated, lines):
        if line.startswith(("APP", "HOOK", "Traceback", "  File", "    ", "ValueError",
                            "[pid: ", "*** HARAKIRI ON WORKER", "HARAKIRI [core",
                            "DAMN ! worker")):
            line = re.sub(r"\[pid: \d+\|app: 0\|req: (\d+)/\d+\].*?\] (GET \S+) .*",
                          r"[request \1] \2", line)
            line = re.sub(r"pid: \d+", "pid: P", re.sub(r"since \d+", "since T", line))
            out.append(line)
    return out


# observed on pyuwsgi 2.0.30: the hook after the response, before the log line; its
# exception logged (the request still logged, with its 200); a hook slower than
# --harakiri is killed by it, the request still the worker's (the log line never comes)
EXPECTED = [
    "APP /", "HOOK /", "[request 1] GET /",
    "APP /a", "HOOK /a", "[request 2] GET /a",
    "APP /b", "HOOK /b", "Traceback (most recent call last):",
    '  File "app.py", line 6, in hook', "    raise ValueError('in the hook')",
    "ValueError: in the hook", "[request 3] GET /b",
    "APP /c", "HOOK /c", "*** HARAKIRI ON WORKER 1 (pid: P, try: 1, graceful: yes) ***",
    "HARAKIRI [core 0] 127.0.0.1 - GET /c since T",
    "DAMN ! worker 1 (pid: P) died, killed by signal 9 :( trying respawn ...",
]
#: the requests, the first as the real run's own first GET (it says the server is up)
PATHS = ("/", "/a", "/b", "/c")


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_after_req_hook(tmp_path: Path, mode: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    with Simulation(OPTIONS, app_dir=tmp_path, mode=mode) as sim:
        for path in PATHS:
            assert sim.get(path).body == b"ok"
        sim.advance(5)
        assert _story(list(sim.log)) == EXPECTED
        assert sim.inst.workers[1].pid != 1002  # respawned after the harakiri


@pytest.mark.real
def test_real_after_req_hook(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    with running(OPTIONS, tmp_path) as uwsgi:  # (its first GET is PATHS[0])
        for path in PATHS[1:]:
            assert get(uwsgi.url + path) == b"ok"
        uwsgi.wait_for("DAMN ! worker 1")
        lines = list(uwsgi.lines)
    assert _story(lines) == EXPECTED


def test_harakiri_no_arh_leaves_harakiri_before_the_hook(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    with Simulation([*OPTIONS, "--harakiri-no-arh"], app_dir=tmp_path) as sim:
        for path in PATHS:
            sim.get(path)
        sim.advance(5)
        story = _story(list(sim.log))
    assert not [line for line in story if "HARAKIRI" in line]
    assert story[-1] == "[request 4] GET /c"


def test_no_hook_no_call_and_the_c_path_kept(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP.replace("uwsgi.after_req_hook = hook\n", ""))
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        sim.get("/a")
        assert sim.inst.app.after_req_hook is None
        assert not [line for line in sim.log if line.startswith("HOOK")]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_lazy_apps_each_worker_calls_its_own_hook(tmp_path: Path, mode: str) -> None:
    # each worker imports the app, and reads the hook, itself: it counts in its globals
    (tmp_path / "app.py").write_text(
        "import uwsgi\ncount = [0]\n"
        "def hook():\n    count[0] += 1\n    print('HOOK', uwsgi.worker_id(), count[0])\n"
        "uwsgi.after_req_hook = hook\n"
        "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")
    with Simulation(["--master", "--processes", "2", "--lazy-apps", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, mode=mode) as sim:
        for _ in range(4):
            sim.get("/")
        hooks = sorted(line for line in sim.log if line.startswith("HOOK"))
    counts: dict[str, list[int]] = {}
    for line in hooks:
        _, wid, n = line.split()
        counts.setdefault(wid, []).append(int(n))
    assert sum(len(v) for v in counts.values()) == 4
    assert all(v == list(range(1, len(v) + 1)) for v in counts.values())
