"""Cluster benchmarks (issue 14 §6): remote RPC calls between two simulated nodes per
second of wall time; a router with 20 backends serving 100k requests; a 50-node Legion
election.

Node ``a``'s worker calls ``uwsgi.rpc("b:3031", b"hello", b"x")`` ``CALLS`` times in one
request; each call is a full exchange on the virtual network (connect, request bytes
encoded and decoded by the codec, a worker of ``b`` runs the function, the reply's bytes
back) with the default links. Best and median of ``ROUNDS`` runs (start-up not
counted), each round followed by one of the router's (below), so that a change of the
machine's load shows in both.

Target: >= 10,000 calls/s.

Router: a fastrouter node with a subscription server and ``BACKENDS`` backend nodes
(2 workers each) subscribed to one key; ``CLIENTS`` clients on the router's host send
``REQUESTS`` requests in all through it (each a connection, the uwsgi packet, the
router's lookup and its connection to the backend, the WSGI app, the reply relayed),
in virtual time; best and median of ``ROUNDS`` runs. The same load, on a smaller count
(``REAL_REQUESTS``), through two real uWSGI nodes on loopback (a real fastrouter and one
real backend subscribed to it, ``CLIENTS`` client threads) gives the real rate; the
speed-up is the simulated rate over the real one.

Second target: a 50-node Legion (valors 1..50, each announcing to the 49 others, the
default 3 s rounds, AES-128-CBC) elects a stable Lord - one node rules and every node's
vote names it, unchanged for three more rounds - in under 1 s of wall time (the nodes'
boot not counted; shown apart).

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
            # the kernel's own loop (C when built), stopping at the last answer
            kernel.run_until(start + 3600, lambda: counts["done"] >= REQUESTS)

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
        rates, routes = [], []
        for _ in range(ROUNDS):  # interleaved: a change of the machine's load hits both
            rates.append(rpc_rate(Path(tmp)))
            routes.append(routed(Path(tmp)))
        real_rate = real_routed(Path(tmp)) if "--no-real" not in sys.argv else None
    print(f"{'remote rpc a -> b':<40} best {max(rates):>10,.0f}  median "
          f"{statistics.median(rates):>10,.0f} calls/s")
    show("cluster: remote rpc calls per wall second", f"{max(rates):,.0f}/s",
         f">= {TARGET:,}/s", max(rates) >= TARGET)
    sim_rates = [REQUESTS / wall for wall, _virtual, _per in routes]
    _wall, virtual, per_backend = routes[0]
    print(f"{'router, ' + str(BACKENDS) + ' backends':<40} best {max(sim_rates):>10,.0f}  "
          f"median {statistics.median(sim_rates):>10,.0f} requests/s ({REQUESTS:,} "
          f"requests, {virtual:.2f} virtual s; per backend "
          f"{min(per_backend.values()):,}-{max(per_backend.values()):,})")
    if real_rate is not None:
        print(f"{'real fastrouter + 1 backend (loopback)':<40} {real_rate:,.0f} requests/s "
              f"({REAL_REQUESTS:,} requests, {CLIENTS} clients)")
        show("cluster: router requests/s, sim over real",
             f"{max(sim_rates) / real_rate:.2f}x best, "
             f"{statistics.median(sim_rates) / real_rate:.2f}x median",
             "report the speed-up", True)
    boot, election, settled = min((legion_election() for _ in range(ROUNDS)),
                                  key=lambda r: r[1])
    print(f"{'50-node Legion':<40} boot {boot:.2f} s, a stable Lord at virtual "
          f"{settled:g} s, {election:.2f} s of wall time (three more rounds included)")
    show("cluster: 50-node Legion election, wall", f"{election:.2f} s",
         f"< {LEGION_TARGET:g} s", election < LEGION_TARGET)


if __name__ == "__main__":
    main()
