"""Tests of the real-uWSGI harness (simuwsgi.modes.real).  They run the real server on loopback."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _waits import proc_state, settles_asleep

import simuwsgi.modes.real._server as server_mod
from simuwsgi.modes.real import HARNESS_MARK, RealUwsgi, RealUwsgiError, find_uwsgi_binary
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi, requires_real_uwsgi

pytestmark = pytest.mark.real

# start-to-ready measured at ~0.09 s for 4 workers on the 2-core dev machine (target < 0.5 s);
# the bound leaves room for a loaded CI machine.
READY_LIMIT = 1.0

APP = textwrap.dedent(
    """
    import os, time
    import uwsgi

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/sleep":
            time.sleep(3)
        if path == "/hello":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello world"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %d" % (os.getpid(), uwsgi.worker_id())]
    """
)

BAD_IMPORT_APP = textwrap.dedent(
    """
    raise RuntimeError("import-time failure")

    def application(environ, start_response):
        start_response("200 OK", [])
        return [b"never"]
    """
)


def write_app(directory: Path, source: str = APP, name: str = "app.py") -> Path:
    (directory / name).write_text(source)
    return directory


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_group_gone(pgid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def pid_and_wid(resp) -> tuple[int, int]:
    pid, wid = resp.body.split()
    return int(pid), int(wid)


# --------------------------------------------------------------------------- readiness
@requires_real_uwsgi
@pytest.mark.parametrize(
    "extra, workers, mules, spoolers",
    [
        ([], 1, 0, 0),
        (["--processes", "2"], 2, 0, 0),
        (["--processes", "4"], 4, 0, 0),
        (["--processes", "4", "--mules", "2"], 4, 2, 0),
        (["--processes", "2", "--spooler", "spool"], 2, 0, 1),
    ],
    ids=["1-worker", "2-workers", "4-workers", "4-workers+2-mules", "2-workers+spooler"],
)
def test_readiness(real_uwsgi_factory, tmp_path, extra, workers, mules, spoolers):
    write_app(tmp_path)
    (tmp_path / "spool").mkdir()
    u = real_uwsgi_factory(["--master", *extra, "--wsgi-file", "app.py"], app_dir=tmp_path)

    assert u.ready_after is not None and 0 < u.ready_after < READY_LIMIT, u.ready_after
    pids = u.pids()
    kinds = sorted(pids)
    assert kinds == sorted(
        [("master", 0)]
        + [("worker", i) for i in range(1, workers + 1)]
        + [("mule", i) for i in range(1, mules + 1)]
        + [("spooler", i) for i in range(1, spoolers + 1)]
    )
    assert pids[("master", 0)] == u.pid == u.pgid
    # every process exists, belongs to the instance's process group and is blocked in its
    # loop (accept/epoll/poll): nothing is still initialising
    for key, pid in pids.items():
        assert os.getpgid(pid) == u.pgid, key
        assert settles_asleep(pid), (key, proc_state(pid))
    log = u.log
    assert sum(1 for ln in log if ln == f"{HARNESS_MARK} worker-accepting") == workers
    assert sum(1 for ln in log if ln == f"{HARNESS_MARK} mule-ready") == mules
    if spoolers:
        assert any(
            ln.startswith("spawned the uWSGI spooler on dir ")
            and ln.endswith(f"/spool with pid {pids[('spooler', 1)]}")
            for ln in log
        )
    # the workers really accept: the first request is answered at once
    r = u.get("/")
    assert r.status == 200, r
    assert r.elapsed < 0.5
    pid, wid = pid_and_wid(r)
    assert pids[("worker", wid)] == pid


@requires_real_uwsgi
def test_readiness_without_master(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(["--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path)
    pids = u.pids()
    assert sorted(pids) == [("worker", 1), ("worker", 2)]
    # without a master, worker 1 is the exec'd process (and the group leader)
    assert pids[("worker", 1)] == u.pid
    assert u.get("/").status == 200
    pgid = u.pgid
    # no master: SIGINT makes worker 1 exit with uWSGI's end code 30
    assert u.stop() == 30
    assert_group_gone(pgid)


# --------------------------------------------------------------------------- requests
@requires_real_uwsgi
def test_request_returns_app_body_and_pool_reuses_instance(real_uwsgi_pool):
    opts = ["--master", "--processes", "2", "--wsgi-file", "app.py"]
    u = real_uwsgi_pool.get(opts, app=APP)
    starts = real_uwsgi_pool.starts
    r = u.request("GET", "/hello")
    assert r.status == 200
    assert r.status_line == "HTTP/1.1 200 OK"
    assert r.headers == [("Content-Type", "text/plain")]
    assert r.body == b"hello world"
    assert r.reason is None and r.closed_by_server
    # identical (options, app) -> the same running instance, no new start
    assert real_uwsgi_pool.get(opts, app=APP) is u
    assert real_uwsgi_pool.starts == starts
    # a different app -> another instance
    other = real_uwsgi_pool.get(opts, app=APP + "\n# variant\n")
    assert other is not u and other.port != u.port


@requires_real_uwsgi
def test_request_to_closed_port_is_refused(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
    u.kill()
    r = u.get("/")
    assert r.status is None and r.reason == "refused"


@requires_real_uwsgi
def test_the_harness_waits_on_the_real_clock_while_a_simulation_is_open(
        real_uwsgi_factory, tmp_path):
    """The test thread reads a simulation's clock while one is open: the harness's
    deadlines must not (a mixed cluster's real nodes are driven from that thread)."""
    from simuwsgi import Simulation, real_time

    write_app(tmp_path)
    with Simulation(["--wsgi-file", str(tmp_path / "app.py")], seed=1) as sim:
        sim.start()
        u = real_uwsgi_factory(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
        assert u.get("/").status == 200
        began = real_time.monotonic()
        with pytest.raises(RealUwsgiError):
            u.wait_for_log("a line uWSGI never writes", timeout=0.5)
        assert real_time.monotonic() - began < 5
        assert sim.now == 0.0  # the simulation's clock did not move meanwhile


# --------------------------------------------------------------------------- start failures
@requires_real_uwsgi
def test_app_raising_at_import_is_a_start_error(real_uwsgi_factory, tmp_path):
    write_app(tmp_path, BAD_IMPORT_APP)
    u = real_uwsgi_factory(
        ["--master", "--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path, start=False
    )
    with pytest.raises(RealUwsgiError) as ei:
        u.start()
    msg = str(ei.value)
    # uWSGI keeps running in "full dynamic mode": the harness detects it and fails
    assert "RuntimeError: import-time failure" in msg
    assert "unable to load app 0 (mountpoint='') (callable not found or import error)" in msg
    assert "*** no app loaded. going in full dynamic mode ***" in msg
    assert not u.running
    assert_group_gone(u.pgid)


@requires_real_uwsgi
def test_app_raising_at_import_with_need_app_exits_22(real_uwsgi_factory, tmp_path):
    write_app(tmp_path, BAD_IMPORT_APP)
    u = real_uwsgi_factory(
        ["--master", "--need-app", "--wsgi-file", "app.py"], app_dir=tmp_path, start=False
    )
    with pytest.raises(RealUwsgiError) as ei:
        u.start()
    assert ei.value.returncode == 22
    assert "uWSGI exited with code 22" in str(ei.value)
    assert "*** no app loaded. GAME OVER ***" in str(ei.value)


@requires_real_uwsgi
def test_no_app_instance_can_be_kept_and_answers_500(real_uwsgi_factory, tmp_path):
    write_app(tmp_path, BAD_IMPORT_APP)
    u = real_uwsgi_factory(
        ["--master", "--wsgi-file", "app.py"], app_dir=tmp_path, allow_no_app=True
    )
    r = u.get("/x")
    assert r.raw == (
        b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
        b"Content-Type: text/plain\r\n\r\nInternal Server Error"
    )
    u.wait_for_log(r"^--- no python application found, check your startup logs for errors ---$")


@requires_real_uwsgi
def test_unknown_option_error_names_it(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(
        ["--master", "--bogus-option", "1", "--wsgi-file", "app.py"], app_dir=tmp_path, start=False
    )
    with pytest.raises(RealUwsgiError) as ei:
        u.start()
    assert ei.value.returncode == 1
    assert "unrecognized option '--bogus-option'" in str(ei.value)
    assert "getopt_long() error" in str(ei.value)


@requires_real_uwsgi
def test_missing_wsgi_file(real_uwsgi_factory, tmp_path):
    u = real_uwsgi_factory(
        ["--master", "--wsgi-file", "nonexist.py"], app_dir=tmp_path, start=False
    )
    with pytest.raises(RealUwsgiError) as ei:
        u.start()
    assert "failed to open python file nonexist.py" in str(ei.value)
    assert "*** no app loaded" in str(ei.value)


@requires_real_uwsgi
def test_user_socket_port_in_use_is_an_error(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        u = real_uwsgi_factory(
            ["--master", "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", "app.py"],
            app_dir=tmp_path,
            start=False,
        )
        with pytest.raises(RealUwsgiError) as ei:
            u.start()
    msg = str(ei.value)
    assert "Address already in use" in msg
    assert (
        f"probably another instance of uWSGI is running on the same address (127.0.0.1:{port})"
        in msg
    )


@requires_real_uwsgi
def test_harness_port_collision_is_retried(real_uwsgi_factory, tmp_path, monkeypatch):
    write_app(tmp_path)
    real_free_port = server_mod.free_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        handed = []

        def fake_free_port(host="127.0.0.1"):
            port = taken if not handed else real_free_port(host)
            handed.append(port)
            return port

        monkeypatch.setattr(server_mod, "free_port", fake_free_port)
        u = real_uwsgi_factory(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
    assert handed[0] == taken and len(handed) == 2
    assert u.port == handed[1] != taken
    assert u.get("/hello").body == b"hello world"


# --------------------------------------------------------------------------- control
@requires_real_uwsgi
def test_kill_worker_respawns_same_id_new_pid(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(
        ["--master", "--processes", "1", "--wsgi-file", "app.py"], app_dir=tmp_path
    )
    old_pid, wid = pid_and_wid(u.get("/"))
    assert wid == 1 and u.pids()[("worker", 1)] == old_pid
    mark = len(u.log)
    new_pid = u.kill_worker(1)
    assert new_pid is not None and new_pid != old_pid
    assert not pid_alive(old_pid)
    assert u.pids()[("worker", 1)] == new_pid
    assert pid_and_wid(u.get("/")) == (new_pid, 1)
    new_lines = u.log[mark:]
    assert (
        f"DAMN ! worker 1 (pid: {old_pid}) died, killed by signal 9 :( trying respawn ..."
        in new_lines
    )
    assert f"Respawned uWSGI worker 1 (new pid: {new_pid})" in new_lines


@requires_real_uwsgi
def test_reload_and_wait_reloaded(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(
        ["--master", "--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path
    )
    before = u.pids()
    u.reload()
    waited = u.wait_reloaded()
    after = u.pids()
    assert waited < 10
    # the master re-exec'd itself (same pid), the workers are new
    assert after[("master", 0)] == before[("master", 0)]
    assert {after[("worker", 1)], after[("worker", 2)]}.isdisjoint(
        {before[("worker", 1)], before[("worker", 2)]}
    )
    assert f"gracefully (RE)spawned uWSGI master process (pid: {u.pid})" in u.log
    assert "binary reloading uWSGI..." in u.log
    pid, wid = pid_and_wid(u.get("/"))
    assert after[("worker", wid)] == pid


@requires_real_uwsgi
def test_stop_leaves_no_process_behind(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    (tmp_path / "spool").mkdir()
    u = real_uwsgi_factory(
        [
            "--master",
            "--processes",
            "2",
            "--mules",
            "1",
            "--spooler",
            "spool",
            "--wsgi-file",
            "app.py",
        ],
        app_dir=tmp_path,
    )
    pgid = u.pgid
    pids = list(u.pids().values())
    assert len(pids) == 5
    assert u.stop() == 0
    assert not u.running
    assert_group_gone(pgid)
    for pid in pids:
        assert not pid_alive(pid)
    assert "SIGINT/SIGTERM received...killing workers..." in u.log
    assert u.log[-1] == "goodbye to uWSGI."
    assert u.stop() == 0  # idempotent


@requires_real_uwsgi
def test_forced_stop_reaps_orphans(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(
        ["--master", "--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path
    )
    pgid = u.pgid
    pids = list(u.pids().values())
    t0 = time.monotonic()
    rc = u.stop(timeout=0)  # straight to SIGKILL of the group: workers are orphaned
    assert time.monotonic() - t0 < 1.0
    assert rc == -signal.SIGKILL
    assert_group_gone(pgid)  # no zombie left either: the supervisor reaped the orphans
    assert not any(pid_alive(p) for p in pids)


@requires_real_uwsgi
def test_harakiri_closes_connection(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(
        ["--master", "--processes", "1", "--harakiri", "1", "--wsgi-file", "app.py"],
        app_dir=tmp_path,
    )
    old_pid = u.pids()[("worker", 1)]
    r = u.get("/sleep", timeout=10)
    assert r.status is None
    assert r.reason == "closed"
    assert r.raw == b""
    assert r.elapsed < 2.9  # killed before the app's 3 s sleep ended
    u.wait_for_log(rf"\*\*\* HARAKIRI ON WORKER 1 \(pid: {old_pid}, try: 1")
    assert any("HARAKIRI" in ln for ln in u.log)
    u.wait_for_log(rf"^DAMN ! worker 1 \(pid: {old_pid}\) died, killed by signal 9")
    u.wait_ready()
    assert u.get("/hello").body == b"hello world"


@requires_real_uwsgi
def test_signal_to_master(real_uwsgi_factory, tmp_path):
    write_app(tmp_path)
    u = real_uwsgi_factory(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
    pgid = u.pgid
    u.signal(signal.SIGINT)
    u.wait_for_log(r"^goodbye to uWSGI\.", timeout=10)
    deadline = time.monotonic() + 5
    while u.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not u.running and u.returncode == 0
    u.stop()
    assert_group_gone(pgid)


# --------------------------------------------------------------------------- safety nets
@requires_real_uwsgi
def test_del_kills_the_group(tmp_path):
    write_app(tmp_path)
    u = RealUwsgi(["--master", "--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path)
    u.start()
    pgid = u.pgid
    del u
    gc.collect()
    assert_group_gone(pgid)


@requires_real_uwsgi
def test_max_lifetime_deadline(tmp_path):
    write_app(tmp_path)
    u = RealUwsgi(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path, max_lifetime=0.5)
    try:
        u.start()
        pgid = u.pgid
        deadline = time.monotonic() + 5
        while u.running and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not u.running
        assert u.returncode == -signal.SIGKILL
    finally:
        u.close()
    assert_group_gone(pgid)


@requires_real_uwsgi
def test_instance_dies_with_the_harness_process(tmp_path):
    """If the process that started uWSGI is SIGKILLed, the supervisor kills the group."""
    write_app(tmp_path)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(server_mod.__file__).parents[2])!r})
        from simuwsgi.modes.real import RealUwsgi
        u = RealUwsgi(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                      app_dir={str(tmp_path)!r})
        u.start()
        print(u.pgid, u.tmpdir, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pgid, tmpdir = proc.stdout.split()
    pgid = int(pgid)
    shutil.rmtree(tmpdir)  # the killed harness could not remove its log directory
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.02)
    assert_group_gone(pgid)


# --------------------------------------------------------------------------- pytest helpers
def test_requires_real_uwsgi_fails_instead_of_skipping(monkeypatch):
    monkeypatch.setenv("SIMUWSGI_UWSGI_BINARY", "/nonexistent/uwsgi")
    assert find_uwsgi_binary() is None

    @requires_real_uwsgi
    def needs_server():
        return "ran"

    with pytest.raises(pytest.fail.Exception) as ei:
        needs_server()
    assert "real `uwsgi` binary is required" in str(ei.value)
    assert not isinstance(ei.value, pytest.skip.Exception)
    with pytest.raises(pytest.fail.Exception):
        require_real_uwsgi()
    # the decorator also marks the test as `real`
    assert any(m.name == "real" for m in getattr(needs_server, "pytestmark", []))
    with pytest.raises(RealUwsgiError, match="binary was not found"):
        RealUwsgi(["--master"]).start()


def test_requires_real_uwsgi_passes_when_present():
    if find_uwsgi_binary() is None:
        pytest.fail("the real uwsgi binary is missing (pip install pyuwsgi)")

    @requires_real_uwsgi
    def needs_server(x):
        return x * 2

    assert needs_server(21) == 42


def test_pyuwsgi_in_a_virtualenv_reloads_into_its_own_interpreter(tmp_path):
    """uWSGI re-executes ``/proc/self/exe`` on a binary reload: for pyuwsgi's console
    script in a venv that is the base interpreter, which cannot import ``pyuwsgi``. The
    harness passes the script's own interpreter (its ``#!`` line) as ``--binary-path``."""
    from simuwsgi.modes.real._server import reload_binary_path

    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(sys.executable)
    script = tmp_path / "venv" / "bin" / "uwsgi"
    script.write_text(f"#!{venv_python}\nfrom pyuwsgi import run\nrun()\n")
    assert reload_binary_path(str(script)) == str(venv_python)
    compiled = tmp_path / "uwsgi-elf"
    compiled.write_bytes(b"\x7fELF\x02\x01\x01")
    assert reload_binary_path(str(compiled)) is None
    assert reload_binary_path(str(tmp_path / "missing")) is None
