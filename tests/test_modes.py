"""Modes: the driver interface, real mode (RealRun), `simuwsgi run --mode real`, the
conformance diff and its CLI, the pytest fixture's ``mode=``."""

from __future__ import annotations

import os
import socket
import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.cli import main as cli_main
from simuwsgi.conform import compare
from simuwsgi.driver import Driver, NotSupportedInMode
from simuwsgi.modes.real import RealRun, RealRunTimeout, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi
from simuwsgi.runner import RunResult
from simuwsgi._core.trace import Trace

APP = textwrap.dedent("""\
    import uwsgi

    def handler(num):
        print("handler", num, uwsgi.worker_id())

    uwsgi.register_signal(17, "workers", handler)

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello " + environ["PATH_INFO"].encode()]
    """)
OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py"]


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def test_both_drivers_implement_the_protocol(app_dir):
    assert isinstance(Simulation(OPTIONS, app_dir=app_dir), Driver)
    assert isinstance(RealRun(OPTIONS, app_dir=app_dir), Driver)


@requires_real_uwsgi
def test_real_run_drives_the_timeline_and_traces_in_the_sim_schema(app_dir):
    with RealRun(OPTIONS, app_dir=app_dir, deadline=20) as run:
        assert run.ready_after < 2.0
        r = run.get("/x")
        assert (r.status, r.body) == (200, b"hello /x")
        assert r.worker in (1, 2)
        run.signal(17)
        run.advance(0.3)
        h = run.submit("GET", "/later", at=0.5)
        run.wait(h)
        assert h.response.body == b"hello /later" and h.response.started >= 0.5
        run.kill("worker1")
        run.advance(1.2)
        trace = run.trace
    assert trace.count("signal.handler", num=17) == 2
    assert {r.process for r in trace.select("signal.handler")} == {"worker1", "worker2"}
    assert trace.count("request.end", status=200) == 2
    assert trace.count("death", "worker1") == 1
    assert trace.count("spawn", "worker1") == 2
    assert trace.count("fault.kill", "worker1") == 1
    assert all(rec.time >= 0 for rec in trace)
    assert any("DAMN ! worker 1" in line for line in run.log)


@requires_real_uwsgi
def test_real_mode_refuses_a_clock_step(app_dir):
    with (RealRun(OPTIONS, app_dir=app_dir, deadline=20) as run,
          pytest.raises(NotSupportedInMode, match="cannot step the wall clock")):
        run.step_clock(3600)


@requires_real_uwsgi
def test_a_real_run_that_outlives_its_deadline_is_killed(app_dir):
    run = RealRun(OPTIONS, app_dir=app_dir, deadline=0.5)
    run.start()
    pgid = run.server.pgid
    with pytest.raises(RealRunTimeout, match="deadline of 0.5 s"):
        run.advance(5)
    assert run.now < 3
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


@requires_real_uwsgi
def test_an_option_pyuwsgi_lacks_gives_uwsgi_own_lines(app_dir):
    with pytest.raises(RealUwsgiError) as info:
        RealRun([*OPTIONS, "--no-such-option", "1"], app_dir=app_dir).start()
    assert "unrecognized option '--no-such-option'" in str(info.value)


