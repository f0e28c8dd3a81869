"""``real`` mode: run a scenario's timeline against the real uWSGI server.

:class:`RealRun` implements :class:`simuwsgi.driver.Driver`. It turns the scenario's
options into a real ``uwsgi`` command line -- the user's options, then the harness's::

    --shared-import <run dir>/_simuwsgi_instrument.py   (trace instrumentation)
    --socket 127.0.0.1:<free port>                       (uwsgi protocol: signal packets)
    (and RealUwsgi's --http-socket and log hooks, see simuwsgi.modes.real._server)

-- starts it on loopback in a fresh run directory, waits for true readiness, drives the
timeline on the real clock (one virtual second of the timeline is one real second) and
records a trace in the simulator's schema:

* from the instrumentation module (``simuwsgi/modes/real/_instrument.py``): ``signal.handler``,
  ``postfork``, ``spool.start``/``spool.end``, ``mule.msg`` (hook), ``rpc.call``;
* from uWSGI's log (stamped when the driver read the line, ~10 ms): ``spawn``,
  ``death``, ``harakiri``, ``mule.msg`` (no hook: "*** mule N received ...");
* from the client: ``request.submit``, ``request.start`` (sent) and ``request.end``
  (response complete), the worker taken from uWSGI's request log line.

Times are seconds since the instance was ready (``RealClock``); events before it are
at 0. Process names come from the pids in the log (``master``, ``workerN``, ``muleN``,
``spoolerN`` in ``--spooler`` order).

What real mode cannot do: step the wall clock (:class:`NotSupportedInMode`), set the
first instant (``START`` is ignored: the real wall clock is used; ``TZ`` is passed as
``$TZ``). ``signal(num)`` goes through a worker (uWSGI's signal plugin, ``modifier1
110``) which forwards it to the master: that worker counts one more request in its
counters, and the signal waits for a free worker.

Every run has a deadline: the harness supervisor SIGKILLs the whole process group when it
passes, and a timeline that tries to go past it is stopped with :class:`RealRunTimeout`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal as _signal
import socket
import struct
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._errors import SimulationError
from ..._core.clock import RealClock
from ...driver import NotSupportedInMode
from ..._core.trace import Trace
from ...server.workers import Response
from ._server import RealUwsgi, RealUwsgiError, free_port

__all__ = ["RealRequest", "RealRun", "RealRunTimeout", "real_argv"]

_INSTRUMENT = Path(__file__).with_name("_instrument.py")
_INSTRUMENT_NAME = "_simuwsgi_instrument.py"

_RE_MASTER = re.compile(r"spawned uWSGI master process \(pid: (\d+)\)")
_RE_WORKER = re.compile(r"^spawned uWSGI worker (\d+) (?:\(and the only\) )?\(pid: (\d+)")
_RE_RESPAWN = re.compile(r"^Respawned uWSGI worker (\d+) \(new pid: (\d+)\)")
_RE_MULE = re.compile(r"^spawned uWSGI mule (\d+) \(pid: (\d+)\)")
_RE_SPOOLER = re.compile(r"^spawned the uWSGI spooler on dir (.+) with pid (\d+)$")
_RE_WORKER_DEATH = re.compile(
    r"^(?:DAMN ! worker (\d+) \(pid: (\d+)\)|worker (\d+) killed successfully \(pid: (\d+)\))")
_RE_WORKER_BURIED = re.compile(r"^worker (\d+) buried after \d+ seconds")
_RE_MULE_DEATH = re.compile(
    r"^(?:mule (\d+) \(pid: (\d+)\) annihilated|OOOPS mule (\d+) \(pid: (\d+)\) crippled)")
_RE_HARAKIRI = re.compile(r"\*\*\* HARAKIRI ON (WORKER|MULE) (\d+) .*?\(pid: (\d+)")
_RE_SPOOLER_HARAKIRI = re.compile(r"\*\*\* HARAKIRI ON THE SPOOLER \(pid: (\d+)\)")
_RE_MULE_MSG = re.compile(r"^\*\*\* mule (\d+) received a (\d+) bytes message \*\*\*")
_RE_REQ_LOG = re.compile(
    r"^\[pid: (\d+)\|app: -?\d+\|req: -?\d+/\d+\] .*?\] (\S+) (\S+) => generated (\d+) bytes")


class RealRunTimeout(SimulationError):
    """A real run outlived its deadline; the server was killed."""


@dataclass
class RealRequest:
    """A request in flight (the real-mode counterpart of ``simuwsgi.server.workers.Request``)."""

    id: int
    method: str
    path: str
    headers: Any = None
    body: bytes = b""
    at: float | None = None
    sent: float | None = None
    response: Response | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()


def real_argv(options: Any, app_dir: Path) -> list[str]:
    """The scenario's options as a uWSGI argv (lists as given; a configuration file by
    its option, ``--ini``, ``--yaml``...; dicts through simuwsgi's option parser)."""
    if isinstance(options, (list, tuple)):
        return [str(o) for o in options]
    from ...server.config import config_reader, parse_options

    if isinstance(options, (str, Path)):
        spec = str(options)
        reader = config_reader(spec) or config_reader(spec.rpartition(":")[0])
        if reader is not None:
            path = Path(spec)
            return [f"--{reader}", str(path if path.is_absolute() else app_dir / path)]

    return parse_options(options, base_dir=app_dir).argv()


