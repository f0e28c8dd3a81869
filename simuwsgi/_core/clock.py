"""Virtual time, and the patch that shows it to application code.

uWSGI reads the wall clock (``time()``, ``gettimeofday``) for everything a Python app
can observe: ``started_on``, cache expiry, cron (through ``localtime()``), spool file
names. A simulation keeps two clocks over the kernel's virtual seconds:

* wall time = ``wall_offset + kernel.now``; the scenario can *step* it (NTP jump, DST
  experiments) without touching the monotonic clock;
* monotonic time = ``MONOTONIC_BASE + kernel.now``, never going backwards.

The patch shows virtual time to code in the thread running (or that opened) a
simulation: ``time.time/time_ns/monotonic/perf_counter/localtime/gmtime/ctime/asctime/
strftime/sleep`` and ``clock_gettime(_ns)`` (its wall and monotonic clocks) are replaced
*in their module* before the app is imported, so that
``from time import time`` in app code binds the virtual clock (code that bound the real
functions earlier keeps the real clock); ``datetime.datetime.now/utcnow`` and
``datetime.date.today`` are replaced *in the classes* (their type dicts), so the values
are real ``datetime``/``date`` objects — they pickle, copy and compare exactly as
without the patch — and every binding of ``datetime`` sees the virtual clock. Each
replacement looks up the clock of the calling thread (a stack per thread: nested
simulations, and simulations in several threads, each see their own) and is the real
function when there is none; the patch goes in with the first open simulation and comes
out with the last, whatever the order and thread of the closes. ``freezegun`` users can
start a simulation inside ``freeze_time`` and it starts at the frozen instant.

The time zone is applied the way uWSGI's C code sees it: ``TZ`` is set and
``time.tzset()`` called for the simulation's lifetime, so ``localtime()``, ``mktime()``
and naive ``datetime`` conversions agree, DST rules included.

This is the only module of the simulator that reads real time (``RealClock``, used by
``real`` mode and by pacing in ``simuwsgi serve``; ``simuwsgi.real_time`` gives the test
code the same).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import sys
import threading
import time as _time
import types
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import SimulationError

if TYPE_CHECKING:
    from .kernel import Kernel

__all__ = ["VirtualClock", "RealClock", "TimePatch", "parse_start", "DEFAULT_START"]

# The real functions, bound before anybody can patch them. They live in a
# namespace, not as module attributes, because freezegun rebinds module
# attributes that hold the real clock functions while it is active.
_R = types.SimpleNamespace(
    time=_time.time,
    time_ns=_time.time_ns,
    monotonic=_time.monotonic,
    monotonic_ns=_time.monotonic_ns,
    perf_counter=_time.perf_counter,
    perf_counter_ns=_time.perf_counter_ns,
    localtime=_time.localtime,
    gmtime=_time.gmtime,
    ctime=_time.ctime,
    asctime=_time.asctime,
    strftime=_time.strftime,
    sleep=_time.sleep,
    clock_gettime=_time.clock_gettime,
    clock_gettime_ns=_time.clock_gettime_ns,
    datetime=_dt.datetime,
    date=_dt.date,
    getpid=os.getpid,
)

#: Default first instant of a simulation: 2026-01-01 00:00:00 in its time zone.
DEFAULT_START = "2026-01-01T00:00:00"
#: Virtual monotonic clock reading at simulation start (an arbitrary, realistic value).
MONOTONIC_BASE = 1000.0


class RealClock:
    """The real clock, for real mode and real-time pacing. Nothing else may read it."""

    @staticmethod
    def time() -> float:
        return _R.time()

    @staticmethod
    def monotonic() -> float:
        return _R.monotonic()

    @staticmethod
    def sleep(seconds: float) -> None:
        _R.sleep(seconds)


def _frozen_instant() -> float | None:
    """The instant of an active ``freezegun.freeze_time``, if any (else None)."""
    api = sys.modules.get("freezegun.api")
    factories = getattr(api, "freeze_factories", None)
    if not factories:
        return None
    frozen = factories[-1]()  # a naive datetime in UTC
    return float((frozen - _R.datetime(1970, 1, 1)).total_seconds())


def parse_start(start: Any, tz: str | None) -> float:
    """Epoch seconds for ``start``: None, an epoch number, an ISO string or a datetime.

    Naive values are read in ``tz`` (UTC if None). ``None`` means the instant of an
    active ``freeze_time``, else ``DEFAULT_START``.
    """
    if start is None:
        frozen = _frozen_instant()
        if frozen is not None:
            return frozen
        start = DEFAULT_START
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    if isinstance(start, str):
        try:
            start = _R.datetime.fromisoformat(start.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"start must be an ISO 8601 date-time such as '2026-03-29T01:59:00', "
                f"got {start!r}") from None
    if isinstance(start, _R.date) and not isinstance(start, _R.datetime):
        start = _R.datetime(start.year, start.month, start.day)
    if not isinstance(start, _R.datetime):
        raise TypeError(f"start must be None, a number, a string or a datetime, "
                        f"not {type(start).__name__}")
    if start.tzinfo is None:
        from zoneinfo import ZoneInfo

        start = start.replace(tzinfo=ZoneInfo(tz or "UTC"))
    return start.timestamp()


class VirtualClock:
    """Wall and monotonic time over a kernel's virtual seconds."""

    #: a slot for the offset the master loop's C twin reads (subsystems/_cmaster.c)
    __slots__ = ("__dict__", "wall_offset")

    def __init__(self, kernel: Kernel, start: float, tz: str | None = None) -> None:
        self.kernel = kernel
        self.tz = tz or "UTC"
        self.wall_offset = float(start)
        #: Wall-clock steps made by the scenario, as (virtual time, delta) pairs.
        self.steps: list[tuple[float, float]] = []
        self._listeners: list[Callable[[float], None]] = []
        #: ``time.sleep`` in a virtual process of this clock (given by ``TimePatch``).
        self.park: Callable[[float], None] = _R.sleep

    def time(self) -> float:
        return self.wall_offset + self.kernel.now

    def monotonic(self) -> float:
        return MONOTONIC_BASE + self.kernel.now

    def step(self, delta: float) -> None:
        """Jump the wall clock by ``delta`` seconds (negative = backwards)."""
        self.wall_offset += delta
        self.steps.append((self.kernel.now, delta))
        for listener in list(self._listeners):
            listener(delta)

    def set(self, epoch: float) -> None:
        """Set the wall clock to ``epoch`` (a step of whatever size that takes)."""
        self.step(epoch - self.time())

    def on_step(self, listener: Callable[[float], None]) -> None:
        """Call ``listener(delta)`` after every wall-clock step (cron re-plans on it)."""
        self._listeners.append(listener)

    def localtime(self, secs: float | None = None) -> _time.struct_time:
        """``localtime()`` in the simulation's zone (valid while the patch is in)."""
        return _R.localtime(self.time() if secs is None else secs)



