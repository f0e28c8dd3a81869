"""The virtual network between a cluster's nodes: remote rpc/cache/signal/spool/ping as
the real client does them, and the verbs that control the links."""

from __future__ import annotations

import gc
from urllib.parse import quote

import pytest

from simuwsgi import Cluster, SimulationError
from simuwsgi.network import LinkSettings

# Each request evaluates its query string in the worker, with uwsgi in scope, and
# answers the repr of the value (and how long it took, in virtual seconds).
APP = """
import os, time, uwsgi
from urllib.parse import unquote
def hello(*args):
    return b"hello from " + uwsgi.hostname + b"".join(b" " + a for a in args)
def nothing():
    return b""
uwsgi.register_rpc("hello", hello)
uwsgi.register_rpc("nothing", nothing)
handled = []
def on_signal(num):
    handled.append((num, os.getpid(), time.monotonic()))
uwsgi.register_signal(17, "worker", on_signal)
def application(env, sr):
    sr("200 OK", [])
    started = time.monotonic()
    try:
        value = repr(eval(unquote(env["QUERY_STRING"])))
    except Exception as exc:
        value = f"{type(exc).__name__}: {exc}"
    return [f"{value} {time.monotonic() - started:.6f}".encode()]
"""


@pytest.fixture
def app_dir(write_app):
    return write_app(APP).parent


def node_options(processes: int = 2, *extra: str) -> list[str]:
    return ["--master", "--processes", str(processes), "--socket", ":3031",
            "--cache2", "name=c,items=10,blocksize=64", "--wsgi-file", "app.py", *extra]


def cluster_of(app_dir, *, seed: int = 0, a_extra: tuple[str, ...] = (),
               b_processes: int = 2) -> Cluster:
    cluster = Cluster(seed=seed)
    cluster.add("a", node_options(2, *a_extra), app_dir=app_dir)
    cluster.add("b", node_options(b_processes), app_dir=app_dir, address="10.0.0.7",
                hostname="bee")
    return cluster


def run(node, expr: str) -> tuple[str, float]:
    """Evaluate ``expr`` in one of the node's workers: (repr of the value, duration)."""
    value, _, took = node.get("/?" + quote(expr)).body.decode().rpartition(" ")
    return value, float(took)


# -- rpc ----------------------------------------------------------------------------------
def test_remote_rpc_by_name_ip_and_host_name_runs_on_the_remote_node(app_dir):
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        for node in ("b:3031", "10.0.0.7:3031", "bee:3031"):
            value, took = run(a, f"uwsgi.rpc({node!r}, b'hello', b'x', b'y')")
            assert value == "b'hello from bee x y'"
            assert took == pytest.approx(4 * 0.0001)  # SYN, SYN-ACK, request, reply
        assert run(a, "uwsgi.rpc('b:3031', b'nothing')")[0] == "None"
        assert run(a, "uwsgi.rpc('b:3031', b'missing')")[0] == "None"
        assert cluster["b"].trace.count("request.end") == 5  # served by b's workers
        assert [r["node"] for r in a.trace.select("net.call")][:3] == [
            "b:3031", "10.0.0.7:3031", "bee:3031"]
        # uWSGI's rpc plugin logs no request line and counts its requests in the
        # totals only, not the app's (tests/real/test_cluster_real_to_virtual.py)
        b = cluster["b"]
        assert not [line for line in b.log if line.startswith("[pid: ")]
        b.get("/?1")
        assert [line.split("] ")[0].split("|", 1)[1] for line in b.log
                if line.startswith("[pid: ")] == ["app: 0|req: 1/6"]


def test_remote_calls_leave_no_garbage_for_the_cyclic_gc(app_dir):
    # each call's objects are freed as soon as it ends (a request <-> callback cycle made
    # the GC find ~40 objects per call, a third of a call's cost)
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        run(a, "uwsgi.rpc('b:3031', b'hello')")
        gc.collect()
        gc.disable()
        try:
            value, _took = run(a, "[uwsgi.rpc('b:3031', b'hello') for _ in range(100)]")
            garbage = gc.collect()
        finally:
            gc.enable()
        assert value.count("b'hello from bee'") == 100
        assert garbage < 100


def test_refused_unreachable_and_unknown_hosts(app_dir):
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        assert run(a, "uwsgi.rpc('b:9999', b'hello')") == ("None", pytest.approx(0.0002))
        assert run(a, "uwsgi.rpc('10.9.9.9:3031', b'hello')") == ("None", 4.0)
        assert run(a, "uwsgi.rpc('nosuchhost:3031', b'hello')") == ("None", 0.0)
        kinds = [r.kind for r in cluster.trace.select("net.*") if r.kind != "net.call"]
        assert kinds == ["net.refused", "net.timeout"]


