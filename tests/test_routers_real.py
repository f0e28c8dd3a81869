"""Routers and subscriptions against real uWSGI 2.0.30 on loopback (``@pytest.mark.real``).

* a real backend's subscription datagrams, caught on a UDP socket: when they are sent
  (start, first master cycle, then every ``--subscribe-freq``), their bytes, and the
  unsubscribe at a stop; the simulated backend sends the same;
* a real fastrouter with two real backends subscribed to it, and the same topology
  simulated: the backends' order (wrr with weights), the subscription log lines, and
  where traffic goes once a backend stops;
* a real HTTP router with three backends (scenarios/cluster_failover.py without its
  partition, which loopback cannot do): the order, one backend killed with SIGKILL, the
  refused connection, its log lines and the retry; and the vars a backend receives.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from simuwsgi import Cluster
from simuwsgi.cluster import _uwsgi_request
from simuwsgi.protocol import CLIENT, Connection, decode_subscription
from simuwsgi.protocol._http import read_http_head
from simuwsgi.modes.real import RealUwsgi, free_port

pytestmark = pytest.mark.real

APP = """
import json, uwsgi
def application(env, sr):
    sr("200 OK", [("Content-Type", "text/plain")])
    if env["PATH_INFO"] == "/env":
        return [json.dumps({k: v for k, v in env.items() if isinstance(v, str)}).encode()]
    return [uwsgi.opt.get("socket", b"-")]
