"""Containment settings and their plumbing: the stall watchdog from the CLI and the
pytest marker, what it must not flag, and reports that stay under --report.

The hostile apps themselves are in ``tests/hostile/``."""

from __future__ import annotations

import pytest

from simuwsgi import Simulation
from simuwsgi.cli import main
from simuwsgi._core.clock import RealClock
from simuwsgi.report import write_report

SPIN_APP = "def application(e, sr):\n    while True:\n        pass\n"


def test_app_code_that_yields_often_is_never_a_stall(write_app, tmp_path):
    write_app(
        "import time\n"
        "def application(e, sr):\n"
        "    for _ in range(300):\n"
        "        sum(range(50_000))  # about a real millisecond of work\n"
        "        time.sleep(0.001)  # then it yields to the simulation\n"
        "    sr('200 OK', [])\n"
        "    return [b'ok']\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    stall_timeout=0.05) as sim:
        began = RealClock.monotonic()
        resp = sim.get("/")
        took = RealClock.monotonic() - began
    assert resp.status == 200
    assert took > 0.05  # longer than the limit in real time, yet never stuck


def test_the_test_itself_is_never_interrupted(write_app, tmp_path):
    write_app("def application(e, sr):\n    sr('200 OK', [])\n    return [b'ok']\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    stall_timeout=0.05) as sim:
        sim.get("/")
        RealClock.sleep(0.3)  # the test's own slow code, between driving calls
        assert sim.get("/").status == 200


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf")])
def test_stall_timeout_is_validated(tmp_path, value):
    with pytest.raises(ValueError, match="stall_timeout"):
        Simulation(["--master"], app_dir=tmp_path, stall_timeout=value)


def test_cli_stall_timeout(write_app, tmp_path, capsys, monkeypatch):
    write_app(SPIN_APP)
    monkeypatch.chdir(tmp_path)
    began = RealClock.monotonic()
    code = main(["run", "--for", "10", "--stall-timeout", "0.2", "--request", "1 GET /spin",
                 "--", "--master", "--wsgi-file", "app.py"])
    assert code == 3
    err = capsys.readouterr().err
    assert "worker1 (pid 1002) handling GET /spin (request 1) ran 0.2 real seconds" in err
    assert RealClock.monotonic() - began < 5


def test_marker_stall_timeout(pytester):
    pytester.makepyfile(app=SPIN_APP)
    pytester.makepyfile(test_it='''
        import pytest
        from simuwsgi import StallError

        @pytest.mark.uwsgi("--master", "--wsgi-file", "app.py", stall_timeout=0.2)
        def test_spin(uwsgi_sim):
            with pytest.raises(StallError, match="ran 0.2 real seconds"):
                uwsgi_sim.get("/")
    ''')
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_scenario_seed_must_be_an_integer(tmp_path, capsys):
    (tmp_path / "s.py").write_text("OPTIONS = ['--master']\nSEED = '../../escaped'\n")
    assert main(["run", str(tmp_path / "s.py"), "--report", str(tmp_path / "rep")]) == 2
    assert "SEED must be an integer, not '../../escaped'" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists()


def test_a_report_never_writes_outside_its_directory(tmp_path):
    summary = {"scenario": "..", "seed": "/x", "events_by_kind": {}}
    with pytest.raises(ValueError, match="would write outside"):
        write_report(None, summary, tmp_path / "rep")
    assert not (tmp_path / "x").exists()


def test_a_simulation_in_another_thread_is_watched_too(write_app, tmp_path):
    import threading

    write_app(SPIN_APP)
    errors: list[BaseException] = []

    def run() -> None:
        with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                        stall_timeout=0.2) as sim:
            try:
                sim.get("/")
            except BaseException as exc:  # noqa: BLE001 - what the thread saw
                errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert [type(e).__name__ for e in errors] == ["StallError"]


def test_two_open_simulations_each_contain_their_own_app(write_app, tmp_path):
    import signal

    write_app("import os, uwsgi\n"
              "def application(e, sr):\n"
              "    sr('200 OK', [])\n"
              "    return [b'%d' % os.getppid()]\n")
    before = (signal.getsignal(signal.SIGINT), __import__("os").kill)
    one = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path).start()
    two = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path).start()
    try:
        assert one.get("/").body == b"%d" % one.process("master").pid
        assert two.get("/").body == b"%d" % two.process("master").pid
    finally:
        one.close()  # not in the order they were opened
        assert two.get("/").status == 200
        two.close()
    assert (signal.getsignal(signal.SIGINT), __import__("os").kill) == before


