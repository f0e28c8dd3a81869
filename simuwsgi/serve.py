"""``simuwsgi serve``: a simulated instance on the sockets its options name.

``--socket``/``--uwsgi-socket`` addresses speak the uwsgi protocol, ``--http-socket``
addresses HTTP, with the limits of ``--buffer-size``, ``--max-vars``, ``--limit-post``
and ``--socket-timeout``, ``--listen`` as the backlog and, as uWSGI does on Linux,
``TCP_DEFER_ACCEPT`` (``--socket-timeout`` seconds) unless ``--no-defer-accept``; a
``--stats`` address answers each connection with the stats document. The simulation is
paced by the real clock (see
:class:`~simuwsgi.net.SimulatedNode`) and stops when the instance stops
(``uwsgi.stop()``), after ``duration`` real seconds, or on a signal that stops it.

Signals sent to the ``serve`` process act on the simulated master as they do on real
uWSGI 2.0.30's (checked against the real server): SIGINT and SIGQUIT shut it down
(``goodbye to uWSGI.``, exit status 0), SIGHUP is a graceful reload, SIGTERM a brutal
reload (with ``--die-on-term`` SIGTERM shuts down and SIGQUIT reloads brutally).

:class:`ServedSimulation` runs the same thing on a helper thread for tests and
embedding: the simulation belongs to that thread while it runs (its clock patch
applies there only); inspect it with :meth:`ServedSimulation.call` or after
:meth:`ServedSimulation.stop`.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import trio

from .net._address import listen
from .net._node import SimulatedNode
from .net._server import UwsgiServer, limits_from
from .net._stats import serve_stats

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Bound", "ServedSimulation", "limits_from", "serve_simulation"]

_T = TypeVar("_T")

_UWSGI_SOCKETS = ("socket", "uwsgi-socket")
_HTTP_SOCKETS = ("http-socket",)


@dataclass(frozen=True, kw_only=True, slots=True)
class Bound:
    """A listening socket: the address as configured, the one bound, the protocol."""

    option: str
    address: str
    protocol: str


@dataclass
class _Run:
    bound: list[Bound] = field(default_factory=list)
    node: SimulatedNode | None = None
    server: UwsgiServer | None = None


async def serve_simulation(
    sim: Any,
    *,
    duration: float | None = None,
    log: TextIO | None = None,
    keep_log: bool = True,
    signals: bool = False,
    task_status: trio.TaskStatus[list[Bound]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Bind the sockets of ``sim``'s options, start ``sim`` and serve it (see module doc).

    ``task_status.started`` receives the bound addresses; ``log`` gets uWSGI's log
    lines as they appear (with ``keep_log=False`` they are then dropped from
    ``sim.log``, so a long run does not accumulate them on disk either; the trace and
    the log keep only their newest rows in memory, see ``simuwsgi._core.trace``).
    ``signals=True`` (main thread only) routes SIGINT, SIGQUIT, SIGTERM and SIGHUP to
    the simulated master (see the module doc).
    """
    opts = sim.opts
    wanted = [(name, value, "uwsgi") for name in _UWSGI_SOCKETS for value in opts.strings(name)]
    wanted += [(name, value, "http") for name in _HTTP_SOCKETS for value in opts.strings(name)]
    if not wanted:
        raise ValueError("nothing to serve: give --socket and/or --http-socket addresses")
    listeners = []
    bound = []
    backlog = opts.int("listen", 100)
    defer = 0 if opts.flag("no-defer-accept") else opts.int("socket-timeout", 4)
    for name, value, protocol in wanted:
        listener = await listen(value, backlog=backlog, defer_accept=defer)
        listeners.append((listener, protocol))
        here = listener.socket.getsockname()
        text = f"{here[0]}:{here[1]}" if isinstance(here, tuple) else value
        bound.append(Bound(option=name, address=text, protocol=protocol))
    stats_at = opts.str("stats")
    stats_listener = None
    if stats_at:
        stats_listener = await listen(stats_at, backlog=backlog)
        here = stats_listener.socket.getsockname()
        bound.append(Bound(option="stats", protocol="stats",
                           address=f"{here[0]}:{here[1]}" if isinstance(here, tuple)
                           else stats_at))
    sink = sim.inst.log_sink
    # the master writes the log (--logger, --log-encoder...): the terminal gets what it
    # writes there (encoded; nothing once a logger has the lines), as uWSGI's stdout
    terminal: list[bytes] | None = None
    if log is not None and sink is not None and sink.master is not None:
        terminal = sink.terminal = []
    if not sim.started:
        sim.start()
    inst = sim.inst
    node = SimulatedNode(sim)
    printed = [0]

    def flush_log() -> None:
        if log is None:
            return
        if terminal is not None:
            _write_terminal(log, terminal)
            if not keep_log:
                inst.log_lines.clear()
            return
        lines = inst.log_lines
        if len(lines) == printed[0]:  # nothing new (most pacing steps)
            return
        # one write for the step's lines: a request's line is one write(), as in uWSGI
        # (without keep_log every line is new: the spool is read without a slice)
        new = lines[printed[0]:] if printed[0] else lines
        log.write("".join([f"{line}\n" for _t, _p, line in new]))
        if keep_log:
            printed[0] = len(lines)
        else:
            lines.clear()
        log.flush()

    node.on_progress = flush_log
    # a uWSGI worker (each of its cores) serves one connection from accept to close
    server = UwsgiServer(node.handle, limits=limits_from(opts), answer_now=node.answer_now,
                         hostname=inst.hostname.encode(), log=lambda line: inst.log(line),
                         workers=inst.numproc * inst.cores)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            if signals:
                await nursery.start(_master_signals, node)
            if stats_listener is not None:
                nursery.start_soon(serve_stats, stats_listener, inst)
                inst.log(f"simuwsgi: serving stats on {bound[-1].address} (stats)")
            for (listener, protocol), where in zip(listeners, bound[:len(listeners)],
                                                   strict=True):
                await nursery.start(functools.partial(
                    server.serve, listener, protocol=protocol, socket_name=where.address))
                inst.log(f"simuwsgi: serving {protocol} on {where.address} ({where.option})")
            flush_log()
            task_status.started(bound)
            if duration is not None:
                with trio.move_on_after(duration):
                    await _wait_stopped(node)
            else:
                await _wait_stopped(node)
            nursery.cancel_scope.cancel()
    finally:
        for listener, _protocol in listeners:
            with trio.CancelScope(shield=True):
                await listener.aclose()
        if stats_listener is not None:
            with trio.CancelScope(shield=True):
                await stats_listener.aclose()
        flush_log()


