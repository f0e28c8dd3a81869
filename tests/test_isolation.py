"""What a simulation imports stays in it (``simuwsgi._core.isolation``), and ``uwsgi`` hooks
are per process (``facade.HOOKS``)."""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

import pytest

from simuwsgi import Simulation, SimulationError, real_time

COUNTER_APP = """
import helpers
def application(env, sr):
    sr("200 OK", [])
    if env["PATH_INFO"] == "/lazy":
        import lazylib  # a library loaded on first use, from outside the app's directory
        return [repr(lazylib.uwsgi_pid()).encode()]
    helpers.count += 1
    return [b"%d" % helpers.count]
"""


@pytest.fixture
def lib_dir(tmp_path, monkeypatch):
    """A directory on sys.path outside the app's, standing for site-packages."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "lazylib.py").write_text(textwrap.dedent("""
        import sys, uwsgi
        hits = 0
        def uwsgi_pid():  # its count, and whether it has the running simulation's uwsgi
            global hits
            hits += 1
            return (hits, uwsgi is sys.modules["uwsgi"])
    """))
    monkeypatch.syspath_prepend(str(lib))
    yield lib
    for name, module in list(sys.modules.items()):  # what the test imported from it
        if str(lib) in str(getattr(module, "__file__", "")):
            del sys.modules[name]


def _app(tmp_path: Path, source: str = COUNTER_APP) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app.py").write_text(textwrap.dedent(source))
    (app / "helpers.py").write_text("count = 0\n")
    return app


def _start(app: Path, *extra: str) -> Simulation:
    return Simulation(["--master", *extra, "--wsgi-file", "app.py"], app_dir=app).start()


def test_every_module_imported_while_open_is_dropped_at_close(tmp_path, lib_dir):
    """Today only modules from the app's directory are dropped: ``lazylib`` keeps the
    closed simulation's ``uwsgi`` for the next one."""
    before = dict(sys.modules)
    with _start(_app(tmp_path)) as sim:
        assert sim.get("/lazy").body == b"(1, True)"
        assert "lazylib" in sys.modules
    assert "lazylib" not in sys.modules and "helpers" not in sys.modules
    left = {n for n, m in sys.modules.items() if before.get(n) is not m
            and str(tmp_path) in str(getattr(m, "__file__", ""))}
    assert left == set() and sys.modules.get("uwsgi") is before.get("uwsgi")
    assert [n for n in before if n not in sys.modules] == []


def test_sys_path_entries_added_while_open_are_removed_at_close(tmp_path):
    """Today an app's ``sys.path.insert`` stays for the rest of the test session."""
    extra = str(tmp_path / "vendored")
    app = _app(tmp_path, f"import sys\nsys.path.insert(0, {extra!r})\n" + COUNTER_APP)
    before = list(sys.path)
    outer = _start(app)
    (tmp_path / "x").mkdir()
    inner = _start(_app(tmp_path / "x"))
    assert extra not in sys.path, "the outer simulation's entries are its own"
    outer.get("/")
    assert sys.path[0] == extra
    outer.close()
    inner.close()
    assert sys.path == before


def test_a_simulation_left_open_does_not_leak_into_the_next(tmp_path, lib_dir):
    """Today the second simulation's app gets the first one's ``lazylib`` (count 2, the
    first simulation's ``uwsgi``)."""
    app = _app(tmp_path)
    first = _start(app)
    assert first.get("/").body == b"1"
    assert first.get("/lazy").body == b"(1, True)"
    first.stop()  # stopped, never closed
    second = _start(app)
    try:
        assert second.get("/").body == b"1"
        assert second.get("/lazy").body == b"(1, True)"
        first.close()
        assert second.get("/").body == b"2"
    finally:
        second.close()
    assert "helpers" not in sys.modules