# -- the patch -----------------------------------------------------------------------------
# One installation serves every open simulation: it goes in when the first one starts and
# comes out when the last one closes, in whatever order and from whatever thread they
# close. Each replacement looks up the clock active on the calling thread (the innermost
# simulation open or running there) and, without one, is the real function.

_lock = threading.Lock()
#: Per thread (``threading.get_ident()``): the clocks open or running there, innermost last.
_stacks: dict[int, list[VirtualClock]] = {}
#: Per thread: the innermost of its stack (what every replacement reads).
_active: dict[int, VirtualClock] = {}
_get_ident = threading.get_ident
_active_clock = _active.get
#: What the installation replaced, to put back at the last close.
_saved: list[tuple[Any, str, Any]] = []
_saved_tz: list[str | None] = []


def _v_time() -> float:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.time()
    return clock.wall_offset + clock.kernel.now


def _v_time_ns() -> int:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.time_ns()
    return int(round((clock.wall_offset + clock.kernel.now) * 1e9))


def _v_monotonic() -> float:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.monotonic()
    return MONOTONIC_BASE + clock.kernel.now


def _v_monotonic_ns() -> int:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.monotonic_ns()
    return int(round((MONOTONIC_BASE + clock.kernel.now) * 1e9))


def _v_perf_counter() -> float:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.perf_counter()
    return MONOTONIC_BASE + clock.kernel.now


