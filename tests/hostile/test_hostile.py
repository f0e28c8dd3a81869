"""The hostile-apps corpus: apps that end, signal, block or spin their own process.

Each runs in ``sim`` and ``fork`` mode; nothing an app does may end the test process,
signal a host process or hang the run (issue 12 §1 and §4). Where real uWSGI 2.0.30
defines the behaviour, ``test_hostile_real.py`` runs the same app on it.
"""

from __future__ import annotations

import faulthandler
import gc
import locale
import logging
import math
import random
import os
import shutil
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import warnings
import time
from pathlib import Path

import pytest
from _hostile import GAP, atexit_lines, copy_app, stdin_from_a_pipe

from simuwsgi import DeadlockError, Simulation, SimulationError, StallError
from simuwsgi._core.clock import RealClock

MODES = ["sim", "fork"]


def drive(sim: Simulation, paths: list[str]) -> dict[str, object]:
    out = {}
    for path in paths:
        out[path] = sim.get(path)
        sim.advance(GAP)
    return out


def deaths(log: list[str]) -> list[str]:
    return [line for line in log if line.startswith(("DAMN", "OOOPS", "..."))]


# -- process exits -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_exits_in_a_request_end_only_the_virtual_worker(tmp_path, mode):
    copy_app(tmp_path, "exits.py")
    paths = ["/os_exit", "/sys_exit", "/c_exit_caught", "/os_exit_caught", "/"]
    with Simulation(["--master", "--wsgi-file", "exits.py", "--queue", "4"],
                    app_dir=tmp_path, mode=mode) as sim:
        got = drive(sim, paths)
        sim.stop()
        log = list(sim.log)
    # each exit kills the worker: no response, and nobody caught it
    for path in paths[:-1]:
        assert got[path].status is None, (path, got[path])
        assert "died" in got[path].reason
    assert got["/"].status == 200 and got["/"].body == b"ok"
    died = [line.split(" (pid")[0] for line in deaths(log)]
    # exit status 5 is uWSGI's UWSGI_EXCEPTION_CODE: the master words it differently
    assert died == ["DAMN ! worker 1"] * 3 + ["... monitored exception detected, respawning "
                                              "worker 1"]
    # sys.exit runs the atexit handlers (Py_Exit), os._exit and C exit() in a request
    # do not; the stop runs them in the worker (end_me), never in the master
    assert atexit_lines(tmp_path) == ["worker", "worker"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("path", ["/keyboard_interrupt", "/generator_exit", "/base_exception"])
def test_base_exceptions_in_a_request_are_logged_like_errors(tmp_path, mode, path):
    copy_app(tmp_path, "exits.py")
    with Simulation(["--master", "--wsgi-file", "exits.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        first = sim.get(path)
        second = sim.get("/")
        log = list(sim.log)
    assert first.status is None and "raised before start_response" in first.reason
    assert second.status == 200  # the same worker goes on
    assert not deaths(log)
    name = {"/keyboard_interrupt": "KeyboardInterrupt", "/generator_exit": "GeneratorExit",
            "/base_exception": "BaseException: hostile"}[path]
    assert name in log


@pytest.mark.parametrize("mode", MODES)
def test_process_identity_is_the_virtual_one(tmp_path, mode):
    copy_app(tmp_path, "exits.py")
    argv = list(__import__("sys").argv)
    with Simulation(["--master", "--wsgi-file", "exits.py", "--pyargv", "-v  --x=1"],
                    app_dir=tmp_path, mode=mode) as sim:
        got = sim.get("/whoami").json()
        assert __import__("sys").argv == argv  # the test keeps its own argv
    assert got == {"argv": ["uwsgi", "-v", "--x=1"], "ppid_is_master": True,
                   "pid_is_master": False}


def test_atexit_handlers_run_on_reload_and_recycle_but_not_on_sigkill(tmp_path):
    copy_app(tmp_path, "exits.py")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "exits.py",
                     "--max-requests", "1", "--min-worker-lifetime", "0"],
                    app_dir=tmp_path) as sim:
        sim.get("/")  # recycles the worker that served it
        sim.advance(GAP)
        assert atexit_lines(tmp_path) == ["worker"]
        sim.kill("worker1")
        sim.advance(GAP)
        assert atexit_lines(tmp_path) == ["worker"]
        sim.reload()
        sim.advance(GAP)
        assert atexit_lines(tmp_path) == ["worker"] * 3
        sim.stop()
        assert atexit_lines(tmp_path) == ["worker"] * 5
    assert atexit_lines(tmp_path) == ["worker"] * 5  # closing is not an exit: none run


# -- signal handlers and mules ---------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_exits_in_signal_handlers_and_mules(tmp_path, mode):
    copy_app(tmp_path, "handlers.py")
    with Simulation(["--master", "--wsgi-file", "handlers.py", "--mule"], app_dir=tmp_path,
                    mode=mode) as sim:
        drive(sim, ["/signal/10", "/signal/11", "/signal/12", "/signal/13", "/signal/14"])
        log = list(sim.log)
    assert [line.split(" (pid")[0] for line in deaths(log)] == [
        "DAMN ! worker 1", "DAMN ! worker 1", "OOOPS mule 1"]
    assert "KeyboardInterrupt" in log
    assert "error managing signal 11 on worker 1" in log
    assert "error managing signal 14 on mule 1" in log


# -- at import -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_sys_exit_at_import_ends_the_instance_not_the_test(tmp_path, mode):
    copy_app(tmp_path, "import_exit.py")
    sim = Simulation(["--master", "--wsgi-file", "import_exit.py"], app_dir=tmp_path,
                     mode=mode)
    with pytest.raises(SimulationError, match=r"sys\.exit\(7\) .*status 7"):
        sim.start()
    assert atexit_lines(tmp_path) == ["import"]


@pytest.mark.parametrize("mode", MODES)
def test_os_exit_at_import_ends_the_instance_not_the_test(tmp_path, mode):
    copy_app(tmp_path, "import_os_exit.py")
    sim = Simulation(["--master", "--wsgi-file", "import_os_exit.py"], app_dir=tmp_path,
                     mode=mode)
    with pytest.raises(SimulationError, match=r"os\._exit\(5\) .*status 5"):
        sim.start()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("app,line", [
    ("import_exit.py", "DAMN ! worker 1 (pid: {pid}) died :( trying respawn ..."),
    ("import_os_exit.py",
     "... monitored exception detected, respawning worker 1 (pid: {pid})..."),
])
def test_exit_while_a_lazy_worker_loads_the_app_respawns_it(tmp_path, mode, app, line):
    copy_app(tmp_path, app)
    with Simulation(["--master", "--lazy-apps", "--wsgi-file", app], app_dir=tmp_path,
                    mode=mode, allow_no_app=True) as sim:
        pid = sim.process("worker1").pid
        sim.advance(3)
        log = list(sim.log)
    assert line.format(pid=pid) in log
    assert "worker respawning too fast !!! i have to sleep a bit (2 seconds)..." in log


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lazy", [[], ["--lazy-apps"]])
def test_keyboard_interrupt_at_import_is_a_failed_load(tmp_path, mode, lazy):
    copy_app(tmp_path, "import_interrupt.py")
    with Simulation(["--master", *lazy, "--wsgi-file", "import_interrupt.py"],
                    app_dir=tmp_path, mode=mode, allow_no_app=True) as sim:
        resp = sim.get("/")
        log = list(sim.log)
    assert resp.status == 500
    assert "KeyboardInterrupt" in log
    assert "unable to load app 0 (mountpoint='') (callable not found or import error)" in log


# -- os.kill / signal.signal ---------------------------------------------------------------------
def _kills(tmp_path: Path, mode: str, paths: list[str], *extra: str):
    copy_app(tmp_path, "kills.py")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "kills.py", *extra],
                    app_dir=tmp_path, mode=mode, seed=3) as sim:
        got = drive(sim, paths)
        return got, list(sim.log), sim


