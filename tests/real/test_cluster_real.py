"""Real uWSGI nodes inside a cluster (Cluster.add_real): a real node and a simulated one
in one Legion, and cache replication both ways, over the virtual links."""

from __future__ import annotations

import pytest

from simuwsgi import Cluster
from simuwsgi._errors import ConfigError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi
from simuwsgi.modes.real._ssl_build import ssl_uwsgi_binary

from _cache_app import APP

pytestmark = pytest.mark.real

SECRET = "aes-128-cbc:secret"


def _legion(ip: str, valor: int, peer: str) -> list[str]:
    return ["--master", "--processes", "1", "--legion", f"lg {ip}:4000 {valor} {SECRET}",
            "--legion-node", f"lg {peer}:4000"]


def _legion_cluster() -> Cluster:
    cluster = Cluster(ssl=True)
    cluster.add("a", _legion("10.0.0.1", 90, "10.0.0.2"), address="10.0.0.1",
                allow_no_app=True)
    cluster.add_real("r", _legion("10.0.0.2", 80, "10.0.0.1"), address="10.0.0.2",
                     binary=ssl_uwsgi_binary())
    return cluster


def _is_lord(lines: list[str]) -> bool:
    return any("i am now the Lord of the Legion lg" in line for line in lines)


def test_a_real_node_and_a_simulated_one_elect_one_lord():
    with _legion_cluster() as cluster:
        real = cluster["r"]
        cluster.advance(10)
        assert cluster["a"].uwsgi.i_am_the_lord("lg") is True
        assert any("node: a valor: 90" in line and "joined Legion lg" in line
                   for line in real.log)
        assert not _is_lord(real.log)
        cluster["a"].stop()  # its "dead" announce crosses the link to the real node
        cluster.advance(4)
        assert any("announced its death to Legion lg" in line for line in real.log)
        assert _is_lord(real.log)


def test_a_partition_between_real_and_simulated_makes_two_lords():
    with _legion_cluster() as cluster:
        real = cluster["r"]
        cluster.advance(8)
        cluster.net.partition(["a"], ["r"])
        cluster.advance(22)  # over the 15 s tolerance, and a round
        assert any("node: a valor: 90" in line and "left Legion lg" in line
                   for line in real.log)
        assert _is_lord(real.log) and cluster["a"].uwsgi.i_am_the_lord("lg") is True


@requires_real_uwsgi
def test_cache_replication_between_a_real_node_and_a_simulated_one(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    base = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("a", base + ["--socket", ":3031", "--cache2",
                             "name=c,items=10,nodes=10.0.0.2:4242,udp=:4242"],
                address="10.0.0.1")
    cluster.add_real("r", base + ["--cache2", "name=c,items=10,udp=:4242,"
                                  "nodes=10.0.0.1:4242"], address="10.0.0.2")
    with cluster:
        real = cluster["r"]
        assert cluster["a"].get("/set/k=from-sim").status == 200
        cluster.advance(0.3)
        assert real.get("/get/k").body == b"b'from-sim'"
        assert real.get("/set/j=from-real").body == b"True"
        cluster.advance(0.3)
        assert cluster["a"].get("/get/j").body == b"b'from-real'"


RPC_APP = '''
import uwsgi


def hello(arg):
    return b"hello " + arg + b" from " + uwsgi.hostname


uwsgi.register_rpc("hello", hello)


def application(environ, start_response):
    start_response("200 OK", [])
    node = environ["PATH_INFO"].strip("/")
    answer = uwsgi.rpc(node, b"hello", b"x") if node else b"-"
    return [repr(answer).encode(), b" ", repr(uwsgi.cache_get("k", "c@" + node)).encode()]
'''


@requires_real_uwsgi
def test_a_simulated_node_calls_a_real_one(tmp_path):
    (tmp_path / "app.py").write_text(RPC_APP)
    base = ["--master", "--processes", "1", "--wsgi-file", "app.py", "--cache2",
            "name=c,items=10"]
    cluster = Cluster(app_dir=tmp_path)
    cluster.add("a", base + ["--socket", ":3031"])
    real = cluster.add_real("r", base + ["--socket", ":3031", "--cache2",
                                         "name=d,items=4"], address="10.0.0.9")
    with cluster:
        real.get("/")  # warm
        answer = cluster["a"].get("/r:3031").body
        assert answer.startswith(b"b'hello x from ") and answer.endswith(b" None")
        assert cluster.trace.select("net.call")
        cluster.net.partition(["a"], ["r"])
        began = cluster.now
        assert cluster["a"].get("/10.0.0.9:3031").body == b"None None"
        assert cluster.now - began >= 8  # two calls, each waiting --socket-timeout


def test_a_real_node_takes_no_http_socket_and_one_socket_per_port():
    cluster = Cluster()
    with pytest.raises(ConfigError, match="--http-socket is not available on a real node"):
        cluster.add_real("r", ["--http-socket", ":8080"])
    with pytest.raises(ConfigError, match="--fastrouter :1: port 1 is taken by another"):
        cluster.add_real("s", ["--socket", ":1", "--fastrouter", ":1"])
    with pytest.raises(ConfigError, match="--socket /tmp/s.sock: a host:port address only"):
        cluster.add_real("t", ["--socket", "/tmp/s.sock"])
    cluster.add_real("u", ["--socket", ":1", "--socket", ":2", "--http", ":3"])
