"""The stats server's ``legions`` key, and the ``legion`` of each ``crons`` entry, real
against simulated: two real uWSGI 2.0.30 nodes built with SSL on loopback, a Lord and a
follower, vs the same pair simulated."""

from __future__ import annotations

import json
import socket
import time

import pytest

from simuwsgi import Cluster
from simuwsgi.modes.real import RealUwsgi, free_port
from simuwsgi.modes.real._ssl_build import ssl_uwsgi_binary
from simuwsgi.server.stats import document

pytestmark = pytest.mark.real

SECRET = "aes-128-cbc:secret"
#: a plain cron and a legion cron, neither due in the test's 10 s
CRONS = ["--cron", "30 3 15 6 -1 true", "--legion-cron", "lg 30 3 15 6 -1 true"]


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(port: int) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data)


def _shape(legions: list[dict], uuids: dict[str, str]) -> list[dict]:
    """What must match: UUIDs by whose they are, times and checksums by whether set."""
    out = []
    for lg in legions:
        item = dict(lg)
        item["addr"] = "ADDR"
        item["nodes"] = len(lg["nodes"])
        for key in ("uuid", "lord_uuid"):
            item[key] = uuids.get(lg[key], lg[key])
        item["i_am_the_lord"] = lg["i_am_the_lord"] > 1_000_000  # a time: when it won
        item["checksum"] = lg["checksum"] > 0
        item["members"] = [{**m, "name": "NAME", "uuid": uuids.get(m["uuid"], m["uuid"]),
                            "checksum": m["checksum"] == lg["checksum"],
                            "last_seen": m["last_seen"] > 1_000_000}
                           for m in lg["members"]]
        out.append(item)
    return out


def test_stats_legions_match_two_real_nodes():
    binary = ssl_uwsgi_binary()
    addrs = [f"127.0.0.1:{_udp_port()}" for _ in range(2)]
    stats_ports = [free_port(), free_port()]
    valors = [90, 80]
    real = [RealUwsgi(["--master", "--processes", "1", "--legion",
                       f"lg {addrs[i]} {valors[i]} {SECRET}", "--legion-node",
                       f"lg {addrs[1 - i]}", "--stats", f"127.0.0.1:{stats_ports[i]}", *CRONS],
                      binary=binary, allow_no_app=True, max_lifetime=60) for i in range(2)]
    try:
        for node in real:
            node.start()
        time.sleep(10)
        real_full = [_stats(port) for port in stats_ports]
        real_docs = [doc["legions"] for doc in real_full]
    finally:
        for node in real:
            node.stop()
    cluster = Cluster(ssl=True)
    ips = ["10.0.0.1", "10.0.0.2"]
    for i in range(2):
        cluster.add(f"n{i}", ["--master", "--processes", "1", "--legion",
                              f"lg {ips[i]}:4000 {valors[i]} {SECRET}", "--legion-node",
                              f"lg {ips[1 - i]}:4000", "--stats", "127.0.0.1:9191", *CRONS],
                    address=ips[i], allow_no_app=True)
    with cluster:
        cluster.advance(10)
        sim_full = [document(cluster[f"n{i}"].inst) for i in range(2)]
        sim_docs = [doc["legions"] for doc in sim_full]
    assert list(document(cluster["n0"].inst))[-1] == "legions"

    def roles(docs):
        return {docs[0][0]["uuid"]: "UUID-A", docs[1][0]["uuid"]: "UUID-B"}

    assert [_shape(d, roles(sim_docs)) for d in sim_docs] == \
        [_shape(d, roles(real_docs)) for d in real_docs]
    assert real_docs[0][0]["i_am_the_lord"] > 0 and real_docs[1][0]["i_am_the_lord"] == 0
    assert [list(d[0]) for d in sim_docs] == [list(d[0]) for d in real_docs]
    assert [list(d[0]["members"][0]) for d in sim_docs] == \
        [list(d[0]["members"][0]) for d in real_docs]
    # each cron names its legion ("" for none) between "unique" and "pid"
    assert [d["crons"] for d in sim_full] == [d["crons"] for d in real_full]
    assert [list(c) for c in sim_full[0]["crons"]] == [list(c) for c in real_full[0]["crons"]]
    assert [c["legion"] for c in sim_full[0]["crons"]] == ["", "lg"]