@pytest.mark.parametrize("mode", MODES)
def test_os_kill_reaches_the_virtual_process_with_uwsgis_meaning(tmp_path, mode):
    got, log, _sim = _kills(tmp_path, mode, ["/self/15", "/self/1", "/other/9", "/other/14",
                                             "/other/2", "/self/10"])
    assert got["/self/15"].status is None  # SIGTERM: end_me, mid-request
    assert got["/self/1"].status == 200  # SIGHUP: the request ends, then the worker
    assert any(line.startswith("Gracefully killing worker") for line in log)
    assert [line.split("died")[1] for line in log if line.startswith("DAMN")] == [
        " :( trying respawn ...", ", killed by signal 9 :( trying respawn ...",
        ", killed by signal 14 :( trying respawn ...", " :( trying respawn ..."]
    assert any(line.endswith(" total requests: 4") for line in log)  # SIGUSR1: stats


@pytest.mark.parametrize("mode", MODES)
def test_raise_signal_and_pthread_kill_are_os_kill_of_the_virtual_process(tmp_path, mode):
    """signal.raise_signal and signal.pthread_kill signal the calling virtual process (the
    same log as os.kill of its own pid), never the test process."""
    def master_lines(paths: list[str]) -> list[str]:
        _got, log, _sim = _kills(tmp_path, mode, paths)
        return [re.sub(r"\d+", "N", line) for line in log
                if line.startswith(("DAMN", "Gracefully", "worker"))]

    by_kill = master_lines(["/self/10", "/self/1", "/self/15", "/"])
    assert len(by_kill) == 4
    assert master_lines(["/raise/10", "/thread/1", "/raise/15", "/"]) == by_kill
    assert master_lines(["/thread/10", "/raise/1", "/thread/15", "/"]) == by_kill


