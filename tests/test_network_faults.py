"""Network faults (simuwsgi.faults: Partition, Heal, Loss, Delay, Duplicate, Reorder) on
a cluster, composed with the other faults; the split-brain Legion chaos scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from simuwsgi import Cluster, Simulation
from simuwsgi.explore import explore, run_one
from simuwsgi.faults import (
    AfterRequests,
    Corrupt,
    Delay,
    Duplicate,
    FaultPlan,
    Heal,
    Kill,
    Loss,
    NetworkFault,
    Partition,
    Reorder,
)
from simuwsgi.strategies import fault_plans

CHAOS = Path(__file__).resolve().parent.parent / "scenarios" / "chaos"
APPS = Path(__file__).resolve().parent.parent / "scenarios"
WEB = ["--master", "--processes", "1", "--socket", ":3031", "--wsgi-file",
       "apps/cluster_web.py"]


def two_nodes() -> Cluster:
    cluster = Cluster(seed=3, app_dir=APPS)
    cluster.add("web", WEB)
    cluster.add("pricing", WEB, address="10.0.0.20")
    return cluster


def test_network_faults_read_back_from_their_repr():
    plan = FaultPlan(Partition(["a"], ["b", "c"], at=5, duration=30), Heal(at=9),
                     Loss("a", "b", 0.3, at=1, duration=10), Delay("a", "b", 0.5, at=2),
                     Duplicate("b", "c", 0.1, at=3, one_way=True), Reorder("a", "c", 0.2, at=4),
                     Corrupt("a", "b", 0.5, at=6, duration=2),
                     Kill("worker1", at=3, node="b"))
    assert repr(plan.faults[0]) == "Partition((('a',), ('b', 'c')), at=5, duration=30)"
    assert FaultPlan.parse(plan.spec()) == plan
    assert FaultPlan.parse(repr(plan)) == plan
    assert plan.faults[0].with_time(1) == Partition("a", ["b", "c"], at=1, duration=30)


@pytest.mark.parametrize("build, message", [
    (lambda: Partition(["a"], at=1), "two or more non-empty groups"),
    (lambda: Partition(["a"], [], at=1), "two or more non-empty groups"),
    (lambda: Loss("a", "", 0.5, at=1), "name the two nodes"),
    (lambda: Partition(["a"], ["b"], at=1, duration=0), "must be a number of seconds > 0"),
])
def test_bad_network_faults_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_timed_partition_cuts_then_heals_and_is_traced():
    with two_nodes() as cluster:
        cluster.apply(Partition(["web"], ["pricing"], at=5, duration=20))
        cluster.run_until(6)
        assert cluster["web"].get("/price?item=1").status == 503  # waited 4 s: no answer
        cluster.run_until(30)
        assert cluster["web"].get("/price?item=1").status == 200
        kinds = [(round(r.time), r.kind) for r in cluster.trace
                 if r.kind in ("fault", "net.partition", "net.heal")]
        assert kinds == [(5, "fault"), (5, "net.partition"), (25, "net.heal")]


def test_a_link_fault_changes_one_setting_for_its_duration():
    with two_nodes() as cluster:
        cluster.apply([Delay("web", "pricing", 0.5, at=1, duration=10),
                       Loss("web", "pricing", 0.5, at=1, one_way=True)])
        cluster.run_until(2)
        assert cluster.net.link("web", "pricing").latency == pytest.approx(0.5001)
        assert cluster.net.link("pricing", "web").loss == 0
        assert cluster.net.link("web", "pricing").loss == 0.5
        cluster.run_until(12)
        assert cluster.net.link("pricing", "web").latency == pytest.approx(0.0001)


def test_node_faults_say_their_node_and_compose_with_network_faults():
    with two_nodes() as cluster:
        with pytest.raises(ValueError, match="say which node"):
            cluster.apply(Kill("worker1", at=1))
        cluster.apply(FaultPlan(Kill("worker1", at=1, node="pricing"),
                                Partition(["web"], ["pricing"], at=2, duration=5)))
        cluster.run_until(10)
        assert cluster["pricing"].trace.count("fault.kill") == 1
        assert cluster["web"].trace.count("fault.kill") == 0
        assert cluster.trace.count("net.heal") == 1


def test_a_network_fault_on_a_trigger_watches_its_node():
    with two_nodes() as cluster:
        cluster.apply(Partition(["web"], ["pricing"], when=AfterRequests("/price", 2),
                                node="web"))
        statuses = [cluster["web"].get("/price?item=1").status for _ in range(3)]
        assert statuses == [200, 200, 503]


def test_a_simulation_skips_a_network_fault_and_says_why():
    with Simulation(["--master"], allow_no_app=True) as sim:
        sim.apply(Partition(["a"], ["b"], at=1))
        sim.advance(2)
        assert "a network fault needs a cluster" in sim.trace.select("fault.skip")[0]["why"]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(fault_plans(kinds=("net", "kill"), nodes=("web", "pricing"), within=20,
                   processes=("worker1",)))
def test_random_network_plans_apply_and_replay(plan):
    assert FaultPlan.parse(plan.spec()) == plan
    assert all(f.node in ("web", "pricing") for f in plan if not isinstance(f, NetworkFault))
    digests = []
    for _ in range(2):
        with two_nodes() as cluster:
            cluster.apply(plan)
            cluster.run_until(21)
            digests.append(cluster.digest())
    assert digests[0] == digests[1]


def test_corrupted_legion_announces_fail_to_decrypt_and_are_dropped():
    from test_legion import legion_cluster, lords

    with legion_cluster([90, 80]) as cluster:
        cluster.apply(Corrupt("n1", "n0", 0.99, at=0, one_way=True))
        cluster.advance(15)
        # n0 never reads n1 and rules alone; n1 reads n0 but their checksums differ
        assert lords(cluster) == ["n0"]
        assert cluster.trace.count("net.corrupt") >= 4
        bad = [line for line in cluster.log if line.startswith("[n0] [uwsgi-legion]")]
        assert bad and all(line.endswith((" EVP_DecryptFinal_ex()", " invalid packet size",
                                          " invalid modifier1", " invalid packet",
                                          "invalid legion name"))
                           or "QUORUM" in line or "Lord" in line for line in bad)


def test_corruption_on_a_stream_is_a_retransmission():
    import random

    from simuwsgi.network import LinkSettings

    slow = LinkSettings(corrupt=0.9).stream_delay(random.Random(1), 100, 1.0)
    assert slow >= 0.2 + 0.0001  # at least one RTO
    with pytest.raises(ValueError, match="corrupt"):
        LinkSettings(corrupt=1.5)


# -- the split-brain Legion ------------------------------------------------------------------------
PARTITION = "Partition((('n1',), ('n2', 'n3')), at=60, duration=60)"


def test_split_brain_two_lords_bill_twice_and_a_majority_quorum_fixes_it():
    assert run_one(CHAOS / "split_brain.py", 0, "").failure is None  # no partition: fine
    buggy = run_one(CHAOS / "split_brain.py", 0, PARTITION)
    assert buggy.failure is not None and "periods billed twice (two Lords)" in buggy.failure
    assert run_one(CHAOS / "split_brain_fixed.py", 0, PARTITION).failure is None


def test_explore_finds_the_split_brain_shrinks_it_to_one_partition_and_replays_it():
    report = explore(CHAOS / "split_brain.py", seeds=4, faults="net")
    assert report["failing"]
    first = report["failing"][0]
    minimal = FaultPlan.parse(first["minimal_plan"])
    assert len(minimal) == 1 and isinstance(minimal.faults[0], Partition)
    assert "--faults" in first["replay"]
    replay = run_one(CHAOS / "split_brain.py", first["seed"], first["minimal_plan"])
    assert replay.digest == first["digest"]
    fixed = explore(CHAOS / "split_brain_fixed.py", seeds=4, faults="net",
                    shrink_failures=False)
    assert not fixed["failing"] and any(r["plan"] for r in fixed["runs"])
