"""``cache_reads_written``: the history of an app's cache calls, checked per node."""

from __future__ import annotations

import textwrap

import pytest

from simuwsgi import Cluster, Simulation
from simuwsgi.properties import PropertyViolation, cache_reads_written

APP = textwrap.dedent("""
    import uwsgi
    from urllib.parse import parse_qs

    def application(env, start_response):
        q = {k: v[0] for k, v in parse_qs(env["QUERY_STRING"]).items()}
        op, key = env["PATH_INFO"][1:], q.get("key", "k")
        if op == "set":
            uwsgi.cache_update(key, q["value"], int(q.get("expires", 0)))
        elif op == "inc":
            uwsgi.cache_inc(key)
        elif op == "del":
            uwsgi.cache_del(key)
        elif op == "clear":
            uwsgi.cache_clear()
        value = uwsgi.cache_num(key) if op == "num" else uwsgi.cache_get(key)
        start_response("200 OK", [])
        return [repr(value).encode()]
""")
OPTIONS = ["--master", "--processes", "2", "--cache2", "name=default,items=10",
           "--wsgi-file", "app.py"]


@pytest.fixture
def sim(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        yield sim


def test_reads_of_written_deleted_cleared_and_counted_values_pass(sim):
    checker = cache_reads_written().attach(sim)
    for path in ["/get", "/set?value=a", "/get", "/set?value=b", "/del", "/get",
                 "/inc?key=n", "/inc?key=n", "/num?key=n", "/set?value=c", "/clear",
                 "/get", "/num?key=n"]:
        assert sim.get(path).status == 200
    checker.verify()
    reads = [(op, key, value) for _t, _node, _name, key, op, value in checker.history
             if op in ("cache_get", "cache_num")]
    # each request reads after its operation
    assert [value for _op, _key, value in reads[:6]] == [None, b"a", b"a", b"b", None, None]
    assert ("cache_num", b"n", 2) in reads and reads[-1] == ("cache_num", b"n", None)


def test_an_expiring_value_may_vanish(sim):
    checker = cache_reads_written().attach(sim)
    sim.get("/set?value=a&expires=5")
    sim.advance(10)
    assert sim.get("/get").body == b"None"
    checker.verify()


def test_a_value_no_node_wrote_is_a_violation(sim):
    checker = cache_reads_written().attach(sim)
    sim.get("/set?value=a")
    # a write the app never made (a corrupt replication packet would do the same)
    sim.inst.subsystems["cache"].local(None).set(b"k", b"zz", 0, 1)  # 1: update
    sim.get("/get")
    with pytest.raises(PropertyViolation,
                       match=r"key b'k' on node0 read b'zz', a value no node wrote"):
        checker.verify()


def test_a_written_value_gone_without_a_reason_is_a_violation(sim):
    checker = cache_reads_written().attach(sim)
    sim.get("/set?value=a")
    sim.inst.subsystems["cache"].local(None).delete(b"k")  # not through the app
    sim.get("/get")
    with pytest.raises(PropertyViolation, match=r"read None after it was written at"):
        checker.verify()


def test_a_reload_that_empties_the_cache_is_named(sim):
    checker = cache_reads_written().attach(sim)
    sim.get("/set?value=a")
    sim.reload()
    sim.advance(5)
    assert sim.get("/get").body == b"None"
    with pytest.raises(PropertyViolation, match=r"read None: the reload at [\d.]+ emptied "
                                                r"the cache"):
        checker.verify()


def test_each_node_has_its_own_history(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    cluster = Cluster()
    for name in ("a", "b"):
        cluster.add(name, OPTIONS, app_dir=tmp_path)
    with cluster:
        checker = cache_reads_written().attach(cluster)
        cluster["a"].get("/set?value=a")
        assert cluster["b"].get("/get").body == b"None"  # b's cache never had it
        checker.verify()
    assert [(node, op) for _t, node, _n, _k, op, _v in checker.history] == [
        ("a", "cache_update"), ("a", "cache_get"), ("b", "cache_get")]


def test_fork_mode_is_refused_not_silently_unwatched(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(OPTIONS, app_dir=tmp_path, mode="fork") as sim, \
            pytest.raises(ValueError, match="in fork mode they happen in other processes"):
        cache_reads_written().attach(sim)
