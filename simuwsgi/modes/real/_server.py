"""Run the real uWSGI server (the ``uwsgi`` of the ``pyuwsgi`` wheel) for differential tests.

:class:`RealUwsgi` starts ``uwsgi`` with the user's options plus a few harness options,
waits until the instance is *truly* ready, sends requests over a loopback ``--http-socket``,
signals the master and tears the whole process tree down on every exit path.

Harness options (appended *after* the user's options, so user sockets keep their ids)::

    --http-socket 127.0.0.1:<free port>
    --hook-master-start  "log:[simuwsgi-harness] master-ready"
    --hook-accepting     "log:[simuwsgi-harness] worker-accepting"
    --hook-as-mule       "log:[simuwsgi-harness] mule-ready"
    --binary-path        the interpreter of pyuwsgi's script (see reload_binary_path)

The hooks only write log lines (they also show up in ``uwsgi.opt``; see
:data:`HARNESS_OPTION_NAMES`).  No ``--stats`` (it would force ``--master``), no
``--die-on-term``: stop uses SIGINT, which means "kill" for every uWSGI 2.0 configuration.

Readiness (see :meth:`RealUwsgi.wait_ready`): in the current generation of the log (since
the last ``*** Starting uWSGI`` banner, i.e. since the last exec of the master)

* master mode: the ``master-start`` hook ran (the master installed its signal handlers and
  entered its loop: a SIGHUP/SIGINT sent earlier would be ignored or kill only the master),
  every worker spawned so far ran its ``accepting`` hook (it is inside its request loop),
  every mule ran its ``as-mule`` hook and every spooler process is sleeping;
* no-master mode: every expected worker (from ``--processes``/``--workers``) is accepting.

The uWSGI processes run in their own session/process group whose parent is a tiny
supervisor (``_supervisor.py``) acting as child subreaper: it reaps orphans, enforces
``max_lifetime`` and kills the group if the test process dies.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import re
import select
import shutil
import signal as _signal
import socket
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# the harness waits on the host's clock, also in a test thread that sees a simulation's
# (``_R`` holds the real functions, out of freezegun's reach, as simuwsgi.real_time does)
from ..._core.clock import _R

__all__ = [
    "HARNESS_MARK",
    "HARNESS_OPTION_NAMES",
    "RealUwsgi",
    "RealUwsgiError",
    "ReloadMark",
    "Response",
    "find_uwsgi_binary",
    "free_port",
    "uwsgi_version",
]

HARNESS_MARK = "[simuwsgi-harness]"
#: option names the harness adds (they appear in ``uwsgi.opt``)
#: ``binary-path`` only when the ``uwsgi`` is pyuwsgi's script (see :func:`reload_binary_path`).
HARNESS_OPTION_NAMES = ("http-socket", "hook-master-start", "hook-accepting", "hook-as-mule",
                        "binary-path")

_MASTER_READY = f"{HARNESS_MARK} master-ready"
_WORKER_ACCEPTING = f"{HARNESS_MARK} worker-accepting"
_MULE_READY = f"{HARNESS_MARK} mule-ready"

_SUPERVISOR = Path(__file__).with_name("_supervisor.py")

# ---------------------------------------------------------------------------------------
# log line patterns (uWSGI 2.0.30 wording)
# ---------------------------------------------------------------------------------------
_RE_BANNER = re.compile(r"^\*\*\* Starting uWSGI (\S+)")
_RE_MASTER = re.compile(r"^(?:gracefully \(RE\))?spawned uWSGI master process \(pid: (\d+)\)")
_RE_WORKER = re.compile(
    r"^spawned uWSGI worker (\d+) (?:\(and the only\) )?\(pid: (\d+), cores: (\d+)\)"
)
_RE_RESPAWN = re.compile(r"^Respawned uWSGI worker (\d+) \(new pid: (\d+)\)")
# a worker died and the master will respawn it (uWSGI 2.0 master.c wording)
_RE_WORKER_GONE = re.compile(
    r"^(?:DAMN ! worker (\d+) \(pid: (\d+)\)"
    r"|worker (\d+) killed successfully \(pid: (\d+)\)"
    r"|OOPS ! failed loading app in worker (\d+) \(pid (\d+)\) :\( trying again"
    r"|\.\.\. monitored exception detected, respawning worker (\d+) \(pid: (\d+)\)"
    r"|\.\.\.restoring worker (\d+) \(pid: (\d+)\))"
)
# a worker is about to die (then "killed successfully"/"DAMN !" and a respawn follow)
_RE_WORKER_DYING = re.compile(
    r"^\.\.\.The work of process (\d+) is done\. Seeya!"
    r"|\*\*\* HARAKIRI ON WORKER \d+ \(pid: (\d+), "
)
_RE_WORKER_CHEAPED = re.compile(r"^uWSGI worker (\d+) cheaped\.")
_RE_MULE = re.compile(r"^spawned uWSGI mule (\d+) \(pid: (\d+)\)")
_RE_SPOOLER = re.compile(r"^spawned the uWSGI spooler on dir (.+) with pid (\d+)$")
_RE_BIND_IN_USE = re.compile(
    r"probably another instance of uWSGI is running on the same address \((.+)\)"
)
_RE_NO_APP = re.compile(r"\*\*\* no app loaded")
_RE_RELEVANT = re.compile(
    r"no app loaded|GAME OVER|unrecognized option|invalid option|requires an argument|"
    r"unable to|failed to|cannot|Error|error|Exception|No such file|Address already in use|"
    r"another instance|FATAL|not found|giving up|HARAKIRI|DAMN|getopt"
)

_PROCESSES_OPTS = {"--processes", "--workers", "-p", "-w"}


class RealUwsgiError(RuntimeError):
    """uWSGI failed to start / become ready / answer, or the harness misused.

    ``log`` holds uWSGI's full captured output, ``returncode`` the master's exit code (when
    it exited).
    """

    def __init__(self, message: str, *, log: Sequence[str] = (), returncode: int | None = None):
        super().__init__(message)
        self.log = list(log)
        self.returncode = returncode


@dataclasses.dataclass
class Response:
    """What the client got.  ``status`` is None when no status line was received; ``reason``
    then says why (``"closed"``: connection closed without a reply, ``"reset"``,
    ``"timeout"``, ``"refused"``, ``"malformed"``)."""

    status: int | None
    headers: list[tuple[str, str]]
    body: bytes
    reason: str | None = None
    http_version: str | None = None  # e.g. "HTTP/1.1" as sent by the server
    status_text: str = ""  # reason phrase of the status line, e.g. "OK"
    raw: bytes = b""  # every byte received
    elapsed: float = 0.0
    closed_by_server: bool = False  # the server closed the connection (EOF seen)

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    @property
    def status_line(self) -> str | None:
        if self.status is None:
            return None
        return f"{self.http_version} {self.status} {self.status_text}".rstrip()

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------
# binary discovery
# ---------------------------------------------------------------------------------------
def find_uwsgi_binary() -> str | None:
    """Path of the real ``uwsgi`` executable, or None.

    Order: ``$SIMUWSGI_UWSGI_BINARY``; the ``uwsgi`` next to ``sys.executable`` (the pyuwsgi
    console script of this interpreter: avoids ~60 ms of pyenv-shim overhead per start);
    ``uwsgi`` on ``$PATH``.
    """
    explicit = os.environ.get("SIMUWSGI_UWSGI_BINARY")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    sibling = Path(sys.executable).with_name("uwsgi")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("uwsgi")


def reload_binary_path(binary: str) -> str | None:
    """What uWSGI must re-execute on a binary reload, when ``binary`` is pyuwsgi's script.

    pyuwsgi's ``uwsgi`` is a Python console script. uWSGI takes its binary path from
    ``/proc/self/exe``, which is the *base* interpreter even in a virtualenv (the venv's
    ``python`` is a link to it), and a reload re-executes that: the base interpreter does
    not see the venv's site-packages and dies with ``No module named 'pyuwsgi'``. Real
    deployments of pyuwsgi in a venv meet the same problem; ``--binary-path`` set to the
    script's own interpreter (its ``#!`` line) is the fix, and the harness passes it.
    None when ``binary`` is a compiled ``uwsgi`` (it re-executes itself correctly).
    """
    try:
        with open(binary, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    interpreter = first[2:].strip().split(b" ")[0].decode(errors="replace")
    return interpreter if os.access(interpreter, os.X_OK) else None


_version_cache: dict[str, str] = {}


def uwsgi_version(binary: str | None = None) -> str:
    """``uwsgi --version`` (cached)."""
    binary = binary or find_uwsgi_binary()
    if binary is None:
        raise RealUwsgiError("the `uwsgi` binary was not found (pip install pyuwsgi)")
    if binary not in _version_cache:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=20, check=False
        )
        _version_cache[binary] = out.stdout.strip()
    return _version_cache[binary]


# ---------------------------------------------------------------------------------------
# free port
# ---------------------------------------------------------------------------------------
_recent_ports: list[int] = []
_port_lock = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A currently-free TCP port on ``host``.

    The port is only *probably* free by the time uWSGI binds it: callers must retry on
    EADDRINUSE (RealUwsgi does).  Ports handed out recently by this process are skipped so
    that concurrent instances do not race for the same one.
    """
    with _port_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
            if port not in _recent_ports:
                _recent_ports.append(port)
                del _recent_ports[:-64]
                return port
        return port


