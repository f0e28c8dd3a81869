"""Faults as data: frozen values a simulation applies through its kernel.

A fault says what goes wrong (``Kill('spooler1')``, ``ClockStep(-3600)``,
``DiskFault('full')``...) and when: at a virtual time (``at=12.5``, seconds since the
start) or on a trigger (``when=DuringSpoolTask()``, ``when=AfterRequests('/pay', 3)``,
``when=InSignalHandler(17)``, ``when=DuringReload()``). A ``FaultPlan`` is a tuple of
faults; ``sim.apply(plan)`` (or a scenario's ``FAULTS = ...``) schedules them. Every
fault that fires leaves a ``fault.*`` record in the trace, so a run with faults is as
reproducible as one without: same scenario, seed and plan, same digest.

Values compare and sort, and their ``repr`` is the code that builds them, so a plan
prints as a replay: ``FaultPlan.parse(repr(plan)) == plan``. ``parse`` reads that code
without ``eval`` (only the names below, with literal arguments).

How triggers act: the kernel runs one virtual process at a time, so a fault on a
trigger takes effect when the process that hit the trigger next yields (parks on
``time.sleep``, a lock, I/O...). A kill "while spool task X runs" therefore lands inside
the task if the task takes virtual time, and right after it if it does not — the same
two outcomes a real ``kill -9`` racing a task can have.

What a fault does, as on a real Linux host:

* ``Kill(process)`` — SIGKILL. ``master``: uWSGI's children are started with
  ``PR_SET_PDEATHSIG`` = SIGKILL, so they all die with it and the instance is gone.
  Another process is respawned by the master as after any ``kill -9``.
* ``ClockStep(delta)`` — an NTP step of the wall clock (monotonic time goes on);
  ``ClockDrift(rate, duration)`` — a clock running ``rate`` fast (negative: slow), as
  steps of ``rate`` seconds every virtual second for ``duration``.
* ``TimeZone(tz)`` — the host's zone changes (``TZ``): local time, and cron, follow.
* ``SlowRequests(seconds, duration)`` — each request of the window waits ``seconds``
  before the app runs (a slow backend): harakiri's ground.
* ``ExceptionStorm(duration, target)`` — for ``duration`` every call into the app
  (``'requests'``: the WSGI callable; ``'all'``: also signal handlers, mules, spooler
  functions) raises ``FaultInjected``.
* ``DiskFault(kind, duration)`` on the spool directories: ``'full'`` (``ENOSPC`` on
  write), ``'readonly'`` (``EROFS`` on open for writing and on unlink), ``'eio'``
  (``EIO`` on write and unlink) and ``'torn'`` (the next spool file is left half
  written, then ``EIO``). uWSGI 2.0.30's spooler writes spool files in place and never
  renames them: there is no rename to fail.
* ``CacheFull(cache, duration)`` — every set in the cache fails as when it is full.
* ``SignalQueueFull(duration)`` — the master's signal socket is full: signals raised
  meanwhile are lost (``signal.lost``).

Network faults act on the links of a :class:`~simuwsgi.Cluster` (``cluster.apply(plan)``,
a scenario's ``FAULTS`` with ``NODES``), through ``cluster.net``'s verbs, each recorded
in the trace:

* ``Partition(("a",), ("b", "c"), duration=30)`` — cut the links between the groups
  (``duration`` None: until a ``Heal``; at the end of a duration every cut heals);
* ``Heal()`` — every partition ends; waiting stream bytes go on;
* ``Loss("a", "b", 0.3)``, ``Delay("a", "b", 0.5)`` (seconds added one way),
  ``Duplicate("a", "b", 0.1)``, ``Reorder("a", "b", 0.2)``, ``Corrupt("a", "b", 0.1)``
  (one byte of a datagram changed) on the link between two nodes
  (both ways unless ``one_way=True``), for ``duration`` seconds (None: for good).

In a cluster every fault names the node it happens on with ``node=`` (``Kill('worker1',
node='b', at=5)``); a network fault with a trigger watches the events of its ``node``
(default: the first node). A ``Simulation`` (one node, no network) refuses network
faults.
"""

