"""``--log-maxsize``: once a second the master looks at the ``--logto`` file; above the
size it writes ``logsize: SIZE, triggering rotation to NAME...`` in it, renames it to
NAME (``FILE.<unix time>``, or ``--log-backupname``) and starts a new empty file
(``core/logging.c``). The ``real`` test runs uWSGI 2.0.30 itself (its log is the file:
the harness cannot watch it) and compares the files' shapes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real._server import find_uwsgi_binary
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'x']\n"
ROTATION = re.compile(r"\w{3} \w{3} [ \d]\d [\d:]{8} \d{4} - logsize: (\d+), triggering "
                      r"rotation to (uwsgi\.log\.\d+|old\.log)\.\.\.")


def _argv(*extra: str) -> list[str]:
    return ["--master", "--wsgi-file", "app.py", "--logto", "uwsgi.log",
            "--log-maxsize", "1500", *extra]


def _shape(directory: Path) -> dict[str, object]:
    """The log files: the rotated one's name (its time as T), its last line's size and
    target, and whether the new file goes on with the requests."""
    files = sorted(p.name for p in directory.iterdir() if p.name != "app.py")
    rotated = [name for name in files if name != "uwsgi.log"]
    out: dict[str, object] = {"files": [re.sub(r"\.\d+$", ".T", n) for n in files]}
    if rotated:
        lines = (directory / rotated[0]).read_text().splitlines()
        match = ROTATION.fullmatch(lines[-1])
        assert match is not None, lines[-1]
        assert match.group(2) == rotated[0]
        # the size is the file's before the line was written
        assert int(match.group(1)) == len((directory / rotated[0]).read_bytes()) - \
            len(lines[-1].encode()) - 1
        assert int(match.group(1)) > 1500
    new = (directory / "uwsgi.log").read_text().splitlines()
    out["new_file_has_requests"] = any("GET /" in line for line in new)
    return out


# -- the real server, run directly (its log goes to a file: the harness cannot watch it) --
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary() -> str:
    binary = find_uwsgi_binary()
    assert binary is not None
    return binary


def _wait_for(ready, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "the real server did not get there"
        time.sleep(0.1)


def _get(port: int) -> bool:
    """One request (True), or False while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while conn.recv(65536):
                pass
        return True
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_log_file_is_rotated_above_the_size(tmp_path, mode):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(_argv(), app_dir=tmp_path, mode=mode) as sim:
        for _ in range(3):
            sim.get("/")
            sim.advance(1.2)
        assert not [line for line in sim.log if "not simulated" in line]
        rotations = [line for line in sim.log if ROTATION.fullmatch(line)]
    assert len(rotations) == 1
    rotated_at = int(ROTATION.fullmatch(rotations[0]).group(2).rsplit(".", 1)[1])
    assert 1767225600 <= rotated_at <= 1767225604  # the virtual clock's time
    assert _shape(tmp_path) == {"files": ["uwsgi.log", "uwsgi.log.T"],
                                "new_file_has_requests": True}


def test_a_backup_name(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(_argv("--log-backupname", "old.log"), app_dir=tmp_path) as sim:
        for _ in range(3):
            sim.get("/")
            sim.advance(1.2)
    assert _shape(tmp_path)["files"] == ["old.log", "uwsgi.log"]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_files_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    proc = subprocess.Popen([_binary(), *_argv(), "--http-socket", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _get(port))
        for _ in range(3):
            time.sleep(1.2)
            assert _get(port)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert _shape(tmp_path) == {"files": ["uwsgi.log", "uwsgi.log.T"],
                                "new_file_has_requests": True}


def test_daemonize_writes_the_log_to_its_file(tmp_path):
    """``--daemonize FILE``: the log goes to FILE as with ``--logto`` (observed: every
    line, the banner first; the real server also leaves its terminal)."""
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--wsgi-file", "app.py", "--daemonize", "d.log"],
                    app_dir=tmp_path) as sim:
        sim.get("/")
        log = list(sim.log)
    lines = (tmp_path / "d.log").read_text().splitlines()
    assert lines == log and lines[0].startswith("*** Starting uWSGI 2.0.30")
    assert not [line for line in log if "not simulated" in line]


def _landmarks(lines: list[str]) -> list[str]:
    keep = ("*** Starting uWSGI", "spawned uWSGI worker 1", "goodbye to uWSGI.")
    return [next(k for k in keep if line.startswith(k)) for line in lines
            if line.startswith(keep)] + ["request" for line in lines if "GET / =>" in line]


@pytest.mark.real
@requires_real_uwsgi
def test_daemonize_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    done = subprocess.run([_binary(), "--master", "--wsgi-file", "app.py", "--daemonize",
                           "d.log", "--http-socket", f"127.0.0.1:{port}", "--pidfile", "pid"],
                          cwd=tmp_path, capture_output=True, timeout=30, check=False)
    assert done.returncode == 0 and done.stdout == b""  # the daemon went on on its own
    pidfile = tmp_path / "pid"
    try:
        _wait_for(lambda: pidfile.exists() and pidfile.read_text() != "")
        _wait_for(lambda: _get(port))
        # the worker closes the connection before it logs the request: a SIGINT right
        # after the answer can end it before its line (seen once under load)
        _wait_for(lambda: "GET / =>" in (tmp_path / "d.log").read_text())
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGINT)
        _wait_for(lambda: "goodbye to uWSGI." in (tmp_path / "d.log").read_text())
    with Simulation(["--master", "--wsgi-file", "app.py", "--daemonize", "s.log"],
                    app_dir=tmp_path) as sim:
        sim.get("/")
        sim.stop()  # as SIGINT to the master
    assert _landmarks((tmp_path / "d.log").read_text().splitlines()) == \
        _landmarks((tmp_path / "s.log").read_text().splitlines())