def test_an_address_unreachable_until_a_node_takes_it_then_reaches_it(app_dir):
    # the addresses a node resolved are remembered: a node added later is found
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        assert run(a, "uwsgi.rpc('10.0.0.9:3031', b'hello')") == ("None", 4.0)
        assert run(a, "uwsgi.rpc('cee:3031', b'hello')")[0] == "None"  # no such name
        cluster.add("c", node_options(1), app_dir=app_dir, address="10.0.0.9",
                    hostname="cee")
        for node in ("10.0.0.9:3031", "cee:3031"):
            assert run(a, f"uwsgi.rpc({node!r}, b'hello')")[0] == "b'hello from cee'"


def test_socket_timeout_bounds_each_wait(app_dir):
    with cluster_of(app_dir, a_extra=("--socket-timeout", "2")) as cluster:
        assert run(cluster["a"], "uwsgi.rpc('10.9.9.9:3031', b'hello')") == ("None", 2.0)


def test_a_node_may_call_itself(app_dir):
    with cluster_of(app_dir, b_processes=1) as cluster:
        # two workers: the other one answers
        assert run(cluster["a"], "uwsgi.rpc('a:3031', b'hello')")[0] == "b'hello from a'"
        assert run(cluster["a"], "uwsgi.rpc('127.0.0.1:3031', b'hello')")[0] == \
            "b'hello from a'"
        # its only worker is the caller: the request waits in the queue until the
        # caller gives up, as on the real server
        # (connected over the loopback first: 2 x 10 µs)
        assert run(cluster["b"], "uwsgi.rpc('b:3031', b'hello')") == ("None", 4.00002)


