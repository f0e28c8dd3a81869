"""A real uWSGI node calling virtual nodes inside a mixed Cluster, through TCP bridges
(``simuwsgi.network._bridge``): rpc and remote cache back to the calling virtual node, a
real HTTP router in front of virtual backends, partitions and refusals, and the same
call between two real nodes as the reference."""

from __future__ import annotations

import re
import socket

import pytest

from simuwsgi import Cluster
from simuwsgi._errors import ConfigError
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

APP = '''
import uwsgi


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def back(arg):
    return b"back " + arg + b" from " + uwsgi.hostname


def relay(peer=b""):
    """Call the node at peer (default: the --set peer=... option) and its cache."""
    peer = _text(peer) or _text(uwsgi.opt["peer"])
    answer = uwsgi.rpc(peer, b"back", b"y")
    cached = uwsgi.cache_get("k", "c@" + peer)
    return repr(answer).encode() + b" " + repr(cached).encode()


uwsgi.register_rpc("back", back)
uwsgi.register_rpc("relay", relay)


def application(environ, start_response):
    start_response("200 OK", [])
    path = environ["PATH_INFO"].strip("/")
    if path.startswith("set/"):
        return [repr(uwsgi.cache_set("k", path[4:], 0, "c")).encode()]
    node, _, peer = path.partition("/")
    if node == "local":  # this node calls the peer itself
        return [relay(peer.encode())]
    return [repr(uwsgi.rpc(node, b"relay")).encode()]  # node calls us back
'''

BACKEND = '''
import uwsgi


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [uwsgi.hostname, b" ", environ["PATH_INFO"].encode()]
'''

def _base(processes: int = 2) -> list[str]:
    return ["--master", "--processes", str(processes), "--wsgi-file", "app.py", "--cache2",
            "name=c,items=10"]


#: --socket-timeout of the real caller: each call to a cut peer waits this long.
TIMEOUT = 2


def _mixed(tmp_path, processes: int = 2, hostname: str = "a") -> Cluster:
    (tmp_path / "app.py").write_text(APP)
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("a", _base(processes) + ["--socket", ":3031"], address="10.0.0.1",
                hostname=hostname)
    cluster.add_real("r", _base() + ["--socket", ":3031", "--set", "peer=a:3031",
                                  "--socket-timeout", str(TIMEOUT)], address="10.0.0.9")
    return cluster


#: A request log line; what differs between runs and clients (pid, address, vars,
#: date, msecs) left out.
_LINE = re.compile(r"^\[pid: \d+\|(.*?)\] \S+ \(\) \{.*?\} \[.*?\] (.*) in \d+ msecs (.*)$")


def _wait_for_log(cluster: Cluster, name: str, text: str) -> None:
    """Run the cluster until the real node ``name`` has logged ``text`` (its log file is
    read as it grows; ``RealUwsgi.wait_for_log`` would sleep in virtual time)."""
    for _ in range(100):
        if any(text in line for line in cluster[name].log):
            return
        cluster.advance(0.05)
    raise AssertionError(f"{name} did not log {text!r}")


def _request_lines(log: list[str]) -> list[str]:
    return [" ".join(m.groups()) for m in map(_LINE.match, log) if m]


@requires_real_uwsgi
def test_a_simulated_node_calls_a_real_node_which_calls_it_back(tmp_path):
    with _mixed(tmp_path) as cluster:
        a, real = cluster["a"], cluster["r"]
        assert a.get("/set/v1").body == b"True"
        bridge = cluster.real_address("a:3031")
        assert f"peer={bridge}" in real.real.argv  # --set's node address, rewritten
        assert cluster.real_address("a") == bridge == cluster.real_address("10.0.0.1:3031", via="r")
        # a's worker calls r's relay, whose rpc and cache_get reach a's other worker
        assert a.get("/r:3031").body == repr(b"b'back y from a' b'v1'").encode()
        assert [r.fields for r in cluster.trace.select("net.bridge")] == \
            [{"src": "r", "address": "a:3031"}] * 2
        calls = [r.fields for r in a.trace.select("net.call")]
        assert calls[-1]["node"] == "r:3031" and calls[-1]["what"] == "rpc"
        # the two calls a served (rpc, cache) log nothing, as uWSGI's rpc/cache plugins
        assert _request_lines(a.log) == [
            "app: 0|req: 1/1 GET /set/v1 => generated 4 bytes (HTTP/1.1 200) 0 headers "
            "in 19 bytes (1 switches on core 0)",
            "app: 0|req: 2/4 GET /r:3031 => generated 25 bytes (HTTP/1.1 200) 0 headers "
            "in 19 bytes (1 switches on core 0)"]


@requires_real_uwsgi
def test_a_partition_fails_the_real_nodes_calls_as_uwsgi_does_and_heal_restores(tmp_path):
    with _mixed(tmp_path) as cluster:
        a, real = cluster["a"], cluster["r"]
        a.get("/set/v2")
        assert real.get("/local/").body == b"b'back y from a' b'v2'"
        cluster.net.partition(["a"], ["r"])
        began = cluster.now
        # rpc and cache_get each wait --socket-timeout, then give None, logging nothing
        assert real.get("/local/", timeout=3 * TIMEOUT + 5).body == b"None None"
        assert cluster.now - began >= 2 * TIMEOUT
        assert not [line for line in real.log if "error" in line.lower()]
        cluster.net.heal()
        # passed as an rpc argument rather than read from the option
        assert real.get("/local/" + cluster.real_address("a")).body == \
            b"b'back y from a' b'v2'"
        cluster.kill("a")  # its ports refuse: the real client gives up at once
        began = cluster.now
        assert real.get("/local/").body == b"None None"
        assert cluster.now - began < TIMEOUT
        assert [r.fields for r in cluster.trace.select("net.bridge.listen")] == [
            {"src": "r", "address": "a:3031", "listening": False}]