# ---------------------------------------------------------------------------------------
# log parsing
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Generation:
    """What the log says about one exec of the master (between two banners)."""

    start_index: int  # index in the line list of the banner (0 before any banner)
    banner: bool = False  # the "*** Starting uWSGI" line was seen
    master_pid: int | None = None
    master_ready: bool = False
    workers: dict[int, int] = dataclasses.field(default_factory=dict)
    worker_spawns: int = 0
    respawn_pending: set[int] = dataclasses.field(default_factory=set)  # dead, not respawned
    accepting: int = 0
    mules: dict[int, int] = dataclasses.field(default_factory=dict)
    mule_spawns: int = 0
    mules_ready: int = 0
    spoolers: dict[str, int] = dataclasses.field(default_factory=dict)
    no_app: bool = False
    game_over: bool = False  # "*** no app loaded. GAME OVER ***": the exit code follows
    last_change: float = 0.0


class _LogFollower:
    """Incrementally reads the log file and keeps the parsed state up to date."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: list[str] = []
        self._pos = 0
        self._partial = b""
        self.generations: list[_Generation] = [_Generation(0, last_change=_R.monotonic())]

    @property
    def current(self) -> _Generation:
        return self.generations[-1]

    def poll(self) -> bool:
        """Read what was appended; return True if new complete lines arrived."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return False
        if not data:
            return False
        self._pos += len(data)
        data = self._partial + data
        parts = data.split(b"\n")
        self._partial = parts.pop()
        for raw in parts:
            line = raw.decode("utf-8", "replace").rstrip("\r")
            self.lines.append(line)
            self._parse(line, len(self.lines) - 1)
        return bool(parts)

    def flush_partial(self) -> None:
        """Treat a trailing unterminated line as complete (the process is gone)."""
        self.poll()
        if self._partial:
            line = self._partial.decode("utf-8", "replace")
            self._partial = b""
            self.lines.append(line)
            self._parse(line, len(self.lines) - 1)

    def _parse(self, line: str, index: int) -> None:
        g = self.current
        now = _R.monotonic()
        if _RE_BANNER.match(line):
            if g.banner:
                self.generations.append(_Generation(index, banner=True, last_change=now))
            else:
                g.start_index, g.banner, g.last_change = index, True, now
            return
        if HARNESS_MARK in line:
            if line == _MASTER_READY:
                g.master_ready = True
            elif line == _WORKER_ACCEPTING:
                g.accepting += 1
            elif line == _MULE_READY:
                g.mules_ready += 1
            else:
                return
            g.last_change = now
            return
        m = _RE_WORKER.match(line) or _RE_RESPAWN.match(line)
        if m:
            wid = int(m.group(1))
            g.workers[wid] = int(m.group(2))
            g.worker_spawns += 1
            g.respawn_pending.discard(wid)
            g.last_change = now
            return
        m = _RE_WORKER_GONE.match(line)
        if m:
            wid = int(next(x for x in m.groups() if x is not None))
            g.respawn_pending.add(wid)
            g.last_change = now
            return
        m = _RE_WORKER_DYING.search(line)
        if m:
            pid = int(m.group(1) or m.group(2))
            for wid, wpid in g.workers.items():
                if wpid == pid:
                    g.respawn_pending.add(wid)
                    g.last_change = now
            return
        m = _RE_WORKER_CHEAPED.match(line)
        if m:
            g.respawn_pending.discard(int(m.group(1)))
            g.last_change = now
            return
        m = _RE_MASTER.match(line)
        if m:
            g.master_pid = int(m.group(1))
            g.last_change = now
            return
        m = _RE_MULE.match(line)
        if m:
            g.mules[int(m.group(1))] = int(m.group(2))
            g.mule_spawns += 1
            g.last_change = now
            return
        m = _RE_SPOOLER.match(line)
        if m:
            g.spoolers[m.group(1)] = int(m.group(2))
            g.last_change = now
            return
        if _RE_NO_APP.search(line):
            g.no_app = True
            g.game_over = "GAME OVER" in line


