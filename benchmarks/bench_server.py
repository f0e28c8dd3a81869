"""Ping round trips per second: simuwsgi's server against real uWSGI, same client, same run.

Run with ``python benchmarks/bench_server.py`` (no pytest). Both servers run the same
app with the same options, each in its own process group with a deadline:

* real uWSGI 2.0.30 (``RealUwsgi``) with ``--socket 127.0.0.1:PORT``;
* ``simuwsgi serve -- <same options>`` (the trio server in front of a simulated node).

The client is the same for both: a blocking loop (plain ``socket``), one connection
per ping, as uWSGI's own ping client does (``64 00 00 00`` -> ``64 00 00 01``). Each
server is measured for a few rounds, alternating, best round kept. Prints both rates
and the ratio (target: simuwsgi >= 0.5 x real uWSGI).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simuwsgi.clock import RealClock
from simuwsgi.real import RealUwsgi, free_port

TARGET = 0.5
APP = "def application(env, start_response):\n    start_response('200 OK', [])\n    return [b'x']\n"
PING = b"\x64\x00\x00\x00"
PONG = b"\x64\x00\x00\x01"


def ping_rate(port: int, seconds: float) -> float:
    """Round trips per second of the blocking client for ``seconds``."""
    addr = ("127.0.0.1", port)
    n = 0
    began = RealClock.monotonic()
    deadline = began + seconds
    while True:
        for _ in range(50):
            with socket.create_connection(addr) as s:
                s.sendall(PING)
                got = s.recv(64)
                if got != PONG:
                    raise RuntimeError(f"unexpected pong {got!r}")
            n += 1
        now = RealClock.monotonic()
        if now >= deadline:
            return n / (now - began)


def served_port(proc: subprocess.Popen, log: Path, seconds: float = 20.0) -> int:
    """The port ``simuwsgi serve`` bound for ``--socket 127.0.0.1:0`` (read from its log)."""
    marker = "simuwsgi: serving uwsgi on 127.0.0.1:"
    deadline = RealClock.monotonic() + seconds
    while RealClock.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(marker):
                return int(line[len(marker):].split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"simuwsgi serve exited early:\n{log.read_text()}")
        RealClock.sleep(0.05)
    raise RuntimeError("simuwsgi serve did not start serving")


def main() -> int:
    rounds, seconds = 3, 1.0
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        d = Path(tmp)
        (d / "app.py").write_text(APP)
        real_port = free_port()
        options = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
        log = d / "serve.log"
        with open(log, "wb") as out:
            serve = subprocess.Popen(
                ["timeout", "-s", "KILL", "120", sys.executable, "-m", "simuwsgi.cli", "serve",
                 "--for", "100", "--", *options, "--socket", "127.0.0.1:0"],
                cwd=d, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            with RealUwsgi([*options, "--socket", f"127.0.0.1:{real_port}"], app_dir=d,
                           max_lifetime=120):
                sim_port = served_port(serve, log)
                ping_rate(real_port, 0.2)  # warm up both
                ping_rate(sim_port, 0.2)
                real_rates, sim_rates = [], []
                for _ in range(rounds):
                    real_rates.append(ping_rate(real_port, seconds))
                    sim_rates.append(ping_rate(sim_port, seconds))
        finally:
            try:
                os.killpg(serve.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            serve.wait(10)
    real_best, sim_best = max(real_rates), max(sim_rates)
    ratio = sim_best / real_best
    print(f"ping round trips/s, one connection per ping, best of {rounds} x {seconds:.0f} s")
    print(f"  real uWSGI 2.0.30 : {real_best:>10,.0f}/s")
    print(f"  simuwsgi serve    : {sim_best:>10,.0f}/s")
    print(f"  ratio             : {ratio:>10.2f}   target >= {TARGET}  "
          f"{'OK' if ratio >= TARGET else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