def _write_terminal(log: TextIO, terminal: list[bytes]) -> None:
    """The log master's terminal output, bytes as they are (a text stream without a
    binary buffer gets them decoded)."""
    if not terminal:
        return
    data = b"".join(terminal)
    terminal.clear()
    buffer = getattr(log, "buffer", None)
    if buffer is not None:
        log.flush()
        buffer.write(data)
        buffer.flush()
    else:
        log.write(data.decode("utf-8", "surrogateescape"))
        log.flush()


_MASTER_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)


async def _master_signals(node: SimulatedNode,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Deliver the signals the ``serve`` process gets to the simulated master."""
    inst = node.inst
    with trio.open_signal_receiver(*_MASTER_SIGNALS) as received:
        task_status.started()
        async for signum in received:
            if signum == signal.SIGHUP:
                inst.request_reload()
            elif signum == signal.SIGQUIT:
                inst.request_stop()  # a brutal reload with --die-on-term
            elif signum == signal.SIGTERM and not inst.die_on_term:
                inst.request_brutal_reload()
            else:
                inst.kernel.call_soon(inst.shutdown)
            node.kick()


async def _wait_stopped(node: SimulatedNode) -> None:
    while not node.inst.stopped:
        await trio.sleep(0.05)


class ServedSimulation:
    """Serve a simulation from a helper thread (for tests and embedding).

    ``ServedSimulation(options, app_dir=...)`` builds ``Simulation(options,
    network='real', **kwargs)`` *in* the helper thread (a simulation's virtual processes
    belong to the thread that created it), starts it there and closes it when the
    context exits::

        with ServedSimulation(["--socket", "127.0.0.1:3031", ...], app_dir=d) as served:
            NodeClient(served.address()).ping()
    """

    def __init__(self, options: Any, *, duration: float | None = None,
                 log: TextIO | None = None, startup_timeout: float = 30.0,
                 **sim_kwargs: Any) -> None:
        self.options = options
        self.sim_kwargs = {"network": "real", **sim_kwargs}
        self.sim: Any = None
        self.duration = duration
        self.log = log
        self.startup_timeout = startup_timeout
        self.bound: list[Bound] = []
        self.error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="simuwsgi-serve", daemon=True)

    def address(self, protocol: str = "uwsgi") -> str:
        for b in self.bound:
            if b.protocol == protocol:
                return b.address
        raise LookupError(f"no {protocol} socket is served")

    def _main(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    self.bound = await nursery.start(functools.partial(
                        serve_simulation, self.sim, duration=self.duration, log=self.log))
                    self._ready.set()

        try:
            from .simulation import Simulation

            self.sim = Simulation(self.options, **self.sim_kwargs)
            trio.run(main)
        except BaseException as exc:  # noqa: BLE001 - reported to the owner
            self.error = exc
        finally:
            try:
                if self.sim is not None:
                    self.sim.close()
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc
            self._ready.set()

    def start(self) -> ServedSimulation:
        self._thread.start()
        if not self._ready.wait(self.startup_timeout):
            raise TimeoutError("the served simulation did not start in time")
        if self.error is not None:
            raise RuntimeError(f"the served simulation failed to start: {self.error!r}") \
                from self.error
        return self

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` in the serving thread (between two pacing steps)."""
        if self._token is None:
            raise RuntimeError("not running")
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close the simulation and join the thread."""
        if self._token is not None and self._thread.is_alive():
            scope = self._scope
            if scope is not None:
                try:
                    trio.from_thread.run_sync(scope.cancel, trio_token=self._token)
                except trio.RunFinishedError:
                    pass
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the serving thread did not stop")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(sim: Any, *, duration: float | None = None, log: TextIO | None = None) -> None:
    """Blocking: serve ``sim`` in this thread until it stops (the ``serve`` command)."""
    try:
        trio.run(lambda: serve_simulation(sim, duration=duration, keep_log=False,
                                          log=log if log is not None else sys.stderr,
                                          signals=True))
    finally:
        sim.close()