@pytest.mark.parametrize("mode", MODES)
def test_the_signal_mask_is_refused_in_a_virtual_process(tmp_path, mode):
    """pthread_sigmask would block the test process's signals (Ctrl-C): refused."""
    got, _log, _sim = _kills(tmp_path, mode, ["/sigmask"])
    assert got["/sigmask"].body == b"NotSimulatedError"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("signum,line", [
    (signal.SIGHUP, "...gracefully killing workers..."),
    (signal.SIGTERM, "binary reloading uWSGI..."),
    (signal.SIGINT, "goodbye to uWSGI."),
    (signal.SIGQUIT, "goodbye to uWSGI."),
    (signal.SIGUSR1, ";uWSGI instance configuration"),
])
def test_os_kill_of_the_master_pid_signals_the_virtual_master(tmp_path, mode, signum, line):
    got, log, _sim = _kills(tmp_path, mode, [f"/master/{int(signum)}"])
    assert got[f"/master/{int(signum)}"].status == 200
    assert line in log


@pytest.mark.parametrize("mode", MODES)
def test_os_kill_of_a_pid_that_is_not_virtual_is_refused(tmp_path, mode):
    got, _log, _sim = _kills(tmp_path, mode, ["/stranger"])
    assert got["/stranger"].body == b"refused"


@pytest.mark.parametrize("mode", MODES)
def test_signal_handlers_installed_by_the_app_stay_in_the_simulation(tmp_path, mode):
    before = signal.getsignal(signal.SIGUSR1)
    got, _log, sim = _kills(tmp_path, mode, ["/handler", "/getsignal"])
    assert got["/handler"].body == b"[10]"
    assert signal.getsignal(signal.SIGUSR1) is before


@pytest.mark.parametrize("mode", MODES)
def test_a_wakeup_descriptor_set_by_the_app_is_its_process_own(tmp_path, mode):
    """``signal.set_wakeup_fd`` in a virtual process: the process's signals write their
    number there, a failed write is reported in the log, and the test process's own
    descriptor (trio's, asyncio's) stays."""
    host = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(host)
    got, log, _sim = _kills(tmp_path, mode, ["/wakeup", "/wakeup_closed", "/siginterrupt"])
    assert got["/wakeup"].body == b"[-1, [10], True, 'the fd N must be in non-blocking mode']"
    assert got["/wakeup_closed"].status == 200
    assert got["/siginterrupt"].body == b"signal number out of range"
    assert [line for line in log if "wakeup fd" in line or line.startswith("OSError")] == [
        "Exception ignored when trying to write to the signal wakeup fd:",
        "OSError: [Errno 9] Bad file descriptor"]
    assert signal.set_wakeup_fd(host) == host


ATEXITS = {"": ["uwsgi.atexit", "atexit"], "--skip-atexit-teardown": ["uwsgi.atexit"],
           "--skip-atexit": []}


def exits_of_the_other_worker(tmp_path, option: str, mode: str = "sim") -> list[str]:
    """What the worker ``atexits.py``'s /other ends ran as it exited (``ATEXITS``)."""
    copy_app(tmp_path, "atexits.py")
    options = ["--master", "--processes", "2", "--wsgi-file", "atexits.py",
               *([option] if option else [])]
    with Simulation(options, app_dir=tmp_path, mode=mode) as sim:
        assert sim.get("/other").status == 200
        sim.advance(GAP)
        log = tmp_path / "exits.log"
        return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("option", list(ATEXITS))
def test_uwsgi_atexit_runs_before_the_atexit_handlers(tmp_path, mode, option):
    """``uwsgi_python_atexit``: ``uwsgi.atexit`` first, then ``Py_Finalize`` (the
    ``atexit`` module's handlers), which ``--skip-atexit-teardown`` skips;
    ``--skip-atexit`` makes end_me ``_exit()`` (none of them)."""
    assert exits_of_the_other_worker(tmp_path, option, mode) == ATEXITS[option]


FAULT_PATHS = ["/enable", "/disable", "/dump", "/later", "/", "/cancelled", "/register",
               "/abort", "/", "/errors"]


def fault_lines(log: list[str]) -> list[str]:
    """What faulthandler wrote in the log (thread ids blanked out)."""
    starts = ("Stack", "Timeout", "Thread", "Current thread", "Fatal Python")
    return [re.sub(r"0x[0-9a-f]{16}", "0xN", line) for line in log
            if line.startswith(starts) or re.match(r'  File ".*", line \d+ in ', line)]


