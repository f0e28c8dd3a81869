"""Properties a run must satisfy, and history checkers in Jepsen's style.

Temporal properties watch a running simulation (``prop.attach(sim)`` before it runs,
``prop.verify()`` after; a scenario lists them in ``PROPERTIES``):

* ``always(pred, kinds=...)`` — ``pred(sim)`` holds after every trace record (of those
  kinds);
* ``eventually(pred, within=S)`` — holds at some record within ``S`` virtual seconds;
* ``sometimes(pred)`` — holds in at least one run of an exploration (a single run only
  reports whether it saw it).

History checkers read a finished trace: ``spool_tasks_once``, ``cron_slots_once``,
``requests_answered``; ``cache_reads_written()`` records the history it checks (the
``cache_*`` calls of every node's app) while the run goes, like a temporal property.
Every failure is a ``PropertyViolation`` (an ``AssertionError``) naming the event, its
virtual time and the slice of trace around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._core.trace import Trace

__all__ = ["PropertyViolation", "always", "cache_reads_written", "cron_slots_once",
           "eventually", "requests_answered", "sometimes", "spool_tasks_once"]

SPOOL_OK = -2
#: Records shown on each side of a violation.
SLICE = 5


class PropertyViolation(AssertionError):
    """A property failed: ``what`` at virtual ``time``, with the trace around it."""

    def __init__(self, what: str, time: float | None = None, context: str = "") -> None:
        self.what = what
        self.time = time
        self.context = context
        at = f" at virtual time {time:.6f}" if time is not None else ""
        super().__init__(f"{what}{at}" + (f"\n{context}" if context else ""))


def _slice(trace: Trace, index: int) -> str:
    rows = []
    for i in range(max(0, index - SLICE), min(len(trace), index + SLICE + 1)):
        r = trace[i]
        mark = ">>" if i == index else "  "
        detail = " ".join(f"{k}={v!r}" for k, v in r.fields.items())
        rows.append(f"{mark} {r.time:12.6f} {r.process:<10} {r.kind:<16} {detail}")
    return "\n".join(rows)


def _violation(trace: Trace, index: int, what: str) -> PropertyViolation:
    return PropertyViolation(what, trace[index].time, _slice(trace, index))


# -- temporal properties -------------------------------------------------------------------
class _Watch:
    """A predicate evaluated after trace records while a simulation runs."""

    def __init__(self, name: str, pred: Callable[[Any], bool],
                 kinds: Iterable[str] | None) -> None:
        self.name = name
        self.pred = pred
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.sim: Any = None
        self.seen: int | None = None   # index of the first record where pred held
        self.failed: int | None = None  # index of the first record where pred failed

    def attach(self, sim: Any) -> Any:
        self.sim = sim
        trace = sim.inst.trace
        add = trace.add
        kinds = self.kinds

        def watched(time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
            add(time, process, kind, fields)
            if kinds is None or kind in kinds:
                self._after(len(trace) - 1, time)

        trace.add = watched
        return self

    def _after(self, index: int, time: float) -> None:
        if self.seen is None or self.failed is None:
            if self.pred(self.sim):
                if self.seen is None:
                    self.seen = index
            elif self.failed is None:
                self.failed = index

    def verify(self) -> None:
        raise NotImplementedError


class _Always(_Watch):
    def verify(self) -> None:
        if self.failed is not None:
            raise _violation(self.sim.trace, self.failed, f"always({self.name}) failed")


class _Eventually(_Watch):
    def __init__(self, name: str, pred: Callable[[Any], bool], within: float,
                 kinds: Iterable[str] | None) -> None:
        super().__init__(name, pred, kinds)
        self.within = within
        self.deadline = 0.0

    def attach(self, sim: Any) -> Any:
        self.deadline = sim.now + self.within
        return super().attach(sim)

    def _after(self, index: int, time: float) -> None:
        if self.seen is None and time <= self.deadline and self.pred(self.sim):
            self.seen = index

    def verify(self) -> None:
        if self.seen is None:
            raise PropertyViolation(f"eventually({self.name}) did not hold within "
                                    f"{self.within} virtual seconds", self.deadline)


class _Sometimes(_Watch):
    def verify(self) -> None:
        """A single run never fails ``sometimes``: an exploration checks ``seen``."""


def _name(pred: Callable[..., Any]) -> str:
    return getattr(pred, "__name__", repr(pred))


def always(pred: Callable[[Any], bool], *, kinds: Iterable[str] | None = None) -> _Watch:
    """``pred(sim)`` must hold after every trace record (or every record of ``kinds``)."""
    return _Always(_name(pred), pred, kinds)


def eventually(pred: Callable[[Any], bool], *, within: float,
               kinds: Iterable[str] | None = None) -> _Watch:
    """``pred(sim)`` must hold after some record within ``within`` virtual seconds."""
    if within <= 0:
        raise ValueError(f"eventually: within={within!r} must be > 0 seconds")
    return _Eventually(_name(pred), pred, within, kinds)


def sometimes(pred: Callable[[Any], bool], *, kinds: Iterable[str] | None = None) -> _Watch:
    """``pred(sim)`` must hold at least once in an exploration's runs."""
    return _Sometimes(_name(pred), pred, kinds)