def test_logto2_opens_its_file_after_the_privileges_drop(tmp_path):
    """``--logto2``: the file starts where uWSGI opens it (observed on 2.0.30: with
    ``your processes number limit``); the lines before are not in it."""
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--wsgi-file", "app.py", "--logto2", "l2.log"],
                    app_dir=tmp_path) as sim:
        sim.get("/")
        log = list(sim.log)
        assert not [line for line in log if "not simulated" in line]
    lines = (tmp_path / "l2.log").read_text().splitlines()
    start = log.index(next(line for line in log
                           if line.startswith("your processes number limit")))
    assert lines == log[start:]


@pytest.mark.real
@requires_real_uwsgi
def test_logto2_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    proc = subprocess.Popen([_binary(), "--master", "--wsgi-file", "app.py", "--logto2",
                             "l2.log", "--http-socket", f"127.0.0.1:{port}"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    log = tmp_path / "l2.log"
    try:
        _wait_for(lambda: log.exists() and "spawned uWSGI worker" in log.read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=15)[0].decode()
    assert log.read_text().splitlines()[0].startswith("your processes number limit")
    last = out.splitlines()[-1]  # the terminal's: up to the root warnings
    assert last.endswith("(use the --uid flag) *** ") or last.startswith("detected binary path")


def _touch(path: Path) -> None:
    if path.exists():
        st = path.stat()
        os.utime(path, (st.st_atime, st.st_mtime + 10))
    else:
        path.write_text("")


REOPEN = re.compile(r"\[\d+\] logsize: \d+, triggering log-reopen\.\.\.")


def _touch_shape(directory: Path) -> list[str]:
    """The touch lines of the rotated file, in order, and the files there."""
    rotated = next(p for p in directory.iterdir() if p.name.startswith("uwsgi.log."))
    lines = rotated.read_text().splitlines()
    marks = []
    for line in lines:
        if line.startswith("unable to stat() t1"):
            marks.append("unable to stat t1")
        elif REOPEN.fullmatch(line):
            marks.append("reopen")
        elif re.fullmatch(r"\[\d+\] uwsgi\.log reopened\.", line):
            marks.append("reopened")
        elif ROTATION.fullmatch(line):
            marks.append("rotation")
    return marks


TOUCH_ARGV = ["--master", "--wsgi-file", "app.py", "--logto", "uwsgi.log",
              "--touch-logreopen", "t1", "--touch-logrotate", "t2"]
#: t1 missing at start, then made (a reopen); t2 touched (a rotation, whatever the size)
TOUCH_MARKS = ["unable to stat t1", "reopen", "reopened", "rotation"]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_touched_files_reopen_and_rotate_the_log(tmp_path, mode):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "t2").write_text("")
    with Simulation(TOUCH_ARGV, app_dir=tmp_path, mode=mode) as sim:
        sim.advance(2.5)
        _touch(tmp_path / "t1")
        sim.advance(2)
        _touch(tmp_path / "t2")
        sim.advance(2)
        assert not [line for line in sim.log if "not simulated" in line]
    assert _touch_shape(tmp_path) == TOUCH_MARKS


@pytest.mark.real
@requires_real_uwsgi
def test_touched_files_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "t2").write_text("")
    port = _free_port()
    proc = subprocess.Popen([_binary(), *TOUCH_ARGV, "--http-socket", f"127.0.0.1:{port}"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: _get(port))
        time.sleep(2)
        _touch(tmp_path / "t1")
        time.sleep(2)
        _touch(tmp_path / "t2")
        _wait_for(lambda: any(p.name.startswith("uwsgi.log.") for p in tmp_path.iterdir()))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    assert _touch_shape(tmp_path) == TOUCH_MARKS