class RealRun:
    """One scenario run on the real uWSGI server (see the module docstring)."""

    mode = "real"

    def __init__(self, options: Any, *, app_dir: str | Path | None = None,
                 tz: str | None = None, env: dict[str, str] | None = None,
                 deadline: float = 120.0, startup_timeout: float = 10.0,
                 request_timeout: float = 30.0, keep_dir: bool = False,
                 binary: str | None = None, seed: int = 0, allow_no_app: bool = False) -> None:
        self.app_dir = Path(app_dir) if app_dir is not None else Path.cwd()
        self.options = real_argv(options, self.app_dir)
        self.tz = tz
        self.env = dict(env or {})
        self.deadline = float(deadline)
        self.startup_timeout = startup_timeout
        self.request_timeout = request_timeout
        self.keep_dir = keep_dir
        self.binary = binary
        self.seed = seed  # real uWSGI has no seed; kept for reports
        self.allow_no_app = allow_no_app  # else "*** no app loaded" fails start()
        self.server: RealUwsgi | None = None
        self.run_dir: Path | None = None
        self.signal_port: int | None = None
        self.ready_wall: float | None = None
        self.ready_after: float | None = None
        self._t0 = 0.0
        self._cursor = 0.0
        self._stopped_at: float | None = None
        self._requests: list[RealRequest] = []
        self._threads: list[threading.Thread] = []
        self._lines: list[tuple[float, str]] = []
        self._log_pos = 0
        self._log_partial = b""
        self._lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._pump_stop = threading.Event()
        self._faults: list[tuple[float, str, str, dict[str, Any]]] = []
        self._trace_from: float | None = None  # monotonic; set by checkout()
        self._lines_from = 0
        self.reused = 0
        self._final_trace: Trace | None = None
        self._final_lines: list[str] | None = None
        self.started = False
        self.closed = False

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def harness_options(self) -> list[str]:
        assert self.run_dir is not None and self.signal_port is not None
        return ["--shared-import", str(self.run_dir / _INSTRUMENT_NAME),
                "--socket", f"127.0.0.1:{self.signal_port}"]

    def start(self) -> RealRun:
        if self.started:
            return self
        self.started = True
        self.run_dir = Path(tempfile.mkdtemp(prefix="simuwsgi-realrun-"))
        shutil.copyfile(_INSTRUMENT, self.run_dir / _INSTRUMENT_NAME)
        self.trace_path = self.run_dir / "trace.jsonl"
        self.signal_port = free_port()
        env = {"SIMUWSGI_TRACE_FILE": str(self.trace_path), **self.env}
        if self.tz:
            env["TZ"] = self.tz
        self.server = RealUwsgi(self.options + self.harness_options, app_dir=self.app_dir,
                                env=env, startup_timeout=self.startup_timeout,
                                max_lifetime=self.deadline + 10.0, binary=self.binary,
                                allow_no_app=self.allow_no_app)
        began = RealClock.monotonic()
        try:
            self.server.start()
        except BaseException:
            self._cleanup()
            raise
        self._t0 = RealClock.monotonic()
        self.ready_wall = RealClock.time()
        self.ready_after = self._t0 - began
        self._read_log(stamp=0.0)  # everything logged before ready is at 0
        self._pump = threading.Thread(target=self._pump_loop, daemon=True,
                                      name="simuwsgi-real-log")
        self._pump.start()
        return self

    def close(self) -> None:
        """Kill the instance (the whole process group) and remove the run directory."""
        if self.closed:
            return
        self.closed = True
        if self.server is not None and self._stopped_at is None:
            self._stopped_at = self.now
        for t in self._threads:
            t.join(timeout=0.1)
        self._read_log()
        if self.server is not None:
            self._final_trace = self.trace
            self._final_lines = self.log
        self._cleanup()

    def _cleanup(self) -> None:
        self._pump_stop.set()
        if self._pump is not None:
            self._pump.join(timeout=2)
        if self.server is not None:
            self._final_log = self.server.log
            self.server.kill()
            self.server.close()  # its temporary directory
        if self.run_dir is not None and not self.keep_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def stop(self) -> None:
        self.close()

    def checkout(self) -> RealRun:
        """Reuse this running instance for another test: time restarts at 0 and the trace
        and log start afresh (the server itself keeps its state: counters, caches...)."""
        self._ensure_running()
        for t in self._threads:
            t.join(timeout=self.request_timeout)
        self._read_log()
        with self._lock:
            self._t0 = self._trace_from = RealClock.monotonic()
            self._lines_from = len(self._lines)
            self._requests = []
            self._threads = []
            self._faults = []
            self._cursor = 0.0
        self.reused += 1
        return self

    def __enter__(self) -> RealRun:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_running(self) -> RealUwsgi:
        if not self.started:
            self.start()
        if self.closed or self.server is None:
            raise SimulationError("this real run is closed")
        if self.now > self.deadline:
            self._kill_for_deadline()
        return self.server

    def _kill_for_deadline(self) -> None:
        self._stopped_at = self.now
        self.close()
        raise RealRunTimeout(f"the real run outlived its deadline of {self.deadline:.1f} s: "
                             f"uWSGI (process group {self.server.pgid if self.server else '?'})"
                             f" was killed")

    # -- time ----------------------------------------------------------------------------
    @property
    def now(self) -> float:
        if not self.started or self.server is None:
            return 0.0
        return RealClock.monotonic() - self._t0

    @property
    def wall(self) -> float:
        return RealClock.time()

    @property
    def datetime(self) -> Any:
        """The real wall-clock time, as an aware datetime (local zone)."""
        from datetime import datetime, timezone

        return datetime.fromtimestamp(RealClock.time(), timezone.utc).astimezone()

    def _sleep_until(self, when: float) -> None:
        if when > self.deadline:
            wait = self.deadline - self.now
            if wait > 0:
                RealClock.sleep(wait)
            self._kill_for_deadline()
        delay = when - self.now
        if delay > 0:
            RealClock.sleep(delay)

    def advance(self, seconds: float) -> None:
        self._ensure_running()
        self._cursor = max(self._cursor, 0.0) + float(seconds)
        self._sleep_until(self._cursor)

    def run_until(self, when: Any) -> None:
        self._ensure_running()
        if not isinstance(when, (int, float)) or isinstance(when, bool):
            raise NotSupportedInMode("real mode runs until a number of seconds since ready, "
                                     f"not a wall-clock instant ({when!r})")
        self._cursor = max(self._cursor, float(when))
        self._sleep_until(self._cursor)

    def step_clock(self, seconds: float) -> None:
        raise NotSupportedInMode(
            f"real mode cannot step the wall clock (step_clock({seconds!r})): the real "
            "uWSGI server runs on the host's clock. Run this scenario in sim mode.")

    def set_clock(self, when: Any) -> None:
        self.step_clock(0.0)

    # -- requests ------------------------------------------------------------------------
    def submit(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
               at: float | None = None) -> RealRequest:
        self._ensure_running()
        with self._lock:
            req = RealRequest(len(self._requests) + 1, method.upper(), path, headers, body, at)
            self._requests.append(req)
        t = threading.Thread(target=self._send, args=(req,), daemon=True,
                             name=f"simuwsgi-real-request-{req.id}")
        self._threads.append(t)
        t.start()
        return req

    def _send(self, req: RealRequest) -> None:
        server = self.server
        assert server is not None
        try:
            if req.at is not None:
                delay = req.at - self.now
                if delay > 0:
                    RealClock.sleep(delay)
            req.sent = self.now
            timeout = max(0.1, min(self.request_timeout, self.deadline - self.now))
            r = server.request(req.method, req.path, headers=req.headers, body=req.body,
                               timeout=timeout)
            end = self.now
            reason = ""
            if r.status is None:
                reason = {"closed": "connection closed without a response",
                          "reset": "connection reset", "refused": "connection refused",
                          "timeout": f"timeout after {timeout:.1f} s"}.get(
                              r.reason or "", r.reason or "no response")
            req.response = Response(status=r.status, headers=r.headers, body=r.body,
                                    reason=reason, started=req.sent, finished=end)
        except Exception as exc:  # noqa: BLE001 - reported on the handle
            req.response = Response(status=None, reason=f"client error: {exc}",
                                    started=req.sent or self.now, finished=self.now)
        finally:
            req._done.set()

    def request(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
                timeout: float | None = None) -> Response:
        req = self.submit(method, path, headers=headers, body=body)
        self.wait(req, timeout=timeout)
        if req.response is None:
            return Response(status=None, reason=f"timeout after {timeout} seconds",
                            started=req.sent or 0.0, finished=self.now)
        return req.response

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def wait(self, requests: RealRequest | Iterable[RealRequest], *,
             timeout: float | None = None) -> None:
        self._ensure_running()
        pending = [requests] if isinstance(requests, RealRequest) else list(requests)
        limit = min(self.deadline, self.now + (timeout if timeout is not None
                                               else self.request_timeout + 5))
        for req in pending:
            req._done.wait(max(0.0, limit - self.now))
            self._fill_worker(req)
        self._cursor = max(self._cursor, self.now)
        if any(not r.done for r in pending) and self.now >= self.deadline:
            self._kill_for_deadline()

    def _fill_worker(self, req: RealRequest) -> None:
        """Set ``response.worker`` from uWSGI's request log line (written just after the
        response: wait for it up to 0.2 s)."""
        if req.response is None or req.response.status is None:
            return
        limit = RealClock.monotonic() + 0.2
        while True:
            self._read_log()
            name = self._request_workers().get(req.id)
            if name is not None or RealClock.monotonic() > limit:
                break
            RealClock.sleep(0.005)
        if name is not None and name.startswith("worker") and name[6:].isdigit():
            req.response = dataclasses.replace(req.response, worker=int(name[6:]))

    # -- faults, signals, files ------------------------------------------------------------
    def signal(self, num: int) -> None:
        """Raise uWSGI signal ``num``: a ``modifier1 110`` packet to the harness socket."""
        self._ensure_running()
        assert self.signal_port is not None
        packet = struct.pack("<BHB", 110, 0, int(num) & 0xFF)
        with socket.create_connection(("127.0.0.1", self.signal_port), timeout=5) as s:
            s.sendall(packet)
            reply = b""
            while len(reply) < 4:
                chunk = s.recv(4 - len(reply))
                if not chunk:
                    break
                reply += chunk
        self._faults.append((self.now, "master", "signal.raise", {"num": int(num) & 0xFF}))
        self._cursor = max(self._cursor, self.now)

    def pids(self) -> dict[str, int]:
        """Current pid of every process, by name (from the log)."""
        self._read_log()
        return {name: pid for pid, name in self._pid_names(current=True).items()}

    def kill(self, process: str) -> None:
        """SIGKILL a process by name; the master respawns it."""
        self._ensure_running()
        pids = self.pids()
        if process not in pids:
            raise KeyError(f"no process named {process!r} (there are: {', '.join(pids)})")
        pid = pids[process]
        self._faults.append((self.now, process, "fault.kill", {"pid": pid}))
        os.kill(pid, _signal.SIGKILL)
        self._cursor = max(self._cursor, self.now)

    def touch(self, path: str) -> None:
        """Update ``path``'s modification time (created if missing), relative to the
        app dir: one filesystem event (``Path.touch`` is one ``utime``, or one create),
        as ``sim.touch`` is one. A second event could reach uWSGI's inotify loop in a
        batch of its own and raise the monitor's signal twice."""
        self._ensure_running()
        target = self.app_dir / path
        target.touch()
        self._faults.append((self.now, "master", "filemon.touch", {"path": path}))

    def reload(self) -> None:
        """Graceful reload: SIGHUP to the master (returns at once, as in sim mode)."""
        server = self._ensure_running()
        server.reload()

    # -- the log -------------------------------------------------------------------------
    def _pump_loop(self) -> None:
        while not self._pump_stop.wait(0.01):
            self._read_log()

    def _read_log(self, stamp: float | None = None) -> None:
        server = self.server
        if server is None or server.log_path is None:
            return
        with self._lock:
            try:
                with open(server.log_path, "rb") as f:
                    f.seek(self._log_pos)
                    data = f.read()
            except FileNotFoundError:
                return
            if not data:
                return
            self._log_pos += len(data)
            parts = (self._log_partial + data).split(b"\n")
            self._log_partial = parts.pop()
            if stamp is None:
                stamp = max(0.0, self.now) if self.started else 0.0
            for raw in parts:
                self._lines.append((stamp, raw.decode("utf-8", "replace").rstrip("\r")))

    @property
    def log(self) -> list[str]:
        """uWSGI's log lines (harness hook lines left out)."""
        if self._final_lines is not None:
            return list(self._final_lines)
        self._read_log()
        return [ln for _t, ln in self._lines[self._lines_from:]
                if "[simuwsgi-harness]" not in ln]

    def _pid_names(self, current: bool = False) -> dict[int, str]:
        names: dict[int, str] = {}
        spooler_dirs: list[str] = []
        for _t, ln in self._lines:
            m = _RE_MASTER.search(ln)
            if m:
                names[int(m.group(1))] = "master"
                continue
            m = _RE_WORKER.match(ln) or _RE_RESPAWN.match(ln)
            if m:
                names[int(m.group(2))] = f"worker{m.group(1)}"
                continue
            m = _RE_MULE.match(ln)
            if m:
                names[int(m.group(2))] = f"mule{m.group(1)}"
                continue
            m = _RE_SPOOLER.match(ln)
            if m:
                if m.group(1) not in spooler_dirs:
                    spooler_dirs.append(m.group(1))
                names[int(m.group(2))] = f"spooler{spooler_dirs.index(m.group(1)) + 1}"
        if current:  # the last pid of each name wins
            last: dict[str, int] = {}
            for pid, name in names.items():
                last[name] = pid
            return {pid: name for name, pid in last.items()}
        return names

    def _request_workers(self) -> dict[int, str]:
        """Request id -> process name, matching uWSGI's request log lines (in order) to
        the requests sent with the same method and URI."""
        names = self._pid_names()
        out: dict[int, str] = {}
        used: set[int] = set()
        with self._lock:
            reqs = sorted((r for r in self._requests if r.sent is not None),
                          key=lambda r: r.sent)
            lines = self._lines[self._lines_from:]
        for _t, ln in lines:
            m = _RE_REQ_LOG.match(ln)
            if not m:
                continue
            pid, method, uri = int(m.group(1)), m.group(2), m.group(3)
            for r in reqs:
                if r.id not in used and r.method == method and r.path == uri:
                    used.add(r.id)
                    out[r.id] = names.get(pid, f"pid{pid}")
                    break
        return out

    # -- the trace -----------------------------------------------------------------------
    @property
    def trace(self) -> Trace:
        """The run's trace so far, in the simulator's schema (rebuilt on each access)."""
        if self._final_trace is not None:
            return self._final_trace
        self._read_log()
        rows: list[tuple[float, str, str, dict[str, Any]]] = []
        names = self._pid_names()
        rows.extend(self._instrument_rows(names))
        rows.extend(self._log_rows())
        rows.extend(self._request_rows())
        rows.extend(self._faults)
        if self._stopped_at is not None:
            rows = [r for r in rows if r[0] <= self._stopped_at]
        rows.sort(key=lambda r: r[0])
        trace = Trace()
        for t, proc, kind, fields in rows:
            trace.add(round(t, 6), proc, kind, fields)
        return trace

    def _instrument_rows(self, names: dict[int, str]) -> list[tuple[float, str, str, dict]]:
        rows = []
        try:
            text = self.trace_path.read_text()
        except (OSError, AttributeError):
            return rows
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if self._trace_from is not None and rec["t"] < self._trace_from:
                continue
            t = max(0.0, rec["t"] - self._t0)
            rows.append((t, names.get(rec["pid"], f"pid{rec['pid']}"), rec["kind"],
                         rec.get("fields") or {}))
        return rows

    def _log_rows(self) -> list[tuple[float, str, str, dict]]:
        rows: list[tuple[float, str, str, dict]] = []
        spooler_dirs: list[str] = []
        pid_name: dict[int, str] = {}
        with self._lock:
            lines = list(self._lines)
        for index, (t, ln) in enumerate(lines):
            if index < self._lines_from:
                continue
            m = _RE_MASTER.search(ln)
            if m:
                pid_name[int(m.group(1))] = "master"
                rows.append((t, "master", "spawn", {"pid": int(m.group(1))}))
                continue
            m = _RE_WORKER.match(ln) or _RE_RESPAWN.match(ln)
            if m:
                pid_name[int(m.group(2))] = f"worker{m.group(1)}"
                rows.append((t, f"worker{m.group(1)}", "spawn", {"pid": int(m.group(2))}))
                continue
            m = _RE_MULE.match(ln)
            if m:
                pid_name[int(m.group(2))] = f"mule{m.group(1)}"
                rows.append((t, f"mule{m.group(1)}", "spawn", {"pid": int(m.group(2))}))
                continue
            m = _RE_SPOOLER.match(ln)
            if m:
                if m.group(1) not in spooler_dirs:
                    spooler_dirs.append(m.group(1))
                name = f"spooler{spooler_dirs.index(m.group(1)) + 1}"
                pid_name[int(m.group(2))] = name
                rows.append((t, name, "spawn", {"pid": int(m.group(2))}))
                continue
            m = _RE_WORKER_DEATH.match(ln)
            if m:
                wid, pid = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                rows.append((t, f"worker{wid}", "death", {"pid": int(pid)}))
                continue
            m = _RE_WORKER_BURIED.match(ln)
            if m:
                rows.append((t, f"worker{m.group(1)}", "death", {}))
                continue
            m = _RE_MULE_DEATH.match(ln)
            if m:
                mid, pid = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                rows.append((t, f"mule{mid}", "death", {"pid": int(pid)}))
                continue
            m = _RE_HARAKIRI.search(ln)
            if m:
                rows.append((t, f"{m.group(1).lower()}{m.group(2)}", "harakiri",
                             {"pid": int(m.group(3))}))
                continue
            m = _RE_SPOOLER_HARAKIRI.search(ln)
            if m:
                pid = int(m.group(1))
                rows.append((t, pid_name.get(pid, "spooler1"), "harakiri", {"pid": pid}))
                continue
            m = _RE_MULE_MSG.match(ln)
            if m:
                rows.append((t, f"mule{m.group(1)}", "mule.msg",
                             {"bytes": int(m.group(2)), "hook": False}))
        return rows

    def _request_rows(self) -> list[tuple[float, str, str, dict]]:
        workers = self._request_workers()
        rows: list[tuple[float, str, str, dict]] = []
        with self._lock:
            reqs = list(self._requests)
        for r in reqs:
            if r.sent is None:
                continue
            proc = workers.get(r.id, "worker?")
            rows.append((r.sent, "master", "request.submit",
                         {"id": r.id, "method": r.method, "path": r.path}))
            rows.append((r.sent, proc, "request.start",
                         {"id": r.id, "method": r.method, "path": r.path}))
            resp = r.response
            if resp is not None and resp.status is not None:
                rows.append((resp.finished, proc, "request.end",
                             {"id": r.id, "status": resp.status, "bytes": len(resp.body)}))
            elif resp is not None and r.id in workers:  # the app failed; no death
                rows.append((resp.finished, proc, "request.end",
                             {"id": r.id, "status": None, "bytes": 0}))
        return rows

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("running" if self.started else "new")
        return f"<RealRun t={self.now:.3f} {state} options={self.options!r}>"


def start_error_message(exc: RealUwsgiError) -> str:
    """The message of a start failure (it already carries uWSGI's relevant log lines)."""
    return str(exc)