# -- history checkers ------------------------------------------------------------------------
def spool_tasks_once(trace: Trace, *, pending: Iterable[str] | None = None,
                     rerun_after_kill: bool = False) -> None:
    """No spool task lost (removed without a ``SPOOL_OK`` run, or gone without one when
    ``pending`` lists the files still on disk), none run again after a run that
    returned ``SPOOL_OK``, and none run twice unless the previous run asked for a retry
    (any other result) — or, with ``rerun_after_kill``, was killed (uWSGI's spooler is
    at-least-once: a task killed mid-run runs again)."""
    last: dict[str, tuple[str, int]] = {}  # path -> (outcome of the last run, index)
    enqueued: dict[str, int] = {}
    for i, r in enumerate(trace):
        kind = r.kind
        if not kind.startswith("spool."):
            continue
        path = str(r.fields.get("path"))
        if kind == "spool.enqueue":
            enqueued[path] = i
        elif kind == "spool.start":
            previous = last.get(path)
            if previous is not None:
                outcome = previous[0]
                allowed = outcome == "retry" or (outcome == "aborted" and rerun_after_kill)
                if not allowed:
                    raise _violation(trace, i, f"spool task {path} ran twice (its previous "
                                               f"run was {outcome})")
            last[path] = ("running", i)
        elif kind == "spool.end":
            last[path] = ("done" if r["rc"] == SPOOL_OK else "retry", i)
        elif kind == "spool.abort":
            last[path] = ("aborted", i)
        elif kind == "spool.remove" and r.get("reason") != "done" and path in enqueued:
            raise _violation(trace, i, f"spool task {path} lost ({r.get('reason')})")
    if pending is not None:
        still = set(pending)
        for path, i in enqueued.items():
            if path not in still and last.get(path, ("",))[0] != "done":
                raise _violation(trace, i, f"spool task {path} lost: never completed and "
                                           f"no longer on disk")


def requests_answered(trace: Trace) -> None:
    """Every request submitted got a response, or was dropped for a traced reason: its
    worker died (kill, harakiri, reload) or the instance stopped while it waited."""
    submitted: dict[int, int] = {}
    started: dict[int, tuple[str, int]] = {}
    ended: set[int] = set()
    died: dict[str, list[float]] = {}
    stopped_at: float | None = None
    for i, r in enumerate(trace):
        if r.kind == "request.submit":
            submitted[r["id"]] = i
        elif r.kind == "request.start":
            started[r["id"]] = (r.process, i)
        elif r.kind == "request.end":
            ended.add(r["id"])
        elif r.kind in ("death", "harakiri", "fault.kill"):
            died.setdefault(r.fields.get("process", r.process), []).append(r.time)
        elif r.kind == "instance.stop" and stopped_at is None:
            stopped_at = r.time
    for ident, i in submitted.items():
        if ident in ended:
            continue
        if ident in started:
            process, j = started[ident]
            if any(t >= trace[j].time for t in died.get(process, ())):
                continue
        elif stopped_at is not None or "master" in died:
            continue
        else:
            continue  # still queued: the run ended before a worker took it
        raise _violation(trace, i, f"request {ident} was neither answered nor dropped "
                                   f"with a traced reason")


