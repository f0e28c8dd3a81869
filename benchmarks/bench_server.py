"""Requests per second: ``simuwsgi serve`` against real uWSGI, gunicorn and waitress.

Run with ``python benchmarks/bench_server.py [--rounds N] [--seconds S] [--cpu LIST]``
(no pytest); ``--soak N`` instead sends N requests (100,000) to ``simuwsgi serve`` and
prints its RSS and open descriptors along the way (issue 12 §5: they stay flat). Every server runs the same one-line WSGI app in one OS worker process:

* real uWSGI 2.0.30, started plainly (``uwsgi --master --processes 1 --wsgi-file
  app.py --socket ... --http-socket ...``, the pyuwsgi binary of this venv, not the
  real-mode wrapper);
* ``simuwsgi serve`` with the same uWSGI options;
* gunicorn (one sync worker) and waitress (its default 4 threads), HTTP only, for scale;
* two bare servers (not with ``--no-floors``) that accept, read once, write a fixed
  reply and close, HTTP only: a ``selectors`` loop and a trio server (a task per
  connection), the floor of a Python server on each.

Workloads: uwsgi-protocol GET (``--socket``), HTTP/1.0 GET (``--http-socket``), each
with 1 and 4 concurrent clients, and ping (modifier1 100) with 1 client. A client is a
separate OS process running a blocking loop, one connection per request (uWSGI closes
every connection after its reply). Rounds are interleaved: round r measures every
server once, in a rotating order, so a slow minute of this shared machine does not land
on one side of a ratio. Printed: best and median per server, the server's CPU time
per request (every process of the server, measured over all rounds: what the rate would
be with the client and the machine's other load taken away), then one verdict line per
target (issue 17, target 8: simuwsgi >= 0.8x real uWSGI, best against best).

The ceiling (not with ``--no-floors``): serve's simulated part is also measured alone,
without sockets, in a pinned process once per round (the same instance, each request
submitted and driven by itself, as serve drives one per connection). With every process
on one CPU, a request's time is the CPU all processes spent on it, so a Python server
running the simulated request can at best put the bare selectors server's CPU plus the
simulated request's in place of real uWSGI's: the last line prints that ratio.

CPU placement: with ``--cpu 0`` (default: not pinned),
every server and every client is started under ``taskset -c LIST``,
the same list for all, so both sides compete for the same CPUs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from typing import Any
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simuwsgi._core.clock import RealClock
from simuwsgi.protocol import encode_packet, encode_vars

TARGET = 0.8
APP = ("def application(env, start_response):\n"
       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
       "    return [b'Hello World']\n")
OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
PING, PONG = b"\x64\x00\x00\x00", b"\x64\x00\x00\x01"
UWSGI_GET = encode_packet(0, 0, encode_vars([
    (b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"PATH_INFO", b"/"),
    (b"QUERY_STRING", b""), (b"SERVER_PROTOCOL", b"HTTP/1.0"), (b"HTTP_HOST", b"bench"),
    (b"SERVER_NAME", b"bench"), (b"SERVER_PORT", b"80"), (b"REMOTE_ADDR", b"127.0.0.1")]))
HTTP_GET = b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n"
_REPLY = 'b"HTTP/1.0 200 OK\\r\\nContent-Type: text/plain\\r\\n\\r\\nHello World"'
#: the bare servers (``python FILE PORT``)
FLOORS = {
    "floor_selectors.py": f"""import selectors, socket, sys
REPLY = {_REPLY}
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=100)
listener.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(listener, selectors.EVENT_READ)
def answer(conn):  # the request is in (read once, as serve does for a small one)
    conn.recv(65536)
    conn.send(REPLY)
    conn.close()
while True:
    for key, _ in sel.select():
        if key.fileobj is not listener:
            sel.unregister(key.fileobj)
            answer(key.fileobj)
            continue
        while True:
            try:
                conn, _addr = listener.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            try:  # arrived with the connection: answered at once
                conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                sel.register(conn, selectors.EVENT_READ)
            else:
                answer(conn)