from __future__ import annotations

import ast
import errno
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "AfterRequests", "CacheFull", "ClockDrift", "ClockStep", "DiskFault", "DuringReload",
    "DuringSpoolTask", "ExceptionStorm", "Fault", "FaultInjected", "FaultPlan",
    "InSignalHandler", "Kill", "SendOnly", "SignalQueueFull", "SlowRequests", "TimeZone",
    "Trigger", "register", "Partition", "Heal", "Loss", "Delay", "Duplicate", "Reorder",
    "Corrupt",
    "NetworkFault",
]

#: The names ``Kill`` takes (the processes ``Simulation.process`` knows).
_PROCESS = re.compile(r"master|(worker|mule|spooler)[1-9][0-9]*\Z")
#: Every fault and trigger class by name: what ``FaultPlan.parse`` may build.
_KINDS: dict[str, type] = {}


def register(cls: type) -> type:
    """Make a ``Fault`` or ``Trigger`` subclass known to ``FaultPlan.parse``."""
    _KINDS[cls.__name__] = cls
    return cls


class FaultInjected(Exception):
    """Raised in app code by an ``ExceptionStorm``."""


def _code(value: Any) -> str:
    """``repr`` of a frozen value as the call that builds it, defaults left out."""
    positional, named = [], []
    for f in fields(value):
        v = getattr(value, f.name)
        if f.metadata.get("positional"):
            positional.append((repr(v), f.default == v))
        elif f.default is not v and v != f.default and not (
                f.name == "at" and isinstance(value, SendOnly)):
            named.append(f"{f.name}={v!r}")
    while positional and positional[-1][1]:  # trailing defaults left out
        positional.pop()
    parts = [text for text, _default in positional] + named
    return f"{type(value).__name__}({', '.join(parts)})"


def _pos(default: Any = None, **kw: Any) -> Any:
    """A field shown positionally in the repr."""
    return field(default=default, metadata={"positional": True}, **kw)


def _nth(state: dict[str, Any], nth: int) -> bool:
    """Count one occurrence; True at the ``nth``."""
    state["seen"] = state.get("seen", 0) + 1
    return bool(state["seen"] == nth)


class _Ordered:
    """Values of different kinds sort together: by kind, then by their code."""

    def _key(self) -> tuple[str, str]:
        return type(self).__name__, repr(self)

    def __lt__(self, other: Any) -> bool:
        if not isinstance(other, _Ordered):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: Any) -> bool:
        return bool(self == other or self < other)

    def __gt__(self, other: Any) -> bool:
        if not isinstance(other, _Ordered):
            return NotImplemented
        return other < self

    def __ge__(self, other: Any) -> bool:
        return bool(self == other or self > other)


# -- triggers ------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Trigger(_Ordered):
    """When a fault fires: ``matches`` sees every trace record of the run, with a dict
    of its own for counting (a trigger value is shared by the runs of a plan)."""

    def matches(self, state: dict[str, Any], process: str, kind: str,
                fields: dict[str, Any]) -> bool:
        raise NotImplementedError

    def __repr__(self) -> str:
        return _code(self)


@register
@dataclass(frozen=True, repr=False)
class DuringSpoolTask(Trigger):
    """While the ``nth`` spool task whose file path contains ``match`` runs."""

    match: str = _pos("")
    nth: int = 1

    def matches(self, state: dict[str, Any], process: str, kind: str,
                fields: dict[str, Any]) -> bool:
        if kind != "spool.start" or self.match not in fields["path"]:
            return False
        return _nth(state, self.nth)


