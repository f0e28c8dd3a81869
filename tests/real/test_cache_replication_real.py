"""Cache replication, real against simulated: two real uWSGI nodes on loopback (a
writer with ``nodes=``, a replica with ``udp=``; a node started with ``sync=``) vs the
same two nodes in a simulated cluster, driven by the same requests."""

from __future__ import annotations

import socket
import time

import pytest

from simuwsgi import Cluster
from simuwsgi.modes.real import free_port
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

from _cache_app import APP


#: (node, path): what the writer does, and what each node then reads.
STEPS = [("a", "/set/k=v1"), ("b", "/get/k"), ("a", "/set/k=v9"), ("b", "/get/k"),
         ("a", "/update/k=v2"), ("b", "/get/k"), ("a", "/del/k"), ("a", "/get/k"),
         ("b", "/get/k"), ("a", "/inc/n=5"), ("a", "/inc/n=5"), ("a", "/num/n"),
         ("b", "/num/n"), ("b", "/set/x=1"), ("a", "/get/x")]


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@requires_real_uwsgi
def test_replication_matches_two_real_nodes(tmp_path, real_uwsgi_factory):
    (tmp_path / "app.py").write_text(APP)
    port = _udp_port()
    base = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
    a = real_uwsgi_factory(base + ["--cache2", f"name=c,items=10,nodes=127.0.0.1:{port}"],
                           app_dir=tmp_path)
    b = real_uwsgi_factory(base + ["--cache2", f"name=c,items=10,udp=127.0.0.1:{port}"],
                           app_dir=tmp_path)
    real = []
    for node, path in STEPS:
        real.append(({"a": a, "b": b}[node]).get(path).body.decode())
        time.sleep(0.05)  # the datagram crosses loopback
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("a", base + ["--socket", ":3031", "--cache2",
                             "name=c,items=10,nodes=10.0.0.2:4242"])
    cluster.add("b", base + ["--socket", ":3031", "--cache2", "name=c,items=10,udp=:4242"],
                address="10.0.0.2")
    with cluster:
        sim = []
        for node, path in STEPS:
            sim.append(cluster[node].get(path).body.decode())
            cluster.advance(0.05)
    assert sim == real
    # what the real nodes do: sets and updates replicate, the delete does not, math
    # sends its delta, the replica's own writes stay local
    assert real == ["True", "b'v1'", "None", "b'v1'", "True", "b'v2'", "True", "None",
                    "b'v2'", "True", "True", "10", "5", "True", "None"]
    assert any('udp server thread enabled for cache "c"' in line for line in b.log)


@requires_real_uwsgi
def test_sync_at_start_matches_two_real_nodes(tmp_path, real_uwsgi_factory):
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    base = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
    a = real_uwsgi_factory(base + ["--socket", f"127.0.0.1:{port}", "--cache2",
                                   "name=c,items=10"], app_dir=tmp_path)
    a.get("/set/k=v")
    a.get("/set/j=w")
    b = real_uwsgi_factory(base + ["--cache2", f"name=c,items=10,sync=127.0.0.1:{port}"],
                           app_dir=tmp_path)
    real = [b.get("/get/k").body, b.get("/get/j").body, b.get("/get/x").body]
    assert any("[cache-sync] getting cache dump from" in line for line in b.log)
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("a", base + ["--socket", ":3031", "--cache2", "name=c,items=10"])
    with cluster:
        cluster["a"].get("/set/k=v")
        cluster["a"].get("/set/j=w")
        late = cluster.add("b", base + ["--socket", ":3031", "--cache2",
                                        "name=c,items=10,sync=a:3031"])
        sim = [late.get("/get/k").body, late.get("/get/j").body, late.get("/get/x").body]
    assert sim == real == [b"b'v'", b"b'w'", b"None"]
