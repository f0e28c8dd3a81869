"""``@simuwsgi.explore`` and ``SimulationMachine``: property tests that drive a
simulation find the counter bug of ``_counter_app.py`` (a module global forgets what a
killed worker counted), shrink it to one kill, and pass on the fixed counter (the cache)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import invariant, run_state_machine_as_test

import simuwsgi
from simuwsgi.explore import run_dir
from simuwsgi.stateful import REPLAY_VAR, SimulationMachine, parse_replay

HERE = Path(__file__).resolve().parent
OPTIONS = ["--master", "--processes", "1", "--cache2", "name=default,items=10",
           "--wsgi-file", "_counter_app.py"]


def counter_test(add: str, total: str, **kwargs):
    """An explored test: three adds 20 s apart, then the total must be 3."""
    calls = []

    @simuwsgi.explore(OPTIONS, app_dir=HERE, processes=["worker1"], **kwargs)
    def test_counter(sim):
        calls.append(sim.seed)
        for _ in range(3):
            sim.get(add)
            sim.advance(20)
        assert sim.get(total).body == b"3"

    return test_counter, calls


def test_explore_finds_the_lost_count_and_shrinks_it_to_one_kill():
    test, _calls = counter_test("/add", "/total", seeds=20)
    with pytest.raises(AssertionError) as info:
        test()
    notes = "\n".join(info.value.__notes__)
    assert "Draw 1 (faults): FaultPlan(Kill('worker1', at=1.0))" in notes
    replay = notes.split("replay: ", 1)[1].split("\n", 1)[0]
    assert replay.startswith(f"{REPLAY_VAR}=\"0 Kill('worker1', at=1.0)\" python -m pytest ")


def test_explore_passes_the_fixed_counter_on_every_seed_and_plan():
    test, calls = counter_test("/add-cached", "/total-cached", seeds=15)
    test()
    assert len(calls) == 15 and len(set(calls)) > 1


def test_the_replay_variable_runs_one_seed_and_plan(monkeypatch):
    test, calls = counter_test("/add", "/total", seeds=20)
    monkeypatch.setenv(REPLAY_VAR, "7 Kill('worker1', at=30)")
    with pytest.raises(AssertionError):
        test()
    monkeypatch.setenv(REPLAY_VAR, "7")
    test()  # no fault: the count holds
    assert calls == [7, 7]
    test.replay(4)
    with pytest.raises(AssertionError):
        test.replay(4, "Kill('worker1', at=30)")
    assert calls == [7, 7, 4, 4]


def test_explore_with_no_fault_kinds_varies_only_the_seed():
    test, calls = counter_test("/add", "/total", seeds=5, faults=None)
    test()
    assert sorted(set(calls)) == [0, 1, 2, 3, 4]


def test_a_scenario_target_brings_its_faults_and_properties(tmp_path):
    (tmp_path / "scenario.py").write_text(textwrap.dedent(f"""
        from simuwsgi.faults import Kill
        from simuwsgi.properties import always
        OPTIONS = {OPTIONS!r}
        APP_DIR = {str(HERE)!r}
        FAULTS = [Kill("worker1", at=1)]
        def early(sim):
            return sim.now < 30
        PROPERTIES = [always(early)]
    """))

    @simuwsgi.explore(tmp_path / "scenario.py", seeds=3, faults=None)
    def test_runs(sim):
        sim.advance(duration)
        sim.get("/total")  # a record after ``duration``: where ``always`` looks
        assert sim.trace.count("fault.kill") == 1

    duration = 10
    test_runs()
    duration = 40
    with pytest.raises(AssertionError, match=r"always\(early\) failed at virtual time"):
        test_runs()


def test_explored_tests_keep_their_fixtures_and_print_the_replay_under_pytest(pytester,
                                                                             monkeypatch):
    pytester.makepyfile(test_user=f"""
        import simuwsgi
        OPTIONS = {OPTIONS!r}

        @simuwsgi.explore(OPTIONS, app_dir={str(HERE)!r}, seeds=10, processes=["worker1"])
        def test_counter(sim, tmp_path):
            assert tmp_path.is_dir()
            for _ in range(3):
                sim.get("/add")
                sim.advance(20)
            assert sim.get("/total").body == b"3"
    """)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    line = next(x for x in result.outlines if "replay: " in x).split("replay: ", 1)[1]
    assert line == (f"{REPLAY_VAR}=\"0 Kill('worker1', at=1.0)\" python -m pytest "
                    f"\"test_user.py::test_counter\"")
    monkeypatch.setenv(REPLAY_VAR, "0")  # the replay without its fault passes
    pytester.runpytest("-q", "-p", "no:cacheprovider", "test_user.py::test_counter") \
        .assert_outcomes(passed=1)


def test_options_from_a_function_get_a_fresh_run_dir_for_each_example():
    made = []

    def options():
        made.append(run_dir("spool"))
        return [*OPTIONS, "--spooler", made[-1]]

    @simuwsgi.explore(options, app_dir=HERE, seeds=5, faults=None)
    def test_spooled(sim):
        assert os.path.isdir(made[-1])

    test_spooled()
    assert len(made) == 5 and len(set(made)) == 5
    assert not any(os.path.exists(path) for path in made)  # removed after each example


def test_explore_refuses_bad_arguments(monkeypatch):
    with pytest.raises(ValueError, match="seeds=0 must be at least 1"):
        simuwsgi.explore(OPTIONS, seeds=0)
    with pytest.raises(ValueError, match="unknown fault kind 'meteor'"):
        simuwsgi.explore(OPTIONS, faults="meteor")
    with pytest.raises(ValueError, match="no scenario file"):
        simuwsgi.explore("missing.py")
    with pytest.raises(TypeError, match="must take the simulation"):
        simuwsgi.explore(OPTIONS)(lambda: None)
    with pytest.raises(ValueError, match=r"write 'SEED PLAN'"):
        parse_replay("x Kill('worker1')")


# -- the state machine ----------------------------------------------------------------------
class Counter(SimulationMachine):
    """Adds, totals and worker kills; the total must count every add before it."""

    OPTIONS = OPTIONS
    APP_DIR = HERE
    PATHS = ("/add", "/total")

    @invariant()
    def total_counts_every_add(self):
        if self.responses and self.responses[-1][0].startswith("/total"):
            adds = sum(p.startswith("/add") for p, _ in self.responses)
            assert self.responses[-1][1].body == str(adds).encode(), "an add was lost"


class CachedCounter(Counter):
    PATHS = ("/add-cached", "/total-cached")


# without Hypothesis's explain phase (a dozen seconds of reruns for a comment per step)
SETTINGS = settings(max_examples=30, stateful_step_count=20, deadline=None, derandomize=True,
                    database=None, phases=[p for p in Phase if p is not Phase.explain])


def test_the_machine_finds_the_lost_count_in_three_steps():
    with pytest.raises(AssertionError, match="an add was lost") as info:
        run_state_machine_as_test(Counter, settings=SETTINGS)
    steps = [n for n in "\n".join(info.value.__notes__).splitlines()
             if n.startswith("state.") and not n.startswith(("state.total", "state.prop"))]
    assert steps == ["state.request(data=data(...))", "state.kill(data=data(...))",
                     "state.request(data=data(...))", "state.teardown()"]


def test_the_machine_passes_the_cached_counter():
    run_state_machine_as_test(CachedCounter, settings=SETTINGS)


def test_the_machine_checks_properties_and_history_checkers_after_every_step():
    from simuwsgi.properties import always

    class Quick(CachedCounter):
        KILL = ()
        ADVANCE = (30.0,)

        def properties(self):
            def young(sim):
                return sim.now < 25
            return [always(young)]

    with pytest.raises(AssertionError, match=r"always\(young\) failed"):
        run_state_machine_as_test(Quick, settings=SETTINGS)

    def no_requests(trace):
        assert not trace.count("request.end"), "a request ended"

    class Checked(CachedCounter):
        CHECKS = (no_requests,)
        KILL = ADVANCE = ()

    with pytest.raises(AssertionError, match="a request ended"):
        run_state_machine_as_test(Checked, settings=SETTINGS)


def test_a_machine_makes_its_options_in_a_fresh_run_dir():
    made = []

    class Spooled(CachedCounter):
        def options(self):
            made.append(run_dir("spool"))
            return [*OPTIONS, "--spooler", made[-1]]

    run_state_machine_as_test(Spooled, settings=settings(SETTINGS, max_examples=3))
    assert len(set(made)) == len(made) >= 3


def test_a_machine_without_options_is_refused():
    with pytest.raises(TypeError, match="set OPTIONS"):
        SimulationMachine()
