"""Cluster benchmark (issue 14 §6, first target): remote RPC calls between two simulated
nodes per second of wall time.

Node ``a``'s worker calls ``uwsgi.rpc("b:3031", b"hello", b"x")`` ``CALLS`` times in one
request; each call is a full exchange on the virtual network (connect, request bytes
encoded and decoded by the codec, a worker of ``b`` runs the function, the reply's bytes
back) with the default links. Best and median of ``ROUNDS`` runs (start-up not
counted).

Target: >= 10,000 calls/s.

Not yet measured here (later sessions): the 50-node Legion election and the router with
20 backends of §6.

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


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        rates = [rpc_rate(Path(tmp)) for _ in range(ROUNDS)]
    print(f"{'remote rpc a -> b':<40} best {max(rates):>10,.0f}  median "
          f"{statistics.median(rates):>10,.0f} calls/s")
    show("cluster: remote rpc calls per wall second", f"{max(rates):,.0f}/s",
         f">= {TARGET:,}/s", max(rates) >= TARGET)


if __name__ == "__main__":
    main()
