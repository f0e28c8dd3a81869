"""The request log's ``{N vars in M bytes}`` against real uWSGI 2.0.30 on loopback.

uWSGI counts the vars of the request's packet as it parsed it: ``--http-socket``'s
HTTP parser (``proto/http.c``: ten vars and one per header, no ``REMOTE_PORT``), or the
uwsgi packet an ``--http`` router (``plugins/http``: ``UWSGI_ROUTER`` and ``REMOTE_PORT``
more) sends a ``--socket`` backend. The same request bytes go to a real topology and to
the simulated one (over the virtual network, and ``Simulation.get``); the host name,
addresses and ports differ, so each line is compared by its var count and its bytes
less the vars' values, and the vars' names the app saw.
"""

from __future__ import annotations

import json
import re
import socket

import pytest

from simuwsgi import Cluster, Simulation
from simuwsgi.modes.real import RealUwsgi, free_port

pytestmark = pytest.mark.real

APP = """
import json
def application(env, sr):
    sr("200 OK", [("Content-Type", "text/plain")])
    return [json.dumps({k: v for k, v in env.items() if k.isupper()}).encode()]
"""
HEADERS = [("Host", "shop.example"), ("User-Agent", "probe/1"), ("X-Two", "a"),
           ("X-Two", "b"), ("Connection", "close")]
REQUEST = ("GET /p?q=1 HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in HEADERS)
           + "\r\n").encode()
_LINE = re.compile(r"\{(\d+) vars in (\d+) bytes\}")


def _shape(log: list[str], body: bytes) -> tuple[int, int, list[str]]:
    """(vars counted, bytes less the values, the vars' names) of the one request."""
    env = json.loads(body.partition(b"\r\n\r\n")[2] or body)
    (count, size), = [_LINE.search(x).groups() for x in log if _LINE.search(x)]
    return int(count), int(size) - sum(len(v) for v in env.values()), sorted(env)


def _send(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(REQUEST)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def test_the_logged_var_count_is_the_parsed_packets(write_app):
    app_dir = write_app(APP).parent
    hs, be, rt = free_port(), free_port(), free_port()
    nodes = [RealUwsgi(o, app_dir=app_dir, max_lifetime=30) for o in (
        ["--master", "--http-socket", f"127.0.0.1:{hs}", "--wsgi-file", "app.py"],
        ["--master", "--socket", f"127.0.0.1:{be}", "--wsgi-file", "app.py"],
        ["--master", "--http", f"127.0.0.1:{rt}", "--http-to", f"127.0.0.1:{be}",
         "--wsgi-file", "app.py"])]
    try:
        for node in nodes:
            node.start()
        real = {}
        for path, port, served in (("http-socket", hs, nodes[0]), ("router", rt, nodes[1])):
            body = _send(port)
            served.wait_for_log(_LINE.pattern)
            real[path] = _shape(served.log, body)
    finally:
        for node in nodes:
            node.close()

    cluster = Cluster(app_dir=app_dir)
    cluster.add("h", ["--master", "--http-socket", ":9090", "--wsgi-file", "app.py"],
                address="10.0.0.3")
    cluster.add("b", ["--master", "--socket", ":3031", "--wsgi-file", "app.py"],
                address="10.0.0.2")
    cluster.add("router", ["--master", "--http", ":8080", "--http-to", "10.0.0.2:3031",
                           "--wsgi-file", "app.py"], address="10.0.0.1")

    def sim_send(address: str) -> bytes:
        conn = cluster.connect(address, via="router")
        conn.sendall(REQUEST)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.close()
        return data

    with cluster:
        sim = {"http-socket": _shape(cluster["h"].log, sim_send("10.0.0.3:9090")),
               "router": _shape(cluster["b"].log, sim_send("10.0.0.1:8080"))}
    with Simulation(["--master", "--http-socket", ":9090", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as one:
        got = one.get("/p?q=1", headers=HEADERS)
        sim["get"] = _shape(one.log, got.raw)

    # 9 vars and 4 headers (X-Two merged) from --http-socket; 2 more through the router
    assert real["http-socket"][0] == 26 and real["router"][0] == 30
    assert sim == {**real, "get": real["http-socket"]}