def test_a_stall_while_the_master_imports_the_app(write_app, tmp_path):
    from simuwsgi import StallError

    write_app("while True:\n    pass\n")
    sim = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                     stall_timeout=0.2)
    with pytest.raises(StallError, match=r"^master \(pid 1001\) ran 0.2 real seconds"):
        sim.start()
    assert sim.closed


def test_killing_the_master_is_refused_loudly(write_app, tmp_path):
    write_app("import os, signal, uwsgi\n"
              "def application(e, sr):\n"
              "    try:\n"
              "        os.kill(uwsgi.masterpid(), signal.SIGKILL)\n"
              "    except Exception as exc:\n"
              "        body = f'{type(exc).__name__}: {exc}'.encode()\n"
              "    sr('200 OK', [])\n"
              "    return [body]\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        assert sim.get("/").text == ("NotSimulatedError: os.kill(1001, SIGKILL): the death of "
                                     "the master is not simulated (uWSGI's workers would live "
                                     "on as orphans)")


def test_killpg_of_the_instance_group_reaches_every_virtual_process(write_app, tmp_path):
    write_app("import os, signal\n"
              "def application(e, sr):\n"
              "    os.killpg(os.getpgrp(), signal.SIGUSR1)\n"
              "    sr('200 OK', [])\n"
              "    return [b'%d' % os.getpgid(0)]\n")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        assert sim.get("/").body == b"1001"
        sim.advance(1)
        log = list(sim.log)
    assert ";uWSGI instance configuration" in log  # the master's stats
    # each worker's (the sender's at once, mid-request; the other's after it)
    assert sorted(line.split(" total")[0] for line in log
                  if line.startswith("worker") and " total requests: " in line) == [
        "worker 1", "worker 2"]


HOST_LEVEL_APP = '''
import os, signal
CALLS = {"/fork": os.fork, "/forkpty": os.forkpty, "/alarm": lambda: signal.alarm(1),
         "/pause": signal.pause, "/itimer": lambda: signal.setitimer(signal.ITIMER_REAL, 1)}

def application(env, sr):
    sr("200 OK", [])
    if env["PATH_INFO"] == "/abort":
        os.abort()
    try:
        CALLS[env["PATH_INFO"]]()
    except NotImplementedError as exc:
        return [str(exc).encode()]
    return [b"ran"]
'''


@pytest.mark.parametrize(("path", "call"), [
    ("/fork", "os.fork"), ("/forkpty", "os.forkpty"), ("/alarm", "signal.alarm"),
    ("/pause", "signal.pause"), ("/itimer", "signal.setitimer")])
def test_host_level_calls_are_refused_in_a_virtual_process(tmp_path, path, call):
    """fork, OS timers and pause would act on the test run: refused, naming the call
    and what to use instead."""
    (tmp_path / "app.py").write_text(HOST_LEVEL_APP)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        body = sim.get(path).body.decode()
    assert body.startswith(f"{call}() in a virtual process: "), body


def test_os_abort_kills_the_virtual_process_with_sigabrt(tmp_path):
    (tmp_path / "app.py").write_text(HOST_LEVEL_APP)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        resp = sim.get("/abort")
        sim.advance(2)
        assert resp.status is None and "SIGABRT" in resp.reason
        assert "DAMN ! worker 1 (pid: 1002) died, killed by signal 6 :( trying respawn ..." \
            in sim.log
        assert sim.get("/fork").status == 200  # respawned