@pytest.mark.parametrize("mode", MODES)
def test_faulthandler_in_a_worker_acts_on_its_process(tmp_path, mode):
    """faulthandler in app code is the virtual process's: its dumps go to the log with
    the app's frames, ``dump_traceback_later(exit=True)`` ends the worker when the
    virtual timeout comes (in fork mode it is refused, loudly), a registered SIGUSR2 is
    dumped, os.abort dumps "Fatal Python error"; the test process's own faulthandler
    (pytest's) stays as it was, and the test process lives."""
    host = faulthandler.is_enabled()
    copy_app(tmp_path, "faults.py")
    with Simulation(["--master", "--wsgi-file", "faults.py"], app_dir=tmp_path, mode=mode,
                    seed=3) as sim:
        got = drive(sim, FAULT_PATHS)
        log = list(sim.log)
    assert faulthandler.is_enabled() is host
    bodies = {path: (r.status, r.body) for path, r in got.items()}
    assert bodies["/enable"] == (200, b"True")
    assert bodies["/disable"] == (200, b"[True, False, False]")
    assert bodies["/register"] == (200, b"[True, False]")
    assert bodies["/abort"] == (None, b"")
    assert bodies["/"] == (200, b"ok")
    here = "faults.py"  # as --wsgi-file gives it (Instance.exception_lines)
    stack = "Stack (most recent call first):"
    timed_out = ["Timeout (0:00:01.500000)!", "Thread 0xN (most recent call first):",
                 f'  File "{here}", line 23 in application']
    assert fault_lines(log) == [
        stack, f'  File "{here}", line 20 in application',
        *(timed_out if mode == "sim" else []),
        stack, f'  File "{here}", line 30 in application',
        "Fatal Python error: Aborted", stack, f'  File "{here}", line 35 in application']
    if mode == "sim":  # the timer's _exit(1), after its dump
        assert bodies["/later"] == (None, b"") and bodies["/cancelled"] == (200, b"ok")
        assert "DAMN ! worker 1 (pid: 1002) died :( trying respawn ..." in log
        assert bodies["/errors"][1].startswith(b"[\"ValueError('timeout must be greater")
    else:
        assert "NotSimulatedError: faulthandler.dump_traceback_later() in a fork mode child" \
            in "\n".join(log)


def test_faulthandler_enabled_at_import_is_the_workers_too(tmp_path):
    """Enabled in the master as the app loads, it is inherited by the workers it forks
    (their fatal signals are dumped); the pending dump timer of a worker that died never
    fires."""
    (tmp_path / "app.py").write_text(
        "import faulthandler, os, time\n"
        "faulthandler.enable(all_threads=False)\n"
        "def application(env, start_response):\n"
        "    if env['PATH_INFO'] == '/timer':\n"
        "        faulthandler.dump_traceback_later(5)\n"
        "        os._exit(3)\n"
        "    os.abort()\n")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.get("/timer")
        sim.advance(10)  # the timer's process is gone: no dump
        sim.get("/")
        sim.advance(2)
        log = list(sim.log)
    assert fault_lines(log) == ["Fatal Python error: Aborted",
                                "Stack (most recent call first):",
                                '  File "app.py", line 7 in application']


# -- nothing hangs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/spin", "/socket", "/swallow", "/regex", "/sum"])
def test_code_that_never_yields_raises_stall_error(tmp_path, path):
    copy_app(tmp_path, "stuck.py")
    with Simulation(["--master", "--wsgi-file", "stuck.py"], app_dir=tmp_path,
                    stall_timeout=0.3) as sim:
        with pytest.raises(StallError) as err:
            sim.get(path)
    message = str(err.value)
    assert f"worker1 (pid 1002) handling GET {path} (request 1)" in message
    assert "stuck.py" in message and "simuwsgi/" not in message
    # a C call that never checks for signals is stopped after the fact, and says so
    assert ("which nothing can interrupt: stopped when it returned" in message) is \
        (path == "/sum")


def test_a_join_of_a_thread_that_never_ends_is_a_deadlock_not_a_hang(tmp_path):
    """The thread is a virtual one: the join waits in virtual time, for ever, since no
    other thread of the worker can set the thread's event."""
    copy_app(tmp_path, "stuck.py")
    with Simulation(["--master", "--wsgi-file", "stuck.py"], app_dir=tmp_path,
                    stall_timeout=0.3) as sim:
        with pytest.raises(DeadlockError, match=r"deadlock in worker1 \(pid 1002\): every "
                           r"thread .*: the main thread handling GET /join, thread "
                           r"'Thread-1 \(wait\)'"):
            sim.get("/join")