@register
@dataclass(frozen=True, repr=False)
class InSignalHandler(Trigger):
    """Inside the ``nth`` run of a handler of uWSGI signal ``num``."""

    num: int = _pos(0)
    nth: int = 1

    def matches(self, state: dict[str, Any], process: str, kind: str,
                fields: dict[str, Any]) -> bool:
        if kind != "signal.handler" or fields["num"] != self.num:
            return False
        return _nth(state, self.nth)


@register
@dataclass(frozen=True, repr=False)
class AfterRequests(Trigger):
    """After the ``count``-th request to ``path`` (the path without the query) ends."""

    path: str = _pos("/")
    count: int = _pos(1)

    def matches(self, state: dict[str, Any], process: str, kind: str,
                fields: dict[str, Any]) -> bool:
        if kind == "request.start":
            state.setdefault("paths", {})[fields["id"]] = fields["path"].split("?", 1)[0]
        elif kind == "request.end" and state.get("paths", {}).pop(fields["id"], None) == self.path:
            return _nth(state, self.count)
        return False


@register
@dataclass(frozen=True, repr=False)
class DuringReload(Trigger):
    """When the master begins the ``nth`` reload."""

    nth: int = 1

    def matches(self, state: dict[str, Any], process: str, kind: str,
                fields: dict[str, Any]) -> bool:
        if kind != "reload.begin":
            return False
        return _nth(state, self.nth)


# -- faults --------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class Fault(_Ordered):
    """Something that goes wrong, ``at`` a virtual time or ``when`` a trigger fires.

    Subclasses define ``apply(injector)``, run in the kernel's hub at that moment.
    """

    at: float | None = field(default=None, kw_only=True)
    when: Trigger | None = field(default=None, kw_only=True)
    #: The cluster node it happens on (a ``Simulation`` has one: None).
    node: str | None = field(default=None, kw_only=True)

    #: The trace kind recorded when the fault fires.

    def __post_init__(self) -> None:
        if (self.at is None) == (self.when is None):
            raise ValueError(f"{type(self).__name__}: give exactly one of at=SECONDS or "
                             f"when=TRIGGER, not {self.at!r} and {self.when!r}")
        if self.at is not None and (not isinstance(self.at, (int, float)) or self.at < 0):
            raise ValueError(f"{type(self).__name__}: at={self.at!r} must be seconds >= 0")

    def apply(self, injector: Injector) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return _code(self)

    def _key(self) -> tuple[Any, ...]:
        return (self.at if self.at is not None else float("inf"),) + super()._key()

    def with_time(self, at: float) -> Fault:
        """The same fault at another time (for shrinking)."""
        return self._with(at=at)

    def on(self, node: str) -> Fault:
        """The same fault on cluster node ``node``."""
        return self._with(node=node)

    def _with(self, **changes: Any) -> Fault:
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        values.update(changes)
        return type(self)(**values)


def _positive(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a number of seconds > 0")


@register
@dataclass(frozen=True, repr=False)
class Kill(Fault):
    """SIGKILL the process named ``process`` (``master``, ``worker2``, ``mule1``,
    ``spooler1``)."""

    process: str = field(metadata={"positional": True})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.process, str) or not _PROCESS.match(self.process):
            raise ValueError(f"Kill: {self.process!r} is not a process name: use master, "
                             f"workerN, muleN or spoolerN (N from 1)")

    def apply(self, injector: Injector) -> None:
        injector.kill(self.process)


@register
@dataclass(frozen=True, repr=False)
class ClockStep(Fault):
    """An NTP step of the wall clock by ``delta`` seconds (negative: backwards)."""

    delta: float = _pos(0.0)

    def apply(self, injector: Injector) -> None:
        injector.step_clock(self.delta)


@register
@dataclass(frozen=True, repr=False)
class ClockDrift(Fault):
    """The wall clock gains ``rate`` seconds per second (negative: loses) for
    ``duration`` seconds."""

    rate: float = _pos(0.001)
    duration: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("duration", self.duration)

    def apply(self, injector: Injector) -> None:
        injector.drift(self.rate, self.duration)


