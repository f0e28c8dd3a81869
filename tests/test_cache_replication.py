"""Cache replication between cluster nodes (simuwsgi.subsystems.cache: nodes=, udp=, sync=)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simuwsgi import Cluster
from simuwsgi._errors import StartRefusedError

APPS = Path(__file__).resolve().parent.parent / "scenarios"
BASE = ["--master", "--processes", "1", "--socket", ":3031", "--wsgi-file",
        "apps/cluster_web.py"]


def pair(a_cache: str, b_cache: str) -> Cluster:
    cluster = Cluster(seed=2, app_dir=APPS)
    cluster.add("a", BASE + ["--cache2", a_cache])
    cluster.add("b", BASE + ["--cache2", b_cache])
    return cluster


def test_sets_and_updates_replicate_deletes_do_not():
    with pair("name=c,items=10,nodes=10.0.0.2:4242", "name=c,items=10,udp=:4242") as cluster:
        a, b = cluster["a"].uwsgi, cluster["b"].uwsgi
        assert b.cache_get(b"k", "c") is None
        assert a.cache_set(b"k", b"v1", 0, "c") is True
        cluster.advance(0.01)
        assert b.cache_get(b"k", "c") == b"v1"
        a.cache_update(b"k", b"v2", 100, "c")
        cluster.advance(0.01)
        assert b.cache_get(b"k", "c") == b"v2"
        # the expiry travels as a unix time: the same instant on both nodes
        assert cluster["b"].inst.subsystems["cache"].local("c").expires[b"k"] == \
            cluster["a"].inst.subsystems["cache"].local("c").expires[b"k"]
        a.cache_del(b"k", "c")
        cluster.advance(0.01)
        assert a.cache_get(b"k", "c") is None and b.cache_get(b"k", "c") == b"v2"
        drops = cluster["b"].trace.select("cache.udp.drop")
        assert len(drops) == 1  # the delete datagram, refused by the length check


def test_math_sends_its_delta_and_writes_from_udp_are_not_sent_on():
    with pair("name=c,items=10,nodes=10.0.0.2:4242,udp=:4242",
              "name=c,items=10,nodes=10.0.0.1:4242,udp=:4242") as cluster:
        a, b = cluster["a"].uwsgi, cluster["b"].uwsgi
        a.cache_set(b"n", (10).to_bytes(8, "little"), 0, "c")
        cluster.advance(0.01)
        a.cache_inc(b"n", 5, 0, "c")
        cluster.advance(0.01)
        assert a.cache_num(b"n", "c") == 15
        assert b.cache_num(b"n", "c") == 5  # the delta, as uWSGI sends it
        # no loop: each write crossed the link once
        assert cluster["a"].trace.count("cache.udp") == 0
        assert cluster["b"].trace.count("cache.udp") == 2


def test_a_lost_datagram_leaves_the_replica_behind():
    with pair("name=c,items=10,nodes=10.0.0.2:4242", "name=c,items=10,udp=:4242") as cluster:
        cluster.net.partition(["a"], ["b"])
        cluster["a"].uwsgi.cache_set(b"k", b"v", 0, "c")
        cluster.net.heal()
        cluster.advance(1)
        assert cluster["b"].uwsgi.cache_get(b"k", "c") is None
        assert cluster.trace.select("net.drop", why="cut")


def test_sync_copies_a_running_nodes_cache_at_start():
    with pair("name=c,items=10", "name=c,items=10") as cluster:
        cluster["a"].uwsgi.cache_set(b"k", b"v", 0, "c")
        late = cluster.add("late", BASE + ["--cache2",
                                           "name=c,items=10,sync=10.0.0.9:3031;a:3031"])
        assert late.uwsgi.cache_get(b"k", "c") == b"v"
        lines = [line for line in cluster.log if line.startswith("[late] [cache-sync]")]
        assert lines == ["[late] [cache-sync] getting cache dump from 10.0.0.9:3031 ...",
                         "[late] [cache-sync] unable to connect to the cache server",
                         "[late] [cache-sync] trying with the next sync node...",
                         "[late] [cache-sync] getting cache dump from a:3031 ..."]


def test_sync_refuses_another_geometry_and_exits_when_no_node_answers():
    with pair("name=c,items=10", "name=c,items=10") as cluster:
        with pytest.raises(StartRefusedError, match="invalid cache size, expected 20 "
                                                    "received 10"):
            cluster.add("big", BASE + ["--cache2", "name=c,items=20,sync=a:3031"])
    with pair("name=c,items=10", "name=c,items=10") as cluster:
        with pytest.raises(StartRefusedError, match="no node answered"):
            cluster.add("lost", BASE + ["--cache2", "name=c,items=10,sync=10.0.0.9:3031"])


def test_the_default_cache_replicates_with_cache_udp_node():
    cluster = Cluster(seed=2, app_dir=APPS)
    cluster.add("a", BASE + ["--cache", "10", "--cache-udp-node", "10.0.0.2:4242"])
    cluster.add("b", BASE + ["--cache", "10", "--cache-udp-server", "10.0.0.2:4242"])
    with cluster:
        cluster["a"].uwsgi.cache_set(b"k", b"v")
        cluster.advance(0.01)
        assert cluster["b"].uwsgi.cache_get(b"k") == b"v"
        assert '[a] added udp node 10.0.0.2:4242 for cache "default"' in cluster.log
        assert ('[b] *** udp server for cache "default" running on 10.0.0.2:4242 ***'
                in cluster.log)


def test_a_node_address_without_a_port_is_refused():
    cluster = Cluster(app_dir=APPS)
    cluster.add("a", BASE + ["--cache2", "name=c,items=10,nodes=10.0.0.2"])
    with pytest.raises(StartRefusedError, match=r"\[cache-udp-node\] invalid udp address: "
                                                "10.0.0.2"):
        cluster.start()
