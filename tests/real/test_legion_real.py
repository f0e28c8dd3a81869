"""Legion, real against simulated: two and three real uWSGI 2.0.30 nodes built with SSL
(simuwsgi.modes.real._ssl_build) on loopback vs the same topology in a simulated cluster - the
Lord after the start, the new Lord after the Lord stops (``dead`` announce) and after
it is killed (silence, then the tolerance), the Legion lines each node logs, and the
stats server's ``legions`` key and the ``legion`` of each ``crons`` entry.

The real runs are the slow half: each waits out Legion's rounds on the real clock (10 s,
and the 15 s tolerance after a kill) on a machine it leaves idle. Those of the selected
tests start together (``real_runs``, tests/_overlap.py); each test then runs its
simulated twin and compares."""

from __future__ import annotations

import json
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from _overlap import started_together

from simuwsgi import Cluster
from simuwsgi.modes.real import RealUwsgi, free_port
from simuwsgi.modes.real._ssl_build import ssl_uwsgi_binary
from simuwsgi.server.stats import document

pytestmark = pytest.mark.real

SECRET = "aes-128-cbc:secret"
#: How long the nodes run before the Lord is stopped or killed (two rounds and more).
SETTLE = 10.0
#: What a survivor logs when the stopped Lord's death announce reaches it.
_DEATH = "announced its death to Legion lg"


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _options(addresses: list[str], i: int, valor: int, extra: tuple[str, ...] = ()
             ) -> list[str]:
    opts = ["--master", "--processes", "1", "--legion",
            f"lg {addresses[i]} {valor} {SECRET}", *extra]
    for j, peer in enumerate(addresses):
        if j != i:
            opts += ["--legion-node", f"lg {peer}"]
    return opts


def _lord_of(lines: list[str]) -> bool:
    """Whether a node's log says it is Lord now (its last word on it)."""
    state = False
    for line in lines:
        if "i am now the Lord of the Legion" in line:
            state = True
        elif "raised for Legion" in line or "without a quorum" in line:
            state = False
    return state


_MASKS = [(re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "UUID"),
          (re.compile(r"(node|arbiter): \S+ valor"), r"\1: NAME valor"),
          (re.compile(r"(checksum|last_seen): \d+"), r"\1: N")]