"""


@pytest.fixture
def app_dir(write_app):
    return write_app(APP).parent


def fastrouter_get(port: int, host: str) -> bytes:
    """The body a real fastrouter answers a uwsgi request for ``host`` with."""
    out = Connection(CLIENT).send_message(
        _uwsgi_request("GET", "/", [("Host", host)], f"127.0.0.1:{port}", "127.0.0.1"))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(out)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    if not data:
        return b""
    head = read_http_head(data, True)
    assert head is not None
    return data[head[1]:]


def test_a_backends_announces_and_their_bytes_are_the_simulated_ones(app_dir):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    udp_port = udp.getsockname()[1]
    server = f"127.0.0.1:{udp_port}"
    port = free_port()
    options = ["--master", "--socket", f"127.0.0.1:{port}", "--subscribe-freq", "3",
               "--subscribe-to", f"{server}:example.com,5", "--wsgi-file", "app.py"]
    real = RealUwsgi(options, app_dir=app_dir, max_lifetime=60).start()
    got: list[tuple[float, bytes]] = []
    try:
        start = time.monotonic()
        while time.monotonic() - start < 7.5:
            try:
                got.append((time.monotonic() - start, udp.recv(4096)))
            except TimeoutError:
                pass
        real.stop()
        while True:
            try:
                got.append((time.monotonic() - start, udp.recv(4096)))
            except TimeoutError:
                break
    finally:
        real.close()
        udp.close()
    # the harness sees the master ready after its first announce: times from the first
    times = [round(t - got[0][0]) for t, _data in got[:-1]]
    assert times == [0, 1, 3, 6]
    real_subs = [decode_subscription(data) for _t, data in got]
    assert [s.command for s in real_subs] == [0, 0, 0, 0, 1]

    cluster = Cluster(app_dir=app_dir)
    sim_server = f"10.0.0.9:{udp_port}"
    sim = cluster.add("b", [o.replace(server, sim_server) for o in options], address="127.0.0.1")
    sent: list[bytes] = []
    cluster.add("router", ["--master", "--socket", ":1", "--wsgi-file", "app.py"],
                address="10.0.0.9")
    with cluster:
        cluster.net.bind_udp("router", udp_port, lambda d, _src: sent.append(d))
        cluster.advance(7.5)
        sim.inst.request_stop()
        cluster.advance(0.5)
    assert [round(r.time) for r in sim.trace.select("subscription.send")][:-1] == times
    # cores 1, load 0, weight 0, modifier1 5: byte for byte, but for the harness's
    # --http-socket, which the real backend does not announce (its first socket is used)
    assert sent == [data for _t, data in got]
    assert "subscribing to " + f"{sim_server}:example.com,5" in sim.log
    assert "unsubscribing from " + f"{sim_server}:example.com,5" in sim.log
    assert "subscribing to " + f"{server}:example.com,5" in real.log


def _topology(router_port: int, ss_port: int, sockets: list[str], server: str,
              ) -> tuple[list[str], list[list[str]]]:
    router = ["--master", "--fastrouter", f"127.0.0.1:{router_port}",
              "--fastrouter-subscription-server", f"127.0.0.1:{ss_port}"]
    backends = [
        ["--master", "--socket", sockets[0], "--subscribe-to", f"{server}:example.com",
         "--wsgi-file", "app.py"],
        ["--master", "--socket", sockets[1], "--subscribe2",
         f"server={server},key=example.com,weight=2", "--wsgi-file", "app.py"],
    ]
    return router, backends


def _masked(lines: list[str], names: dict[str, str]) -> list[str]:
    out = []
    for line in lines:
        if not re.match(r"\[(uwsgi-subscription for|uWSGI fastrouter pid|uwsgi-http\])", line):
            continue
        line = re.sub(r"pid \d+", "pid P", line)
        for address, name in names.items():
            line = line.replace(address, name)
        out.append(line)
    return out


def test_a_fastrouter_with_two_subscribed_backends_real_and_simulated(app_dir):
    f_port, ss_port = free_port(), free_port()
    sockets = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    router_opts, backend_opts = _topology(f_port, ss_port, sockets, f"127.0.0.1:{ss_port}")
    names = {sockets[0]: "B1", sockets[1]: "B2"}
    nodes = [RealUwsgi([*router_opts, "--wsgi-file", "app.py"], app_dir=app_dir,
                       max_lifetime=60)]
    try:
        nodes[0].start()
        for opts in backend_opts:
            nodes.append(RealUwsgi(opts, app_dir=app_dir, max_lifetime=60).start())
            nodes[0].wait_for_log(r"new node: " + re.escape(opts[2]))
        real_order = [names.get(fastrouter_get(f_port, "example.com").decode(), "?")
                      for _ in range(8)]
        real_unknown = fastrouter_get(f_port, "other.org")
        nodes[2].stop()
        nodes[0].wait_for_log(r"marking " + re.escape(sockets[1]) + " as failed")
        real_after = [names.get(fastrouter_get(f_port, "example.com").decode(), "?")
                      for _ in range(3)]
        real_log = _masked(nodes[0].log, names)
    finally:
        for node in reversed(nodes):
            node.close()

    cluster = Cluster(app_dir=app_dir)
    sim_sockets = ["10.0.0.2:3031", "10.0.0.3:3031"]
    router_sim, backends_sim = _topology(17, 2626, sim_sockets, "10.0.0.1:2626")
    router_sim = [o.replace("127.0.0.1:", ":") for o in router_sim]
    # the harness's --http-socket gives the real router its workers: the same here
    cluster.add("router", [*router_sim, "--http-socket", ":9000", "--wsgi-file", "app.py"])
    for n, opts in enumerate(backends_sim, 1):
        cluster.add(f"b{n}", opts, address=f"10.0.0.{n + 1}")
    sim_names = {sim_sockets[0]: "B1", sim_sockets[1]: "B2"}

    def sim_get(host: str) -> str:
        body = cluster.request("router:17", headers={"Host": host}).body.decode()
        return sim_names.get(body, "?") if body else ""

    with cluster:
        cluster.advance(1)
        sim_order = [sim_get("example.com") for _ in range(8)]
        sim_unknown = sim_get("other.org")
        cluster["b2"].inst.request_stop()
        cluster.advance(0.1)
        sim_after = [sim_get("example.com") for _ in range(3)]
    sim_log = _masked([line for line in cluster["router"].log], sim_names)

    assert real_order == sim_order == ["B2", "B1", "B2", "B2", "B1", "B2", "B2", "B1"]
    assert real_unknown == b"" and sim_unknown == ""
    assert real_after == sim_after == ["B1"] * 3
    assert real_log == sim_log == [
        "[uwsgi-subscription for pid P] new pool: example.com (hash key: 30778)",
        "[uwsgi-subscription for pid P] example.com => new node: B1",
        "[uwsgi-subscription for pid P] example.com => new node: B2",
        "[uWSGI fastrouter pid P] example.com => marking B2 as failed",
    ]


def http_get(port: int, host: str, path: str = "/") -> bytes:
    """The body a real HTTP router answers ``GET path`` for ``host`` with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                     f"\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


