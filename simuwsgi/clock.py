"""Virtual time, and the patch that shows it to application code.

uWSGI reads the wall clock (``time()``, ``gettimeofday``) for everything a Python app
can observe: ``started_on``, cache expiry, cron (through ``localtime()``), spool file
names. A simulation keeps two clocks over the kernel's virtual seconds:

* wall time = ``wall_offset + kernel.now``; the scenario can *step* it (NTP jump, DST
  experiments) without touching the monotonic clock;
* monotonic time = ``MONOTONIC_BASE + kernel.now``, never going backwards.

The patch replaces ``time.time/time_ns/monotonic/perf_counter/localtime/gmtime/ctime/
strftime/sleep``, ``datetime.datetime``/``datetime.date`` (``now``, ``utcnow``,
``today``) and ``os.getpid`` *in their modules*, before the app is imported, so that
``from time import time`` in app code binds the virtual clock. It is removed when the
simulation closes. Code that bound the real functions before the patch (the standard
library, modules imported earlier) keeps the real clock; ``freezegun`` users can start a
simulation inside ``freeze_time`` and it starts at the frozen instant.

The time zone is applied the way uWSGI's C code sees it: ``TZ`` is set and
``time.tzset()`` called for the simulation's lifetime, so ``localtime()``, ``mktime()``
and naive ``datetime`` conversions agree, DST rules included.

This is the only module of the simulator that reads real time (``RealClock``, used by
``real`` mode and by pacing in ``simuwsgi serve``).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import threading
import time as _time
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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

    def __init__(self, kernel: Kernel, start: float, tz: str | None = None) -> None:
        self.kernel = kernel
        self.tz = tz or "UTC"
        self.wall_offset = float(start)
        #: Wall-clock steps made by the scenario, as (virtual time, delta) pairs.
        self.steps: list[tuple[float, float]] = []
        self._listeners: list[Callable[[float], None]] = []

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


class TimePatch:
    """Installs the virtual clock into ``time``, ``datetime`` and ``os``; reversible.

    ``sleep(seconds)`` is given by the simulation: it parks the calling virtual process.
    Calls made outside a virtual process (the test itself, other threads) read the
    virtual clock too, except from other threads, which keep the real clock.
    """

    def __init__(self, clock: VirtualClock, sleep: Callable[[float], None]) -> None:
        self.clock = clock
        self._sleep = sleep
        self._saved: list[tuple[Any, str, Any]] = []
        self._saved_tz: str | None = None
        self.installed = False

    def install(self) -> None:
        if self.installed:
            return
        clock = self.clock
        kernel = clock.kernel
        sim_thread = threading.get_ident()
        get_ident = threading.get_ident
        mono_base = MONOTONIC_BASE
        vsleep = self._sleep

        def time() -> float:
            if get_ident() == sim_thread:
                return clock.wall_offset + kernel.now
            return _R.time()

        def time_ns() -> int:
            if get_ident() == sim_thread:
                return int(round((clock.wall_offset + kernel.now) * 1e9))
            return _R.time_ns()

        def monotonic() -> float:
            if get_ident() == sim_thread:
                return mono_base + kernel.now
            return _R.monotonic()

        def monotonic_ns() -> int:
            if get_ident() == sim_thread:
                return int(round((mono_base + kernel.now) * 1e9))
            return _R.monotonic_ns()

        def perf_counter() -> float:
            if get_ident() == sim_thread:
                return mono_base + kernel.now
            return _R.perf_counter()

        def perf_counter_ns() -> int:
            if get_ident() == sim_thread:
                return int(round((mono_base + kernel.now) * 1e9))
            return _R.perf_counter_ns()

        def localtime(secs: float | None = None) -> _time.struct_time:
            if secs is None:
                secs = time()
            return _R.localtime(secs)

        def gmtime(secs: float | None = None) -> _time.struct_time:
            if secs is None:
                secs = time()
            return _R.gmtime(secs)

        def ctime(secs: float | None = None) -> str:
            if secs is None:
                secs = time()
            return _R.ctime(secs)

        def asctime(t: Any = None) -> str:
            return _R.asctime(localtime() if t is None else t)

        def strftime(fmt: str, t: Any = None) -> str:
            return _R.strftime(fmt, localtime() if t is None else t)

        def sleep(secs: float) -> None:
            if get_ident() == sim_thread and kernel.current is not None:
                vsleep(secs)
            else:
                _R.sleep(secs)

        def getpid() -> int:
            proc = kernel.current
            if proc is not None and get_ident() == sim_thread:
                return int(proc.pid)
            return _R.getpid()

        fake_datetime, fake_date = _fake_datetime_classes(time)
        replacements = [
            (_time, "time", time), (_time, "time_ns", time_ns),
            (_time, "monotonic", monotonic), (_time, "monotonic_ns", monotonic_ns),
            (_time, "perf_counter", perf_counter), (_time, "perf_counter_ns", perf_counter_ns),
            (_time, "localtime", localtime), (_time, "gmtime", gmtime),
            (_time, "ctime", ctime), (_time, "asctime", asctime),
            (_time, "strftime", strftime), (_time, "sleep", sleep),
            (_dt, "datetime", fake_datetime), (_dt, "date", fake_date),
            (os, "getpid", getpid),
        ]
        for module, name, value in replacements:
            self._saved.append((module, name, getattr(module, name)))
            setattr(module, name, value)
        self._saved_tz = os.environ.get("TZ")
        os.environ["TZ"] = clock.tz
        _time.tzset()
        self.installed = True

    def uninstall(self) -> None:
        if not self.installed:
            return
        for module, name, value in reversed(self._saved):
            setattr(module, name, value)
        self._saved.clear()
        if self._saved_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = self._saved_tz
        _time.tzset()
        self.installed = False


def _fake_datetime_classes(now: Callable[[], float]) -> tuple[type, type]:
    """``datetime``/``date`` subclasses whose ``now``/``utcnow``/``today`` are virtual.

    ``isinstance(real_datetime_value, FakeDatetime)`` stays true (as with freezegun),
    so code that checks types keeps working.
    """

    class _DateMeta(type):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, _R.date)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, _R.date)

    class _DatetimeMeta(_DateMeta):
        def __instancecheck__(cls, obj: object) -> bool:
            return isinstance(obj, _R.datetime)

        def __subclasscheck__(cls, sub: type) -> bool:
            return issubclass(sub, _R.datetime)

    class date(_R.date, metaclass=_DateMeta):  # noqa: N801 - stands in for date
        @classmethod
        def today(cls) -> _R.date:
            return _R.date.fromtimestamp(now())

    class datetime(_R.datetime, metaclass=_DatetimeMeta):  # noqa: N801
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> _R.datetime:
            return _R.datetime.fromtimestamp(now(), tz)

        @classmethod
        def utcnow(cls) -> _R.datetime:
            return _R.datetime.fromtimestamp(now(), _dt.timezone.utc).replace(tzinfo=None)

        @classmethod
        def today(cls) -> _R.datetime:
            return _R.datetime.fromtimestamp(now())

    for cls, real in ((date, _R.date), (datetime, _R.datetime)):
        cls.__module__ = "datetime"
        cls.__qualname__ = real.__qualname__
    return datetime, date
