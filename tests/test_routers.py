"""Routers and subscriptions between a cluster's nodes (``--fastrouter``, ``--http``,
``--subscribe-to``/``--subscribe2``), HTTP between nodes, and the ``cluster``/
``subscribed`` signal targets."""

from __future__ import annotations

import gc

import pytest

from simuwsgi import Cluster, Simulation
from simuwsgi.network._subscriptions import SubscriptionTable
from simuwsgi.protocol import Subscription

APP = """
import uwsgi
def on_signal(num):
    pass
for num in (31, 32):
    uwsgi.register_signal(num, "worker", on_signal)
def application(env, sr):
    sr("200 OK", [("Content-Type", "text/plain")])
    return [uwsgi.hostname + b" " + env.get("HTTP_HOST", "").encode()]
"""


@pytest.fixture
def app_dir(write_app):
    return write_app(APP).parent


def backend(n: int, *subscription: str) -> dict:
    return {"options": ["--master", "--socket", f"10.0.0.{n + 1}:3031", *subscription,
                        "--wsgi-file", "app.py"], "address": f"10.0.0.{n + 1}"}


def fastrouter_cluster(app_dir, *backends: tuple[str, ...], seed: int = 0) -> Cluster:
    """A fastrouter on 10.0.0.1 (:3017, subscriptions on :2626) and backends b1, b2..."""
    cluster = Cluster(seed=seed, app_dir=app_dir)
    cluster.add("router", ["--master", "--fastrouter", ":3017",
                           "--fastrouter-subscription-server", ":2626"])
    for n, subscription in enumerate(backends, 1):
        spec = backend(n, *subscription)
        cluster.add(f"b{n}", spec["options"], address=spec["address"])
    return cluster


def who(cluster: Cluster, address: str = "router:3017", host: str = "example.com") -> str:
    response = cluster.request(address, headers={"Host": host})
    return response.body.decode().split(" ")[0] if response.status == 200 else "-"


def router_log(cluster: Cluster) -> list[str]:
    return [line.split(" ", 1)[1] for line in cluster.log
            if line.startswith("[router] [uwsgi") or line.startswith("[router] [uWSGI")]


# -- the table -------------------------------------------------------------------------
def table(*weights: int, algo: str = "wrr") -> tuple[SubscriptionTable, list[str]]:
    log: list[str] = []
    now = [0]
    t = SubscriptionTable(now=lambda: now[0], log=log.append, pid=7, name="uWSGI fastrouter",
                          algo=algo)
    t.clock = now  # type: ignore[attr-defined]
    for i, weight in enumerate(weights):
        t.subscribe(Subscription(key=b"k", address=f"n{i}".encode(), weight=weight))
    return t, log


def picks(t: SubscriptionTable, n: int) -> str:
    out = []
    for _ in range(n):
        node = t.lookup(b"k")
        out.append(node.address.decode()[1] if node else "-")
        if node is not None:
            t.release(node)
    return "".join(out)


@pytest.mark.parametrize(("weights", "order"), [
    ((1, 1), "10101010"),        # equal weights A,B: B A B A (cluster.md §4.2, verified)
    ((2, 1), "10010010"),        # A=2, B=1: B A A B A A
    ((0, 3), "10111011"),        # A=0 (read as 1), B=3: B A B B B A B B
])
def test_wrr_order_is_the_verified_one(weights, order):
    t, _log = table(*weights)
    assert picks(t, 8) == order


def test_pools_log_as_uwsgi_and_a_silent_node_is_dropped_after_the_tolerance():
    t, log = table(1, 1)
    assert log == ["[uwsgi-subscription for pid 7] new pool: k (hash key: 46544)",
                   "[uwsgi-subscription for pid 7] k => new node: n0",
                   "[uwsgi-subscription for pid 7] k => new node: n1"]
    t.clock[0] = 17  # type: ignore[attr-defined]
    assert picks(t, 1) == "1"  # 17 s is within the tolerance (now - last_check > 17)
    t.subscribe(Subscription(key=b"k", address=b"n1"))  # n1 announces again at 18
    t.clock[0] = 18  # type: ignore[attr-defined]
    t.subscribe(Subscription(key=b"k", address=b"n1"))
    assert picks(t, 3) == "111"
    assert log[-1] == ("[uwsgi-subscription for pid 7] k => marking n0 as failed (no "
                       "announce received in 17 seconds)")
    t.clock[0] = 40  # type: ignore[attr-defined]
    assert picks(t, 1) == "-" and t.pools == {}  # the pool went with its last node


