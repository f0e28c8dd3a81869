"""Properties, history checkers, and ``simuwsgi explore`` (search, shrink, replay)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.cli import main
from simuwsgi.explore import explore, markdown, run_one, shrink
from simuwsgi.faults import ClockStep, DuringSpoolTask, FaultPlan, Kill, SendOnly
from simuwsgi.properties import (
    PropertyViolation,
    always,
    cron_slots_once,
    eventually,
    requests_answered,
    sometimes,
    spool_tasks_once,
)

CHAOS = Path(__file__).resolve().parent.parent / "scenarios" / "chaos"
SPOOL_TWICE = str(CHAOS / "spool_twice.py")
KILL_IN_TASK = FaultPlan(Kill("spooler1", when=DuringSpoolTask(nth=2)))


def faults_of(plan: str) -> list:
    """The faults of a plan, without the ``SendOnly`` shrinking adds."""
    return [f for f in FaultPlan.parse(plan) if not isinstance(f, SendOnly)]


# -- the spool_twice scenario --------------------------------------------------------------
def test_spool_twice_fails_on_the_buggy_app_and_passes_on_the_fixed_one():
    assert run_one(SPOOL_TWICE, 0, FaultPlan()).failure is None
    buggy = run_one(SPOOL_TWICE, 0, KILL_IN_TASK)
    assert buggy.failure.startswith("orders charged more than once: [1]")
    assert run_one(CHAOS / "spool_twice_fixed.py", 0, KILL_IN_TASK).failure is None


def test_same_scenario_seed_and_plan_same_digest_in_sim_and_fork_mode():
    sim = run_one(SPOOL_TWICE, 3, KILL_IN_TASK)
    assert run_one(SPOOL_TWICE, 3, KILL_IN_TASK).digest == sim.digest
    assert run_one(SPOOL_TWICE, 3, KILL_IN_TASK, mode="fork").digest == sim.digest
    assert run_one(SPOOL_TWICE, 4, KILL_IN_TASK).digest != sim.digest


@pytest.mark.parametrize("plan", [
    "ExceptionStorm(30, at=10)", "ExceptionStorm(30, at=10, target='all')",
    "SlowRequests(3, at=20, duration=30)",
    "DiskFault('torn', at=1); SignalQueueFull(at=2); Kill('master', at=90)",
    "Kill('worker1', when=AfterRequests('/pay', 2)); ClockDrift(0.5, at=1)",
])
def test_every_fault_gives_the_same_digest_in_fork_mode(plan):
    sim = run_one(SPOOL_TWICE, 1, plan)
    assert sim.failure is None  # no fault here charges twice or loses an accepted task
    assert run_one(SPOOL_TWICE, 1, plan, mode="fork").digest == sim.digest


def test_explore_finds_shrinks_to_one_kill_and_the_replay_matches(tmp_path, capsys):
    rc = main(["explore", SPOOL_TWICE, "--seeds", "200", "--jobs", "2", "--quiet",
               "--report", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    report = json.loads((tmp_path / "explore.json").read_text())
    assert report["seeds"] == 200 and report["failing"]
    assert "## seed" in (tmp_path / "explore.md").read_text()
    for failing in report["failing"]:
        assert [f.process for f in faults_of(failing["minimal_plan"])] == ["spooler1"]
        assert failing["minimal_plan"].endswith(")") and "SendOnly(" in failing["minimal_plan"]
    first = report["failing"][0]
    replay = out.split("replay: ", 1)[1].split("\n", 1)[0]
    assert replay == first["replay"]
    seed = int(replay.split("--seed ")[1].split()[0])
    plan = replay.split("--faults ", 1)[1][1:-1]
    rc = main(["run", SPOOL_TWICE, "--seed", str(seed), "--faults", plan])
    assert rc == 1
    assert f"digest: {first['digest']}" in capsys.readouterr().out


def test_explore_results_do_not_depend_on_jobs():
    one = explore(SPOOL_TWICE, seeds=12, jobs=1, shrink_failures=False)
    two = explore(SPOOL_TWICE, seeds=12, jobs=2, shrink_failures=False)
    assert one["runs"] == two["runs"]


def test_shrinking_drops_useless_faults_and_moves_a_timed_kill_earlier():
    drawn = FaultPlan(ClockStep(60, at=10), Kill("worker1", at=20),
                      Kill("spooler1", at=59.264))
    failing = run_one(SPOOL_TWICE, 0, drawn)
    assert failing.failure
    small, runs = shrink(SPOOL_TWICE, failing)
    (kill,) = faults_of(small.plan)
    assert kill.process == "spooler1" and kill.at < 59.264 and small.failure
    (fewer,) = [f for f in FaultPlan.parse(small.plan) if isinstance(f, SendOnly)]
    assert fewer.count < failing.requests == 12  # the requests after the kill do not matter
    assert runs <= 60
    assert run_one(SPOOL_TWICE, 0, small.plan).digest == small.digest


@pytest.mark.parametrize("argv, message", [
    (["explore", SPOOL_TWICE, "--faults", "lightning"], "unknown fault kind 'lightning'"),
    (["explore", "nothere.py"], "simuwsgi explore: no such scenario file: nothere.py"),
    (["explore", str(Path(__file__))], "is not a scenario (it sets no OPTIONS)"),
    (["run", SPOOL_TWICE, "--faults", "Kill("], "bad fault plan"),
    (["run", "--faults", "Kill('worker1', at=1)", "--", "--master"], "needs a SCENARIO.py"),
])
def test_bad_explore_and_replay_arguments_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# -- properties ----------------------------------------------------------------------------
APP = textwrap.dedent('''
    import time, uwsgi

    def spooler(task):
        time.sleep(1)
        return int(task[b"rc"])

    uwsgi.spooler = spooler

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/spool":
            uwsgi.spool({b"rc": environ["QUERY_STRING"].encode()})
        if environ["PATH_INFO"] == "/slow":
            time.sleep(30)
        start_response("200 OK", [])
        return [b"ok"]
''')


def make(tmp_path: Path, *extra: str) -> Simulation:
    (tmp_path / "app.py").write_text(APP)
    return Simulation(["--master", "--spooler", str(tmp_path / "spool"), *extra,
                       "--wsgi-file", "app.py"], app_dir=tmp_path)


def test_always_eventually_and_sometimes(tmp_path):
    def few_requests(sim):
        return sim.inst.total_requests < 2

    def served_one(sim):
        return sim.inst.total_requests >= 1

    props = [always(few_requests, kinds=["request.end"]),
             eventually(served_one, within=5), sometimes(served_one)]
    with make(tmp_path) as sim:
        for prop in props:
            prop.attach(sim)
        sim.get("/")
        sim.advance(10)
        sim.get("/")
        props[1].verify()
        assert props[2].seen is not None
        with pytest.raises(PropertyViolation) as info:
            props[0].verify()
    message = str(info.value)
    assert message.startswith("always(few_requests) failed at virtual time 10.")
    assert ">>" in message and "request.end" in message  # the trace slice


def test_eventually_fails_when_the_deadline_passes(tmp_path):
    with make(tmp_path) as sim:
        prop = eventually(lambda s: s.inst.total_requests >= 1, within=5).attach(sim)
        sim.advance(6)
        sim.get("/")
        with pytest.raises(PropertyViolation, match="did not hold within 5"):
            prop.verify()


def test_spool_tasks_once_allows_retries_and_flags_reruns_after_kills(tmp_path):
    with make(tmp_path, "--spooler-frequency", "1") as sim:
        sim.get("/spool?-1")  # SPOOL_RETRY: runs again and again, allowed
        sim.advance(3.5)
        spool_tasks_once(sim.trace)
    (tmp_path / "x").mkdir()
    with make(tmp_path / "x") as sim:
        sim.apply(Kill("spooler1", when=DuringSpoolTask()))
        sim.get("/spool?-2")
        sim.advance(5)
        spool_tasks_once(sim.trace, rerun_after_kill=True)
        with pytest.raises(PropertyViolation, match=r"ran twice \(its previous run was aborted\)"):
            spool_tasks_once(sim.trace)
        spool_tasks_once(sim.trace, pending=sim.inst.subsystems["spooler"].pending(),
                         rerun_after_kill=True)


def test_requests_answered_or_dropped_for_a_traced_reason(tmp_path):
    with make(tmp_path, "--harakiri", "5") as sim:
        sim.get("/slow")  # dropped by harakiri: a traced reason
        sim.get("/")
        requests_answered(sim.trace)
    trace = sim.trace
    rows = [r for r in trace if r.kind not in ("harakiri", "death")]
    from simuwsgi._core.trace import Trace

    bare = Trace()
    for r in rows:
        bare.add(r.time, r.process, r.kind, r.fields)
    with pytest.raises(PropertyViolation, match="request 1 was neither answered"):
        requests_answered(bare)


def test_cron_slots_once_flags_a_slot_skipped_by_an_ntp_step_forward(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--cron", "-1 -1 -1 -1 -1 true", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, start="2026-01-01T00:00:30") as sim:
        sim.run_until(200)
        cron_slots_once(sim)
        sim.apply(ClockStep(180, at=sim.now + 1))
        sim.run_until(400)
        with pytest.raises(PropertyViolation, match=r"never fired for slot \(2026, 1, 1, 0, 4\)"):
            cron_slots_once(sim)


def test_cron_slots_once_flags_the_slot_a_dst_fall_back_repeats(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--cron", "30 2 -1 -1 -1 true", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, start="2026-10-25T01:00:00", tz="Europe/Paris") as sim:
        sim.run_until(4 * 3600)
        assert sim.trace.count("cron.command") == 2
        with pytest.raises(PropertyViolation, match=r"fired twice in slot \(2026, 10, 25, 2, 30\)"):
            cron_slots_once(sim)


# -- strategies and Dask ---------------------------------------------------------------------
def test_strategies_draw_valid_values_that_shrink_to_the_simple_case():
    from hypothesis import find

    from simuwsgi import protocol
    from simuwsgi.strategies import fault_plans, packets, timelines, uwsgi_options

    plans = fault_plans(processes=["worker1", "spooler1"], within=60,
                        kinds=["kill", "clock", "tz", "slow", "disk"])
    assert find(plans, lambda p: True) == FaultPlan()
    smallest_kill = find(plans, lambda p: any(isinstance(f, Kill) for f in p))
    assert smallest_kill == FaultPlan(Kill("worker1", at=0.0))
    assert find(plans, lambda p: len(p) >= 2).spec().count(";") == 1
    assert find(uwsgi_options(), lambda o: True)[:3] == ["--master", "--processes", "1"]
    assert find(timelines(paths=["/a", "/b"]), lambda t: len(t) >= 1) == [(0.0, "GET", "/a")]
    raw = find(packets(), lambda p: len(p) > 4)
    assert raw[0] == 0 and int.from_bytes(raw[1:3], "little") == len(raw) - 4
    assert protocol.decode_dict(raw[4:])  # a vars block the codec reads back
    for kind in ("kill", "clock", "tz", "storm", "slow", "disk", "signals"):
        (fault,) = find(fault_plans(kinds=[kind]), lambda p: len(p) == 1)
        assert FaultPlan.parse(repr(fault)).faults == (fault,)
    with pytest.raises(ValueError, match="unknown kind 'meteor'"):
        fault_plans(kinds=["meteor"])


def test_explore_on_a_dask_local_cluster_gives_the_same_runs():
    from dask import distributed  # the 'dask' extra, part of 'test'

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        remote = explore(SPOOL_TWICE, seeds=30, scheduler=cluster.scheduler_address)
    local = explore(SPOOL_TWICE, seeds=30)
    assert remote["runs"] == local["runs"]
    assert remote["failing"] == local["failing"] and remote["failing"]
    assert all(len(faults_of(f["minimal_plan"])) == 1 for f in remote["failing"])


def test_explore_checks_a_scenarios_properties(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "props.py").write_text(textwrap.dedent('''
        from simuwsgi.properties import always, sometimes

        OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py"]
        DURATION = 30

        def worker2_alive(sim):
            return sim.process("worker2").alive

        def never(sim):
            return False

        PROPERTIES = [always(worker2_alive, kinds=["death"]), sometimes(never),
                      sometimes(worker2_alive)]
    '''))
    report = explore(tmp_path / "props.py", seeds=20)
    assert report["sometimes_never_seen"] == ["never"]
    failing = report["failing"]
    assert failing and all(f["minimal_failure"].startswith("always(worker2_alive) failed")
                           for f in failing)
    # worker2 dies with a kill of its own or of the master (PR_SET_PDEATHSIG), from t=0
    assert {f["minimal_plan"] for f in failing} <= {"Kill('worker2', at=0)",
                                                     "Kill('master', at=0)"}
    assert ">>" in failing[0]["minimal_detail"]  # the trace slice around the violation
    assert "\n>> " in markdown(report)


def test_explore_stops_at_the_first_failure_when_asked():
    report = explore(SPOOL_TWICE, seeds=200, stop_on_failure=True)
    first = report["failing"][0]["seed"]
    assert len(report["failing"]) == 1 and report["seeds"] == first + 1 < 200