def _legion_lines(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if "[uwsgi-legion" in line:
            for pattern, repl in _MASKS:
                line = pattern.sub(repl, line)
            out.append(line)
    return out


def _real(binary: str, valors: list[int], end: str) -> tuple[list[bool], float, list[list[str]]]:
    addresses = [f"127.0.0.1:{_udp_port()}" for _ in valors]
    nodes = [RealUwsgi(_options(addresses, i, v), binary=binary, allow_no_app=True,
                       max_lifetime=90) for i, v in enumerate(valors)]
    try:
        for node in nodes:
            node.start()
        time.sleep(SETTLE)
        lords = [_lord_of(n.log) for n in nodes]
        if end == "stop":  # timed from the death announce: the stop itself waits for
            # the master's shutdown, which a loaded host stretches (7.0 s seen once)
            stopper = threading.Thread(target=nodes[0].stop)
            stopper.start()
            gone = time.monotonic()
            while not any(_DEATH in line for n in nodes[1:] for line in n.log) \
                    and time.monotonic() - gone < 30:
                time.sleep(0.05)
            gone = time.monotonic()
        else:
            gone = time.monotonic()
            nodes[0].kill()
        while not any(_lord_of(n.log) for n in nodes[1:]) and time.monotonic() - gone < 30:
            time.sleep(0.05)
        delay = time.monotonic() - gone
        if end == "stop":
            stopper.join()
        return lords, delay, [_legion_lines(n.log) for n in nodes[1:]]
    finally:
        for node in nodes:
            node.stop()


def _sim(valors: list[int], end: str) -> tuple[list[bool], float, list[list[str]]]:
    cluster = Cluster(ssl=True)
    addresses = [f"10.0.0.{i + 1}:4000" for i in range(len(valors))]
    for i, valor in enumerate(valors):
        cluster.add(f"n{i}", _options(addresses, i, valor), address=f"10.0.0.{i + 1}",
                    allow_no_app=True)

    def is_lord(name: str) -> bool:
        return bool(cluster[name].uwsgi.i_am_the_lord("lg"))

    with cluster:
        cluster.advance(SETTLE)
        lords = [is_lord(name) for name in cluster.nodes]
        gone = cluster.now
        cluster["n0"].stop() if end == "stop" else cluster["n0"].kill("master")
        others = list(cluster.nodes)[1:]
        while not any(is_lord(n) for n in others) and cluster.now - gone < 30:
            cluster.advance(0.05)
        logs = [[line for _t, _p, line in cluster[n].inst.log_lines] for n in others]
        if end == "stop":  # timed from the death announce, as the real run is
            gone = min(t for n in others for t, _p, line in cluster[n].inst.log_lines
                       if _DEATH in line)
        return lords, cluster.now - gone, [_legion_lines(lines) for lines in logs]


@pytest.mark.parametrize("case", ["two", "three"])
def test_the_lord_after_start_and_after_a_stop(real_runs, case):
    real_lords, real_delay, real_lines = real_runs[case].result()
    valors = CASES[case][1][0]
    sim_lords, sim_delay, sim_lines = _sim(*CASES[case][1])
    assert real_lords == sim_lords == [True] + [False] * (len(valors) - 1)
    # the death announce ends the survivors' loop iteration: the next Lord is elected at
    # a later one - with three nodes once the two survivors' announces agree again
    # (observed from the death announce: 2.1 s for two nodes, 5.0 s for three)
    assert real_delay < 6.5 and sim_delay < 6.5, (real_delay, sim_delay)
    # with three nodes the real survivors also agreed one announce round (2 s) sooner,
    # as their loops' phases fell (3.0 s once in CI): the simulation's phase is the later
    slack = 2.5 if case == "three" else 1.5
    assert -slack < real_delay - sim_delay < 1.5, (real_delay, sim_delay)
    for real, sim in zip(real_lines, sim_lines):
        assert "announced its death to Legion lg" in " ".join(real)
        # the same Legion lines, in the same order, on each survivor
        assert _kinds(_after_start(real)) == _kinds(_after_start(sim)), (real, sim)


@pytest.mark.parametrize("case", ["kill"])
def test_a_killed_lord_is_replaced_after_the_tolerance(real_runs, case):
    real_lords, real_delay, real_lines = real_runs[case].result()
    sim_lords, sim_delay, sim_lines = _sim(*CASES[case][1])
    assert real_lords == sim_lords == [True, False]
    # silent for more than --legion-tolerance (15 s) since its last announce (0-3 s
    # before the kill), seen at a whole-second check, then a round to agree
    assert 12 < real_delay < 20 and 12 < sim_delay < 20, (real_delay, sim_delay)
    assert abs(real_delay - sim_delay) < 4.0
    assert _kinds(_after_start(real_lines[0])) == _kinds(_after_start(sim_lines[0]))


def _after_start(lines: list[str]) -> list[str]:
    """The lines without the quorum reports made before the last node joined. The real
    nodes start one after another, and a loaded host can delay the last one's first
    announce past a survivor's quorum round (seen in CI: a "votes: 2" report before the
    third node joined, then "votes: 3"); the simulated nodes start at the same instant."""
    joined = [i for i, line in enumerate(lines) if line.endswith(" joined Legion lg")]
    if not joined:
        return lines
    head = [line for line in lines[:joined[-1]]
            if "QUORUM" not in line and not line.startswith("[uwsgi-legion-node]")]
    return head + lines[joined[-1]:]


def _kinds(lines: list[str]) -> list[str]:
    """The masked lines (without the quorum report's per-node lines, whose number is the
    same anyway); a run of "joined" lines sorted, since which real node's first announce
    arrives first is a race between their start-ups."""
    out: list[str] = []
    for line in lines:
        if line.startswith("[uwsgi-legion-node]"):
            continue
        if line.endswith(" joined Legion lg") and out and out[-1].endswith(" joined Legion lg"):
            run = len(out)
            while run and out[run - 1].endswith(" joined Legion lg"):
                run -= 1
            out[run:] = sorted([*out[run:], line])
        else:
            out.append(line)
    return out


def _settled_lines(binary: str | None, valors: list[int], extra: tuple[str, ...]
                   ) -> list[list[str]]:
    """Each node's masked Legion lines after SETTLE seconds, real (``binary``) or
    simulated (None)."""
    if binary is None:
        cluster = Cluster(ssl=True)
        addresses = [f"10.0.0.{i + 1}:4000" for i in range(len(valors))]
        for i, valor in enumerate(valors):
            cluster.add(f"n{i}", _options(addresses, i, valor, extra),
                        address=f"10.0.0.{i + 1}", allow_no_app=True)
        with cluster:
            cluster.advance(SETTLE)
            return [_kinds(_legion_lines([line for _t, _p, line in node.inst.log_lines]))
                    for node in cluster.nodes.values()]
    addresses = [f"127.0.0.1:{_udp_port()}" for _ in valors]
    nodes = [RealUwsgi(_options(addresses, i, v, extra), binary=binary, allow_no_app=True,
                       max_lifetime=60) for i, v in enumerate(valors)]
    try:
        for node in nodes:
            node.start()
        time.sleep(SETTLE)
        return [_kinds(_legion_lines(node.log)) for node in nodes]
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.parametrize("case", ["no-quorum", "arbiter", "valor-over-16-bits"])
def test_the_legion_lines_after_start(real_runs, case):
    real = real_runs[case].result()
    sim = _settled_lines(None, *CASES[case][1])
    assert real == sim


#: Each node's own scroll (LORD_APP reads them).
SCROLLS = [("--wsgi-file", "app.py", "--legion-scroll", f"lg scroll of {name}")
           for name in ("a", "b")]
LORD_APP = '''
import uwsgi


def application(environ, start_response):
    start_response("200 OK", [])
    answer = (uwsgi.i_am_the_lord("lg"), uwsgi.lord_scroll("lg"), uwsgi.scrolls("lg"),
              uwsgi.i_am_the_lord("nope"), uwsgi.lord_scroll("nope"), uwsgi.scrolls("nope"))
    return [repr(answer).encode()]
'''


def _real_scrolls(binary: str) -> list[list[bytes]]:
    """What the two real nodes' LORD_APP answers right after the start, and after SETTLE."""
    addresses = [f"127.0.0.1:{_udp_port()}" for _ in range(2)]
    with tempfile.TemporaryDirectory() as app_dir:
        (Path(app_dir) / "app.py").write_text(LORD_APP)
        nodes = [RealUwsgi(_options(addresses, i, v, SCROLLS[i]), binary=binary,
                           app_dir=app_dir, max_lifetime=60) for i, v in enumerate([90, 80])]
        try:
            for node in nodes:
                node.start()
            real = [[n.get("/").body for n in nodes]]
            time.sleep(SETTLE)
            real.append([n.get("/").body for n in nodes])
            return real
        finally:
            for node in nodes:
                node.stop()


@pytest.mark.parametrize("case", ["scrolls"])
def test_i_am_the_lord_lord_scroll_and_scrolls_as_real(real_runs, case, tmp_path):
    real = real_runs[case].result()
    (tmp_path / "app.py").write_text(LORD_APP)
    cluster = Cluster(ssl=True, app_dir=tmp_path)
    sim_addresses = ["10.0.0.1:4000", "10.0.0.2:4000"]
    for i, valor in enumerate([90, 80]):
        cluster.add(f"n{i}", _options(sim_addresses, i, valor, SCROLLS[i]),
                    address=f"10.0.0.{i + 1}")
    with cluster:
        sim = [[cluster[n].get("/").body for n in cluster.nodes]]
        cluster.advance(SETTLE)
        sim.append([cluster[n].get("/").body for n in cluster.nodes])
    assert sim == real
    # before any member joined: no Lord, no scroll, an empty list; then the Lord's
    # scroll everywhere and each node's own scroll first
    assert real[0] == [b"(False, None, [], False, None, None)"] * 2
    assert real[1] == [b"(True, b'scroll of a', [b'scroll of a', b'scroll of b'], False, "
                       b"None, None)",
                       b"(False, b'scroll of a', [b'scroll of b', b'scroll of a'], False, "
                       b"None, None)"]


#: The stats test's two nodes, with a plain cron and a legion cron, neither due in SETTLE
STATS_VALORS = [90, 80]
CRONS = ["--cron", "30 3 15 6 -1 true", "--legion-cron", "lg 30 3 15 6 -1 true"]


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


def _real_stats(binary: str) -> list[dict]:
    """The two real nodes' stats documents after SETTLE."""
    addrs = [f"127.0.0.1:{_udp_port()}" for _ in range(2)]
    stats_ports = [free_port(), free_port()]
    real = [RealUwsgi(["--master", "--processes", "1", "--legion",
                       f"lg {addrs[i]} {STATS_VALORS[i]} {SECRET}", "--legion-node",
                       f"lg {addrs[1 - i]}", "--stats", f"127.0.0.1:{stats_ports[i]}", *CRONS],
                      binary=binary, allow_no_app=True, max_lifetime=60) for i in range(2)]
    try:
        for node in real:
            node.start()
        time.sleep(SETTLE)
        return [_stats(port) for port in stats_ports]
    finally:
        for node in real:
            node.stop()


@pytest.mark.parametrize("case", ["stats"])
def test_stats_legions_match_two_real_nodes(real_runs, case):
    real_full = real_runs[case].result()
    real_docs = [doc["legions"] for doc in real_full]
    cluster = Cluster(ssl=True)
    ips = ["10.0.0.1", "10.0.0.2"]
    for i in range(2):
        cluster.add(f"n{i}", ["--master", "--processes", "1", "--legion",
                              f"lg {ips[i]}:4000 {STATS_VALORS[i]} {SECRET}", "--legion-node",
                              f"lg {ips[1 - i]}:4000", "--stats", "127.0.0.1:9191", *CRONS],
                    address=ips[i], allow_no_app=True)
    with cluster:
        cluster.advance(SETTLE)
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


#: Each test's real run: the function (called with the SSL binary first) and its
#: arguments, which the simulated twin takes too.
CASES: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
    "two": (_real, ([90, 80], "stop")),
    "three": (_real, ([90, 80, 70], "stop")),
    "kill": (_real, ([90, 80], "kill")),
    "no-quorum": (_settled_lines, ([90, 80], ("--legion-quorum", "lg 3"))),  # no Lord
    "arbiter": (_settled_lines, ([0, 80], ())),  # an arbiter never rules
    # a valor over 16 bits: re-added on every announce (UNSETTLED)
    "valor-over-16-bits": (_settled_lines, ([70000, 80], ())),
    "scrolls": (_real_scrolls, ()),
    "stats": (_real_stats, ()),
}


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Any]]]:
    """The real runs of this module's selected tests, started together."""
    binary = ssl_uwsgi_binary()  # builds it once per machine; fails (never skips) without
    yield from started_together(request, lambda case: CASES[case][0](binary, *CASES[case][1]))