def _v_perf_counter_ns() -> int:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.perf_counter_ns()
    return int(round((MONOTONIC_BASE + clock.kernel.now) * 1e9))


#: ``clock_gettime``'s clocks that read the wall clock, and those that read a monotonic
#: one (the coarse variants have no constant in ``time``: Linux numbers them 5 and 6).
#: The CPU-time clocks stay the host's: virtual processes spend no virtual time.
_WALL_CLOCKS = {_time.CLOCK_REALTIME, 5}
_MONOTONIC_CLOCKS = {_time.CLOCK_MONOTONIC, getattr(_time, "CLOCK_MONOTONIC_RAW", 4),
                     getattr(_time, "CLOCK_BOOTTIME", 7), 6}
_TAI = getattr(_time, "CLOCK_TAI", None)
_VIRTUAL_CLOCKS = _WALL_CLOCKS | _MONOTONIC_CLOCKS | {_TAI}


def _v_clock_gettime(clk_id: int) -> float:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _R.clock_gettime(clk_id)
    if clk_id in _WALL_CLOCKS:
        return clock.wall_offset + clock.kernel.now
    if clk_id in _MONOTONIC_CLOCKS:
        return MONOTONIC_BASE + clock.kernel.now
    if clk_id == _TAI:  # the wall clock plus the kernel's whole-second TAI offset
        offset = round(_R.clock_gettime(_TAI) - _R.clock_gettime(_time.CLOCK_REALTIME))
        return clock.wall_offset + clock.kernel.now + offset
    return _R.clock_gettime(clk_id)


def _v_clock_gettime_ns(clk_id: int) -> int:
    clock = _active_clock(_get_ident())
    if clock is None or clk_id not in _VIRTUAL_CLOCKS:
        return _R.clock_gettime_ns(clk_id)
    return int(round(_v_clock_gettime(clk_id) * 1e9))


def _v_localtime(secs: float | None = None) -> _time.struct_time:
    return _R.localtime(_v_time() if secs is None else secs)


def _v_gmtime(secs: float | None = None) -> _time.struct_time:
    return _R.gmtime(_v_time() if secs is None else secs)


def _v_ctime(secs: float | None = None) -> str:
    return _R.ctime(_v_time() if secs is None else secs)


def _v_asctime(t: Any = None) -> str:
    return _R.asctime(_v_localtime() if t is None else t)


def _v_strftime(fmt: str, t: Any = None) -> str:
    return _R.strftime(fmt, _v_localtime() if t is None else t)


def _v_sleep(secs: float) -> None:
    clock = _active_clock(_get_ident())
    if clock is None or clock.kernel.current is None:
        _R.sleep(secs)
    else:
        clock.park(secs)


#: A fork mode child's virtual pid (``set_process_pid``): ``os.getpid()`` in its own
#: threads, which have no clock of their own (the whole OS process is that process).
_process_pid: list[int | None] = [None]


def set_process_pid(pid: int) -> None:
    """In a fork mode child: every thread of this OS process is virtual process ``pid``."""
    _process_pid[0] = pid


def _v_getpid() -> int:
    clock = _active_clock(_get_ident())
    proc = None if clock is None else clock.kernel.current
    if proc is not None:
        return int(proc.pid)
    pid = _process_pid[0]
    return _R.getpid() if pid is None else pid


