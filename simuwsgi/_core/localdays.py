"""Local dates of wall seconds, as ``asctime(localtime(s))`` gives them, by arithmetic.

uWSGI dates its log lines (a cron firing's, a request's) with ``ctime``-style text of
the wall clock's second. Runs ask for the seconds of one day again and again, so
:class:`LocalDays` keeps the day that holds the last second asked for and writes a
second's date from two look-ups; a second outside it (the next day, a UTC offset change,
a leap second of a "right/" zone) goes back to ``localtime``, and so does every second
after ``time.tzset()`` (which makes a new ``time.tzname``: the day was another zone's).
"""

from __future__ import annotations

import time
from typing import Any

from .clock import _R

__all__ = ["LocalDays", "guarded_jump"]

_localtime = _R.localtime
_asctime = _R.asctime  # of an explicit struct_time: needs no virtual clock
#: ``asctime``'s "HH:MM:" of every minute of a day and "SS" of every second: a time of
#: day in two look-ups (``asctime`` formats it ~5x slower)
_HH_MM = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SS = tuple(f"{s:02d}" for s in range(60))


def guarded_jump(s: int, jump: int, gmtoff: int) -> int:
    """``s + jump``, or the first second after ``s`` where the UTC offset changes if
    that comes first (the jump assumed a constant offset)."""
    target = s + jump
    lo = s
    step = 43200  # offsets never change twice within 12 hours
    probe = min(s + step, target)
    while True:
        if _localtime(probe).tm_gmtoff != gmtoff:
            break
        if probe == target:
            return target
        lo = probe
        probe = min(probe + step, target)
    hi = probe  # offset(lo) == gmtoff, it changes somewhere in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _localtime(mid).tm_gmtoff == gmtoff:
            lo = mid
        else:
            hi = mid
    return hi


class LocalDays:
    """``asctime(localtime(s))`` of wall seconds by arithmetic within the stretch of
    one local day (at one UTC offset, of the zone ``time.tzname`` names) that holds the
    last second asked for: one ``localtime`` (and two probes for an offset change) per
    day instead of one per firing."""

    __slots__ = ("_base", "_day", "_hi", "_lo", "_year", "_zone")

    def __init__(self) -> None:
        self._lo = self._hi = self._base = 0
        self._day = self._year = ""
        self._zone: Any = None

    def asctime(self, s: int) -> str:
        if not self._lo <= s < self._hi or self._zone is not time.tzname:
            tm = _localtime(s)
            if tm.tm_sec > 59:  # a leap second (a "right/" zone): in no day's stretch
                return _asctime(tm)
            self._load(s, tm)
        sod = s - self._base  # the second of the local day
        return self._day + _HH_MM[sod // 60] + _SS[sod % 60] + self._year

    def _load(self, s: int, tm: Any) -> None:
        sod = tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec
        stamp = _asctime(tm)  # "Www Mmm dd hh:mm:ss yyyy"
        self._day, self._year = stamp[:11], stamp[19:]
        self._lo, self._base = s, s - sod
        self._zone = time.tzname
        # to the local midnight, or to the offset's next change if that comes first
        self._hi = guarded_jump(s, 86400 - sod, tm.tm_gmtoff)