""",
    "floor_trio.py": f"""import sys, trio
REPLY = {_REPLY}
async def answer(stream):
    await stream.receive_some(65536)
    await stream.send_all(REPLY)
    await stream.aclose()
trio.run(lambda: trio.serve_tcp(answer, int(sys.argv[1]), host="127.0.0.1"))
""",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the client -------------------------------------------------------------------------
def _loop(port: int, payload: bytes, expect: bytes, seconds: float, out: Any) -> None:
    addr = ("127.0.0.1", port)
    n = 0
    deadline = RealClock.monotonic() + seconds
    began = RealClock.monotonic()
    while True:
        for _ in range(20):
            with socket.create_connection(addr) as s:
                s.sendall(payload)
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            if not got.startswith(expect):
                raise RuntimeError(f"unexpected answer {got[:80]!r}")
            n += 1
        now = RealClock.monotonic()
        if now >= deadline:
            out.put((n, n / (now - began)))
            return


def rate(port: int, payload: bytes, expect: bytes, clients: int,
         seconds: float) -> tuple[float, int]:
    """Requests per second of ``clients`` client processes together, for ``seconds``,
    and how many requests they made."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_loop, args=(port, payload, expect, seconds, queue))
             for _ in range(clients)]
    for p in procs:
        p.start()
    done = [queue.get(timeout=seconds + 30) for _ in procs]
    for p in procs:
        p.join(10)
    return sum(r for _n, r in done), sum(n for n, _r in done)


#: ``simuwsgi serve``'s simulated part alone, without sockets: the same instance, each
#: request submitted and driven by itself (as serve drives one per connection); prints
#: the CPU microseconds per request.
SIM_ALONE = """import sys, time
from simuwsgi import Simulation
n = int(sys.argv[1])
sim = Simulation(sys.argv[2:])
sim.start()
sim.advance(1)
for _ in range(200):  # warm up
    sim.submit("GET", "/")
    sim.run_to(sim.kernel.now + 1e-6)
sim.inst.log_lines.clear()
began = time.process_time()
for i in range(n):
    req = sim.submit("GET", "/")
    sim.run_to(sim.kernel.now + 1e-6)
    assert req.done and req.response.status == 200
    if i % 1000 == 999:
        sim.inst.log_lines.clear()  # serve writes them out
print((time.process_time() - began) / n * 1e6)
sim.close()
"""


def simulation_alone(cwd: Path, pin: list[str], n: int = 20000) -> float:
    """CPU microseconds per request of serve's simulated part alone (:data:`SIM_ALONE`)."""
    out = subprocess.run([*pin, sys.executable, "-c", SIM_ALONE, str(n), *OPTIONS,
                          "--socket", "127.0.0.1:0"], cwd=cwd, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.split()[-1])