def cron_slots_once(sim: Any) -> None:
    """Every slot of every ``--cron``/``add_cron`` entry in the run's wall-clock span
    fired exactly once. uWSGI logs nothing when a clock step or DST makes it skip or
    repeat a slot, so both are violations here."""
    import time as _time

    cron = sim.inst.subsystems.get("cron")
    if cron is None:
        return
    clock = sim.clock
    first_offset = clock.wall_offset - sum(d for _t, d in clock.steps)
    steps = sorted(clock.steps)

    def wall(t: float) -> float:
        return float(first_offset + t + sum(d for ts, d in steps if ts <= t))

    trace = sim.trace
    specs = [(s, "cron.signal", s.sig) for s in cron.signal_crons] + \
            [(s, "cron.command", s.command) for s in cron.command_crons]
    for spec, kind, key in specs:
        fired: dict[tuple[int, ...], int] = {}
        for i, r in enumerate(trace):
            if r.kind != kind or (r.get("num") if kind == "cron.signal" else
                                  r.get("command")) != key:
                continue
            slot = tuple(_time.localtime(int(wall(r.time)))[:5])
            if slot in fired:
                raise _violation(trace, i, f"cron {spec!r} fired twice in slot "
                                           f"{slot}")
            fired[slot] = i
        begin = int(first_offset) // 60 * 60 + 60
        for minute in range(begin, int(first_offset + sim.now) - 59, 60):
            tm = _time.localtime(minute)
            if spec.matches(tm) and tuple(tm[:5]) not in fired:
                raise PropertyViolation(f"cron {spec!r} never fired for slot "
                                        f"{tuple(tm[:5])} (uWSGI logs nothing)",
                                        minute - first_offset)



# -- the cache history ---------------------------------------------------------------------------
#: The ``cache_*`` functions and where their key and cache name are: (key index, name
#: index); a key index of None: the call acts on the whole cache (``cache_clear``).
_CACHE_CALLS = {"cache_get": (0, 1), "cache_num": (0, 1), "cache_set": (0, 3),
                "cache_update": (0, 3), "cache_del": (0, 1), "cache_clear": (None, 0),
                "cache_inc": (0, 3), "cache_dec": (0, 3), "cache_mul": (0, 3),
                "cache_div": (0, 3)}