@requires_real_uwsgi
def test_a_port_in_use_gives_uwsgi_own_lines(app_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(RealUwsgiError) as info:
            RealRun([*OPTIONS, "--http-socket", f"127.0.0.1:{port}"], app_dir=app_dir).start()
    assert "Address already in use" in str(info.value)


@requires_real_uwsgi
def test_cli_run_mode_real(app_dir, capsys, tmp_path):
    scenario = tmp_path / "scn.py"
    scenario.write_text(textwrap.dedent("""\
        OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py"]

        def timeline(sim):
            sim.get("/")
            sim.signal(17)
            sim.advance(0.3)

        def check(sim):
            assert sim.trace.count("signal.handler") == 2
        """))
    assert cli_main(["run", str(scenario), "--mode", "real", "--report",
                     str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "check: passed" in out and "signal handlers run" in out
    bad = tmp_path / "bad.py"
    bad.write_text('OPTIONS = ["--master", "--bogus-option", "1", "--wsgi-file", "app.py"]\n')
    assert cli_main(["run", str(bad), "--mode", "real"]) == 3
    assert "unrecognized option '--bogus-option'" in capsys.readouterr().err
    step = tmp_path / "step.py"
    step.write_text(textwrap.dedent("""\
        OPTIONS = ["--master", "--wsgi-file", "app.py"]

        def timeline(sim):
            sim.step_clock(60)
        """))
    assert cli_main(["run", str(step), "--mode", "real"]) == 3
    assert "cannot step the wall clock" in capsys.readouterr().err


@requires_real_uwsgi
def test_conform_reports_a_real_difference_with_exit_status_1(app_dir, tmp_path, capsys):
    # uwsgi.hostname is "simuwsgi" in the simulator and the host's name for real
    (app_dir / "host.py").write_text(textwrap.dedent("""\
        import uwsgi

        def application(environ, start_response):
            start_response("200 OK", [])
            return [uwsgi.hostname]
        """))
    scenario = app_dir / "host_scn.py"
    scenario.write_text(textwrap.dedent("""\
        OPTIONS = ["--master", "--wsgi-file", "host.py"]

        def timeline(sim):
            sim.get("/")
        """))
    assert cli_main(["conform", str(scenario), "--report", str(tmp_path / "rep")]) == 1
    out = capsys.readouterr().out
    assert "response 1 (GET /) body: sim 'simuwsgi' vs real" in out
    diff = (tmp_path / "rep" / "conform-host_scn" / "diff.txt").read_text()
    assert "3 difference(s)" in diff  # the body, and request.end's bytes (sim / real)
    assert "worker request.end status=200 bytes=8: sim has 1 (at [0.000]), real has 0" in diff
    assert (tmp_path / "rep" / "conform-host_scn" / "trace.real.msgpack").exists()


def _result(mode, rows, responses=()):
    trace = Trace()
    for t, proc, kind, fields in rows:
        trace.add(t, proc, kind, fields)
    return RunResult(mode=mode, trace=trace, log=[], responses=list(responses))


SETTINGS = {"identity": "kind", "tolerance": 1.5, "ignore": {}}


def test_compare_normalises_which_worker_but_not_counts_or_times():
    sim = _result("sim", [(1.0, "worker1", "signal.handler", {"num": 17})])
    same = _result("real", [(1.4, "worker2", "signal.handler", {"num": 17})])
    assert compare(sim, same, SETTINGS) == []
    late = _result("real", [(2.9, "worker2", "signal.handler", {"num": 17})])
    assert compare(sim, late, SETTINGS) == [
        "worker signal.handler num=17: times differ by more than 1.5 s (sim/real: 1.000/2.900)"]
    twice = _result("real", [(1.0, "worker1", "signal.handler", {"num": 17}),
                             (1.1, "worker2", "signal.handler", {"num": 17})])
    assert "sim has 1 (at [1.000]), real has 2" in compare(sim, twice, SETTINGS)[0]
    exact = dict(SETTINGS, identity="exact")
    assert "worker1 signal.handler num=17: sim has 1" in compare(sim, same, exact)[0]
    ignored = dict(SETTINGS, ignore={"signal.handler": "chance"})
    assert compare(sim, twice, ignored) == []


def test_compare_checks_per_process_order_with_exact_identities():
    a = _result("sim", [(0.0, "mule1", "signal.handler", {"num": 1}),
                        (0.1, "mule1", "signal.handler", {"num": 2})])
    b = _result("real", [(0.0, "mule1", "signal.handler", {"num": 2}),
                         (0.1, "mule1", "signal.handler", {"num": 1})])
    diff = compare(a, b, dict(SETTINGS, identity="exact", tolerance=None))
    assert len(diff) == 1 and "another order" in diff[0]


def test_compare_reports_failures_checks_responses_and_state():
    a = _result("sim", [], [{"n": 1, "method": "GET", "path": "/", "status": 200, "body": "x"}])
    b = _result("real", [], [{"n": 1, "method": "GET", "path": "/", "status": None, "body": ""}])
    b.error, a.check_error, a.state, b.state = "RealUwsgiError: boom", "nope", 1, 2
    diff = compare(a, b, SETTINGS)
    assert "real run failed: RealUwsgiError: boom" in diff
    assert "sim: check failed: nope" in diff
    assert "response 1 (GET /) status: sim 200 vs real None" in diff
    assert "final state: sim 1 vs real 2" in diff


def test_sim_touch_reload_reloads_on_the_masters_next_tick(app_dir):
    (app_dir / "flag.txt").write_text("x")
    with Simulation(["--master", "--touch-reload", "flag.txt", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        sim.advance(1.2)
        sim.touch("flag.txt")
        sim.advance(0.5)
        assert sim.trace.count("reload.begin") == 0
        sim.advance(0.5)
        assert [r.time for r in sim.trace.select("reload.begin")] == [2.0]
        assert any(line.endswith(" - *** flag.txt has been touched... grace them all !!! ***")
                   for line in sim.log)  # uwsgi_log_verbose: after the date
        sim.touch("other.txt")
        sim.advance(2)
        assert sim.trace.count("reload.begin") == 1


def test_sim_mule_harakiri_is_strict_and_respawn_waits_for_the_tick(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent("""\
        import time, uwsgi
        uwsgi.register_signal(50, "mule", lambda num: time.sleep(5))
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b""]
        """))
    with Simulation(["--master", "--mules", "1", "--mule-harakiri", "1", "--wsgi-file",
                     "app.py"], app_dir=tmp_path) as sim:
        sim.signal(50)
        sim.advance(4)
        # uWSGI: `mules[i].harakiri < current_time` (master_checks.c), then the master
        # reaps and respawns the killed mule on its next loop iteration
        assert [r.time for r in sim.trace.select("harakiri", "mule1")] == [2.0]
        assert [r.time for r in sim.trace.select("spawn", "mule1")] == [0.0, 3.0]
