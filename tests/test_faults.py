"""Faults as data (``simuwsgi.faults``): values, parsing, and each fault applied."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.explore import digest
from simuwsgi.faults import (
    AfterRequests,
    CacheFull,
    ClockDrift,
    ClockStep,
    DiskFault,
    DuringReload,
    DuringSpoolTask,
    ExceptionStorm,
    FaultPlan,
    InSignalHandler,
    Kill,
    SendOnly,
    SignalQueueFull,
    SlowRequests,
    TimeZone,
)

APP = textwrap.dedent('''
    import time, uwsgi

    def handler(num):
        uwsgi.log("HANDLER start")
        time.sleep(2)
        uwsgi.log("HANDLER end")

    uwsgi.register_signal(17, "worker", handler)

    def spooler(task):
        uwsgi.log("TASK " + task[b"n"].decode())
        time.sleep(2)
        return uwsgi.SPOOL_OK

    uwsgi.spooler = spooler

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/spool":
            uwsgi.spool({b"n": environ["QUERY_STRING"].encode()})
        elif path == "/cache":
            ok = uwsgi.cache_set("k" + environ["QUERY_STRING"], b"v")
            start_response("200 OK", [])
            return [repr(ok).encode()]
        elif path == "/signal":
            uwsgi.signal(17)
        elif path == "/time":
            start_response("200 OK", [])
            return [time.strftime("%H:%M %Z").encode()]
        start_response("200 OK", [])
        return [b"ok"]
''')

EVERY = FaultPlan(
    Kill("spooler1", when=DuringSpoolTask(nth=2)), ClockStep(-60, at=3),
    DiskFault("torn", at=1), ExceptionStorm(10, at=2, target="all"), CacheFull(at=4),
    TimeZone("Europe/Paris", at=5), SignalQueueFull(at=1),
    ClockDrift(0.01, at=3, duration=30), Kill("worker1", when=AfterRequests("/pay", 3)),
    Kill("master", when=DuringReload()), Kill("worker2", when=InSignalHandler(17)))


def make(tmp_path: Path, *extra: str, plan=None, **kw) -> Simulation:
    (tmp_path / "app.py").write_text(APP)
    sim = Simulation(["--master", "--processes", "2", "--spooler", str(tmp_path / "spool"),
                      "--cache2", "name=default,items=10", *extra, "--wsgi-file", "app.py"],
                     app_dir=tmp_path, **kw)
    if plan is not None:
        sim.apply(plan)
    return sim


# -- values ------------------------------------------------------------------------------
def test_a_plan_prints_as_the_code_that_builds_it_and_parses_back():
    assert repr(Kill("spooler1", at=5)) == "Kill('spooler1', at=5)"
    assert repr(Kill("spooler1", when=DuringSpoolTask(nth=2))) == \
        "Kill('spooler1', when=DuringSpoolTask(nth=2))"
    assert FaultPlan.parse(repr(EVERY)) == EVERY
    assert FaultPlan.parse(EVERY.spec()) == EVERY
    assert FaultPlan.parse("") == FaultPlan()


def test_faults_are_frozen_hashable_and_sort_across_kinds():
    fault = Kill("worker1", at=1)
    with pytest.raises(AttributeError):
        fault.at = 2  # type: ignore[misc]
    assert len({fault, Kill("worker1", at=1)}) == 1
    ordered = sorted(EVERY)
    assert [f.at for f in ordered[:3]] == [1, 1, 2]
    assert ordered[-1].at is None


@pytest.mark.parametrize("text, message", [
    ("Kill('worker1')", "give exactly one of at=SECONDS or when=TRIGGER"),
    ("Kill('wroker1', at=1)", "'wroker1' is not a process name: use master, workerN"),
    ("Kill('worker0', at=1)", "is not a process name"),
    ("Kill('worker1', at=-1)", "must be seconds >= 0"),
    ("DiskFault('wet', at=1)", "is not one of full, readonly, eio, torn"),
    ("os.system('x')", "is not a fault or a literal"),
    ("__import__('os')", "unknown fault '__import__'"),
    ("Kill(", "bad fault plan"),
    ("TimeZone('Mars/Olympus', at=1)", "unknown time zone"),
])
def test_bad_plans_are_one_line_errors(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        FaultPlan.parse(text)


# -- applied -----------------------------------------------------------------------------
def test_kill_at_a_time_is_traced_and_the_master_respawns(tmp_path):
    with make(tmp_path, plan=[Kill("worker2", at=3.5)]) as sim:
        pid = sim.process("worker2").pid
        sim.run_until(10)
        assert [(r.time, r["process"]) for r in sim.trace.select("fault.kill")] == \
            [(3.5, "worker2")]
        assert sim.trace.select("death", "worker2")[0]["reason"] == "killed"
        assert sim.process("worker2").pid != pid


def test_killing_the_master_takes_every_child_with_it(tmp_path):
    with make(tmp_path, plan="Kill('master', at=2)") as sim:
        sim.run_until(5)
        assert not any(p.alive for p in sim.processes())
        assert sim.get("/", timeout=5).status is None


def test_kill_after_the_nth_request_to_a_path(tmp_path):
    with make(tmp_path, plan=[Kill("worker1", when=AfterRequests("/pay", 2))]) as sim:
        for _ in range(3):
            sim.get("/pay")
        kills = sim.trace.select("fault")
        assert len(kills) == 1 and "request.end in worker" in kills[0]["trigger"]
        ends = [r.time for r in sim.trace.select("request.end")]
        assert sim.trace.select("fault.kill")[0].time == ends[1]


def test_kill_inside_a_signal_handler_and_during_a_spool_task(tmp_path):
    plan = [Kill("worker1", when=InSignalHandler(17)),
            Kill("spooler1", when=DuringSpoolTask("", nth=1))]
    with make(tmp_path, "--processes", "1", plan=plan) as sim:
        sim.get("/signal")
        sim.get("/spool?1")
        sim.advance(10)
        assert "HANDLER start" in sim.log and "HANDLER end" not in sim.log
        assert sim.trace.count("spool.abort") == 1
        assert sim.log.count("TASK 1") == 2  # the file stays: it runs again


def test_kill_during_the_reload(tmp_path):
    with make(tmp_path, plan=[Kill("spooler1", when=DuringReload())]) as sim:
        sim.reload()
        sim.advance(5)
        assert sim.trace.select("fault")[0]["trigger"] == "reload.begin in master"


def test_clock_step_drift_and_time_zone(tmp_path):
    plan = [ClockStep(3600, at=1), ClockDrift(0.5, at=2, duration=4),
            TimeZone("Asia/Tokyo", at=10)]
    with make(tmp_path, plan=plan, start="2026-01-01T00:00:00", tz="UTC") as sim:
        sim.run_until(9)
        assert sim.wall - sim.now == pytest.approx(1767225600 + 3600 + 2.0)
        assert sim.get("/time").body == b"01:00 UTC"
        sim.run_until(11)
        assert sim.get("/time").body == b"10:00 JST"


def test_exception_storm_fails_requests_in_its_window_only(tmp_path):
    with make(tmp_path, plan=[ExceptionStorm(5, at=1)]) as sim:
        assert sim.get("/").status == 200
        sim.run_until(2)
        dropped = sim.get("/")  # as uWSGI: the app raised before start_response
        assert dropped.status is None and "the app raised" in dropped.reason
        assert any("FaultInjected: exception storm" in line for line in sim.log)
        sim.run_until(7)
        assert sim.get("/").status == 200


@pytest.mark.parametrize("fault, line", [
    ("full", "uwsgi_spool_request()/write(): No space left on device"),
    ("readonly", "Read-only file system [core/spooler.c line 271]"),
    ("eio", "uwsgi_spool_request()/write(): Input/output error"),
])
def test_disk_faults_make_spooling_fail_with_uwsgis_log_line(tmp_path, fault, line):
    with make(tmp_path, plan=[DiskFault(fault, at=1, duration=5)]) as sim:
        sim.run_until(2)
        assert sim.get("/spool?1").status is None  # uwsgi.spool raised
        assert any(line in entry for entry in sim.log), sim.log[-5:]
        assert not sim.inst.subsystems["spooler"].pending()
        sim.run_until(7)
        assert sim.get("/spool?2").status == 200


def test_a_torn_spool_file_is_left_half_written_and_dropped_by_the_spooler(tmp_path):
    with make(tmp_path, plan=[DiskFault("torn", at=1)]) as sim:
        sim.run_until(2)
        assert sim.get("/spool?1").status is None
        assert len(sim.inst.subsystems["spooler"].pending()) == 1  # the torn file
        sim.advance(40)
        assert sim.trace.select("spool.remove")[0]["reason"] == "truncated"


def test_cache_full_and_signal_queue_full(tmp_path):
    with make(tmp_path, plan=[CacheFull(at=1, duration=2), SignalQueueFull(at=1)]) as sim:
        assert sim.get("/cache?1").body == b"True"
        sim.run_until(1.5)
        assert sim.get("/cache?2").body == b"None"
        assert sim.trace.count("cache.full") == 1
        sim.get("/signal")
        assert sim.trace.select("signal.lost")[0]["why"] == "signal queue full"
        sim.run_until(12)
        assert sim.get("/cache?3").body == b"True"


def test_a_fault_on_a_missing_process_is_traced_not_raised(tmp_path):
    with make(tmp_path, plan=[Kill("mule3", at=1)]) as sim:
        sim.run_until(2)
        why = sim.trace.select("fault.skip")[0]["why"]
        assert why.startswith("kill mule3: no process named 'mule3' (there are: master, ")
        assert f"[simuwsgi] fault skipped: {why}" in sim.log


def test_same_seed_and_plan_same_digest(tmp_path):
    digests = set()
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        with make(tmp_path / run, plan=EVERY, seed=7) as sim:
            sim.submit("GET", "/spool?1", at=1)
            sim.submit("GET", "/pay", at=2)
            sim.run_until(30)
            digests.add(digest(sim.trace, str(tmp_path / run)))
    assert len(digests) == 1


def test_send_only_sends_the_first_requests_and_ends_the_others_unsent(tmp_path):
    assert repr(SendOnly(2)) == "SendOnly(2)" and FaultPlan.parse("SendOnly(2)").faults[0] \
        == SendOnly(2)
    with pytest.raises(ValueError, match="takes no at= or when="):
        SendOnly(2, at=5)
    with make(tmp_path, plan=[SendOnly(2)]) as sim:
        handles = [sim.submit("GET", "/", at=i) for i in range(4)]
        sim.run_until(5)
        assert [h.response.status for h in handles] == [200, 200, None, None]
        assert "not sent: 2 requests only" in handles[2].response.reason
        assert sim.trace.count("request.end") == 2


def test_slow_requests_get_workers_killed_by_harakiri(tmp_path):
    with make(tmp_path, "--harakiri", "5", plan=[SlowRequests(8, at=10, duration=5)]) as sim:
        assert sim.get("/").status == 200
        sim.run_until(11)
        slow = sim.get("/")
        assert slow.status is None and "harakiri" in slow.reason
        assert sim.trace.count("harakiri") == 1
        sim.run_until(20)
        fast = sim.get("/")
        assert fast.status == 200 and fast.finished == fast.started