@register
@dataclass(frozen=True, repr=False)
class TimeZone(Fault):
    """The host's time zone becomes ``tz`` (an IANA name)."""

    tz: str = _pos("UTC")

    def __post_init__(self) -> None:
        super().__post_init__()
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(self.tz)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"TimeZone: unknown time zone {self.tz!r}") from exc

    def apply(self, injector: Injector) -> None:
        injector.set_tz(self.tz)


@register
@dataclass(frozen=True, repr=False)
class ExceptionStorm(Fault):
    """For ``duration`` seconds, calls into the app raise ``FaultInjected``
    (``target``: ``'requests'`` or ``'all'``)."""

    duration: float = _pos(10.0)
    target: str = "requests"

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("duration", self.duration)
        if self.target not in ("requests", "all"):
            raise ValueError(f"ExceptionStorm: target={self.target!r} must be 'requests' "
                             f"or 'all'")

    def apply(self, injector: Injector) -> None:
        injector.storm(self.duration, self.target)


@register
@dataclass(frozen=True, repr=False)
class SlowRequests(Fault):
    """For ``duration`` seconds every request takes ``seconds`` longer before the app
    answers (a slow database): with ``--harakiri``, workers get killed."""

    seconds: float = _pos(30.0)
    duration: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("seconds", self.seconds)
        _positive("duration", self.duration)

    def apply(self, injector: Injector) -> None:
        injector.window("slow", self.duration, repr(float(self.seconds)))


#: DiskFault kinds: which file operations fail, with which errno.
DISK_ERRORS: dict[str, dict[str, int]] = {
    "full": {"write": errno.ENOSPC},
    "readonly": {"open": errno.EROFS, "unlink": errno.EROFS},
    "eio": {"write": errno.EIO, "unlink": errno.EIO},
    "torn": {},  # one file, half written: see ``Injector.torn_write``
}


@register
@dataclass(frozen=True, repr=False)
class DiskFault(Fault):
    """The spool directories' disk fails for ``duration`` seconds (``fault``: ``full``,
    ``readonly``, ``eio``, or ``torn``: the next spool file written is left half
    written)."""

    fault: str = _pos("full")
    duration: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("duration", self.duration)
        if self.fault not in DISK_ERRORS:
            raise ValueError(f"DiskFault: {self.fault!r} is not one of "
                             f"{', '.join(DISK_ERRORS)}")

    def apply(self, injector: Injector) -> None:
        injector.disk(self.fault, self.duration)


@register
@dataclass(frozen=True, repr=False)
class CacheFull(Fault):
    """For ``duration`` seconds every set in cache ``cache`` (default: every cache)
    fails as when it is full."""

    cache: str = _pos("")
    duration: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("duration", self.duration)

    def apply(self, injector: Injector) -> None:
        injector.window("cache_full", self.duration, self.cache)
        caches = injector.inst.subsystems.get("cache")
        if caches is not None:  # its fast paths step aside from now on
            caches.faulted.append(self)


@register
@dataclass(frozen=True, repr=False)
class SendOnly(Fault):
    """Only the first ``count`` requests the scenario submits are sent; the others end at
    once, unsent. Not a failure of uWSGI: how shrinking gives a run fewer requests."""

    count: int = _pos(0)

    def __post_init__(self) -> None:
        if self.at is None and self.when is None:
            object.__setattr__(self, "at", 0)
        super().__post_init__()
        if self.at != 0 or self.when is not None:
            raise ValueError("SendOnly holds from the start: it takes no at= or when=")
        if not isinstance(self.count, int) or self.count < 0:
            raise ValueError(f"SendOnly: count={self.count!r} must be an int >= 0")

    def apply(self, injector: Injector) -> None:
        injector.send_limit = self.count


