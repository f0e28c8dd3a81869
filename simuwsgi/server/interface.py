"""What a subsystem may see of its instance: the narrow interface to the server model.

A subsystem (``simuwsgi.subsystems``) is handed its uWSGI instance at ``create(inst)``
and keeps it. It reads options and shared state through it, records trace events,
writes log lines, and asks the master to act (kill a process, arm a harakiri, reload).
That is all it may do: it never imports ``master`` (the concrete ``Instance``), so
the master can import every subsystem without an import circle, and a subsystem can be
read, and tested, against this page alone.

Also here: the two exception values every layer above the kernel must recognise
(defined with the rest of a virtual process's ways to end, in ``containment``),
``ProcessExit`` (a virtual process ends) and ``CONTROL`` (the simulator's own
exceptions travelling through app frames), and ``AFTER_REAP``, the master loop's
phase for its periodic checks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .._core.kernel import NORMAL
from .containment import CONTROL, ProcessExit

if TYPE_CHECKING:
    from .._core.clock import VirtualClock
    from .._core.kernel import Kernel
    from .._core.trace import Trace
    from .config import Options
    from .processes import Master, Mule, Spooler, UProcess, Worker

__all__ = ["AFTER_REAP", "BEFORE_REAP", "CONTROL", "HOOK_ERROR", "HOOK_EXTRA", "HOOK_FILTER",
           "HOOK_RESPONSE", "Instance", "ProcessExit"]

#: The kernel priority of the master's per-iteration checks (worker lifetime, evil
#: memory, cheaper): they run after that iteration's waitpid() has reaped and respawned.
AFTER_REAP = NORMAL + 1
#: The checks at the top of the master loop, before its waitpid() (mercy, cheaper).
BEFORE_REAP = NORMAL - 1

#: What a response's writer (``wire.Connection``) asks the instance's Python side, as
#: bits of ``Instance.writer_hooks`` (made at start, read once per connection): each
#: header looked up in the removed ones (``--rem-header``, a route's ``delheader``),
#: extra header lines (``--add-header``, a route's ``addheader``), the error routes as
#: a status is prepared, the response routes as the headers go out.
HOOK_FILTER, HOOK_EXTRA, HOOK_ERROR, HOOK_RESPONSE = 1, 2, 4, 8


class Instance(Protocol):
    """One uWSGI instance, as its subsystems see it (``server.master.Instance`` is it)."""

    # -- identity and configuration
    opts: Options
    #: Its node name (a cluster's; ``node0`` alone).
    node: str
    hostname: str
    numproc: int
    cores: int
    harakiri: int
    #: (tolerance, exception disabled, exception only) of a failed write; None: default
    write_policy: tuple[int, bool, bool] | None
    #: ``--add-header``'s lines
    additional_headers: tuple[str, ...]
    #: the ``HOOK_*`` bits the response writer asks about
    writer_hooks: int
    #: ``--check-interval``: the seconds between the master's checks (1)
    check_interval: int
    max_requests: int
    buffer_size: int
    has_master: bool
    #: ``uwsgi.opt``'s table of the removed 1.x options (the legacy API's, made once)
    legacy_options: list[int]

    # -- time, trace and log
    kernel: Kernel
    clock: VirtualClock
    trace: Trace
    faults: Any

    @property
    def now(self) -> float: ...
    def wall(self) -> float: ...
    def record(self, kind: str, proc: UProcess | None = None, **fields: Any) -> None: ...
    def log(self, line: str, proc: UProcess | None = None) -> None: ...
    def log_verbose(self, line: str, proc: UProcess | None = None) -> None: ...
    def log_dated(self, line: str, proc: UProcess | None = None) -> None: ...
    def log_raw(self, line: str, proc: UProcess | None = None,
                request: bool = False) -> None: ...

    # -- processes and shared state
    ready: bool
    stopped: bool
    master: Master | None
    workers: dict[int, Worker]
    mules: dict[int, Mule]
    spoolers: dict[int, Spooler]
    idle_workers: list[Worker]
    listen_queue: deque[Any]
    subsystems: dict[str, Any]
    facade: Any
    app: Any

    @property
    def master_loop(self) -> Any: ...
    def next_pid(self) -> int: ...
    def next_tick(self, after: float) -> float: ...
    def call_python(self, func: Callable[..., Any], *args: Any) -> tuple[bool, Any]: ...

    # -- what a subsystem may ask the master to do
    def kill(self, proc: UProcess, reason: str, signum: int | None = 9) -> None: ...
    def arm_harakiri(self, proc: UProcess, seconds: int, user: bool = False) -> None: ...
    def request_reload(self) -> None: ...
    def reload_workers(self) -> None: ...
    def reload_mules(self) -> None: ...
    def reload_spoolers(self) -> None: ...
    def chain_reload(self, touched: str | None) -> None: ...
    def go_cheap(self) -> None: ...
    def request_brutal_reload(self) -> None: ...
    def shutdown(self) -> None: ...
    def graceful_shutdown(self) -> None: ...
