"""Cluster benchmarks (issue 14 §6): remote RPC calls between two simulated nodes per
second of wall time; a router with 20 backends serving 100k requests.

Node ``a``'s worker calls ``uwsgi.rpc("b:3031", b"hello", b"x")`` ``CALLS`` times in one
request; each call is a full exchange on the virtual network (connect, request bytes
encoded and decoded by the codec, a worker of ``b`` runs the function, the reply's bytes
back) with the default links. Best and median of ``ROUNDS`` runs (start-up not
counted).

Target: >= 10,000 calls/s.

Router: a fastrouter node with a subscription server and ``BACKENDS`` backend nodes
(2 workers each) subscribed to one key; ``CLIENTS`` clients on the router's host send
``REQUESTS`` requests in all through it (each a connection, the uwsgi packet, the
router's lookup and its connection to the backend, the WSGI app, the reply relayed),
in virtual time; the wall time is reported. The same load, on a smaller count
(``REAL_REQUESTS``), through two real uWSGI nodes on loopback (a real fastrouter and one
real backend subscribed to it, ``CLIENTS`` client threads) gives the real rate; the
speed-up is the simulated rate over the real one.

Not yet measured here: the 50-node Legion election of §6.

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
from simuwsgi.cluster import _uwsgi_request
from simuwsgi.network._remote import Exchange

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


REQUESTS = 100_000
BACKENDS = 20
CLIENTS = 20
REAL_REQUESTS = 5_000


def routed(app_dir: Path) -> tuple[float, float, dict[str, int]]:
    """(wall seconds, virtual seconds, requests per backend) for ``REQUESTS`` requests
    through a simulated fastrouter with ``BACKENDS`` subscribed backends."""
    cluster = Cluster(app_dir=app_dir)
    cluster.add("router", ["--master", "--fastrouter", ":3017",
                           "--fastrouter-subscription-server", ":2626"])
    for n in range(1, BACKENDS + 1):
        cluster.add(f"b{n}", ["--master", "--processes", "2", "--socket", f"10.0.1.{n}:3031",
                              "--subscribe-to", "10.0.0.1:2626:bench", "--wsgi-file",
                              "app.py"], address=f"10.0.1.{n}")
    request = _uwsgi_request("GET", "/", [("Host", "bench")], "10.0.0.1:3017", "10.0.0.1")
    counts = {"sent": 0, "ok": 0, "done": 0}

    def send() -> None:
        counts["sent"] += 1
        Exchange(cluster.net, "router", "10.0.0.1:3017", request, b"", 60.0, answered)

    def answered(ok: bool, reply: object) -> None:
        counts["done"] += 1
        counts["ok"] += ok and getattr(reply, "body", b"") == b"ok"
        if counts["sent"] < REQUESTS:
            send()

    with cluster:
        cluster.advance(1)
        kernel = cluster.kernel
        began, start = RealClock.monotonic(), kernel.now

        def load() -> None:
            for _ in range(CLIENTS):
                send()
            kernel.run_while(lambda: counts["done"] < REQUESTS)

        cluster._run(load)
        wall, virtual = RealClock.monotonic() - began, kernel.now - start
        per_backend = {name: node.inst.total_requests
                       for name, node in cluster.nodes.items() if name != "router"}
    if counts["ok"] != REQUESTS:
        raise SystemExit(f"bench_cluster: {counts['ok']} of {REQUESTS} routed requests "
                         f"answered")
    return wall, virtual, per_backend


def real_routed(app_dir: Path) -> float:
    """Requests per second through a real fastrouter and one real backend (loopback)."""
    import socket
    import threading

    from simuwsgi.protocol import CLIENT, Connection
    from simuwsgi.modes.real import RealUwsgi, free_port

    f_port, ss_port, b_port = free_port(), free_port(), free_port()
    router = RealUwsgi(["--master", "--fastrouter", f"127.0.0.1:{f_port}",
                        "--fastrouter-subscription-server", f"127.0.0.1:{ss_port}",
                        "--wsgi-file", "app.py"], app_dir=app_dir, max_lifetime=300)
    backend = RealUwsgi(["--master", "--processes", "2", "--socket", f"127.0.0.1:{b_port}",
                         "--subscribe-to", f"127.0.0.1:{ss_port}:bench", "--wsgi-file",
                         "app.py"], app_dir=app_dir, max_lifetime=300)
    out = Connection(CLIENT).send_message(
        _uwsgi_request("GET", "/", [("Host", "bench")], f"127.0.0.1:{f_port}", "127.0.0.1"))
    answered = [0]
    lock = threading.Lock()

    def client(count: int) -> None:
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", f_port)) as conn:
                conn.sendall(out)
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
            if data.endswith(b"\r\n\r\nok"):
                with lock:
                    answered[0] += 1

    try:
        router.start()
        backend.start()
        router.wait_for_log(f"new node: 127.0.0.1:{b_port}")
        threads = [threading.Thread(target=client, args=(REAL_REQUESTS // CLIENTS,))
                   for _ in range(CLIENTS)]
        began = RealClock.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = RealClock.monotonic() - began
    finally:
        backend.close()
        router.close()
    if answered[0] != REAL_REQUESTS:
        raise SystemExit(f"bench_cluster: the real router answered {answered[0]} of "
                         f"{REAL_REQUESTS}")
    return REAL_REQUESTS / elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_cluster_") as tmp:
        (Path(tmp) / "app.py").write_text(APP)
        rates = [rpc_rate(Path(tmp)) for _ in range(ROUNDS)]
        wall, virtual, per_backend = routed(Path(tmp))
        real_rate = real_routed(Path(tmp)) if "--no-real" not in sys.argv else None
    print(f"{'remote rpc a -> b':<40} best {max(rates):>10,.0f}  median "
          f"{statistics.median(rates):>10,.0f} calls/s")
    show("cluster: remote rpc calls per wall second", f"{max(rates):,.0f}/s",
         f">= {TARGET:,}/s", max(rates) >= TARGET)
    sim_rate = REQUESTS / wall
    print(f"{'router, ' + str(BACKENDS) + ' backends':<40} {REQUESTS:,} requests in "
          f"{wall:.1f} wall s ({sim_rate:,.0f}/s), {virtual:.2f} virtual s; per backend "
          f"{min(per_backend.values()):,}-{max(per_backend.values()):,}")
    if real_rate is not None:
        print(f"{'real fastrouter + 1 backend (loopback)':<40} {real_rate:,.0f} requests/s "
              f"({REAL_REQUESTS:,} requests, {CLIENTS} clients)")
        show("cluster: router requests/s, sim over real", f"{sim_rate / real_rate:.2f}x",
             "report the speed-up", True)


if __name__ == "__main__":
    main()