@register
@dataclass(frozen=True, repr=False)
class SignalQueueFull(Fault):
    """For ``duration`` seconds the master's signal queue is full: signals are lost."""

    duration: float = _pos(10.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive("duration", self.duration)

    def apply(self, injector: Injector) -> None:
        injector.window("signal_queue_full", self.duration, "")


# -- the cluster's network ----------------------------------------------------------------
class NetworkFault(Fault):
    """A fault of the cluster's links (``Injector.net``)."""

    def apply(self, injector: Injector) -> None:
        net = injector.net
        if net is None:
            injector.skip(f"{self!r}: a network fault needs a cluster (simuwsgi.Cluster)")
            return
        self.act(net, injector)

    def act(self, net: Any, injector: Injector) -> None:
        raise NotImplementedError


def _names(group: Any) -> tuple[str, ...]:
    return (group,) if isinstance(group, str) else tuple(group)


@register
@dataclass(frozen=True, repr=False, init=False)
class Partition(NetworkFault):
    """Cut the links between ``groups`` of node names for ``duration`` seconds (None:
    until a ``Heal``)."""

    groups: tuple[tuple[str, ...], ...] = _pos(())
    duration: float | None = None

    def __init__(self, *groups: Any, at: float | None = None, when: Trigger | None = None,
                 node: str | None = None, duration: float | None = None) -> None:
        if len(groups) == 1 and groups[0] and not isinstance(groups[0][0], str):
            groups = tuple(groups[0])  # Partition((("a",), ("b",))), as the repr shows
        object.__setattr__(self, "groups", tuple(_names(g) for g in groups))
        for name, value in (("at", at), ("when", when), ("node", node),
                            ("duration", duration)):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.groups) < 2 or not all(self.groups):
            raise ValueError(f"Partition needs two or more non-empty groups of node names, "
                             f"not {self.groups!r}")
        if self.duration is not None:
            _positive("duration", self.duration)

    def __repr__(self) -> str:
        named = [f"{n}={getattr(self, n)!r}" for n in ("at", "when", "node", "duration")
                 if getattr(self, n) is not None]
        return f"Partition({', '.join([repr(self.groups)] + named)})"

    def _with(self, **changes: Any) -> Fault:
        values = {"at": self.at, "when": self.when, "node": self.node,
                  "duration": self.duration, **changes}
        return Partition(*self.groups, **values)

    def act(self, net: Any, injector: Injector) -> None:
        net.partition(*self.groups)
        if self.duration is not None:
            injector.kernel.schedule(self.duration, net.heal)


@register
@dataclass(frozen=True, repr=False)
class Heal(NetworkFault):
    """Every partition ends (``cluster.net.heal()``)."""

    def act(self, net: Any, injector: Injector) -> None:
        net.heal()


@dataclass(frozen=True, repr=False)
class _LinkFault(NetworkFault):
    """One setting of the link between nodes ``a`` and ``b`` changes for ``duration``
    seconds (None: for good), both ways unless ``one_way``."""

    a: str = _pos("")
    b: str = _pos("")
    value: float = _pos(0.0)
    duration: float | None = None
    one_way: bool = False
    #: The ``LinkSettings`` field it sets.
    setting = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.a or not self.b:
            raise ValueError(f"{type(self).__name__}: name the two nodes of the link")
        if self.duration is not None:
            _positive("duration", self.duration)

    def act(self, net: Any, injector: Injector) -> None:
        before = getattr(net.link(self.a, self.b), self.setting)
        value = before + self.value if self.setting == "latency" else self.value
        net.set_link(self.a, self.b, one_way=self.one_way, **{self.setting: value})
        if self.duration is not None:
            injector.kernel.schedule(self.duration, lambda: net.set_link(
                self.a, self.b, one_way=self.one_way, **{self.setting: before}))


@register
@dataclass(frozen=True, repr=False)
class Loss(_LinkFault):
    """A share ``value`` of the packets on the link is lost (TCP: retransmitted late)."""

    setting = "loss"


