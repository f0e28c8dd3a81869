"""The real clock, for test code while a simulation is open.

While a simulation is open, code in the thread that opened it (the test itself, not
only the app) sees the simulation's virtual clock through ``time``, ``datetime`` and
``time.sleep``. These functions always read (or wait on) the host's real clock::

    from simuwsgi import real_time

    began = real_time.perf_counter()
    sim.advance(3600)                          # a virtual hour...
    print(real_time.perf_counter() - began)    # ...in a few real milliseconds

They are wrappers, not the ``time`` module's own functions, so that
``freezegun.freeze_time`` (which rebinds those wherever it finds them) leaves them real.
"""

from __future__ import annotations

import datetime as _dt

from ._core.clock import _R, _REAL_NOW

__all__ = ["monotonic", "monotonic_ns", "now", "perf_counter", "perf_counter_ns", "sleep",
           "time", "time_ns"]

_now = _REAL_NOW.__get__(None, _dt.datetime)  # the C function, whatever the patch


def time() -> float:
    """``time.time()`` on the real clock."""
    return float(_R.time())


def time_ns() -> int:
    """``time.time_ns()`` on the real clock."""
    return int(_R.time_ns())


def monotonic() -> float:
    """``time.monotonic()`` on the real clock."""
    return float(_R.monotonic())


def monotonic_ns() -> int:
    """``time.monotonic_ns()`` on the real clock."""
    return int(_R.monotonic_ns())


def perf_counter() -> float:
    """``time.perf_counter()`` on the real clock."""
    return float(_R.perf_counter())


def perf_counter_ns() -> int:
    """``time.perf_counter_ns()`` on the real clock."""
    return int(_R.perf_counter_ns())


def sleep(seconds: float) -> None:
    """``time.sleep()`` for real (it does not park a virtual process)."""
    _R.sleep(seconds)


def now(tz: _dt.tzinfo | None = None) -> _dt.datetime:
    """``datetime.datetime.now(tz)`` on the real clock."""
    now: _dt.datetime = _now(tz)
    return now
