"""The driver interface a scenario's ``timeline(sim)`` is written against.

Both :class:`simuwsgi.Simulation` (``sim`` mode, virtual time) and
:class:`simuwsgi.modes.real.RealRun` (``real`` mode, the real uWSGI server on the real clock)
implement it, so one timeline runs in every mode. In real mode a virtual second of the
timeline is a real second, so keep scenario timings short.

What a timeline may use:

``now``
    seconds since the instance was ready;
``submit(method, path, headers=None, body=b"", at=None)``
    send a request now (or at ``at`` seconds) and go on; the handle has ``done`` and
    ``response``;
``request(method, path, ...)`` / ``get(path)``
    send a request and wait for its response (a :class:`simuwsgi.server.workers.Response`:
    ``status`` (None: no reply, ``reason`` says why), ``headers``, ``body``, ``worker``);
``wait(handles, timeout=None)``
    wait until submitted requests are complete;
``advance(seconds)`` / ``run_until(t)``
    let time pass;
``signal(num)``
    raise uWSGI signal ``num`` (in real mode through the harness's ``modifier1 110``
    socket: the packet is read by a worker, which forwards it to the master);
``kill(name)``
    SIGKILL a process (``worker1``, ``mule2``, ``spooler1``);
``touch(path)``
    update a file's modification time (file monitors, touch-reload);
``reload()``
    graceful reload (SIGHUP to the master);
``step_clock(seconds)``
    step the wall clock -- ``sim`` only: real mode refuses it
    (:class:`NotSupportedInMode`), it cannot move the host's clock;
``trace``, ``log``
    the run's trace (one schema in all modes) and uWSGI's log lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from ._errors import SimulationError

__all__ = ["MODES", "Driver", "NotSupportedInMode"]

#: the modes a scenario can run in (``fork`` lands with its own module)
MODES = ("sim", "real")


class NotSupportedInMode(SimulationError):
    """A timeline asked a mode for something it cannot do (e.g. a clock step in real
    mode)."""


@runtime_checkable
class Driver(Protocol):
    """What ``timeline(sim)`` and ``check(sim)`` may call, in every mode."""

    mode: str

    @property
    def now(self) -> float: ...

    @property
    def trace(self) -> Any: ...

    @property
    def log(self) -> list[str]: ...

    def start(self) -> Any: ...

    def close(self) -> None: ...

    def submit(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
               at: float | None = None) -> Any: ...

    def request(self, method: str, path: str, *, headers: Any = None, body: bytes = b"",
                timeout: float | None = None) -> Any: ...

    def get(self, path: str, **kwargs: Any) -> Any: ...

    def wait(self, requests: Any | Iterable[Any], *, timeout: float | None = None) -> None: ...

    def advance(self, seconds: float) -> None: ...

    def run_until(self, when: Any) -> None: ...

    def signal(self, num: int) -> None: ...

    def kill(self, process: str) -> None: ...

    def touch(self, path: str) -> None: ...

    def reload(self) -> None: ...

    def step_clock(self, seconds: float) -> None: ...