@register
@dataclass(frozen=True, repr=False)
class Delay(_LinkFault):
    """``value`` seconds more latency on the link."""

    setting = "latency"


@register
@dataclass(frozen=True, repr=False)
class Duplicate(_LinkFault):
    """A share ``value`` of the datagrams on the link arrive twice."""

    setting = "duplicate"


@register
@dataclass(frozen=True, repr=False)
class Corrupt(_LinkFault):
    """A share ``value`` of the datagrams on the link arrive with one byte changed (on
    a TCP stream: retransmitted late)."""

    setting = "corrupt"


@register
@dataclass(frozen=True, repr=False)
class Reorder(_LinkFault):
    """A share ``value`` of the datagrams on the link arrive after later ones."""

    setting = "reorder"


# -- plans ---------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class FaultPlan:
    """A list of faults, applied together by ``Simulation.apply``."""

    faults: tuple[Fault, ...] = ()

    def __init__(self, *faults: Fault) -> None:
        if len(faults) == 1 and isinstance(faults[0], (list, tuple)):
            faults = tuple(faults[0])
        for f in faults:
            if not isinstance(f, Fault):
                raise TypeError(f"FaultPlan takes faults, not {f!r}")
        object.__setattr__(self, "faults", tuple(faults))

    def __repr__(self) -> str:
        return f"FaultPlan({', '.join(map(repr, self.faults))})"

    def __len__(self) -> int:
        return len(self.faults)

    def __iter__(self) -> Any:
        return iter(self.faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def spec(self) -> str:
        """The plan as ``--faults`` text: its faults separated by ``; ``."""
        return "; ".join(map(repr, self.faults))

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """A plan from ``--faults`` text: ``"Kill('spooler1', at=5); ClockStep(-60,
        at=9)"`` or a ``FaultPlan(...)`` repr. Only fault and trigger names, with
        literal arguments."""
        text = text.strip()
        if not text:
            return cls()
        try:
            tree = ast.parse(text.replace(";", ","), mode="eval").body
        except SyntaxError as exc:
            raise ValueError(f"bad fault plan {text!r}: {exc.msg}") from None
        if isinstance(tree, ast.Call) and getattr(tree.func, "id", None) == "FaultPlan":
            items = tree.args
        else:
            items = list(tree.elts) if isinstance(tree, ast.Tuple) else [tree]
        return cls(*(_build(node, text) for node in items))

    @classmethod
    def coerce(cls, value: Any) -> FaultPlan:
        """A plan from a plan, a fault, a list of faults or ``--faults`` text."""
        if isinstance(value, FaultPlan):
            return value
        if isinstance(value, Fault):
            return cls(value)
        if isinstance(value, str):
            return cls.parse(value)
        if value is None:
            return cls()
        return cls(*value)


def _build(node: ast.AST, text: str) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        kind = _KINDS.get(node.func.id)
        if kind is None:
            raise ValueError(f"bad fault plan {text!r}: unknown fault {node.func.id!r} "
                             f"(known: {', '.join(sorted(_KINDS))})")
        args = [_build(a, text) for a in node.args]
        kwargs = {k.arg: _build(k.value, text) for k in node.keywords if k.arg}
        try:
            return kind(*args, **kwargs)
        except TypeError as exc:
            raise ValueError(f"bad fault plan {text!r}: {exc}") from None
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(f"bad fault plan {text!r}: {ast.unparse(node)!r} is not a fault "
                         f"or a literal") from None


# -- applying ------------------------------------------------------------------------------
class Injector:
    """Applies a plan to one simulation: schedules timed faults on its kernel, watches
    its trace for triggers, and holds the windows (disk, cache, signals, storms) the
    subsystems consult."""

    def __init__(self, sim: Any, net: Any = None) -> None:
        self.sim = sim
        self.inst = sim.inst
        self.kernel = sim.kernel
        #: The cluster's network (``cluster.net``) for network faults; None alone.
        self.net = net
        #: Active windows by name: (until, argument) pairs.
        self.windows: dict[str, list[tuple[float, str]]] = {}
        #: Faults waiting for their trigger, with the trigger's counting state.
        self._armed: list[tuple[Fault, dict[str, Any]]] = []
        self._torn = False
        self.inst.faults = self
        trace = self.inst.trace
        add = trace.add

        def watched(time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
            add(time, process, kind, fields)
            if self._armed:
                self._observe(process, kind, fields)

        trace.add = watched
        self._wrap_calls()
        #: Requests the scenario submitted, and how many may be sent (``SendOnly``).
        self.submitted = 0
        self.send_limit: int | None = None
        submit = sim.submit

        def counted_submit(method: str, path: str, **kw: Any) -> Any:
            self.submitted += 1
            if self.send_limit is None or self.submitted <= self.send_limit:
                return submit(method, path, **kw)
            from .server.workers import Request

            req = Request(method, path, kw.get("headers"), kw.get("body", b""),
                          self.kernel.now)
            req.fail(f"not sent: {self.send_limit} requests only (SendOnly)")
            return req

        sim.submit = counted_submit

    def schedule(self, plan: FaultPlan) -> None:
        for fault in plan:
            if isinstance(fault, SendOnly):
                self._fire(fault, "")  # before the timeline submits anything
            elif fault.when is not None:
                self._armed.append((fault, {}))
            else:
                self.kernel.at(float(fault.at or 0.0), self._fire, fault, "")

    def _observe(self, process: str, kind: str, fields: dict[str, Any]) -> None:
        for entry in list(self._armed):
            fault, state = entry
            assert fault.when is not None
            if fault.when.matches(state, process, kind, fields):
                self._armed.remove(entry)
                self.kernel.call_soon(self._fire, fault, f"{kind} in {process}")

    def _fire(self, fault: Fault, trigger: str) -> None:
        fields = {"fault": repr(fault)}
        if trigger:
            fields["trigger"] = trigger
        self.record("fault", **fields)
        fault.apply(self)

    def record(self, kind: str, **fields: Any) -> None:
        self.inst.record(kind, self.inst.master, **fields)

    # -- what faults do ------------------------------------------------------------------
    def kill(self, name: str) -> None:
        inst = self.inst
        proc = None
        if inst.stopped:
            why = "the instance is stopped"
        else:
            try:
                proc = self.sim.process(name)
                why = "" if proc.alive else "already dead"
            except KeyError as exc:
                why = str(exc).strip('"')
        if proc is None or why:
            self.skip(f"kill {name}: {why}")
            return
        self.record("fault.kill", pid=proc.pid, process=name)
        if proc is not inst.master:
            inst.kill(proc, "killed")
            return
        # PR_SET_PDEATHSIG: every child gets SIGKILL with the master.
        inst.stopped = True
        for child in self.sim.processes():
            inst.kill(child, "master killed" if child is not proc else "killed")
        for req in list(inst.listen_queue):
            req.fail("connection refused: the master was killed", self.kernel.now)
        inst.listen_queue.clear()

    def skip(self, why: str) -> None:
        """A fault that cannot act now: traced, and said in the log."""
        self.record("fault.skip", why=why)
        self.inst.log(f"[simuwsgi] fault skipped: {why}")

    def step_clock(self, delta: float) -> None:
        self.record("clock.step", delta=delta)
        self.sim.clock.step(delta)

    def drift(self, rate: float, duration: float) -> None:
        for second in range(1, int(duration) + 1):
            self.kernel.schedule(second, self.sim.clock.step, rate)

    def set_tz(self, tz: str) -> None:
        from ._core.clock import _apply_tz

        self.sim.clock.tz = tz
        _apply_tz(tz)
        self.sim.clock.step(0.0)  # cron and the like re-plan on a step

    def window(self, name: str, duration: float, arg: str) -> None:
        self.windows.setdefault(name, []).append((self.kernel.now + duration, arg))

    def active(self, name: str, arg: str = "") -> bool:
        """Whether a window ``name`` (for ``arg``, or for every one) is open now."""
        entries = self.windows.get(name)
        if not entries:
            return False
        now = self.kernel.now
        return any(until > now and (not a or a == arg) for until, a in entries)

    def storm(self, duration: float, target: str) -> None:
        self.window("storm", duration, target)

    def disk(self, fault: str, duration: float) -> None:
        self.window("disk", duration, fault)
        self._torn = fault == "torn"

    def disk_error(self, op: str, path: str) -> None:
        """Raise the ``OSError`` an open disk fault gives ``op`` (open, write, unlink)."""
        now = self.kernel.now
        for until, fault in self.windows.get("disk", ()):
            code = DISK_ERRORS[fault].get(op)
            if until > now and code is not None:
                raise OSError(code, os.strerror(code), path)

    def torn_write(self) -> bool:
        """True once after a ``torn`` disk fault: that spool file is left half written."""
        torn, self._torn = self._torn, False
        return torn and self.active("disk", "torn")

    def _wrap_calls(self) -> None:
        """Storms: while one is on, calls into the app raise ``FaultInjected`` — the WSGI
        callable (``requests``), and with ``all`` every ``call_python`` (signal handlers,
        mules, the spooler function). Wrapped in this process, so that fork mode, whose
        user code runs in children, sees the same storm."""
        inst = self.inst
        app = inst.app
        resolve = app.resolve

        def resolve_with_storms(func: Any) -> Any:
            target = resolve(func)
            if not ("storm" in self.windows or "slow" in self.windows) or not (
                    func in app.apps.values() or any(
                        func in w.apps.values() for w in inst.workers.values())):
                return target
            if self.active("storm", "requests"):
                return _raiser
            if self._slow_delay():
                def slow_app(*args: Any) -> Any:
                    self._slow_down()
                    return target(*args)

                return slow_app
            return target

        app.resolve = resolve_with_storms
        forks = inst.forks
        if forks is not None:
            call_app = forks.call_app

            def call_app_with_storms(w: Any, req: Any) -> Any:
                if "storm" in self.windows and self.active("storm", "requests"):
                    return self._stormed()
                if "slow" in self.windows and self._slow_delay():
                    self._slow_down()
                return call_app(w, req)

            forks.call_app = call_app_with_storms
        call_python = inst.call_python

        def call_python_with_storms(func: Any, *args: Any) -> tuple[bool, Any]:
            if "storm" in self.windows and self.active("storm", "all"):
                self._stormed()
                return False, None
            ok, result = call_python(func, *args)
            return ok, result

        inst.call_python = call_python_with_storms

    def _slow_delay(self) -> float:
        """The longest delay of the ``SlowRequests`` windows open now (0: none)."""
        now = self.kernel.now
        return max((float(arg) for until, arg in self.windows.get("slow", ())
                    if until > now), default=0.0)

    def _slow_down(self) -> None:
        """A ``SlowRequests`` window: the worker waits before the app runs (harakiri's
        clock is already ticking)."""
        delay = self._slow_delay()
        self.kernel.wake(self.kernel.current, None, delay)
        self.kernel.park(f"slow request ({delay} s, SlowRequests)")

    def _stormed(self) -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
        """The app raised ``FaultInjected`` before ``start_response``: logged, and the
        response uWSGI gives (none)."""
        from .server.workers import _exception_response

        self.inst.log(f"{FaultInjected.__module__}.{FaultInjected.__name__}: exception "
                      f"storm (simuwsgi.faults.ExceptionStorm)")
        return _exception_response()


def _raiser(*_args: Any, **_kw: Any) -> Any:
    raise FaultInjected("exception storm (simuwsgi.faults.ExceptionStorm)")