def test_unsubscribe_waits_for_the_sessions_of_the_node():
    t, log = table(1, 1)
    busy = t.lookup(b"k")
    assert busy is not None and busy.address == b"n1"
    t.unsubscribe(Subscription(key=b"k", address=b"n1", command=1))
    assert log[-1] == "[uWSGI fastrouter pid 7] k => marking n1 as failed"
    assert [n.address for n in t.pools[b"k"]] == [b"n0", b"n1"]  # still referenced
    t.release(busy)
    assert picks(t, 2) == "00" and [n.address for n in t.pools[b"k"]] == [b"n0"]


def test_lrc_picks_the_least_used_node_as_the_c_loop_does():
    t, _log = table(1, 1, algo="lrc")
    first = t.lookup(b"k")  # both unused: the walk goes on to the last one
    second = t.lookup(b"k")
    assert (first.address, second.address) == (b"n1", b"n0")
    t.release(first)
    assert t.lookup(b"k").address == b"n1"


# -- a fastrouter with subscribed backends ------------------------------------------------
def test_a_fastrouter_routes_by_subscription_in_wrr_order(app_dir):
    cluster = fastrouter_cluster(
        app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"),
        ("--subscribe2", "server=10.0.0.1:2626,key=example.com,weight=2"))
    with cluster:
        cluster.advance(1)
        assert "".join(who(cluster)[1] for _ in range(8)) == "21221221"  # as real uWSGI
        assert who(cluster, host="other.org") == "-"  # unknown key: closed, no byte
    router_pid = cluster["router"].inst._pid  # the fastrouter is the last spawned
    assert router_log(cluster) == [
        f"[uwsgi-subscription for pid {router_pid}] new pool: example.com (hash key: 30778)",
        f"[uwsgi-subscription for pid {router_pid}] example.com => new node: 10.0.0.2:3031",
        f"[uwsgi-subscription for pid {router_pid}] example.com => new node: 10.0.0.3:3031"]
    assert "[b1] subscribing to 10.0.0.1:2626:example.com" in cluster.log
    # a node with gateways only runs no worker (uWSGI: no socket, numproc = 0)
    assert not any(line.startswith("[router] spawned uWSGI worker") for line in cluster.log)
    assert "[router] *** Operational MODE: no-workers ***" in cluster.log
    # and misses no app (uWSGI's "no app loaded" needs a worker): no allow_no_app
    assert not any("no app loaded" in line for line in cluster.log)