def test_a_response_polled_for_for_ever_is_an_error_not_a_hang(tmp_path):
    """A loop of short sleeps yields, so the stall check never fires; but the request
    would take 7 virtual days of 0.01 s sleeps: the wait gives up after 12 times
    stall_timeout real seconds, naming the request and what it waits for."""
    copy_app(tmp_path, "stuck.py")
    with Simulation(["--master", "--wsgi-file", "stuck.py"], app_dir=tmp_path,
                    stall_timeout=0.25) as sim:
        began = RealClock.monotonic()
        with pytest.raises(SimulationError) as err:
            sim.get("/poll")
        assert RealClock.monotonic() - began < 3 + 2  # 12 x 0.25 s, and a slice
        assert "no response after 3 real seconds" in str(err.value)
        assert "GET /poll" in str(err.value) and "sleep(0.01)" in str(err.value)
        # a timeout given is the test's own bound: no real-time limit then
        assert sim.get("/poll", timeout=60).status is None


@pytest.mark.parametrize("path", ["/spin", "/socket", "/regex"])
def test_code_that_never_yields_is_a_harakiri_when_one_is_set(tmp_path, path):
    copy_app(tmp_path, "stuck.py")
    with Simulation(["--master", "--wsgi-file", "stuck.py", "--harakiri", "20"],
                    app_dir=tmp_path, stall_timeout=0.3) as sim:
        resp = sim.get(path)
        assert resp.status is None and "harakiri" in resp.reason
        assert sim.now == 20  # the master killed it at its deadline, as uWSGI would
        sim.advance(GAP)
        assert sim.get("/").status == 200
        log = list(sim.log)
    # uwsgi_log_verbose: after the date
    assert "Thu Jan  1 00:00:20 2026 - *** HARAKIRI ON WORKER 1 (pid: 1002, try: 1, " \
           "graceful: yes) ***" in log


@pytest.mark.parametrize("path", ["/spin", "/swallow"])
def test_ctrl_c_stops_a_stuck_run_within_a_second(tmp_path, path):
    copy_app(tmp_path, "stuck.py")
    timer = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident,
                                                       signal.SIGINT))
    with Simulation(["--master", "--wsgi-file", "stuck.py"], app_dir=tmp_path,
                    stall_timeout=None) as sim:
        timer.start()
        began = RealClock.monotonic()
        with pytest.raises(KeyboardInterrupt):
            sim.get(path)
        assert RealClock.monotonic() - began < 1.3
    timer.join()


def test_driving_the_simulation_from_app_code_is_refused_at_once(tmp_path):
    (tmp_path / "app.py").write_text(
        "import builtins\n"
        "def application(env, sr):\n"
        "    try:\n"
        "        getattr(builtins.SIM, env['PATH_INFO'][1:])(1)\n"
        "        body = b'no error'\n"
        "    except Exception as exc:\n"
        "        body = str(exc).encode()\n"
        "    sr('200 OK', [])\n"
        "    return [body]\n")
    import builtins

    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        builtins.SIM = sim  # type: ignore[attr-defined]
        try:
            for name in ("advance", "get", "run_until"):
                body = sim.get(f"/{name}").text
                assert body.startswith(f"sim.{name if name != 'get' else 'run'}() called "
                                       "from app code running in worker1 (pid 1002)"), body
        finally:
            del builtins.SIM  # type: ignore[attr-defined]


@pytest.mark.parametrize("call,value", [
    ("advance", -1), ("advance", math.nan), ("advance", math.inf),
    ("run_until", math.nan), ("run_until", math.inf), ("run_until", -5),
    ("step_clock", math.nan), ("step_clock", -math.inf),
])
def test_driving_calls_refuse_negative_nan_and_infinite_durations(tmp_path, call, value):
    copy_app(tmp_path, "exits.py")
    with Simulation(["--master", "--wsgi-file", "exits.py"], app_dir=tmp_path) as sim:
        with pytest.raises(ValueError, match=r"must|back in time"):
            getattr(sim, call)(value)
        assert sim.now == 0


# -- state that cannot be copied ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_locks_sockets_and_threads_in_globals(tmp_path, mode):
    copy_app(tmp_path, "holders.py")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "holders.py"],
                    app_dir=tmp_path, mode=mode) as sim:
        bodies = [sim.get("/").body for _ in range(3)]
    assert all(body.endswith(b" True") for body in bodies)