def test_nested_simulations_keep_their_own_modules(tmp_path):
    """Each simulation's lazy imports (and ``uwsgi``) are its own while it runs."""
    app = _app(tmp_path, COUNTER_APP.replace("import lazylib", "import helpers as lazylib")
               .replace("lazylib.uwsgi_pid()", "(lazylib.count, __import__('uwsgi').masterpid())"))
    outer = _start(app)
    inner = _start(app, "--processes", "1")
    outer.get("/"), outer.get("/"), inner.get("/")
    assert outer.get("/lazy").body == b"(2, %d)" % outer.process("master").pid
    assert inner.get("/lazy").body == b"(1, %d)" % inner.process("master").pid
    inner.close()
    assert sys.modules["uwsgi"] is outer.uwsgi, "as a nested with block ends"
    assert outer.get("/lazy").body == b"(2, %d)" % outer.process("master").pid
    outer.close()
    assert "uwsgi" not in sys.modules


TRY_IMPORT = "try:\n    import uwsgi\nexcept ImportError:\n    uwsgi = None\n" \
             "def under_uwsgi():\n    return uwsgi is not None\n"


def test_a_library_that_bound_uwsgi_none_before_the_simulation_sees_the_simulated_one(
        tmp_path, lib_dir):
    """Today the app runs the library in "not under uWSGI" mode, silently."""
    (lib_dir / "joblib_x.py").write_text(TRY_IMPORT)
    import joblib_x

    assert joblib_x.uwsgi is None
    app = _app(tmp_path, """
        import joblib_x
        def application(env, sr):
            sr("200 OK", [])
            return [repr(joblib_x.under_uwsgi()).encode()]
    """)
    with _start(app) as sim:
        assert sim.get("/").body == b"True"
        assert any("joblib_x" in line and "uwsgi = None" in line for line in sim.log)
    assert sys.modules["joblib_x"] is joblib_x and joblib_x.uwsgi is None


def test_start_fails_naming_the_module_when_the_app_reaches_a_stale_uwsgi_none(
        tmp_path, lib_dir):
    pkg = lib_dir / "jobpkg"
    pkg.mkdir()
    (pkg / "tasks.py").write_text(TRY_IMPORT)
    (pkg / "__init__.py").write_text("from .tasks import under_uwsgi\n")
    import jobpkg

    app = _app(tmp_path, """
        from jobpkg import under_uwsgi
        def application(env, sr):
            sr("200 OK", [])
            return [repr(under_uwsgi()).encode()]
    """)
    sim = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=app)
    with pytest.raises(SimulationError, match=r"'uwsgi_file_app' uses 'under_uwsgi' from "
                                              r"'jobpkg.tasks'.*uwsgi = None.*Fix:"):
        sim.start()
    assert sys.modules["jobpkg.tasks"] is jobpkg.tasks
    assert abs(time.time() - real_time.time()) < 5


HOOKS_APP = """
import uwsgi

def job(args):
    uwsgi.log("JOB RAN")
    return uwsgi.SPOOL_OK

def on_msg(msg):
    uwsgi.log("MULE GOT %s" % msg.decode())

if SET_AT_IMPORT:  # in the master, or in each worker with --lazy-apps
    uwsgi.spooler = job
    uwsgi.mule_msg_hook = on_msg

def application(env, sr):
    path = env["PATH_INFO"]
    if path == "/set":
        uwsgi.spooler = job
        uwsgi.mule_msg_hook = on_msg
    elif path == "/spool":
        uwsgi.spool({b"a": b"1"})
    elif path == "/mule":
        uwsgi.mule_msg(b"hi", 1)
    sr("200 OK", [])
    return [repr(hasattr(uwsgi, "spooler")).encode()]
"""

HOOK_OPTIONS = ["--master", "--processes", "1", "--mules", "1", "--spooler", "spool",
                "--spooler-frequency", "1", "--wsgi-file", "app.py"]


#: (hooks set at import?, extra options, the hook lines of the log), as real uWSGI gives
HOOK_CASES = [(False, [], "worker"), (True, [], "master"), (True, ["--lazy-apps"], "worker")]


