"""Cluster benchmark (issue 14 §6, first target): remote RPC calls between two simulated
nodes per second of wall time.

Node ``a``'s worker calls ``uwsgi.rpc("b:3031", b"hello", b"x")`` ``CALLS`` times in one
request; each call is a full exchange on the virtual network (connect, request bytes
encoded and decoded by the codec, a worker of ``b`` runs the function, the reply's bytes
back) with the default links. Best and median of ``ROUNDS`` runs (start-up not
counted).

Target: >= 10,000 calls/s.

Second target: a 50-node Legion (valors 1..50, each announcing to the 49 others, the
default 3 s rounds, AES-128-CBC) elects a stable Lord - one node rules and every node's
vote names it, unchanged for three more rounds - in under 1 s of wall time (the nodes'
boot not counted; shown apart).

Not yet measured here (later sessions): the router with 20 backends of §6.

Run: python benchmarks/bench_cluster.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import show

from simuwsgi import Cluster
from simuwsgi._core.clock import RealClock

CALLS = 20_000
ROUNDS = 3
TARGET = 10_000

APP = f"""
import uwsgi

def hello(arg):
    return b"hello " + arg

uwsgi.register_rpc("hello", hello)

def application(environ, start_response):
    start_response("200 OK", [])
    if environ["PATH_INFO"] == "/calls":
        ok = sum(uwsgi.rpc("b:3031", b"hello", b"x") == b"hello x" for _ in range({CALLS}))
        return [str(ok).encode()]
    return [b"ok"]
"""


def rpc_rate(app_dir: Path) -> float:
    cluster = Cluster()
    for name in ("a", "b"):
        cluster.add(name, ["--master", "--processes", "2", "--socket", ":3031",
                           "--wsgi-file", "app.py"], app_dir=app_dir)
    with cluster:
        began = RealClock.monotonic()
        body = cluster["a"].get("/calls").body
        elapsed = RealClock.monotonic() - began
    if body != str(CALLS).encode():
        raise SystemExit(f"bench_cluster: only {body!r} of {CALLS} calls answered")
    return CALLS / elapsed


LEGION_NODES = 50
LEGION_TARGET = 1.0


def legion_election() -> tuple[float, float, float]:
    """(boot wall seconds, election wall seconds, virtual seconds to a stable Lord)."""
    cluster = Cluster(ssl=True)
    ips = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(LEGION_NODES)]
    for i, ip in enumerate(ips):
        options = ["--master", "--processes", "1", "--socket", ":3031",
                   "--legion", f"lg {ip}:4000 {i + 1} aes-128-cbc:secret"]
        for peer in ips:
            if peer != ip:
                options += ["--legion-node", f"lg {peer}:4000"]
        cluster.add(f"n{i}", options, address=ip, allow_no_app=True)
    began = RealClock.monotonic()
    cluster.start()
    booted = RealClock.monotonic()
    legions = [n.inst.subsystems["legion"].legions["lg"] for n in cluster.nodes.values()]

    def stable() -> bool:
        lords = [lg for lg in legions if lg.i_am_the_lord]
        return len(lords) == 1 and all(lg.lord_uuid == lords[0].uuid for lg in legions)

    settled = None
    while cluster.now < 120:
        cluster.advance(0.5)
        if not stable():
            settled = None
        elif settled is None:
            settled = cluster.now
        elif cluster.now - settled >= 9:  # three rounds without a change
            break
    elapsed = RealClock.monotonic() - booted
    cluster.close()
    if settled is None:
        raise SystemExit("bench_cluster: the 50-node Legion never settled on one Lord")
    return booted - began, elapsed, settled


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        rates = [rpc_rate(Path(tmp)) for _ in range(ROUNDS)]
    print(f"{'remote rpc a -> b':<40} best {max(rates):>10,.0f}  median "
          f"{statistics.median(rates):>10,.0f} calls/s")
    show("cluster: remote rpc calls per wall second", f"{max(rates):,.0f}/s",
         f">= {TARGET:,}/s", max(rates) >= TARGET)
    boot, election, settled = min((legion_election() for _ in range(ROUNDS)),
                                  key=lambda r: r[1])
    print(f"{'50-node Legion':<40} boot {boot:.2f} s, a stable Lord at virtual "
          f"{settled:g} s, {election:.2f} s of wall time (three more rounds included)")
    show("cluster: 50-node Legion election, wall", f"{election:.2f} s",
         f"< {LEGION_TARGET:g} s", election < LEGION_TARGET)


if __name__ == "__main__":
    main()
