"""Shared helpers for the benchmark scripts: timing with the real clock, printing."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

from simuwsgi._core.clock import RealClock


def best_rate(fn: Callable[[], int], repeat: int = 3) -> float:
    """Operations per second of ``fn`` (which returns how many it did), best of N."""
    rates = []
    for _ in range(repeat):
        began = RealClock.monotonic()
        count = fn()
        rates.append(count / (RealClock.monotonic() - began))
    return max(rates)


def median_seconds(fn: Callable[[], object], repeat: int = 50) -> float:
    times = []
    for _ in range(repeat):
        began = RealClock.monotonic()
        fn()
        times.append(RealClock.monotonic() - began)
    return statistics.median(times)


def show(name: str, value: str, target: str, ok: bool) -> None:
    print(f"{name:<52} {value:>22}   target {target:<28} {'OK' if ok else 'MISSED'}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PlainUwsgi:
    """Real uWSGI started as a user starts it (``uwsgi OPTIONS --http-socket ...``, no
    real-mode wrapper), pinned to ``cpu`` with ``taskset``; ready when ``probe`` answers."""

    def __init__(self, options: list[str], app_dir: Path, *, cpu: int, probe: str = "/") -> None:
        from simuwsgi.modes.real import find_uwsgi_binary

        binary = find_uwsgi_binary()
        if binary is None:
            raise SystemExit("the real uwsgi binary was not found (pip install pyuwsgi)")
        self.port = _free_port()
        self.log = open(app_dir / "uwsgi.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), binary, *options, "--http-socket",
             f"127.0.0.1:{self.port}", "--die-on-term"],
            cwd=app_dir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = RealClock.monotonic() + 30
        while True:
            try:
                self.get(probe)
                return
            except OSError:
                if RealClock.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise
                RealClock.sleep(0.05)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=120) as r:
            return bytes(r.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every process of this uWSGI (its
        session: master, workers, mules, spoolers), and by the children it reaped.
        On a loaded machine this is the fair cost of the work: a CPU shared with
        other programs gives each runnable process a share, so wall time favours the
        side that runs more processes."""
        ticks = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[3]) == self.proc.pid:  # field 6: session id
                ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        self.log.close()