@pytest.mark.parametrize("mode", MODES)
def test_datetimes_made_in_the_app_pickle(tmp_path, mode):
    copy_app(tmp_path, "holders.py")
    with Simulation(["--master", "--wsgi-file", "holders.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        assert sim.get("/pickle").body == b"True"


def test_the_host_is_untouched_after_close(tmp_path):
    saved = (os._exit, os.kill, os.killpg, os.getppid, signal.signal, signal.getsignal,
             signal.getsignal(signal.SIGINT))
    copy_app(tmp_path, "exits.py")
    with Simulation(["--master", "--wsgi-file", "exits.py"], app_dir=tmp_path) as sim:
        sim.get("/")
        assert os.getppid() == saved[3]()  # the test's own calls are real
    assert (os._exit, os.kill, os.killpg, os.getppid, signal.signal, signal.getsignal,
            signal.getsignal(signal.SIGINT)) == saved


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_the_cpu_timer_is_put_back_whatever_the_closing_order(tmp_path, order):
    copy_app(tmp_path, "exits.py")
    before = (signal.getsignal(signal.SIGVTALRM), signal.getitimer(signal.ITIMER_VIRTUAL))
    sims = [Simulation(["--master", "--wsgi-file", "exits.py"], app_dir=tmp_path).start()
            for _ in range(2)]
    assert signal.getitimer(signal.ITIMER_VIRTUAL)[1] > 0  # armed while they run
    for index in order:
        sims[index].close()
    assert (signal.getsignal(signal.SIGVTALRM),
            signal.getitimer(signal.ITIMER_VIRTUAL)) == before


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what,dies", [("interrupt", False), ("exit", True),
                                       ("os_exit", True)])
def test_the_spooler_function_ending_its_process(tmp_path, mode, what, dies):
    copy_app(tmp_path, "spooled.py")
    (tmp_path / "spool").mkdir()
    with Simulation(["--master", "--wsgi-file", "spooled.py", "--spooler", "spool",
                     "--spooler-frequency", "1"], app_dir=tmp_path, mode=mode) as sim:
        assert sim.get(f"/{what}").status == 200
        sim.advance(GAP)
        log = list(sim.log)
    # real uWSGI 2.0.30: the traceback, and the task stays to be retried; an exit
    # kills the spooler, which the master respawns
    assert ("OOOPS the spooler is no more...trying respawn..." in log) is dies
    assert ("KeyboardInterrupt" in log) is not dies
    assert len(list((tmp_path / "spool").iterdir())) == 1