# -- the servers ------------------------------------------------------------------------
@dataclass
class Server:
    name: str
    argv: list[str]
    uwsgi_port: int | None
    http_port: int | None
    ready_port: int
    proc: subprocess.Popen | None = None

    def start(self, cwd: Path, pin: list[str], log: Path) -> None:
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([*pin, *self.argv], cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = RealClock.monotonic() + 30
        while RealClock.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.ready_port), timeout=1).close()
                RealClock.sleep(0.5)  # workers spawned after the master bound the socket
                return
            except OSError:
                RealClock.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{log.read_text()[-2000:]}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of every process of the server (its session)."""
        assert self.proc is not None
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid:  # the session id: start_new_session
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)


def servers(bindir: Path, floors: bool = False) -> list[Server]:
    up, hp = free_port(), free_port()
    su, sh = free_port(), free_port()
    gp, wp = free_port(), free_port()
    found = [
        Server("real uWSGI", [str(bindir / "uwsgi"), *OPTIONS, "--socket", f"127.0.0.1:{up}",
                             "--http-socket", f"127.0.0.1:{hp}"],
               up, hp, up),
        Server("simuwsgi serve", [sys.executable, "-m", "simuwsgi.cli", "serve", "--", *OPTIONS,
                                  "--socket", f"127.0.0.1:{su}", "--http-socket",
                                  f"127.0.0.1:{sh}"], su, sh, su),
    ]
    if shutil.which("gunicorn", path=str(bindir)):
        found.append(Server("gunicorn (1 sync worker)",
                            [str(bindir / "gunicorn"), "-w", "1", "-b", f"127.0.0.1:{gp}",
                             "app:application"], None, gp, gp))
    try:
        import waitress  # noqa: F401
        found.append(Server("waitress (4 threads)",
                            [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{wp}",
                             "app:application"], None, wp, wp))
    except ImportError:
        pass
    if floors:
        for name in FLOORS:
            port = free_port()
            found.append(Server(f"bare {name[6:-3]} server", [sys.executable, name, str(port)],
                                None, port, port))
    return found


@dataclass(frozen=True)
class Workload:
    name: str
    protocol: str  # "uwsgi" or "http"
    clients: int
    payload: bytes
    expect: bytes


WORKLOADS = [
    Workload("uwsgi GET, 1 client", "uwsgi", 1, UWSGI_GET, b"HTTP/1.0 200 OK"),
    Workload("uwsgi GET, 4 clients", "uwsgi", 4, UWSGI_GET, b"HTTP/1.0 200 OK"),
    Workload("HTTP GET, 1 client", "http", 1, HTTP_GET, b"HTTP/1."),
    Workload("HTTP GET, 4 clients", "http", 4, HTTP_GET, b"HTTP/1."),
    Workload("ping, 1 client", "uwsgi", 1, PING, PONG),
]


def port_for(server: Server, workload: Workload) -> int | None:
    if workload.payload == PING and not server.name.startswith(("real", "simuwsgi")):
        return None
    return server.uwsgi_port if workload.protocol == "uwsgi" else server.http_port


def soak(n: int) -> int:
    """``--soak``: N uwsgi GETs, one client; RSS and descriptors every tenth."""
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        d = Path(tmp)
        (d / "app.py").write_text(APP)
        server = servers(Path(sys.executable).parent)[1]
        server.start(d, [], d / "serve.log")
        assert server.proc is not None and server.uwsgi_port is not None
        pid = server.proc.pid
        try:
            step = max(1, n // 10)
            for done in range(0, n + 1, step):
                rss = next(int(line.split()[1]) for line in
                           Path(f"/proc/{pid}/status").read_text().splitlines()
                           if line.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{pid}/fd"))
                print(f"{done:>8,} requests: RSS {rss / 1024:7.1f} MB, {fds} open descriptors",
                      flush=True)
                if done < n:
                    for _ in range(step):
                        with socket.create_connection(("127.0.0.1", server.uwsgi_port)) as s:
                            s.sendall(UWSGI_GET)
                            while s.recv(65536):
                                pass
        finally:
            server.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--cpu", default="", help="taskset CPU list for every process "
                                                  "(default: not pinned)")
    parser.add_argument("--no-floors", dest="floors", action="store_false",
                        help="do not measure the bare selectors and trio servers (HTTP), "
                             "nor the ceiling they give")
    parser.add_argument("--soak", type=int, default=0, metavar="N",
                        help="send N requests to simuwsgi serve, print RSS and descriptors")
    args = parser.parse_args(argv[1:])
    if args.soak:
        return soak(args.soak)
    pin = ["taskset", "-c", args.cpu] if args.cpu else []
    if pin:
        os.sched_setaffinity(0, {int(c) for c in args.cpu.split(",")})  # the clients too
    bindir = Path(sys.executable).parent
    results: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}  # server CPU seconds, requests
    alone: list[float] = []  # the simulated request alone, per round
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        d = Path(tmp)
        (d / "app.py").write_text(APP)
        if args.floors:
            for name, text in FLOORS.items():
                (d / name).write_text(text)
        all_servers = servers(bindir, args.floors)
        try:
            for i, server in enumerate(all_servers):
                server.start(d, pin, d / f"server{i}.log")
            for server in all_servers:  # warm up
                for w in WORKLOADS:
                    port = port_for(server, w)
                    if port is not None:
                        rate(port, w.payload, w.expect, 1, 0.2)
            for r in range(args.rounds):
                order = all_servers[r % len(all_servers):] + all_servers[:r % len(all_servers)]
                if args.floors:
                    alone.append(simulation_alone(d, pin))
                for w in WORKLOADS:
                    for server in order:
                        port = port_for(server, w)
                        if port is None:
                            continue
                        before = server.cpu_seconds()
                        per_second, count = rate(port, w.payload, w.expect, w.clients,
                                                 args.seconds)
                        results.setdefault((w.name, server.name), []).append(per_second)
                        spent = cpu.setdefault((w.name, server.name), [0.0, 0])
                        spent[0] += server.cpu_seconds() - before
                        spent[1] += count
        finally:
            for server in all_servers:
                server.stop()
    placement = f"all processes pinned with taskset -c {args.cpu}" if pin else \
        f"not pinned ({os.cpu_count()} CPUs shared by servers and clients)"
    print(f"requests/s, one connection per request, {args.rounds} interleaved rounds x "
          f"{args.seconds:g} s; {placement}")
    verdicts = []
    for w in WORKLOADS:
        print(f"{w.name}:")
        for server in all_servers:
            rates = results.get((w.name, server.name))
            if rates:
                seconds, count = cpu[(w.name, server.name)]
                print(f"  {server.name:<26} best {max(rates):>9,.0f}/s   "
                      f"median {statistics.median(rates):>9,.0f}/s   "
                      f"server CPU {seconds / count * 1e6:5.0f} us/request")
        real = max(results[(w.name, "real uWSGI")])
        sim = max(results[(w.name, "simuwsgi serve")])
        ratio = sim / real
        verdicts.append(f"target 8, {w.name}: simuwsgi/real uWSGI = {ratio:.2f}x "
                        f"(target >= {TARGET}x): {'met' if ratio >= TARGET else 'NOT met'}")
    print(*verdicts, sep="\n")
    if alone:
        print(ceiling(results, cpu, min(alone), pinned=bool(pin)))
    return 0


def ceiling(results: dict[tuple[str, str], list[float]],
            cpu: dict[tuple[str, str], list[float]], alone: float, pinned: bool) -> str:
    """What target 8 can be at most with a Python server: the bare selectors server's
    CPU (accept, read, write, close and the loop, no app, no log line) plus the
    simulated request alone, in place of real uWSGI's CPU in real uWSGI's time per
    request (with every process on one CPU, a request's time is the CPU every process
    spent on it)."""
    work = "HTTP GET, 1 client"
    seconds, count = cpu[(work, "real uWSGI")]
    real_cpu = seconds / count * 1e6
    floor = cpu.get((work, "bare selectors server"))
    head = (f"the simulated request alone (submitted and driven by itself, no socket): "
            f"{alone:.0f} us CPU")
    if floor is None or not pinned:
        return head + " (the ceiling is computed with --cpu, every process on one CPU)"
    floor_cpu = floor[0] / floor[1] * 1e6
    real_time = 1e6 / max(results[(work, "real uWSGI")])
    best = real_time / (real_time - real_cpu + floor_cpu + alone)
    return (f"{head}; a bare Python server: {floor_cpu:.0f} us; together "
            f"{floor_cpu + alone:.0f} us where real uWSGI spends {real_cpu:.0f}: a Python "
            f"server running the simulated request reaches at most {best:.2f}x real uWSGI "
            f"({work}, target 8 asks {TARGET}x)")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