def _relevant_lines(lines: Sequence[str]) -> list[str]:
    """Error-looking lines, with Python tracebacks kept whole."""
    out: list[str] = []
    in_tb = False
    for ln in lines:
        if ln.startswith("Traceback (most recent call last)"):
            in_tb = True
            out.append(ln)
            continue
        if in_tb:
            out.append(ln)
            if not ln[:1].isspace():  # the exception line ends the block
                in_tb = False
            continue
        if _RE_RELEVANT.search(ln):
            out.append(ln)
    return out


def _proc_state(pid: int) -> str | None:
    """Single-letter state of ``pid`` from /proc (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - not our group any more
        return False
    return True


# registry of live instances for the atexit safety net
_live: weakref.WeakSet[RealUwsgi] = weakref.WeakSet()


@atexit.register
def _kill_all_live() -> None:  # pragma: no cover - safety net
    for inst in list(_live):
        try:
            inst._hard_kill()
        except Exception:  # noqa: BLE001, S110 - best effort at interpreter exit
            pass


def _expected_processes(options: Sequence[str]) -> int | None:
    """Best-effort ``--processes`` value from argv (only used without a master)."""
    n = None
    it = iter(range(len(options)))
    for i in it:
        opt = options[i]
        name, eq, val = opt.partition("=")
        if name in _PROCESSES_OPTS:
            if not eq:
                if i + 1 < len(options):
                    val = options[i + 1]
                    next(it, None)
                else:
                    continue
            try:
                n = int(val)
            except ValueError:
                pass
        elif opt.startswith("-p") and not opt.startswith("--") and opt[2:].isdigit():
            n = int(opt[2:])
    return n


class RealUwsgi:
    """One real uWSGI instance on a loopback ``--http-socket``.

    ``options`` are the user's uWSGI options, argv style, exactly as typed after ``uwsgi``;
    relative paths in them are resolved by uWSGI in ``app_dir`` (its cwd, default: the
    current directory).  ``env`` is merged over ``os.environ`` minus the ``UWSGI_*``
    variables (which uWSGI would read as options).  ``max_lifetime`` is a hard deadline
    for the whole process group (enforced by the supervisor even if this process dies).
    ``allow_no_app``: by default an instance logging ``*** no app loaded`` is a start
    failure; set it to True to keep it running (uWSGI's "full dynamic mode").
    """

    def __init__(
        self,
        options: Sequence[str],
        *,
        app_dir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
        max_lifetime: float = 600.0,
        allow_no_app: bool = False,
        binary: str | None = None,
        port_retries: int = 8,
    ) -> None:
        if isinstance(options, (str, bytes)):
            raise TypeError("options must be a list of argv strings, not a string")
        self.options: list[str] = [str(o) for o in options]
        self.app_dir = Path(app_dir) if app_dir is not None else Path.cwd()
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.max_lifetime = max_lifetime
        self.allow_no_app = allow_no_app
        self.binary = binary
        self.port_retries = port_retries

        self.host = "127.0.0.1"
        self.port: int | None = None
        self.ready_after: float | None = None
        self.returncode: int | None = None
        self.argv: list[str] = []
        self.tmpdir: Path | None = None
        self.log_path: Path | None = None

        self._sup: subprocess.Popen | None = None
        self._status_r: int | None = None
        self._status_buf = b""
        self._master_pid: int | None = None
        self._master_exit: int | None = None
        self._log: _LogFollower | None = None
        self._final_lines: list[str] | None = None
        self._started_at = 0.0
        self._launches = 0
        self._last_reload_mark: ReloadMark | None = None

    # ----------------------------------------------------------------------- properties
    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RealUwsgiError("not started")
        return (self.host, self.port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def pid(self) -> int | None:
        """Pid of the process uWSGI was exec'd as: the master (or worker 1 without master).
        It is also the process-group id of the instance."""
        return self._master_pid

    pgid = pid

    @property
    def harness_options(self) -> list[str]:
        """The argv the harness appended to the user's options."""
        return self.argv[1 + len(self.options) :] if self.argv else []

    @property
    def log(self) -> list[str]:
        """Every line uWSGI (and the app) wrote to stdout/stderr so far, harness hook lines
        included (filter them with ``HARNESS_MARK`` or use :meth:`app_log`)."""
        if self._final_lines is not None:
            return list(self._final_lines)
        if self._log is None:
            return []
        self._log.poll()
        return list(self._log.lines)

    def app_log(self) -> list[str]:
        """:attr:`log` without the lines produced by the harness hooks."""
        return [ln for ln in self.log if HARNESS_MARK not in ln]

    def log_text(self) -> str:
        return "\n".join(self.log)

    @property
    def running(self) -> bool:
        """The master process is still alive."""
        self._read_status()
        return self._sup is not None and self._master_pid is not None and self._master_exit is None

    # ------------------------------------------------------------------------ starting
    def start(self) -> RealUwsgi:
        if self._sup is not None:
            raise RealUwsgiError("already started")
        binary = self.binary or find_uwsgi_binary()
        if binary is None:
            raise RealUwsgiError(
                "the real `uwsgi` binary was not found (install the pyuwsgi wheel, "
                "or set $SIMUWSGI_UWSGI_BINARY)"
            )
        self.binary = binary
        if not self.app_dir.is_dir():
            raise RealUwsgiError(f"app_dir {self.app_dir} is not a directory")
        if self.tmpdir is None:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="simuwsgi-real-"))
        attempt = 0
        while True:
            attempt += 1
            port = free_port(self.host)
            try:
                self._launch(binary, port, attempt)
                self._wait_ready_or_fail(self.startup_timeout, initial=True)
            except _PortInUse:
                self._hard_kill()
                if attempt >= self.port_retries:
                    raise RealUwsgiError(
                        f"could not bind a free loopback port after {attempt} attempts",
                        log=self.log,
                    ) from None
                continue
            except BaseException:
                self._hard_kill()
                raise
            break
        self.ready_after = _R.monotonic() - self._started_at
        return self

    def _launch(self, binary: str, port: int, attempt: int) -> None:
        self.port = port
        reexec = reload_binary_path(binary)
        own_binary_path = any(o.lstrip("-").startswith("binary-path") for o in self.options)
        self.argv = [
            binary,
            *self.options,
            *(["--binary-path", reexec] if reexec and not own_binary_path else []),
            "--http-socket",
            f"{self.host}:{port}",
            "--hook-master-start",
            f"log:{_MASTER_READY}",
            "--hook-accepting",
            f"log:{_WORKER_ACCEPTING}",
            "--hook-as-mule",
            f"log:{_MULE_READY}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
        env.update(self.extra_env)
        assert self.tmpdir is not None
        self._launches += 1
        self.log_path = self.tmpdir / (
            "uwsgi.log" if self._launches == 1 else f"uwsgi.{self._launches}.log"
        )
        self._log = _LogFollower(self.log_path)
        self._final_lines = None
        self._master_pid = None
        self._master_exit = None
        self.returncode = None
        self._status_buf = b""
        r, w = os.pipe()
        os.set_blocking(r, False)
        self._status_r = r
        cmd = [
            sys.executable,
            "-I",
            "-S",
            str(_SUPERVISOR),
            str(w),
            repr(float(self.max_lifetime)),
            str(os.getpid()),
            "--",
            *self.argv,
        ]
        with open(self.log_path, "ab", buffering=0) as logf:
            self._started_at = _R.monotonic()
            try:
                self._sup = subprocess.Popen(
                    cmd,
                    cwd=str(self.app_dir),
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    pass_fds=(w,),
                    start_new_session=True,
                )
            except BaseException:
                os.close(r)
                self._status_r = None
                raise
            finally:
                os.close(w)
        _live.add(self)
        # the supervisor writes "pid N" right after its fork (a few ms)
        deadline = _R.monotonic() + 10.0
        while self._master_pid is None:
            self._read_status(block=0.05)
            if self._master_pid is not None:
                break
            if self._sup.poll() is not None or _R.monotonic() > deadline:
                self._log.flush_partial()
                raise RealUwsgiError(
                    "the harness supervisor failed to start uWSGI", log=self._log.lines
                )

    def _read_status(self, block: float = 0.0) -> None:
        if self._status_r is None:
            return
        if block:
            select.select([self._status_r], [], [], block)
        while True:
            try:
                chunk = os.read(self._status_r, 4096)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            self._status_buf += chunk
        while b"\n" in self._status_buf:
            line, self._status_buf = self._status_buf.split(b"\n", 1)
            kind, _, value = line.decode().partition(" ")
            if kind == "pid":
                self._master_pid = int(value)
            elif kind == "exit":
                self._master_exit = int(value)
                self.returncode = int(value)

    # ------------------------------------------------------------------------ readiness
    def _readiness(self) -> tuple[bool, str]:
        """(ready?, what we are waiting for) for the current generation."""
        assert self._log is not None
        g = self._log.current
        if g.master_pid is not None:
            if not g.master_ready:
                return False, "master loop (master-start hook)"
            if g.worker_spawns == 0:
                return False, "workers to be spawned"
            if g.respawn_pending:
                return False, f"respawn of worker(s) {sorted(g.respawn_pending)}"
            if g.accepting < g.worker_spawns:
                return False, f"workers accepting ({g.accepting}/{g.worker_spawns})"
            if g.mules_ready < g.mule_spawns:
                return False, f"mules ({g.mules_ready}/{g.mule_spawns})"
            for d, pid in g.spoolers.items():
                if _proc_state(pid) not in ("S", "D", None):
                    return False, f"spooler {d} (pid {pid}) to sleep"
            return True, ""
        # no master: worker 1 is the exec'd process and forks the others
        if g.worker_spawns == 0:
            return False, "workers to be spawned"
        expected = self._expected_no_master or 1
        if g.worker_spawns < expected or g.accepting < g.worker_spawns:
            return False, f"workers accepting ({g.accepting}/{max(expected, g.worker_spawns)})"
        if g.mules_ready < g.mule_spawns:
            return False, f"mules ({g.mules_ready}/{g.mule_spawns})"
        return True, ""

    @property
    def _expected_no_master(self) -> int | None:
        return _expected_processes(self.options)

    def _check_failure(self, initial: bool) -> None:
        """Raise if the master died or the log shows a fatal start condition."""
        assert self._log is not None
        self._read_status()
        g = self._log.current
        if self._master_exit is not None:
            self._log.flush_partial()
            lines = self._log.lines
            if initial and self.port is not None:
                for ln in lines:
                    m = _RE_BIND_IN_USE.search(ln)
                    if m and m.group(1) == f"{self.host}:{self.port}":
                        raise _PortInUse()
            raise RealUwsgiError(
                self._failure_message(f"uWSGI exited with code {self._master_exit}", lines),
                log=lines,
                returncode=self._master_exit,
            )
        if g.no_app and not self.allow_no_app and not g.game_over:
            lines = list(self._log.lines)
            raise RealUwsgiError(
                self._failure_message(
                    "uWSGI started without an application (*** no app loaded ***); "
                    "pass allow_no_app=True to keep such an instance",
                    lines,
                ),
                log=lines,
            )

    def _failure_message(self, head: str, lines: Sequence[str]) -> str:
        lines = [ln for ln in lines if HARNESS_MARK not in ln]
        msg = [head, f"command: {' '.join(self.argv)}", f"cwd: {self.app_dir}"]
        relevant = _relevant_lines(lines)[-40:]
        if relevant:
            msg.append("relevant uWSGI log lines:")
            msg.extend("    " + ln for ln in relevant)
        tail = lines[-15:]
        if tail and tail != relevant[-len(tail) :]:
            msg.append("last uWSGI log lines:")
            msg.extend("    " + ln for ln in tail)
        return "\n".join(msg)

    def _reloaded_since(self, since: ReloadMark) -> bool:
        """A reload happened after ``since``: the master re-exec'd (new generation), or, for
        worker-only reloads (``--lazy``, chain reload), every worker got a new pid."""
        assert self._log is not None
        if len(self._log.generations) > since.generation:
            return True
        workers = self._log.current.workers
        return bool(since.workers) and all(
            workers.get(wid) not in (None, pid) for wid, pid in since.workers.items()
        )

    def _wait_ready_or_fail(
        self, timeout: float, *, initial: bool = False, since: ReloadMark | None = None
    ) -> None:
        assert self._log is not None
        deadline = _R.monotonic() + timeout
        pause = 0.002
        while True:
            self._log.poll()
            self._check_failure(initial)
            if since is None or self._reloaded_since(since):
                ok, waiting = self._readiness()
                if ok:
                    return
            else:
                waiting = "the reload (master re-exec or all workers replaced)"
            if _R.monotonic() > deadline:
                lines = list(self._log.lines)
                raise RealUwsgiError(
                    self._failure_message(
                        f"uWSGI not ready after {timeout:.1f}s: still waiting for {waiting}",
                        lines,
                    ),
                    log=lines,
                )
            _R.sleep(pause)
            pause = min(pause * 1.5, 0.02)

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Wait until the current generation is ready (e.g. after a worker respawn);
        returns the seconds waited."""
        self._require_running()
        t0 = _R.monotonic()
        self._wait_ready_or_fail(timeout)
        return _R.monotonic() - t0

    # ------------------------------------------------------------------------ requests
    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        timeout: float = 5.0,
        http_version: str = "1.1",
    ) -> Response:
        """One request on a fresh connection.  ``Host`` and ``Connection: close`` are added
        unless given; ``Content-Length`` is added when there is a body (or for POST/PUT/
        PATCH) unless given."""
        if isinstance(headers, Mapping):
            hdrs = list(headers.items())
        else:
            hdrs = list(headers or [])
        names = {k.lower() for k, _ in hdrs}
        host, port = self.address
        if "host" not in names:
            hdrs.insert(0, ("Host", f"{host}:{port}"))
        if "connection" not in names:
            hdrs.append(("Connection", "close"))
        if (
            "content-length" not in names
            and "transfer-encoding" not in names
            and (body or method.upper() in ("POST", "PUT", "PATCH"))
        ):
            hdrs.append(("Content-Length", str(len(body))))
        head = f"{method} {path} HTTP/{http_version}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in hdrs) + "\r\n"
        return self.request_raw(head.encode("latin-1") + body, timeout=timeout)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def request_raw(self, data: bytes, *, timeout: float = 5.0) -> Response:
        """Send raw bytes on a fresh connection, read until the server closes (or the
        response is complete and ``timeout`` expires), and parse what came back."""
        t0 = _R.monotonic()
        deadline = t0 + timeout
        raw = b""
        reason: str | None = None
        closed = False
        try:
            sock = socket.create_connection(self.address, timeout=timeout)
        except ConnectionRefusedError:
            return Response(None, [], b"", reason="refused", elapsed=_R.monotonic() - t0)
        except TimeoutError:
            return Response(None, [], b"", reason="timeout", elapsed=_R.monotonic() - t0)
        with sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                reason = "reset"
            while reason is None:
                remaining = deadline - _R.monotonic()
                if remaining <= 0:
                    reason = "timeout"
                    break
                sock.settimeout(remaining)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    reason = "timeout"
                    break
                except ConnectionResetError:
                    reason = "reset"
                    break
                if not chunk:
                    closed = True
                    break
                raw += chunk
        resp = _parse_response(raw)
        resp.elapsed = _R.monotonic() - t0
        resp.closed_by_server = closed
        if resp.status is None:
            resp.reason = resp.reason or reason or ("closed" if closed else None)
            if not raw and closed:
                resp.reason = "closed"
        elif reason is not None and not _complete(resp):
            resp.reason = reason
        return resp

    # ------------------------------------------------------------------------ control
    def _require_running(self) -> None:
        if not self.running:
            raise RealUwsgiError(
                f"uWSGI is not running (exit code {self._master_exit})", log=self.log
            )

    def signal(self, signum: int) -> None:
        """Send a UNIX signal to the master (worker 1 without a master)."""
        self._require_running()
        assert self._master_pid is not None
        os.kill(self._master_pid, signum)

    def mark(self) -> ReloadMark:
        """Snapshot (generation, worker pids) to pass to :meth:`wait_reloaded` when the
        reload is triggered by something else than :meth:`reload` (e.g. ``uwsgi.reload()``
        inside a request, a touch-reload file)."""
        assert self._log is not None
        self._log.poll()
        return ReloadMark(len(self._log.generations), dict(self._log.current.workers))

    def reload(self) -> ReloadMark:
        """Graceful reload (SIGHUP to the master).  Returns the mark it waits from."""
        mark = self.mark()
        self._last_reload_mark = mark
        self.signal(_signal.SIGHUP)
        return mark

    def wait_reloaded(self, timeout: float = 15.0, *, since: ReloadMark | None = None) -> float:
        """Wait until the reload after ``since`` (default: the last :meth:`reload`) is done
        -- the master re-exec'd (``*** Starting uWSGI`` banner; uWSGI 2.0's default), or
        with a workers-only reload (``--lazy``) every worker was replaced -- and the
        instance is ready again (same readiness as :meth:`start`).  Returns the seconds
        waited."""
        if since is None:
            since = self._last_reload_mark
            if since is None:
                raise RealUwsgiError("wait_reloaded() without reload() needs since=mark()")
        t0 = _R.monotonic()
        self._wait_ready_or_fail(timeout, since=since)
        self._last_reload_mark = None
        return _R.monotonic() - t0

    def pids(self) -> dict[tuple[str, int], int]:
        """Processes of the current generation, from the log: ``("master", 0)`` (when
        there is a master), ``("worker", id)``, ``("mule", id)``, ``("spooler", n)``
        (n = 1.. in spawn order).  Workers that died and were not respawned yet keep the
        last pid logged."""
        assert self._log is not None
        self._log.poll()
        g = self._log.current
        out: dict[tuple[str, int], int] = {}
        if g.master_pid is not None:
            out[("master", 0)] = g.master_pid
        for wid, pid in sorted(g.workers.items()):
            out[("worker", wid)] = pid
        for mid, pid in sorted(g.mules.items()):
            out[("mule", mid)] = pid
        for n, pid in enumerate(g.spoolers.values(), 1):
            out[("spooler", n)] = pid
        return out

    def worker_pids(self) -> dict[int, int]:
        return {k[1]: v for k, v in self.pids().items() if k[0] == "worker"}

    def kill_worker(
        self, n: int, *, wait_respawn: bool = True, timeout: float = 10.0
    ) -> int | None:
        """SIGKILL worker ``n``; if ``wait_respawn``, wait until the master respawned it and
        the new worker is accepting, and return the new pid."""
        self._require_running()
        assert self._log is not None
        old = self.worker_pids().get(n)
        if old is None:
            raise RealUwsgiError(f"no worker {n} in the log (workers: {self.worker_pids()})")
        spawns = self._log.current.worker_spawns
        os.kill(old, _signal.SIGKILL)
        if not wait_respawn:
            return None
        deadline = _R.monotonic() + timeout
        while True:
            self._log.poll()
            self._check_failure(False)
            g = self._log.current
            new = g.workers.get(n)
            if g.worker_spawns > spawns and new != old and self._readiness()[0]:
                return new
            if _R.monotonic() > deadline:
                raise RealUwsgiError(
                    self._failure_message(f"worker {n} not respawned after {timeout}s", self.log),
                    log=self.log,
                )
            _R.sleep(0.005)

    def wait_for_log(
        self, pattern: str | re.Pattern, timeout: float = 10.0, *, start: int = 0
    ) -> re.Match:
        """Wait for a log line (index >= ``start``) matching ``pattern`` (re.search)."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        assert self._log is not None
        deadline = _R.monotonic() + timeout
        while True:
            self._log.poll()
            lines = self._log.lines if self._final_lines is None else self._final_lines
            for ln in lines[start:]:
                m = rx.search(ln)
                if m:
                    return m
            if _R.monotonic() > deadline:
                raise RealUwsgiError(
                    f"no log line matching {rx.pattern!r} after {timeout}s\n"
                    + "\n".join(lines[-25:]),
                    log=lines,
                )
            _R.sleep(0.01)

    # ------------------------------------------------------------------------ stopping
    def stop(self, timeout: float = 5.0) -> int | None:
        """Graceful stop: SIGINT to the master, wait up to ``timeout`` for it to exit, then
        SIGKILL whatever is left in the process group.  Returns the master's exit code
        (``-9`` if it had to be SIGKILLed, ``-N`` for another signal).  Idempotent."""
        if self._sup is None:
            return self.returncode
        self._read_status()
        if self._master_pid is not None and self._master_exit is None:
            try:
                os.kill(self._master_pid, _signal.SIGINT)
            except ProcessLookupError:
                pass
            deadline = _R.monotonic() + timeout
            while self._master_exit is None and _R.monotonic() < deadline:
                self._read_status(block=min(0.05, max(0.0, deadline - _R.monotonic())))
        self._hard_kill()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group now."""
        self._hard_kill()

    def _hard_kill(self) -> None:
        sup = self._sup
        if sup is None:
            return
        pgid = self._master_pid
        if pgid is not None:
            try:
                os.killpg(pgid, _signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if sup.poll() is None:
            try:
                sup.send_signal(_signal.SIGTERM)  # supervisor: kill the rest, reap, exit
            except ProcessLookupError:
                pass
        try:
            sup.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - should never happen
            sup.kill()
            sup.wait(timeout=5)
        self._read_status()
        if self._status_r is not None:
            try:
                os.close(self._status_r)
            except OSError:
                pass
            self._status_r = None
        # the supervisor reaped every orphan; wait for the group to vanish (defensive)
        if pgid is not None:
            deadline = _R.monotonic() + 5.0
            while _group_alive(pgid) and _R.monotonic() < deadline:
                try:
                    os.killpg(pgid, _signal.SIGKILL)
                except OSError:
                    pass
                _R.sleep(0.01)
        if self._log is not None:
            self._log.flush_partial()
            self._final_lines = list(self._log.lines)
        self._sup = None
        _live.discard(self)

    def close(self) -> None:
        """Stop (if running) and delete the temporary directory with the log."""
        self.stop()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def __enter__(self) -> RealUwsgi:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # safety net
        try:
            if self._sup is not None:
                self._hard_kill()
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
        except Exception:  # noqa: BLE001, S110 - never raise from __del__
            pass

    def __repr__(self) -> str:
        state = "running" if self._sup is not None else "stopped"
        return (
            f"<RealUwsgi {state} port={self.port} pid={self._master_pid} options={self.options!r}>"
        )


class _PortInUse(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class ReloadMark:
    """Where a reload is waited from (see :meth:`RealUwsgi.mark`)."""

    generation: int
    workers: dict[int, int]


# ---------------------------------------------------------------------------------------
# HTTP response parsing
# ---------------------------------------------------------------------------------------
def _parse_response(raw: bytes) -> Response:
    if not raw:
        return Response(None, [], b"", raw=raw)
    sep = raw.find(b"\r\n\r\n")
    seplen = 4
    if sep < 0:
        sep = raw.find(b"\n\n")
        seplen = 2
    if sep < 0:
        return Response(None, [], b"", reason="malformed", raw=raw)
    head = raw[:sep].decode("latin-1")
    body = raw[sep + seplen :]
    lines = head.replace("\r\n", "\n").split("\n")
    m = re.match(r"^(HTTP/\d(?:\.\d)?) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        return Response(None, [], b"", reason="malformed", raw=raw)
    headers: list[tuple[str, str]] = []
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        headers.append((k.strip(), v.strip()))
    resp = Response(
        int(m.group(2)),
        headers,
        body,
        http_version=m.group(1),
        status_text=m.group(3) or "",
        raw=raw,
    )
    te = (resp.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        decoded = _dechunk(body)
        if decoded is not None:
            resp.body = decoded
    return resp


def _dechunk(data: bytes) -> bytes | None:
    out = b""
    pos = 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(data[pos:eol].split(b";")[0], 16)
        except ValueError:
            return None
        pos = eol + 2
        if size == 0:
            return out
        out += data[pos : pos + size]
        pos += size + 2


def _complete(resp: Response) -> bool:
    cl = resp.header("content-length")
    if cl is not None and cl.isdigit():
        return len(resp.body) >= int(cl)
    return False