# ``datetime.now()`` and friends are changed in the classes themselves (their type
# dicts), not by putting subclasses in the ``datetime`` module: the values they make are
# real ``datetime``/``date`` objects, so they pickle, copy and compare exactly as
# without the patch, and ``from datetime import datetime`` made before the patch sees
# the virtual clock too.
_REAL_NOW = _dt.datetime.__dict__["now"]
_REAL_UTCNOW = _dt.datetime.__dict__["utcnow"]
_REAL_TODAY = _dt.date.__dict__["today"]
_UTCNOW_DEPRECATED = (
    "datetime.datetime.utcnow() is deprecated and scheduled for removal in a future "
    "version. Use timezone-aware objects to represent datetimes in UTC: "
    "datetime.datetime.now(datetime.UTC)." if sys.version_info >= (3, 12) else "")


def _dt_now(cls: type, tz: _dt.tzinfo | None = None) -> Any:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _REAL_NOW.__get__(None, cls)(tz)
    return cls.fromtimestamp(clock.wall_offset + clock.kernel.now, tz)  # type: ignore[attr-defined]


def _dt_utcnow(cls: type) -> Any:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _REAL_UTCNOW.__get__(None, cls)()
    if _UTCNOW_DEPRECATED:  # what the real one says, from its caller's line
        warnings.warn(_UTCNOW_DEPRECATED, DeprecationWarning, stacklevel=2)
    aware = cls.fromtimestamp(clock.wall_offset + clock.kernel.now, _dt.timezone.utc)  # type: ignore[attr-defined]
    return aware.replace(tzinfo=None)


def _date_today(cls: type) -> Any:
    clock = _active_clock(_get_ident())
    if clock is None:
        return _REAL_TODAY.__get__(None, cls)()
    return cls.fromtimestamp(clock.wall_offset + clock.kernel.now)  # type: ignore[attr-defined]


def _set_attr(owner: Any, name: str, value: Any) -> None:
    """``setattr``, also on a C type that refuses it (``datetime.datetime``): write its
    type dict and invalidate CPython's method cache, as ``setattr`` would."""
    try:
        setattr(owner, name, value)
        return
    except TypeError:
        if not isinstance(owner, type):
            raise
    import ctypes
    import gc

    (type_dict,) = gc.get_referents(owner.__dict__)
    type_dict[name] = value
    ctypes.pythonapi.PyType_Modified(ctypes.py_object(owner))