@requires_real_uwsgi
def test_a_real_http_router_in_front_of_virtual_backends(tmp_path):
    (tmp_path / "backend.py").write_text(BACKEND)
    cluster = Cluster(app_dir=tmp_path)
    for n in (1, 2):
        cluster.add(f"b{n}", ["--master", "--wsgi-file", "backend.py", "--socket", ":3031"],
                    address=f"10.0.0.{n + 1}")
    real = cluster.add_real("r", ["--master", "--http", ":8080", "--http-to",
                                  "10.0.0.2:3031", "--http-to", "b2:3031"],
                            address="10.0.0.9")
    with cluster:
        # a client on b1's host -> the real router -> the bridges -> b1, b2 in turn
        bodies = [cluster.request("r:8080", path=f"/{i}", via="b1").body for i in range(4)]
        assert bodies == [b"b1 /0", b"b2 /1", b"b1 /2", b"b2 /3"]
        assert [r.fields["address"] for r in cluster.trace.select("net.bridge")] == \
            ["10.0.0.2:3031", "b2:3031"] * 2
        assert any("GET /1 => generated 5 bytes" in line for line in cluster["b2"].log)
        # a raw client's socket to the real router: each read ends when its bytes came
        began = cluster.now
        with cluster.connect("r:8080", via="b1") as sock:
            sock.sendall(b"GET /raw HTTP/1.0\r\n\r\n")
            assert sock.makefile("rb").read().endswith(b"\r\n\r\nb1 /raw")
        assert cluster.now - began < 1
        cluster.net.set_link("r", "b2", latency=0.3)  # the router's turn: b2
        response = cluster.request("r:8080", path="/slow", via="b1")
        assert response.body == b"b2 /slow" and response.finished - response.started >= 0.6
        cluster.kill("b2")  # refused: the router marks it failed and tries b1
        bodies = [cluster.request("r:8080", path="/k", via="b1").body for _ in range(2)]
        assert bodies == [b"b1 /k"] * 2  # b2's turn went to b1
        b2 = cluster.real_address("b2:3031")
        _wait_for_log(cluster, "r", "as failed")
        assert [line for line in real.log if "uwsgi-http" in line] == [
            f'[uwsgi-http] unable to connect() to node "{b2}" (0 retries): Connection refused',
            f"[uwsgi-http] r => marking {b2} as failed"]


@requires_real_uwsgi
def test_a_real_backend_subscribes_to_a_virtual_router(tmp_path):
    (tmp_path / "backend.py").write_text(BACKEND)
    backend = ["--master", "--wsgi-file", "backend.py", "--subscribe-to",
               "10.0.0.1:2626:shop.example"]
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("router", ["--master", "--http", ":8080", "--http-subscription-server",
                           ":2626"], address="10.0.0.1", allow_no_app=True)
    cluster.add("b1", backend + ["--socket", "10.0.0.2:3031"], address="10.0.0.2")
    cluster.add_real("r", backend + ["--socket", ":3031"], address="10.0.0.9")
    with cluster:
        cluster.advance(1.5)  # the announces at start and at the first master cycle
        # the real node announced its socket's real address, made its virtual one
        assert "[uwsgi-subscription for pid 1003] shop.example => new node: 10.0.0.9:3031" \
            in cluster["router"].log
        bodies = {cluster.request("router:8080", path="/s", headers={"Host": "shop.example"}
                                  ).body for _ in range(4)}
        assert bodies == {b"b1 /s", socket.gethostname().encode() + b" /s"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@requires_real_uwsgi
def test_a_real_node_calls_a_virtual_one_as_it_calls_a_real_one(tmp_path):
    """The reference: the same two nodes, both real; the caller's and the callee's
    request lines and the rpc's answer (the host name aside) are the same."""
    (tmp_path / "app.py").write_text(APP)
    port = _free_port()
    callee = RealUwsgi(_base(1) + ["--socket", f"127.0.0.1:{port}"], app_dir=tmp_path,
                       max_lifetime=60)
    caller = RealUwsgi(_base() + ["--socket", f"127.0.0.1:{_free_port()}", "--set",
                               f"peer=127.0.0.1:{port}"], app_dir=tmp_path, max_lifetime=60)
    with callee, caller:
        callee.get("/set/v3")
        real_answer = caller.get("/local/").body
        callee.get("/")
        caller.wait_for_log("GET /local/ ")
        callee.wait_for_log("GET / ")
    real_lines = (_request_lines(caller.log), _request_lines(callee.log))  # all written
    with _mixed(tmp_path, processes=1, hostname=socket.gethostname()) as cluster:
        a, real = cluster["a"], cluster["r"]
        a.get("/set/v3")
        mixed_answer = real.get("/local/").body
        a.get("/")
        _wait_for_log(cluster, "r", "GET /local/ ")
        mixed_lines = [_request_lines(a.log)]
    mixed_lines.insert(0, _request_lines(real.log))
    assert real_answer == mixed_answer == \
        b"b'back y from " + socket.gethostname().encode() + b"' b'v3'"
    assert mixed_lines == list(real_lines)


def test_a_real_nodes_tcp_peer_must_resolve():
    cluster = Cluster()
    cluster.add("a", ["--master"], allow_no_app=True)
    cluster.add_real("r", ["--master", "--fastrouter", ":3030", "--fastrouter-to",
                           "nowhere:3031"])
    with pytest.raises(ConfigError, match="real node 'r': unable to resolve 'nowhere'"):
        cluster.start()