# -- cache ------------------------------------------------------------------------------------
def test_remote_cache_with_the_real_clients_quirks(app_dir):
    with cluster_of(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        at = "'c@b:3031'"
        assert run(a, f"uwsgi.cache_set('k', b'v1', 0, {at})")[0] == "True"
        assert run(a, f"uwsgi.cache_set('k', b'v2', 0, {at})")[0] == "None"  # exists
        assert run(a, f"uwsgi.cache_get('k', {at})")[0] == "b'v1'"
        assert run(a, f"uwsgi.cache_update('k', b'v2', 0, {at})")[0] == "True"
        assert run(b, "uwsgi.cache_get('k', 'c')")[0] == "b'v2'"
        assert run(a, f"uwsgi.cache_exists('k', {at})")[0] == "True"
        assert run(a, f"uwsgi.cache_exists('nope', {at})")[0] == "None"
        assert run(a, f"uwsgi.cache_get('k')")[0] == "None"  # a's own cache: untouched
        assert run(a, f"uwsgi.cache_set('empty', b'', 0, {at})")[0] == "None"
        assert run(a, f"uwsgi.cache_set('big', b'x' * 65, 0, {at})")[0] == "None"
        # remote math is an update whose value is the operand (vector
        # cache_client_inc_becomes_update)
        assert run(b, "uwsgi.cache_update('n', (5).to_bytes(8, 'little'), 0, 'c')")[0] == "True"
        assert run(a, f"uwsgi.cache_inc('n', 3, 0, {at})")[0] == "True"
        assert run(b, "uwsgi.cache_num('n', 'c')")[0] == "3"
        assert run(a, f"uwsgi.cache_num('n', {at})")[0] == "3"
        assert run(a, f"uwsgi.cache_del('k', {at})")[0] == "True"
        assert run(a, f"uwsgi.cache_del('k', {at})")[0] == "None"
        assert run(a, f"uwsgi.cache_clear({at})")[0] == "True"
        assert run(b, "uwsgi.cache_num('n', 'c')")[0] == "0"
        assert run(a, "uwsgi.cache_get('k', 'c@b:9999')")[0] == "None"


def test_remote_expiry_is_absolute_on_the_remote_clock(app_dir):
    with cluster_of(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        cluster.skew("b", 100)
        assert run(a, "uwsgi.cache_set('t', b'v', 10, 'c@b:3031')")[0] == "True"
        expires = b.uwsgi.cache_get  # noqa: F841 - looked up below through the facade
        cache = b.inst.subsystems["cache"].local("c")
        assert cache.lookup(b"t") and cache.expires[b"t"] == 1767225600 + 100 + 10


# -- signals -------------------------------------------------------------------------------
def test_remote_signal_is_acked_then_handled_on_the_remote_node(app_dir):
    with cluster_of(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        assert run(a, "uwsgi.signal(17, 'b:3031')")[0] == "None"
        b.advance(1)
        handled = [b.globals(f"worker{i}")["uwsgi_file_app"]["handled"] for i in (1, 2)]
        assert sum(len(h) for h in handled) == 1
        assert all(not a.globals(f"worker{i}")["uwsgi_file_app"]["handled"] for i in (1, 2))
        assert not any("sending signal" in line for line in a.log)  # UWSGI_DEBUG only
        value = run(a, "uwsgi.signal(17, '10.9.9.9:3031')")[0]
        assert value == "OSError: unable to deliver signal 17 to node 10.9.9.9:3031"


# -- ping and remote spool ----------------------------------------------------------------
def test_ping_and_remote_spool_from_a_client_on_a_host(app_dir, tmp_path):
    cluster = Cluster()
    cluster.add("a", node_options(1), app_dir=app_dir)
    cluster.add("b", node_options(1, "--spooler", str(tmp_path / "spool")), app_dir=app_dir)
    with cluster:
        assert cluster.ping("b:3031") == b""
        assert cluster.ping("b:3031", via="a") == b""
        assert cluster.ping("b:4000") is None
        assert cluster.spool("b:3031", [(b"task", b"1")], via="a") is True
        assert cluster.spool("a:3031", [(b"task", b"1")]) is False  # a has no spooler
        assert "the spooler is inactive !!!...skip" in cluster["a"].log
        assert len(list((tmp_path / "spool").iterdir())) == 1


# -- the verbs ------------------------------------------------------------------------------------
def test_partition_cuts_and_heal_restores(app_dir):
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        cluster.net.partition(["a"], ["b"])
        assert run(a, "uwsgi.rpc('b:3031', b'hello')") == ("None", 4.0)
        assert run(cluster["b"], "uwsgi.rpc('a:3031', b'hello')") == ("None", 4.0)
        cluster.net.heal()
        assert run(a, "uwsgi.rpc('b:3031', b'hello')")[0] == "b'hello from bee'"
        cluster.net.isolate("b")
        assert run(a, "uwsgi.rpc('b:3031', b'hello')")[1] == 4.0
        kinds = [r.kind for r in cluster.trace.select("net.*")
                 if r.kind not in ("net.timeout", "net.call")]
        assert kinds == ["net.partition", "net.heal", "net.isolate"]
        assert cluster.trace.select("net.partition")[0]["groups"] == [["a"], ["b"]]


def test_hold_queues_and_release_delivers(app_dir):
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        cluster.net.hold("a", "b")
        call = a.submit("GET", "/?" + quote("uwsgi.rpc('b:3031', b'hello')"))
        a.advance(1)
        assert not call.done
        cluster.net.release("a", "b")
        a.wait(call)
        value, took = call.response.body.decode().rsplit(" ", 1)
        # the SYN waited: connect, request and reply all cross after the release
        assert value == "b'hello from bee'" and float(took) == pytest.approx(1.0004)
        # held longer than the connect timeout: the caller gave up
        cluster.net.hold("a", "b")
        call = a.submit("GET", "/?" + quote("uwsgi.rpc('b:3031', b'hello')"))
        a.advance(5)
        cluster.net.release("a", "b")
        a.wait(call)
        assert call.response.body.startswith(b"None 4.0")


def test_set_link_latency_bandwidth_and_slow(app_dir):
    with cluster_of(app_dir) as cluster:
        a = cluster["a"]
        cluster.net.set_link("a", "b", latency=0.25)
        assert run(a, "uwsgi.rpc('b:3031', b'hello')")[1] == pytest.approx(1.0)
        cluster.net.set_link("b", "a", one_way=True, latency=0.5)
        assert run(a, "uwsgi.rpc('b:3031', b'hello')")[1] == pytest.approx(1.5)
        assert cluster.net.link("a", "b") == LinkSettings(latency=0.25)
        cluster.net.slow("b", 2)
        assert run(a, "uwsgi.rpc('b:3031', b'hello')")[1] == pytest.approx(3.0)
        cluster.net.slow("b", 1)
        cluster.net.set_link("a", "b", latency=0, bandwidth=1000)
        # 23 request bytes ([173, 19, 0] + 2 args), 29 reply bytes, at 1000 bytes/s
        assert run(a, "uwsgi.rpc('b:3031', b'hello', b'x' * 10)")[1] == pytest.approx(0.052)


def test_stream_loss_shows_as_retransmission_delay_reproducibly(app_dir):
    def durations(seed: int) -> tuple[list[float], str]:
        with cluster_of(app_dir, seed=seed) as cluster:
            cluster.net.set_link("a", "b", loss=0.3)
            out = [run(cluster["a"], "uwsgi.rpc('b:3031', b'hello')") for _ in range(8)]
            # a late segment is retransmitted after 0.2 s, 0.4 s more, ...: the call
            # succeeds late, or times out when the waits add up past 4 s
            for value, took in out:
                assert value == "b'hello from bee'" or took >= 4
            return [took for _, took in out], cluster.digest()

    first = durations(7)
    assert first == durations(7)
    assert any(0.2 < took < 4 for took in first[0])
    assert durations(8)[1] != first[1]


def test_bad_verbs_are_clear_errors(app_dir):
    with cluster_of(app_dir) as cluster:
        with pytest.raises(KeyError, match="no node named 'z'"):
            cluster.net.partition(["a"], ["z"])
        with pytest.raises(ValueError, match="at least two groups"):
            cluster.net.partition(["a"])
        with pytest.raises(ValueError, match="loss is a probability below 1"):
            cluster.net.set_link("a", "b", loss=1.5)
        with pytest.raises(ValueError, match="latency must be a number >= 0"):
            cluster.net.set_link("a", "b", latency=-1)
        with pytest.raises(TypeError, match="set_link takes"):
            cluster.net.set_link("a", "b", speed=3)
        with pytest.raises(ValueError, match="slow factor"):
            cluster.net.slow("a", 0)


def test_datagram_fates_follow_the_settings():
    import random

    rng = random.Random(1)
    lossy = LinkSettings(loss=0.5)
    fates = [len(lossy.datagram_delays(rng, 10, 1.0)) for _ in range(200)]
    assert 70 < fates.count(0) < 130 and set(fates) == {0, 1}
    dup = LinkSettings(duplicate=0.5)
    assert 2 in {len(dup.datagram_delays(rng, 10, 1.0)) for _ in range(50)}
    plain = LinkSettings(latency=0.01)
    state = rng.getstate()
    assert plain.datagram_delays(rng, 10, 2.0) == [0.02]
    assert rng.getstate() == state  # nothing drawn for settings left at zero


# -- expose: a virtual node on a real socket ---------------------------------------------------
def test_serve_refuses_a_cluster_with_real_nodes(app_dir):
    cluster = cluster_of(app_dir)
    cluster.add_real("r", ["--socket", "10.0.0.9:3031"], address="10.0.0.9")  # not started
    cluster.expose("a", "127.0.0.1:0")
    with pytest.raises(SimulationError, match=r"real_address\(name\)"):
        cluster.serve(duration=1)
    assert not cluster.started and not cluster.real_nodes["r"].real


def test_an_exposed_node_answers_real_clients_and_calls_other_nodes(app_dir):
    import urllib.request

    from simuwsgi.net import NodeClient

    cluster = cluster_of(app_dir)
    with cluster:
        cluster.expose("a", "127.0.0.1:0")
        cluster.expose("b", "127.0.0.1:0", protocol="http")

        def client(bound):
            to_a = NodeClient(bound["a"])
            expr = quote("uwsgi.rpc('a:3031', b'hello', b'x')")
            with urllib.request.urlopen(f"http://{bound['b']}/?{expr}", timeout=10) as page:
                body = page.read()
            return to_a.ping(), to_a.rpc(b"hello", b"real"), body

        pong, answer, body = cluster.serve(duration=20, client=client)
        assert pong == b"" and answer == b"hello from a real"
        # over real HTTP to b, whose worker called a over the virtual network
        assert body.startswith(b"b'hello from a x' ")
        assert cluster.trace.select("net.expose")[1].fields == {
            "name": "b", "address": "127.0.0.1:0", "protocol": "http"}
        assert 0 < cluster.now < 20  # paced by the real clock
    with pytest.raises(ValueError, match="protocol must be"):
        cluster_of(app_dir).expose("a", "127.0.0.1:0", protocol="ftp")
    with pytest.raises(Exception, match="nothing to serve"):
        cluster_of(app_dir).serve(duration=1)


def test_a_stopped_node_refuses_connections(app_dir):
    with cluster_of(app_dir) as cluster:
        cluster["b"].stop()
        assert run(cluster["a"], "uwsgi.rpc('b:3031', b'hello')") == ("None",
                                                                       pytest.approx(0.0002))
        value = run(cluster["a"], "uwsgi.signal(17, 'b:3031')")[0]
        assert value == "OSError: unable to deliver signal 17 to node b:3031"


def test_node_signal_and_touch_act_on_that_node_only(app_dir):
    cluster = Cluster()
    cluster.add("a", node_options(1, "--touch-reload", "deploy.txt"), app_dir=app_dir)
    cluster.add("b", node_options(1, "--touch-reload", "deploy.txt"), app_dir=app_dir)
    with cluster:
        cluster["b"].signal(17)
        cluster.advance(1)
        assert len(cluster["b"].globals("worker1")["uwsgi_file_app"]["handled"]) == 1
        assert not cluster["a"].globals("worker1")["uwsgi_file_app"]["handled"]
        cluster["a"].touch("deploy.txt")
        cluster.advance(5)
        assert cluster["a"].trace.count("reload.begin") == 1
        assert cluster["b"].trace.count("reload.begin") == 0


def test_a_wsgi_request_between_nodes_runs_the_remote_app(app_dir):
    from simuwsgi.net import Reply
    from simuwsgi.protocol import HttpResponse, Request

    cluster = Cluster()
    cluster.add("a", node_options(1), app_dir=app_dir)
    cluster.add("b", [*node_options(1), "--http-socket", ":8080"], app_dir=app_dir)
    with cluster:
        expr = quote("uwsgi.hostname")
        request = Request(vars=((b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/"),
                                (b"QUERY_STRING", expr.encode()),
                                (b"SERVER_PROTOCOL", b"HTTP/1.1")))
        reply = cluster.exchange("b:3031", request, via="a")
        assert isinstance(reply, Reply) and reply.body.startswith(b"b'b' ")
        assert reply.body.endswith(b" 0.000000")
        assert reply.head == HttpResponse(status=b"200 OK", headers=(), protocol=b"HTTP/1.1")
        assert cluster["b"].trace.select("request.start")[-1]["path"] == "/"
        # uwsgi packets to an HTTP port: no answer until the client's timeout
        with pytest.raises(TimeoutError):
            cluster.exchange("b:8080", request, via="a")
        assert cluster.trace.select("net.unanswered")[0]["why"] == "an --http-socket port"


def test_verbs_at_a_time_from_a_timeline(app_dir):
    with cluster_of(app_dir) as cluster:
        cluster.at(10, cluster.net.partition, ["a"], ["b"])
        cluster.at(20, cluster.net.heal)
        with pytest.raises(ValueError, match="cannot schedule in the past"):
            cluster.at(-1, cluster.net.heal)
        cluster.advance(30)
        assert [(r.time, r.kind) for r in cluster.trace.select("net.*")] == [
            (10.0, "net.partition"), (20.0, "net.heal")]


def test_datagrams_are_lost_on_a_cut_link_queued_on_a_held_one(app_dir):
    with cluster_of(app_dir) as cluster:
        net = cluster.net
        got = []

        def send(tag):
            net.transmit("a", "b", 10, got.append, tag, stream=False)

        send("plain")
        net.partition(["a"], ["b"])
        send("cut")
        net.heal()
        net.hold("a", "b")
        send("held")
        cluster.advance(1)
        assert got == ["plain"]
        net.release("a", "b")
        net.set_link("a", "b", loss=0.999999)
        send("lost")
        cluster.advance(1)
        assert got == ["plain", "held"]
        drops = [(r["why"], r["size"]) for r in cluster.trace.select("net.drop")]
        assert drops == [("cut", 10), ("loss", 10)]


def test_process_calls_act_on_the_calling_nodes_own_processes(app_dir):
    with cluster_of(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        # both nodes have a master with pid 1001 (each host its own pid space)
        assert run(a, "os.getppid()")[0] == "1001" == run(b, "os.getppid()")[0]
        run(a, "os.kill(os.getppid(), 1)")  # SIGHUP to a's master: a graceful reload
        cluster.advance(5)
        assert a.trace.count("reload.begin") == 1
        assert b.trace.count("reload.begin") == 0


def test_a_unix_socket_is_reached_by_its_own_node_only(app_dir):
    cluster = Cluster()
    cluster.add("a", node_options(2, "--socket", "/run/a.sock"), app_dir=app_dir)
    cluster.add("b", node_options(2), app_dir=app_dir, address="10.0.0.7")
    with cluster:
        a, b = cluster["a"], cluster["b"]
        assert run(a, "uwsgi.cache_set('k', b'v', 0, 'c@/run/a.sock')")[0] == "True"
        assert run(a, "uwsgi.cache_get('k', 'c@/run/a.sock')")[0] == "b'v'"
        assert run(a, "uwsgi.cache_get('k')")[0] == "b'v'"  # its own cache
        # no file is shared between nodes: b has no /run/a.sock
        assert run(b, "uwsgi.cache_get('k', 'c@/run/a.sock')")[0] == "None"
        assert run(b, "uwsgi.signal(17, '/run/a.sock')")[0] == \
            "OSError: unable to deliver signal 17 to node /run/a.sock"
