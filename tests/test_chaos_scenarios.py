"""The pitfalls of ``scenarios/chaos/``: each check fails on the buggy app and passes on
the fixed one (``simuwsgi.explore.run_one``, as ``simuwsgi explore`` runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simuwsgi.cli import main
from simuwsgi.explore import explore, run_one

CHAOS = Path(__file__).resolve().parent.parent / "scenarios" / "chaos"
PITFALLS = {
    "spool_twice": None,  # needs a kill: tests/test_explore.py
    "cron_dst": "fired twice in slot (2026, 10, 25, 2, 30)",
    "harakiri_lock": "money created or lost",
    "signal_some_workers": "workers without a refresh",
    "timer_reload": "the job has not run in the last minute",
    "cache_reload": "15 views counted of 30",
    "mule_queue_full": "e-mails sent of 40",
    "thundering_herd": "computed 5 times for 2 empty caches",
    "split_brain": None,  # needs a partition: tests/test_network_faults.py
    "max_requests_mid_task": "0 exports finished of 1",
}
#: The scenarios of one node (a cluster's run in sim mode only) without threads (fork
#: mode runs a worker's cores one after the other: its child has one thread).
SINGLE = sorted(p for p in CHAOS.glob("*.py") if "NODES" not in p.read_text()
                and not p.stem.startswith("max_requests_mid_task"))


def test_every_scenario_has_a_fixed_variant_and_a_test():
    buggy = {p.stem for p in CHAOS.glob("*.py") if not p.stem.endswith("_fixed")}
    assert buggy == set(PITFALLS)
    assert {p.stem for p in CHAOS.glob("*_fixed.py")} == {f"{b}_fixed" for b in buggy}


@pytest.mark.parametrize("name", [n for n, m in PITFALLS.items() if m])
def test_the_check_fails_on_the_buggy_app_and_passes_on_the_fixed_one(name):
    buggy = run_one(CHAOS / f"{name}.py", 0, "")
    assert buggy.failure is not None and PITFALLS[name] in buggy.failure
    assert run_one(CHAOS / f"{name}_fixed.py", 0, "").failure is None


@pytest.mark.parametrize("path", SINGLE, ids=lambda p: p.stem)
def test_every_chaos_scenario_gives_the_same_digest_in_fork_mode(path):
    sim = run_one(path, 0, "")
    fork = run_one(path, 0, "", mode="fork")
    assert (fork.digest, fork.failure) == (sim.digest, sim.failure)


@pytest.mark.parametrize("name", ["spool_twice_fixed", "harakiri_lock_fixed"])
def test_the_fixes_hold_under_random_kills(name):
    report = explore(CHAOS / f"{name}.py", seeds=100, shrink_failures=False)
    assert report["seeds"] == 100 and not report["failing"]
    assert any(r["plan"] for r in report["runs"])


def test_run_applies_the_scenarios_faults(tmp_path, capsys):
    scenario = tmp_path / "s.py"
    scenario.write_text(
        (CHAOS / "spool_twice.py").read_text()
        .replace('"apps/payments.py"', repr(str(CHAOS / "apps" / "payments.py")))
        + "\nfrom simuwsgi.faults import Kill, DuringSpoolTask\n"
          "FAULTS = [Kill('spooler1', when=DuringSpoolTask(nth=1))]\n")
    assert main(["run", str(scenario), "--quiet"]) == 1
    assert "orders charged more than once: [0]" in capsys.readouterr().out


def test_the_digest_does_not_depend_on_where_the_scenario_lives(tmp_path):
    import shutil

    shutil.copytree(CHAOS, tmp_path / "elsewhere")
    plan = "Kill('spooler1', when=DuringSpoolTask(nth=2))"
    here = run_one(CHAOS / "spool_twice.py", 5, plan)
    there = run_one(tmp_path / "elsewhere" / "spool_twice.py", 5, plan)
    assert (there.digest, there.failure) == (here.digest, here.failure)