def _named(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    func.__name__ = name
    func.__qualname__ = name
    return func


# ``staticmethod``: the replacements are plain functions, which a class attribute would
# turn into methods; ``logging.Formatter.converter = time.localtime`` must stay callable
# with one argument, as the builtin is.
_TIME_REPLACEMENTS: dict[str, Callable[..., Any]] = {
    "time": _v_time, "time_ns": _v_time_ns, "monotonic": _v_monotonic,
    "monotonic_ns": _v_monotonic_ns, "perf_counter": _v_perf_counter,
    "perf_counter_ns": _v_perf_counter_ns, "localtime": _v_localtime, "gmtime": _v_gmtime,
    "ctime": _v_ctime, "asctime": _v_asctime, "strftime": _v_strftime, "sleep": _v_sleep,
    "clock_gettime": _v_clock_gettime, "clock_gettime_ns": _v_clock_gettime_ns,
}
_REPLACEMENTS: list[tuple[Any, str, Any]] = [
    *((_time, name, staticmethod(_named(func, name))) for name, func in _TIME_REPLACEMENTS.items()),
    (os, "getpid", staticmethod(_named(_v_getpid, "getpid"))),
    (_dt.datetime, "now", classmethod(_named(_dt_now, "now"))),
    (_dt.datetime, "utcnow", classmethod(_named(_dt_utcnow, "utcnow"))),
    (_dt.date, "today", classmethod(_named(_date_today, "today"))),
]


def _install() -> None:
    for owner, name, value in _REPLACEMENTS:
        _saved.append((owner, name, owner.__dict__[name]))
        _set_attr(owner, name, value)
    _saved_tz.append(os.environ.get("TZ"))


def _uninstall() -> None:
    for owner, name, value in reversed(_saved):
        _set_attr(owner, name, value)
    _saved.clear()
    _apply_tz(_saved_tz.pop())


def _apply_tz(tz: str | None) -> None:
    if os.environ.get("TZ") == tz:
        return
    if tz is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = tz
    _time.tzset()


def _push(clock: VirtualClock, thread: int) -> None:
    with _lock:
        if not _stacks:
            _install()
        stack = _stacks.setdefault(thread, [])
        stack.append(clock)
        _active[thread] = clock
        _apply_tz(clock.tz)


def _remove(clock: VirtualClock, thread: int | None = None) -> None:
    """Take the innermost entry of ``clock`` off ``thread``'s stack (any thread's if
    None); the last entry of all takes the patch out."""
    with _lock:
        for ident, stack in list(_stacks.items()):
            if (thread is None or ident == thread) and clock in stack:
                del stack[len(stack) - 1 - stack[::-1].index(clock)]
                if stack:
                    _active[ident] = stack[-1]
                else:
                    del _stacks[ident], _active[ident]
                break
        else:
            return
        if not _stacks:
            _uninstall()
        elif _get_ident() in _active:
            _apply_tz(_active[_get_ident()].tz)


def _raise(clock: VirtualClock, thread: int) -> bool:
    """Make ``clock`` the innermost of ``thread``'s stack if it is there (else False)."""
    with _lock:
        stack = _stacks.get(thread)
        if stack is None or clock not in stack:
            return False
        stack.remove(clock)
        stack.append(clock)
        _active[thread] = clock
        _apply_tz(clock.tz)
        return True


def live_zones(exclude: VirtualClock) -> set[str]:
    """The time zones of the clocks open on other threads than this one."""
    me = _get_ident()
    with _lock:
        return {c.tz for ident, stack in _stacks.items() if ident != me
                for c in stack if c is not exclude}


#: :meth:`TimePatch.running` when the clock is already the thread's: nothing to do.
_AS_IS = contextlib.nullcontext()


class TimePatch:
    """One simulation's share of the patch of ``time``, ``datetime`` and ``os.getpid``.

    ``install()`` makes its clock the one the calling thread sees (the first
    simulation puts the patch in); ``uninstall()`` takes it out again, from any thread
    and in any order (the last one removes the patch and restores ``TZ``). While it is
    installed, ``running()`` makes its clock the calling thread's innermost one, so that
    nested simulations each see their own, and the test code sees the one it started or
    ran last. ``sleep(seconds)`` is given by the
    simulation: it parks the calling virtual process. Other threads, and threads with no
    simulation open, keep the real clock.
    """

    def __init__(self, clock: VirtualClock, sleep: Callable[[float], None]) -> None:
        self.clock = clock
        clock.park = sleep
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        others = live_zones(self.clock)
        if others and others != {self.clock.tz}:
            raise SimulationError(
                f"time zone {self.clock.tz!r} differs from {min(others)!r}, used by a "
                f"simulation open in another thread: the process has one TZ at a time; "
                f"give concurrent simulations the same tz")
        _push(self.clock, _get_ident())
        self.installed = True

    def uninstall(self) -> None:
        if not self.installed:
            return
        self.installed = False
        _remove(self.clock)

    def running(self) -> contextlib.AbstractContextManager[None]:
        """While the simulation runs, its clock is the calling thread's; in the thread
        that opened it, it stays so afterwards (the test sees the simulation it started
        or ran last)."""
        if not self.installed or _active_clock(_get_ident()) is self.clock:
            return _AS_IS  # the common case, without a generator per run
        return self._running_here()

    @contextlib.contextmanager
    def _running_here(self) -> Iterator[None]:
        thread = _get_ident()
        opened_here = _raise(self.clock, thread)
        if opened_here:
            yield
            return
        _push(self.clock, thread)
        try:
            yield
        finally:
            _remove(self.clock, thread)
