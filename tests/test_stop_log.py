"""What the processes print as the instance stops (SIGINT to the master): each worker's
exit hooks run as it gets the master's signal, before the master buries it, and what
they print is the log's (in sim mode it went to the test's stderr, after the burials).
Real uWSGI 2.0.30 gives the order the ``real`` test checks."""

from __future__ import annotations

import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import atexit, sys, uwsgi

def bye():
    print("uwsgi.atexit of worker %d" % uwsgi.worker_id(), file=sys.stderr, flush=True)

uwsgi.atexit = bye
atexit.register(lambda: print("atexit of worker %d" % uwsgi.worker_id(), flush=True))

def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""
ARGV = ["--master", "--processes", "2", "--wsgi-file", "app.py"]


def _stop_lines(log: list[str]) -> list[str]:
    """From the master's SIGINT line on; the workers' hook lines, printed in parallel on
    the real server, in a fixed order."""
    start = next(i for i, line in enumerate(log) if line.startswith("SIGINT/SIGTERM"))
    lines = log[start:]
    hooks = sorted(line for line in lines if "atexit of worker" in line)
    first = next(i for i, line in enumerate(lines) if "atexit of worker" in line)
    rest = [line for line in lines if "atexit of worker" not in line]
    return rest[:first] + hooks + rest[first:]


EXPECTED = ["SIGINT/SIGTERM received...killing workers...",
            "atexit of worker 1", "atexit of worker 2",
            "uwsgi.atexit of worker 1", "uwsgi.atexit of worker 2",
            "worker 1 buried after 1 seconds", "worker 2 buried after 1 seconds",
            "goodbye to uWSGI."]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_exit_hooks_print_to_the_log_before_the_burials(tmp_path, mode, capfd):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(ARGV, app_dir=tmp_path, mode=mode) as sim:
        sim.get("/")
        sim.stop()
        log = list(sim.log)
    assert _stop_lines(log) == EXPECTED
    assert "atexit" not in capfd.readouterr().err


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_order_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(ARGV, app_dir=tmp_path) as real:
        real.get("/", timeout=5)
        time.sleep(0.5)
        real.stop()
        log = real.app_log()
    assert _stop_lines(log) == EXPECTED


JOINING = """
import atexit, threading, uwsgi
from uwsgidecorators import postfork

state = {}

def loop():
    while not state["stop"].wait(5):
        pass
    print("loop end in worker %d" % uwsgi.worker_id(), flush=True)

def bye():
    state["stop"].set()
    state["thread"].join(30)
    print("joined in worker %d" % uwsgi.worker_id(), flush=True)

@postfork
def start():
    state["stop"] = threading.Event()
    state["thread"] = threading.Thread(target=loop, daemon=True)
    state["thread"].start()
    atexit.register(bye)

def application(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""
JOINED = [f"{what} in worker {w}" for w in (1, 2) for what in ("loop end", "joined")]


def _joined(log: list[str]) -> list[str]:
    """Each worker's lines, in its own order (the workers run theirs in parallel)."""
    lines = [line for line in log if " in worker " in line]
    return sorted(lines, key=lambda line: line[-1]) + \
        [line for line in log if "buried" in line][:1]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_an_exit_hook_joins_the_process_s_thread(tmp_path, mode):
    """An ``atexit`` handler that stops a ``@postfork`` thread and joins it (a tracer
    flushing its spans at exit): the worker runs it itself, so the join waits for the
    thread in virtual time (it could not: the hook ran outside the process, and the
    join failed or returned at once, in the test process's pid)."""
    (tmp_path / "app.py").write_text(textwrap.dedent(JOINING))
    with Simulation(ARGV + ["--enable-threads"], app_dir=tmp_path, mode=mode) as sim:
        sim.get("/")
        sim.advance(6)
        sim.stop()
        assert _joined(list(sim.log)) == [*JOINED, "worker 1 buried after 1 seconds"]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_join_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(JOINING))
    with RealUwsgi(ARGV + ["--enable-threads"], app_dir=tmp_path) as real:
        real.get("/", timeout=5)
        time.sleep(1)
        real.stop()
        log = real.app_log()
    assert _joined(log) == [*JOINED, "worker 1 buried after 1 seconds"]


SLOW_EXIT = """
import atexit, time, uwsgi

def spooler(env):
    print("spooled", env[b"n"].decode(), flush=True)
    return uwsgi.SPOOL_OK

uwsgi.spooler = spooler
atexit.register(lambda: time.sleep(5) if uwsgi.worker_id() else None)

def application(environ, start_response):
    uwsgi.spool({b"n": environ["PATH_INFO"][1:].encode()})
    start_response("200 OK", [])
    return [b"ok"]
"""


def test_only_the_processes_running_their_hooks_are_waited_for(tmp_path):
    """While a worker's exit hook takes 5 virtual seconds, the rest have gone with the
    SIGINT: the spooler (SIGKILL) runs no task spooled just before the stop."""
    (tmp_path / "app.py").write_text(textwrap.dedent(SLOW_EXIT))
    (tmp_path / "spool").mkdir()
    argv = ["--master", "--processes", "1", "--spooler", "spool", "--spooler-frequency",
            "1", "--wsgi-file", "app.py"]
    with Simulation(argv, app_dir=tmp_path) as sim:
        sim.get("/first")
        sim.advance(2)
        sim.get("/late")
        began = sim.now
        sim.stop()
        assert sim.now - began == pytest.approx(5, abs=0.01)  # the hook's sleep
        log = list(sim.log)
    assert [line for line in log if line.startswith("spooled")] == ["spooled first"]
    assert log[-3:] == ["spooler (pid: 1002) annihilated", "worker 1 buried after 6 seconds",
                        "goodbye to uWSGI."]