def test_an_http_router_with_three_backends_one_killed_real_and_simulated(app_dir):
    h_port, ss_port = free_port(), free_port()
    sockets = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    names = {address: f"B{n}" for n, address in enumerate(sockets, 1)}
    router = ["--master", "--http", f"127.0.0.1:{h_port}", "--http-subscription-server",
              f"127.0.0.1:{ss_port}", "--http-timeout", "5"]
    nodes = [RealUwsgi([*router, "--wsgi-file", "app.py"], app_dir=app_dir, max_lifetime=60)]
    try:
        nodes[0].start()
        for address in sockets:
            nodes.append(RealUwsgi(["--master", "--socket", address, "--subscribe-to",
                                    f"127.0.0.1:{ss_port}:shop.example", "--wsgi-file",
                                    "app.py"], app_dir=app_dir, max_lifetime=60).start())
            nodes[0].wait_for_log(r"new node: " + re.escape(address))
        real_env = json.loads(http_get(h_port, "shop.example", "/env?x=1"))
        real_before = [names[http_get(h_port, "shop.example").decode()] for _ in range(6)]
        nodes[2].kill()
        real_after = [names[http_get(h_port, "shop.example").decode()] for _ in range(4)]
        real_log = _masked(nodes[0].log, names)
    finally:
        for node in reversed(nodes):
            node.close()

    cluster = Cluster(app_dir=app_dir)
    cluster.add("router", [o.replace("127.0.0.1:", ":").replace(str(ss_port), "2626")
                           .replace(str(h_port), "8080") for o in router]
                + ["--wsgi-file", "app.py"])
    sim_names = {}
    for n in (1, 2, 3):
        address = f"10.0.0.{n + 1}:3031"
        sim_names[address] = f"B{n}"
        cluster.add(f"b{n}", ["--master", "--socket", address, "--subscribe-to",
                              "10.0.0.1:2626:shop.example", "--wsgi-file", "app.py"],
                    address=f"10.0.0.{n + 1}")

    def sim_get(path: str = "/") -> bytes:
        return cluster.request("router:8080", "GET", path,
                               headers={"Host": "shop.example"}).body

    with cluster:
        cluster.advance(1)
        sim_env = json.loads(sim_get("/env?x=1"))
        sim_before = [sim_names[sim_get().decode()] for _ in range(6)]
        cluster.kill("b2")
        sim_after = [sim_names[sim_get().decode()] for _ in range(4)]
    sim_log = _masked(cluster["router"].log, sim_names)

    # the /env request took the first pick (B3, the last node, when no node has credit)
    assert real_before == sim_before == ["B1", "B2", "B3", "B1", "B2", "B3"]
    # B2 refuses: marked failed, the request retried on the next node
    assert real_after == sim_after == ["B1", "B3", "B1", "B3"]
    assert real_log == sim_log
    assert any("unable to connect() to node \"B2\" (0 retries): Connection refused" in line
               for line in sim_log)
    # the vars the HTTP router sends, but for the host's name and the ports
    for env in (real_env, sim_env):
        for key in ("SERVER_NAME", "SERVER_PORT", "REMOTE_PORT", "REMOTE_ADDR"):
            env.pop(key)
    assert real_env == sim_env