# -- host commands ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_commands_the_app_starts_run_on_the_host_by_default(tmp_path, mode):
    copy_app(tmp_path, "commands.py")
    with Simulation(["--master", "--wsgi-file", "commands.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        bodies = {path: sim.get(path).body
                  for path in ("/run", "/shell", "/system", "/popen", "/spawn")}
        assert sim.now == 0  # a command takes no virtual time
        records = [r for r in sim.trace if r.kind == "subprocess"]
    assert bodies == {"/run": b"hello\n", "/shell": b"42\n", "/system": b"3",
                      "/popen": b"popen\n", "/spawn": b"0"}
    assert [(r.process, r.fields["how"], r.fields["argv"], r.fields["action"])
            for r in records] == [
        ("worker1", "subprocess.Popen", ["echo", "hello"], "run"),
        ("worker1", "subprocess.Popen", ["/bin/sh", "-c", "echo $((6 * 7))"], "run"),
        ("worker1", "os.system", ["/bin/sh", "-c", "exit 3"], "run"),
        ("worker1", "subprocess.Popen", ["/bin/sh", "-c", "echo popen"], "run"),
        ("worker1", "os.posix_spawnp", ["true"], "run")]


@pytest.mark.parametrize("mode", MODES)
def test_commands_are_refused_when_the_policy_says_so(tmp_path, mode):
    copy_app(tmp_path, "commands.py")
    seen = []

    def policy(argv):
        seen.append(argv)
        return "run" if argv[0] == "echo" else "refuse"

    with Simulation(["--master", "--wsgi-file", "commands.py"], app_dir=tmp_path,
                    mode=mode, subprocess=policy) as sim:
        assert sim.get("/run").body == b"hello\n"
        for path in ("/shell", "/system", "/popen", "/spawn", "/exec"):
            body = sim.get(path).text
            assert body.startswith("refused: ") and "subprocess='refuse'" in body, body
        assert not deaths(list(sim.log))
    if mode == "sim":  # fork mode: the policy runs in the virtual process's OS child
        assert seen[0] == ["echo", "hello"] and len(seen) == 6
    with Simulation(["--master", "--wsgi-file", "commands.py"], app_dir=tmp_path,
                    mode=mode, subprocess="refuse") as sim:
        assert sim.get("/run").text.startswith("refused: subprocess.Popen(['echo', 'hello'])"
                                               " in worker1 (pid 1002)")


@pytest.mark.parametrize("mode", MODES)
def test_exec_makes_the_virtual_process_the_program(tmp_path, mode):
    copy_app(tmp_path, "commands.py")
    with Simulation(["--master", "--wsgi-file", "commands.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        pid = int(sim.get("/pid").body)
        assert sim.get("/exec_missing").body == b"OSError: 2"  # as execv(2) fails
        resp = sim.get("/exec")
        sim.advance(GAP)
        assert sim.get("/").status == 200  # the master respawned it
        log = list(sim.log)
        runs = [r.fields for r in sim.trace if r.kind in ("subprocess", "death")]
    assert runs == [{"how": "os.exec", "argv": ["sh", "-c", "exit 4"], "action": "run"},
                    {"pid": pid, "reason": f"exec'd {shutil.which('sh')} exited with "
                                           "status 4"}]
    # the program's exit status is the worker's, as the master sees it
    assert resp.status is None and "died" in resp.reason
    assert deaths(log) == [f"DAMN ! worker 1 (pid: {pid}) died :( trying respawn ..."]


def test_a_bad_subprocess_policy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="subprocess must be 'run', 'refuse' or a callable"):
        Simulation(["--master"], subprocess="maybe")


# -- Python signal handlers signalled by another process ------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_a_handler_signalled_by_another_process_runs_in_that_process(tmp_path, mode):
    copy_app(tmp_path, "crosskill.py")
    with Simulation(["--master", "--wsgi-file", "crosskill.py", "--mule"],
                    app_dir=tmp_path, mode=mode) as sim:
        got = [sim.get(path) for path in ("/record", "/signal", "/explode", "/signal", "/")]
        log = list(sim.log)
        signals = [(r.process, r.fields) for r in sim.trace if r.kind == "os.signal"]
    seen = b"10:1:True:True"  # signal, worker id, its own pid, the app's frame
    assert [(r.status, r.body) for r in got] == [
        (200, b""), (200, seen), (200, seen), (None, b""), (200, seen)]
    # the exception of the handler came out of the request's time.sleep
    assert "RuntimeError: handler of signal 10" in log
    assert signals == [("worker1", {"signum": 10, "action": "handler"})] * 2


def test_a_simulation_never_closed_does_not_end_the_test_process_at_exit(tmp_path):
    """Its CPU timer is disarmed at exit: a tick after Python put the default action
    of SIGVTALRM back would kill the process ("Virtual timer expired", status 154)."""
    copy_app(tmp_path, "exits.py")
    (tmp_path / "leave_open.py").write_text(
        "from simuwsgi import Simulation\n"
        "sim = Simulation(['--master', '--wsgi-file', 'exits.py']).start()\n"
        "sim.get('/')\n"
        "HEAP = [{'n': i} for i in range(3_000_000)]  # CPU while the interpreter ends\n")
    for _ in range(3):  # a tick lands in the teardown two times in three
        done = subprocess.run([sys.executable, "leave_open.py"], cwd=tmp_path, timeout=120)
        assert done.returncode == 0


# -- the process environment ---------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_environment_changes_end_with_the_simulation(tmp_path, monkeypatch, mode):
    """What app code sets in ``os.environ`` (and the zone it applies with
    ``time.tzset()``) does not outlive the simulation: the next simulation's app and the
    test process see the environment they had before."""
    copy_app(tmp_path, "environ.py")
    monkeypatch.setenv("SIMUWSGI_HOSTILE_HOST", "kept")
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    before, zone = dict(os.environ), time.tzname
    bodies = []
    for name in ("one", "two"):
        with Simulation(["--master", "--wsgi-file", "environ.py", "--env", f"APP_NAME={name}"],
                        app_dir=tmp_path, mode=mode, tz="Europe/Paris") as sim:
            bodies += [sim.get("/").body, sim.get("/set").body]
        assert dict(os.environ) == before
        assert time.tzname == zone
    assert bodies == [b"one.settings CET", b"one.settings JST",
                      b"two.settings CET", b"two.settings JST"]


def interpreter_settings() -> dict[str, object]:
    mask = os.umask(0o022)
    os.umask(mask)
    return {"gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
            "recursion": sys.getrecursionlimit(), "umask": mask,
            "files": resource.getrlimit(resource.RLIMIT_NOFILE),
            "uid": os.getuid(), "priority": os.getpriority(os.PRIO_PROCESS, 0),
            "switch": sys.getswitchinterval(),
            "digits": getattr(sys, "get_int_max_str_digits", lambda: None)(),
            "thread hook": threading.excepthook,
            "socket timeout": socket.getdefaulttimeout(), "excepthook": sys.excepthook,
            "warnings": list(warnings.filters), "locale": locale.setlocale(locale.LC_ALL),
            "root": (logging.getLogger().level, list(logging.getLogger().handlers)),
            "app logger": list(logging.getLogger("app.requests").handlers)}


@pytest.mark.parametrize("mode", MODES)
def test_interpreter_settings_end_with_the_simulation(tmp_path, mode):
    """An app that switches the collector off, raises the recursion limit, sets a umask,
    a socket timeout, warnings, logging and the locale changes its own processes; the
    test process has its settings back after ``close()``, and the app's log handlers
    wrote to the instance's log while it ran."""
    copy_app(tmp_path, "interpreter.py")
    before = interpreter_settings()
    with Simulation(["--master", "--wsgi-file", "interpreter.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        assert sim.get("/").body == b"ok"
        assert sim.get("/setuid").body == b"ok"
        log = list(sim.log)
    assert interpreter_settings() == before
    assert "a request" in log  # the app logger's handler wrote to the instance's log
    refusal = [line for line in log if line.startswith("NotSimulatedError: os.setuid()")]
    assert refusal == ["NotSimulatedError: os.setuid() in a virtual process: it would change "
                       "the test process's user, groups, root directory or session for good "
                       "(a simulation cannot change them, as its --uid/--gid/--chroot "
                       "options say)"]


@pytest.mark.parametrize("mode", MODES)
def test_stdin_is_dev_null_unless_honour_stdin(tmp_path, mode):
    """uWSGI remaps fd 0 to /dev/null (``core/socket.c``): an app reading its stdin reads
    nothing at once, never the test process's input (a pipe that stays open here: the
    read would block until the stall watchdog)."""
    copy_app(tmp_path, "stdin.py")
    with stdin_from_a_pipe() as send:
        with Simulation(["--master", "--wsgi-file", "stdin.py"], app_dir=tmp_path,
                        mode=mode) as sim:
            assert sim.get("/").body == b"('', 'EOFError')"
        send(b"typed\n")
        with Simulation(["--master", "--wsgi-file", "stdin.py", "--honour-stdin"],
                        app_dir=tmp_path, mode=mode) as sim:
            assert sim.get("/").body == b"('typed\\n', 'EOFError')"


# -- the random module ---------------------------------------------------------------------
_RANDOM_APP = '''
import random

AT_IMPORT = random.random()


def application(env, start_response):
    start_response("200 OK", [])
    return [repr((AT_IMPORT, random.random())).encode()]
'''


def test_app_random_draws_follow_the_seed_and_leave_the_tests_stream(tmp_path):
    """The app's ``random`` module is seeded from the simulation's seed (uWSGI reseeds it
    in every forked process from the system: a simulation is reproducible instead), and
    the test's own stream goes on after close as if the simulation had drawn nothing."""
    (tmp_path / "app.py").write_text(_RANDOM_APP)

    def bodies(seed: int) -> list[bytes]:
        with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                        app_dir=tmp_path, seed=seed) as sim:
            return [sim.get("/").body for _ in range(3)]

    random.seed(7)
    expected_next = random.random()
    random.seed(7)
    first = bodies(1)
    assert random.random() == expected_next
    assert bodies(1) == first
    assert bodies(2) != first
    assert len(set(first)) == 3


@pytest.mark.parametrize("mode", MODES)
def test_the_standard_descriptors_stay_the_test_process(tmp_path, mode):
    """``os.dup2(fd, 2)``, ``os.close(1)`` and ``os.closerange`` in app code would have
    redirected pytest's output, or closed the simulator's descriptors, for good."""
    copy_app(tmp_path, "fds.py")
    before = [os.fstat(fd).st_ino for fd in (0, 1, 2)]
    with Simulation(["--master", "--wsgi-file", "fds.py"], app_dir=tmp_path, mode=mode) as sim:
        answers = {path: sim.get(path).body.decode()
                   for path in ("/dup2", "/close", "/closerange", "/own")}
    assert [os.fstat(fd).st_ino for fd in (0, 1, 2)] == before
    why = ("the test process's standard streams would be redirected or closed for good (its "
           "stdout, its stderr: pytest's output); the virtual process's output is its log")
    dup2 = answers.pop("/dup2")  # (the app's descriptor number varies)
    assert re.fullmatch(r"NotSimulatedError: os\.dup2\(\d+, 2\) in a virtual process: (.*)",
                        dup2).group(1) == why
    assert answers == {
        "/close": f"NotSimulatedError: os.close(1) in a virtual process: {why}",
        "/closerange": "NotSimulatedError: os.closerange() in a virtual process: it would "
                       "close descriptors of the test process (its standard streams, the "
                       "simulator's own); close the app's own with os.close",
        "/own": "done"}


def _process_wide() -> dict[str, object]:
    import asyncio
    import builtins
    import threading

    return {"meta_path": list(sys.meta_path), "path_hooks": list(sys.path_hooks),
            "builtins": sorted(vars(builtins)), "cwd": os.getcwd(),
            "tracing": (sys.gettrace(), sys.getprofile(), threading.gettrace(),
                        threading.getprofile()),
            "policy": asyncio.get_event_loop_policy()}


@pytest.mark.parametrize("mode", MODES)
def test_process_wide_state_the_app_changes_does_not_outlive_it(tmp_path, mode):
    """An import hook, builtins, the working directory, profile/trace functions and the
    event loop policy the app set at import were the test process's for good."""
    copy_app(tmp_path, "process_wide.py")
    before = _process_wide()
    with Simulation(["--master", "--wsgi-file", "process_wide.py"], app_dir=tmp_path,
                    mode=mode) as sim:
        assert sim.get("/").body == b"ok"
    assert _process_wide() == before