class _CacheHistory:
    """``cache_reads_written()``: the history of the app's cache calls, per node, and its
    check (see that function)."""

    name = "cache_reads_written"
    seen: int | None = None  # a checker, not a ``sometimes``: nothing to see

    def __init__(self) -> None:
        #: (time, node, cache, key, op, value): value is what a read returned, what a
        #: write stored (math: the value after it), None for a delete or clear
        self.history: list[tuple[float, str, str, bytes | None, str, bytes | None]] = []
        #: values written to each (cache, key) on any node (replication carries them)
        self.written: dict[tuple[str, bytes], set[bytes]] = {}
        #: per node, (cache, key) -> (time, whether it may vanish: an expiry was set)
        self.last: dict[str, dict[tuple[str, bytes], tuple[float, bool]]] = {}
        #: per node, (cache, key) -> when the reload that emptied it happened
        self.lost: dict[str, dict[tuple[str, bytes], float]] = {}
        self.failure: PropertyViolation | None = None
        self._wrapped: dict[str, Any] = {}

    def attach(self, target: Any) -> _CacheHistory:
        """Watch ``target``: a ``Simulation`` or every node of a ``Cluster``."""
        if getattr(target, "mode", "sim") != "sim":
            raise ValueError(f"cache_reads_written() records the app's cache calls in sim "
                             f"mode; in {target.mode} mode they happen in other processes")
        nodes = getattr(target, "nodes", None)
        instances = [n.inst for n in nodes.values()] if nodes is not None else [target.inst]
        for inst in instances:
            self._watch(inst)
        return self

    def _watch(self, inst: Any) -> None:
        node = inst.node
        trace = inst.trace
        add = trace.add

        def watched(time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
            add(time, process, kind, fields)
            if inst.facade is not self._wrapped.get(node):  # started, or reloaded
                self._wrap(inst, node)

        trace.add = watched
        if inst.facade is not None:
            self._wrap(inst, node)

    def _wrap(self, inst: Any, node: str) -> None:
        """Record the calls of this (new) ``uwsgi`` module: its caches are new too."""
        module = inst.facade
        self._wrapped[node] = module
        lost = self.lost.setdefault(node, {})
        for slot, (_at, may_vanish) in self.last.get(node, {}).items():
            if not may_vanish:
                lost[slot] = inst.kernel.now
        self.last[node] = {}
        for op, (key_at, name_at) in _CACHE_CALLS.items():
            original = module.__dict__.get(op)
            if original is not None:
                module.__dict__[op] = self._recorder(inst, node, op, original, key_at,
                                                     name_at)

    def _recorder(self, inst: Any, node: str, op: str, original: Any, key_at: int | None,
                  name_at: int) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            name = args[name_at] if len(args) > name_at else None
            if isinstance(name, str) and "@" in name:
                return result  # a remote cache: that node's history has it
            key = args[key_at] if key_at is not None and len(args) > key_at else None
            if isinstance(key, str):
                key = key.encode()
            if key_at is not None and not isinstance(key, bytes):
                return result  # refused arguments (uWSGI raised or returned None)
            self._record(inst, node, op, str(name or ""), key, args, result)
            return result

        call.__name__ = op
        return call

    def _record(self, inst: Any, node: str, op: str, name: str, key: bytes | None,
                args: tuple[Any, ...], result: Any) -> None:
        now = inst.kernel.now
        last, lost = self.last[node], self.lost[node]
        if key is None:  # cache_clear
            for slot in [k for k in (*last, *lost) if k[0] == name]:
                last.pop(slot, None)
                lost.pop(slot, None)
            self.history.append((now, node, name, None, op, None))
            return
        slot = (name, key)
        if op == "cache_get":
            self.history.append((now, node, name, key, op, result))
            self._check_read(inst, slot, result, now)
        elif op == "cache_num":  # the counter in the first 8 bytes; 0 when absent
            nums = {_num(v) for v in self.written.get(slot, ())}
            value = result if result in nums or result != 0 else None
            self.history.append((now, node, name, key, op, value))
            self._check_read(inst, slot, value, now, nums)
        elif op == "cache_del":
            last.pop(slot, None)
            lost.pop(slot, None)
            self.history.append((now, node, name, key, op, None))
        elif result:  # a write that took: what the cache now holds
            caches = inst.subsystems.get("cache")
            cache = caches.local(name or None) if caches is not None else None
            stored = cache.items.get(key) if cache is not None else None
            if isinstance(stored, int):  # a counter kept unencoded (cache.py)
                stored = stored.to_bytes(8, "little")
            if stored is not None:
                expires = args[2] if len(args) > 2 else 0
                self.written.setdefault(slot, set()).add(bytes(stored))
                last[slot] = (now, bool(expires) or getattr(cache, "purge_lru", False))
                lost.pop(slot, None)
                self.history.append((now, node, name, key, op, bytes(stored)))

    def _check_read(self, inst: Any, slot: tuple[str, bytes], value: Any, now: float,
                    allowed: set[Any] | None = None) -> None:
        if self.failure is not None:
            return
        name, key = slot
        node = inst.node
        where = f"cache {name or '(default)'!s} key {key!r} on {node}"
        what = None
        written = self.last[node].get(slot)
        emptied = self.lost[node].get(slot)
        if value is not None:
            if value not in (self.written.get(slot, set()) if allowed is None else allowed):
                what = f"{where} read {value!r}, a value no node wrote"
        elif written is not None and not written[1]:
            what = (f"{where} read None after it was written at {written[0]:.6f} "
                    f"(no delete, clear or expiry since)")
        elif emptied is not None:
            what = (f"{where} read None: the reload at {emptied:.6f} emptied the cache "
                    f"(uWSGI's caches live in the master, which a reload executes anew)")
        if what is not None:  # the trace up to the read (the request being served)
            self.failure = PropertyViolation(what, now, _slice(inst.trace, len(inst.trace) - 1))

    def verify(self) -> None:
        if self.failure is not None:
            raise self.failure


def _num(value: bytes) -> int:
    """What ``cache_num`` reads from a value: its first 8 bytes, signed little-endian."""
    return int.from_bytes(value[:8].ljust(8, b"\0"), "little", signed=True)


def cache_reads_written() -> _CacheHistory:
    """Cache reads see a value written, per node: every ``cache_get`` that returns a
    value (``cache_get``, ``cache_num``) returns one some node wrote to that key (set,
    update or math), and one that
    returns None follows a delete, a clear or an expiry of that key on its node, never
    just a write (a reload empties uWSGI's caches: named when it is the cause). Attach
    it before the run (``PROPERTIES = [cache_reads_written()]``, or ``.attach(sim)``)
    and ``verify()`` after; ``.history`` is what it saw. In ``sim`` mode (fork mode's
    apps call their own copy of the module)."""
    return _CacheHistory()