def test_routed_requests_leave_no_garbage_for_the_cyclic_gc(app_dir):
    # a session's exchange with its backend is freed when it ends (it held itself
    # through its callback: ~30 objects per request for the GC to find)
    cluster = fastrouter_cluster(app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        who(cluster)
        gc.collect()
        gc.disable()
        try:
            answers = [who(cluster) for _ in range(100)]
            garbage = gc.collect()
        finally:
            gc.enable()
    assert answers == ["b1"] * 100
    assert garbage < 100


def test_backends_announce_at_start_at_the_first_cycle_then_every_freq(app_dir):
    cluster = fastrouter_cluster(
        app_dir, ("--subscribe-to", "10.0.0.1:2626:a.com", "--subscribe-freq", "5"))
    with cluster:
        cluster.advance(16)
    sent = [round(r.time) for r in cluster["b1"].trace.select("subscription.send")]
    assert sent == [0, 1, 5, 10, 15]
    received = cluster["router"].trace.select("subscription.receive")
    assert len(received) == 5 and received[0]["address"] == "10.0.0.2:3031"


def test_a_stopped_backend_unsubscribes_and_traffic_moves(app_dir):
    cluster = fastrouter_cluster(app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"),
                                 ("--subscribe-to", "10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        assert {who(cluster) for _ in range(4)} == {"b1", "b2"}
        cluster["b2"].inst.request_stop()
        cluster.advance(0.01)
        assert {who(cluster) for _ in range(4)} == {"b1"}
    assert "[b2] unsubscribing from 10.0.0.1:2626:example.com" in cluster.log
    assert router_log(cluster)[-1].endswith("] example.com => marking 10.0.0.3:3031 as failed")
    assert router_log(cluster)[-1].startswith("[uWSGI fastrouter pid ")


def test_an_isolated_backend_times_out_is_marked_failed_and_the_request_retried(app_dir):
    cluster = fastrouter_cluster(app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"),
                                 ("--subscribe-to", "10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        cluster.net.isolate("b2")  # the next pick (wrr: the last node) is b2
        started = cluster.now
        response = cluster.request("router:3017", headers={"Host": "example.com"})
        assert response.status == 200 and response.body.startswith(b"b1 ")
        assert 60 <= cluster.now - started < 61  # the fastrouter's 60 s connect timeout
        assert who(cluster) == "b1"
    assert router_log(cluster)[-2:] == [
        '[uwsgi-fastrouter] unable to connect() to node "10.0.0.3:3031" (0 retries): timeout',
        "[uwsgi-fastrouter] example.com => marking 10.0.0.3:3031 as failed"]


def test_a_killed_backend_is_dropped_after_the_subscription_tolerance(app_dir):
    cluster = fastrouter_cluster(app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"),
                                 ("--subscribe-to", "10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        cluster.net.partition(["router", "b1"], ["b2"])  # b2's announces are lost
        cluster.advance(17)  # b2 last announced at 1 s: 17 s ago is within the tolerance
        assert [n.address for n in cluster["router"].inst.subsystems["routers"].routers[0]
                .table.pools[b"example.com"]] == [b"10.0.0.2:3031", b"10.0.0.3:3031"]
        cluster.advance(1)
        assert [who(cluster) for _ in range(3)] == ["b1", "b1", "b1"]
    assert any(line.endswith("=> marking 10.0.0.3:3031 as failed (no announce received "
                             "in 17 seconds)") for line in router_log(cluster))


def test_a_refused_backend_is_retried_on_the_next_node(app_dir):
    # b2 subscribes an address where nothing listens: the connection is refused
    cluster = fastrouter_cluster(
        app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"),
        ("--subscribe-to", "10.0.0.3:9999=10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        assert who(cluster) == "b1"
    assert router_log(cluster)[-2:] == [
        '[uwsgi-fastrouter] unable to connect() to node "10.0.0.3:9999" (0 retries): '
        'Connection refused',
        "[uwsgi-fastrouter] example.com => marking 10.0.0.3:9999 as failed"]


# -- the HTTP router -------------------------------------------------------------------
def test_the_http_router_routes_by_host_header(app_dir):
    cluster = Cluster(app_dir=app_dir)
    cluster.add("router", ["--master", "--http", ":8080", "--http-subscription-server",
                           ":2626"], allow_no_app=True)
    for n, key in ((1, "a.example"), (2, "b.example")):
        spec = backend(n, "--subscribe-to", f"10.0.0.1:2626:{key}")
        cluster.add(f"b{n}", spec["options"], address=spec["address"])
    with cluster:
        cluster.advance(1)
        a = cluster.request("10.0.0.1:8080", headers={"Host": "a.example"})
        b = cluster.request("10.0.0.1:8080", "GET", "/x?y=1", headers={"Host": "b.example"})
        nobody = cluster.request("10.0.0.1:8080", headers={"Host": "c.example"})
    assert (a.status, a.body) == (200, b"b1 a.example")
    assert a.header("Content-Type") == "text/plain"
    assert b.body == b"b2 b.example"
    assert cluster["b2"].trace.select("request.start")[-1]["path"] == "/x?y=1"
    assert nobody.status is None and nobody.reason == "connection closed: no reply"


def test_http_in_front_of_the_nodes_own_workers(app_dir):
    cluster = Cluster(app_dir=app_dir)
    web = cluster.add("web", ["--master", "--http", ":8080", "--wsgi-file", "app.py"])
    with cluster:
        response = cluster.request("web:8080", headers={"Host": "site"})
    assert (response.status, response.body) == (200, b"web site")
    lines = web.log
    at = lines.index("uWSGI http bound on :8080 fd 4")  # as real: socket 0 is fd 3
    assert lines[at + 1].startswith("uwsgi socket 0 bound to TCP address 127.0.0.1:")
    assert lines[at + 1].endswith("(port auto-assigned) fd 3")
    assert any(line.startswith("spawned uWSGI http 1 (pid: ") for line in lines)


def test_http_to_static_nodes_in_turn_skipping_a_failed_one(app_dir):
    cluster = Cluster(app_dir=app_dir)
    cluster.add("router", ["--master", "--http", ":80", "--http-to", "10.0.0.2:3031",
                           "--http-to", "10.0.0.3:3031", "--http-to", "10.0.0.3:4444"],
                allow_no_app=True)
    for n in (1, 2):
        cluster.add(f"b{n}", backend(n)["options"], address=f"10.0.0.{n + 1}")
    with cluster:
        got = [who(cluster, "router:80") for _ in range(5)]
    # the third node refuses: marked failed, the request retried on the next one
    assert got == ["b1", "b2", "b1", "b2", "b1"]
    assert "[router] [uwsgi-http] 10.0.0.1 => marking 10.0.0.3:4444 as failed" not in cluster.log
    assert any(line.endswith("=> marking 10.0.0.3:4444 as failed") for line in cluster.log)


def test_an_http_request_to_an_http_socket_between_nodes(app_dir):
    cluster = Cluster(app_dir=app_dir)
    cluster.add("a", ["--master", "--http-socket", ":9090", "--wsgi-file", "app.py"])
    cluster.add("client", ["--master", "--socket", ":3031", "--wsgi-file", "app.py"])
    with cluster:
        response = cluster.request("a:9090", "GET", "/", headers={"Host": "h"}, via="client")
        refused = cluster.request("a:9999", via="client")
    assert (response.status, response.body) == (200, b"a h")
    assert refused.status is None and refused.reason.startswith("ConnectionRefusedError")


def test_the_request_log_counts_the_vars_the_node_parsed(app_dir):
    # --http-socket: 9 vars and the 3 headers (Host, X-A, Connection: close); the router
    # adds UWSGI_ROUTER and REMOTE_PORT (checked against real uWSGI in
    # tests/real/test_request_log_vars_real.py)
    cluster = Cluster(app_dir=app_dir)
    cluster.add("h", ["--master", "--http-socket", ":9090", "--wsgi-file", "app.py"])
    cluster.add("b", backend(1)["options"], address="10.0.0.2")
    cluster.add("router", ["--master", "--http", ":80", "--http-to", "10.0.0.2:3031"],
                allow_no_app=True)
    with cluster:
        for address in ("h:9090", "router:80"):
            cluster.request(address, headers={"Host": "site", "X-A": "1"})
    lines = [line for line in cluster.log if " vars in " in line]
    assert "{24 vars in " in lines[0] and "{28 vars in " in lines[1]


# -- signal targets ---------------------------------------------------------------------
ROUTER_APP = """
import uwsgi
uwsgi.register_signal(31, "cluster", print)
uwsgi.register_signal(32, "subscribed", print)
def application(env, sr):
    sr("200 OK", [])
    return [b""]
"""


@pytest.mark.parametrize("legacy", [False, True])
def test_cluster_and_subscribed_signal_targets(write_app, legacy):
    app_dir = write_app(APP).parent
    write_app(ROUTER_APP, "router_app.py")
    cluster = Cluster(app_dir=app_dir)
    router = cluster.add("router", ["--master", "--socket", ":3031", "--fastrouter", ":3017",
                                    "--fastrouter-subscription-server", ":2626",
                                    "--wsgi-file", "router_app.py"], legacy=legacy)
    spec = backend(1, "--subscribe-to", "10.0.0.1:2626:k")
    cluster.add("b1", spec["options"], address=spec["address"])
    cluster.add("b2", backend(2)["options"], address="10.0.0.3")
    with cluster:
        cluster.advance(1)
        router.signal(31)
        router.signal(32)
        cluster.advance(1)
    handled = sorted((r.node, r["num"]) for r in cluster.trace.select("signal.handler"))
    if legacy:
        # each other node's master routes 31 (and 32, to subscribed b1) by its own table
        assert handled == [("b1", 31), ("b1", 32), ("b2", 31)]
    else:
        assert handled == []
        assert "[router] ^^^ UNSUPPORTED SIGNAL TARGET: cluster ^^^" in cluster.log


def test_outside_a_cluster_router_options_warn(write_app):
    app = write_app(APP)
    with Simulation(["--master", "--http", ":8080", "--wsgi-file", str(app)]) as sim:
        assert any("--http: routers and subscriptions are simulated between the nodes of "
                   "a Cluster only" in line for line in sim.log)


def test_outside_a_cluster_strict_refuses_router_options(write_app):
    from simuwsgi import OptionNotSimulatedError

    app = write_app(APP)
    with pytest.raises(OptionNotSimulatedError, match="--fastrouter: routers and"):
        Simulation(["--master", "--fastrouter", ":3017", "--socket", ":3031",
                    "--wsgi-file", str(app)], strict=True).start()


# -- the bundled scenario -----------------------------------------------------------------
def test_the_failover_scenario_reroutes_and_its_report_shows_it(tmp_path, capsys):
    from pathlib import Path

    from simuwsgi.cli import main

    scenario = Path(__file__).parent.parent / "scenarios" / "cluster_failover.py"
    assert main(["run", str(scenario), "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "check: passed" in out and "requests: 200: 114" in out
    report = (tmp_path / "cluster_failover-seed14" / "report.md").read_text()
    assert "(30 s): the network was partitioned: router, b1, b2 | b3" in report
    assert ("(36 s): the http1 router of router: backend 10.0.0.4:3031 of shop.example "
            "failed (connection refused or timed out): requests rerouted") in report
    assert "(60 s): node b2 was killed (every process, kill -9)" in report
    assert "| router/http1 | 10.0.0.3:3031 | 22 | 3.00043 s | 58.0004 s |" in report
    digest = next(line for line in out.splitlines() if "trace digest" in line)
    assert main(["run", str(scenario)]) == 0
    assert digest in capsys.readouterr().out  # the same run again: the same trace


BODY_APP = """
def application(env, sr):
    sr("200 OK", [])
    return [env["wsgi.input"].read() + b" " + env.get("CONTENT_LENGTH", "").encode()]
"""


@pytest.mark.parametrize("port", ["3031", "9090"])
def test_a_request_body_reaches_the_app_through_uwsgi_and_http_ports(write_app, port):
    app_dir = write_app(BODY_APP).parent
    cluster = Cluster(app_dir=app_dir)
    cluster.add("a", ["--master", "--socket", ":3031", "--http-socket", ":9090",
                      "--wsgi-file", "app.py"])
    with cluster:
        response = cluster.request(f"a:{port}", "POST", "/", body=b"hello")
    assert response.body == b"hello 5"


def test_a_brutal_reload_unsubscribes_then_subscribes_again(app_dir):
    # real 2.0.30 (SIGTERM to a backend's master): "...brutally killing workers...",
    # "unsubscribing from ...", the re-exec, "subscribing to ..." again
    cluster = fastrouter_cluster(app_dir, ("--subscribe-to", "10.0.0.1:2626:example.com"))
    with cluster:
        cluster.advance(1)
        cluster["b1"].inst.request_brutal_reload()
        cluster.advance(2)
        assert who(cluster) == "b1"
    lines = [line for line in cluster["b1"].log
             if "subscrib" in line or "brutally" in line or "binary reloading" in line]
    assert lines == ["subscribing to 10.0.0.1:2626:example.com",
                     "...brutally killing workers...",
                     "unsubscribing from 10.0.0.1:2626:example.com",
                     "binary reloading uWSGI...",
                     "subscribing to 10.0.0.1:2626:example.com"]
    # its only node gone, the pool went too: the announce after the reload makes it anew
    assert [line.split("] ", 1)[1] for line in router_log(cluster)][-3:] == [
        "example.com => marking 10.0.0.2:3031 as failed",
        "new pool: example.com (hash key: 30778)",
        "example.com => new node: 10.0.0.2:3031"]


def test_malformed_subscriptions_send_nothing_and_say_so(app_dir):
    cluster = fastrouter_cluster(
        app_dir, ("--subscribe-to", "10.0.0.1:2626", "--subscribe2",
                  "server=10.0.0.1:2626,key=a.com,colour=red,weight=3",
                  "--subscribe2", "key=b.com"))
    with cluster:
        cluster.advance(1)
    sent = cluster["b1"].trace.select("subscription.send")
    assert {r["key"] for r in sent} == {"a.com"}  # the unknown key is ignored, as real
    table = cluster["router"].inst.subsystems["routers"].routers[0].table
    assert table.pools[b"a.com"][0].weight == 3
    warnings = [line for line in cluster["b1"].log if line.startswith("[simuwsgi]")]
    assert warnings == [
        "[simuwsgi] subscription 10.0.0.1:2626: no SERVER:KEY (uWSGI sends nothing and "
        "says nothing); not sent",
        "[simuwsgi] subscription server=10.0.0.1:2626,key=a.com,colour=red,weight=3: "
        "'colour=red' is not a key=value uWSGI knows; ignored, as uWSGI does",
        "[simuwsgi] subscription key=b.com: no server= or no key= (uWSGI sends nothing); "
        "not sent"]


def test_no_announce_while_a_graceful_reload_waits_for_its_workers(write_app):
    app_dir = write_app(APP + """
import time
def slow(env, sr):
    time.sleep(30)
    return application(env, sr)
""").parent
    cluster = Cluster(app_dir=app_dir)
    cluster.add("router", ["--master", "--fastrouter", ":3017",
                           "--fastrouter-subscription-server", ":2626"])
    b1 = cluster.add("b1", ["--master", "--socket", "10.0.0.2:3031", "--subscribe-to",
                            "10.0.0.1:2626:k", "--wsgi-file", "app.py", "--callable", "slow"],
                     address="10.0.0.2")
    with cluster:
        cluster.advance(2)
        b1.submit("GET", "/")
        cluster.advance(1)
        b1.reload()  # the worker finishes its 30 s request first
        cluster.advance(40)
    sent = [round(r.time) for r in b1.trace.select("subscription.send")]
    assert sent[:2] == [0, 1] and not [t for t in sent if 3 < t < 33]