def hooks_app(tmp_path: Path, at_import: bool) -> Path:
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "app.py").write_text(HOOKS_APP.replace("SET_AT_IMPORT", repr(at_import)))
    (app / "spool").mkdir(exist_ok=True)
    return app


WORKER_ONLY_LINES = [
    "*** mule 1 received a 2 bytes message ***",
    "unable to find the spooler function, have you loaded it into the spooler process ?"]
MASTER_LINES = ["JOB RAN", "MULE GOT hi"]


def hook_lines(log: list[str]) -> list[str]:
    """The distinct lines that say which hooks ran, sorted."""
    return sorted({line for line in log if line.startswith((
        "JOB RAN", "MULE GOT", "unable to find the spooler", "*** mule 1 received"))})


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize(("at_import", "extra", "where"), HOOK_CASES)
def test_spooler_and_mules_see_only_the_hooks_set_before_they_were_forked(
        tmp_path, mode, at_import, extra, where):
    """Today the one shared ``uwsgi`` module makes a worker's hooks run everywhere."""
    with Simulation([*extra, *HOOK_OPTIONS], app_dir=hooks_app(tmp_path, at_import),
                    mode=mode) as sim:
        assert sim.get("/set").body == b"True"
        assert sim.get("/spool").body == b"True", "the worker sees its own hook"
        sim.get("/mule")
        sim.advance(2)
        assert hook_lines(sim.log) == (WORKER_ONLY_LINES if where == "worker" else MASTER_LINES)
        if where == "master" and mode == "sim":  # (fork mode: a token of the master's child)
            assert sim.uwsgi.spooler.__name__ == "job", "the test reads the master's"


SERVE_APP = """
n = 0
def application(e, sr):
    global n
    n += 1
    sr("200 OK", [])
    return [b"%d" % n]
"""


@pytest.mark.parametrize(("flags", "shared"), [(["--mode", "fork"], False),
                                               (["--no-vfork"], True)])
def test_serve_accepts_mode_fork_and_no_vfork(tmp_path, flags, shared):
    """Today ``simuwsgi serve`` refuses both flags (usage error)."""
    import signal
    import socket
    import subprocess
    import urllib.request

    (tmp_path / "app.py").write_text(SERVE_APP)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from simuwsgi.cli import main; sys.exit(main())",
         "serve", *flags, "--for", "20", "--", "--master", "--processes", "2",
         "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", "app.py"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        counts = []
        deadline = real_time.monotonic() + 15
        while len(counts) < 6 and real_time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    counts.append(int(r.read()))
            except OSError:
                assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
                real_time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)  # SIGTERM is a reload, as for uWSGI's master
        proc.wait(10)
    assert len(counts) == 6
    # the seeded choice of worker spreads six requests over both workers
    assert (max(counts) == 6) is shared, counts


def test_simulations_in_two_threads_share_imports_until_the_last_closes(tmp_path, lib_dir):
    """Another thread's simulation may be running: its modules are never pulled from
    under it; what both imported goes when the last one closes."""
    import threading

    main = _start(_app(tmp_path))
    other = {}

    def in_thread():
        other["sim"] = _start(_app(tmp_path / "t"))
        other["body"] = other["sim"].get("/lazy").body

    (tmp_path / "t").mkdir()
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert other["body"] == b"(1, True)"
    assert main.get("/").body == b"1" and "lazylib" in sys.modules
    main.close()
    assert "lazylib" in sys.modules, "the other thread's simulation is still open"
    other["sim"].close()
    assert "lazylib" not in sys.modules and "helpers" not in sys.modules


def test_serve_refuses_no_vfork_in_fork_mode(tmp_path, capsys):
    from simuwsgi.cli import main

    assert main(["serve", "--mode", "fork", "--no-vfork", "--", "--http-socket",
                 "127.0.0.1:0", "--wsgi-file", "app.py"]) == 2
    assert "--no-vfork is for sim mode" in capsys.readouterr().err
