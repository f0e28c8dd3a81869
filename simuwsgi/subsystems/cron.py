"""uWSGI cron: signal crons (``add_cron``) and command crons (``--cron`` & co).

What it models (``core/cron.c`` ``uwsgi_manage_signal_cron``/``uwsgi_manage_command_cron``/
``uwsgi_cron_add``/``uwsgi_opt_add_cron2``, ``core/master_utils.c``
``uwsgi_cron_task_needs_execution``, ``core/master.c``; ``semantics.md`` §4.3):

* evaluated at **every iteration of the master loop** (``timers.MasterLoop``), against
  ``localtime(uwsgi_now())`` (integer wall seconds, the simulation's time zone, so DST
  follows the zone's rules), month 1..12, weekday 0..6 with 0 = Sunday;
* the rule is the C one: weekday 7 means 0; a negative field ``-N`` matches when the
  raw calendar value ``% N == 0``; minute, hour and month must match; day and weekday
  are OR-ed only when both are non-negative, AND-ed otherwise; out-of-range values
  are accepted and never match;
* a match fires only if ``now - last_fire >= 60`` (``last_fire`` starts at 0): so a
  matching cron fires at the first iteration after registration, later firings are
  >= 60 s apart, missed minutes are never caught up, a backward clock step keeps it
  silent until 60 s past the previous firing, a skipped DST hour never matches and a
  repeated one matches again when the guard allows. A firing logs
  ``[uwsgi-cron] routing signal N`` (verbose, date-prefixed) and routes the signal;
* ``add_cron(num, minute, hour, day, month, weekday)`` (``Biiiii``) returns True; it
  needs a master (``ValueError('unable to add cron')``) and holds 64 entries;
* ``--cron "m h d M w command"``, ``--unique-cron``, ``--cron2 key=val[,...] command``
  (keys minute/hour/day/month/week/unique/harakiri/legion; absent keys are -1) use the
  same matcher and guard; a firing is recorded as a ``cron.command`` trace event.

Not simulated: the master is not stepped once per second. At each iteration the cron
computes its next firing analytically (jumping over non-matching months, days, hours
and minutes in local time, with a guard at UTC-offset transitions) on the loop's idle
grid, and re-plans when the grid moves or the wall clock is stepped. The signal crons'
checks, firings and plans have a C twin (``_cmaster.c``, optional: the master's idle
wake-up, a cron firing's log line, records and routing without a Python frame); these
methods stay the reference and run under ``SIMUWSGI_PURE_PYTHON=1``.

Command crons are recorded, not run, unless the scenario asks: with
``Cron.run_commands = True`` (``Simulation(..., cron_commands=True)``) each firing runs
the command with ``/bin/sh -c`` in the app directory, synchronously and taking no
virtual time (uWSGI forks it and carries on), logging uWSGI's ``[uwsgi-cron] running``
line, the command's output and, when the master reaps it at its next iteration, the
``exited after N second(s)`` line. A ``--unique-cron`` is therefore never "still running";
``harakiri`` settings are parsed and ignored. In a build with SSL (``ssl=True``) a cron
with a legion (``--legion-cron``, ``--unique-legion-cron``, ``--cron2 legion=``) runs
only while the instance is Lord of that legion, checked at every master iteration.
"""

from __future__ import annotations

import itertools
import math
import re
import time
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..server._pyarg import no_kwargs, parser
from .._core.clock import _R
from ..server.commands import run_host_command
from ..server.config import atoi
from .._core.accel import load
from .._core.localdays import LocalDays, guarded_jump

if TYPE_CHECKING:
    from ..server.interface import Instance
    from .timers import MasterLoop

__all__ = ["MAX_CRONS", "Cron", "CronSpec", "needs_execution"]

#: the optional C accelerator: the signal crons' checks, firings and plans (see
#: _cmaster.c)
_c = load(f"{__package__}._cmaster")

#: ``MAX_CRONS`` in ``uwsgi.h``.
MAX_CRONS = 64
#: How far ahead a plan looks for a matching minute before giving up (a cron whose
#: fields can never match, e.g. minute 99, has no next firing).
HORIZON = 30 * 366 * 86400

_localtime = _R.localtime


class CronSpec:
    """One cron entry: the five fields, the 60-second guard and its plan."""

    __slots__ = (
        "_checks",
        "_either",
        "always",
        "command",
        "day",
        "hour",
        "last_job",
        "legion",
        "minute",
        "month",
        "never",
        "pid",
        "plan",
        "plan_key",
        "sig",
        "started_at",
        "unique",
        "week",
    )

    def __init__(self, minute: int, hour: int, day: int, month: int, week: int, *,
                 sig: int = 0, command: str | None = None, unique: bool = False,
                 legion: str | None = None) -> None:
        self.sig = sig
        #: Run only while this instance is Lord of that legion (a build with SSL).
        self.legion = legion
        self.minute = minute
        self.hour = hour
        self.day = day
        self.month = month
        self.week = week
        self.last_job = 0
        #: the command's pid and start while it runs (the stats' ``pid``/``started_at``:
        #: -1 and 0 once the master reaped it)
        self.pid = -1
        self.started_at = 0
        self.command = command
        self.unique = unique
        self.plan: float | None = None
        self.plan_key: tuple[Any, ...] | None = None
        # ``matches`` precompiled: (struct_time index, value) for every field that is
        # not "any" (-1), and the OR-ed day/weekday pair when both are given.
        week = 0 if week == 7 else week
        if day >= 0 and week >= 0:
            self._either: tuple[int, int] | None = (day, week)
            fields = ((4, minute), (3, hour), (1, month))
        else:
            self._either = None
            fields = ((4, minute), (3, hour), (1, month), (2, day), (-1, week))
        self._checks = tuple((i, v) for i, v in fields if v != -1)
        #: every field "any": every time matches (no local time needs looking up)
        self.always = not self._checks and self._either is None
        #: a field whose value no time has (minute 60, hour 24, month 13, day 0...): the
        #: entry never fires, and nothing needs searching for its next match
        day_never = day == 0 or day > 31
        week_never = week > 6
        self.never = (minute > 59 or hour > 23 or month == 0 or month > 12
                      or (day_never and week_never if self._either else
                          day_never or week_never))

    def __repr__(self) -> str:
        what = f"signal {self.sig}" if self.command is None else repr(self.command)
        return (f"<cron {self.minute} {self.hour} {self.day} {self.month} {self.week} "
                f"{what}>")

    # -- the C rule, split by calendar unit (used to jump over whole units) -----------
    def _field(self, value: int, current: int) -> bool:
        if value < 0:
            return current % -value == 0
        return current == value

    def month_ok(self, tm: Any) -> bool:
        return self._field(self.month, tm.tm_mon)

    def day_ok(self, tm: Any) -> bool:
        wday = (tm.tm_wday + 1) % 7  # Python: Monday = 0; C: Sunday = 0
        week = 0 if self.week == 7 else self.week
        if self.day >= 0 and self.week >= 0:
            return tm.tm_mday == self.day or wday == week
        return self._field(self.day, tm.tm_mday) and self._field(week, wday)

    def hour_ok(self, tm: Any) -> bool:
        return self._field(self.hour, tm.tm_hour)

    def minute_ok(self, tm: Any) -> bool:
        return self._field(self.minute, tm.tm_min)

    def matches(self, tm: Any) -> bool:
        """``uwsgi_cron_task_needs_execution`` (precompiled; index -1 = C weekday)."""
        for index, value in self._checks:
            current = (tm[6] + 1) % 7 if index == -1 else tm[index]
            if value < 0:
                if current % -value:
                    return False
            elif current != value:
                return False
        either = self._either
        if either is not None:
            return tm[2] == either[0] or (tm[6] + 1) % 7 == either[1]
        return True


def needs_execution(tm: Any, minute: int, hour: int, day: int, month: int, week: int) -> bool:
    """``uwsgi_cron_task_needs_execution`` on a Python ``struct_time``."""
    return CronSpec(minute, hour, day, month, week).matches(tm)


def next_match(spec: CronSpec, start: int, limit: int | None = None) -> int | None:
    """The first second >= ``start`` whose local time matches ``spec`` (None if none
    before ``limit``). Jumps whole local months and days that cannot match, and to the
    next matching hour and minute (the local time moves with the seconds between two
    changes of the UTC offset, where every jump stops)."""
    if spec.never:
        return None
    s = start
    end = start + HORIZON if limit is None else limit
    while s < end:
        tm = _localtime(s)
        if not spec.month_ok(tm):
            days_left = _days_in_month(tm.tm_year, tm.tm_mon) - tm.tm_mday + 1
            jump = days_left * 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec)
        elif not spec.day_ok(tm):
            jump = 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec)
        elif not spec.hour_ok(tm):
            hours = _ahead(spec.hour, tm.tm_hour, 24)  # to that hour, or to midnight
            jump = hours * 3600 - (tm.tm_min * 60 + tm.tm_sec)
        elif not spec.minute_ok(tm):
            minutes = _ahead(spec.minute, tm.tm_min, 60)  # to that minute, or the hour's end
            jump = minutes * 60 - tm.tm_sec
        else:
            return s
        s = guarded_jump(s, max(1, jump), tm.tm_gmtoff)
    return None


def _ahead(value: int, current: int, end: int) -> int:
    """How many units from ``current`` to the next one that ``value`` matches (the C rule:
    ``value`` itself, or a multiple of ``-value``), or to ``end`` if none comes first."""
    if value < 0:
        nxt = (current // -value + 1) * -value
    else:
        nxt = value if value > current else end
    return min(nxt, end) - current


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


_CRON_RE = re.compile(r"\s*([+-]?\d+)\s+([+-]?\d+)\s+([+-]?\d+)\s+([+-]?\d+)\s+([+-]?\d+)\s*")


def parse_cron_option(value: str, unique: bool = False) -> CronSpec:
    """``--cron``/``--unique-cron``: ``sscanf("%d %d %d %d %d %n")`` then the command."""
    m = _CRON_RE.match(value)
    if m is None:
        raise ConfigError(f"invalid cron syntax: {value!r} (uWSGI logs 'invalid cron "
                          "syntax' and exits)")
    fields = [int(g) for g in m.groups()]
    return CronSpec(*fields, command=value[m.end():], unique=unique)


def parse_cron2_option(value: str) -> CronSpec:
    """``--cron2 [key=val,...] command``."""
    command = value
    kv: dict[str, str] = {}
    head, space, rest = value.partition(" ")
    if space and "=" in head:
        command = rest
        for item in head.split(","):
            key, eq, val = item.partition("=")
            if not eq or key not in ("minute", "hour", "day", "month", "week", "unique",
                                     "harakiri", "legion"):
                raise ConfigError(f"unable to parse cron definition: {value}")
            kv[key] = val
    elif not space and "=" in value:
        raise ConfigError(f"unable to parse cron definition: {value}")
    fields = [atoi(kv[k]) if k in kv else -1 for k in ("minute", "hour", "day", "month", "week")]
    return CronSpec(*fields, command=command, unique=bool(atoi(kv.get("unique", "0"))),
                    legion=kv.get("legion"))



class Cron:
    """The signal cron table and the command crons of one instance."""

    #: slots for the flag the C loop reads three times an iteration and the zone it
    #: reads at each plan (see _cmaster.c)
    __slots__ = ("__dict__", "_zone", "needs_iteration")

    @classmethod
    def create(cls, inst: Instance) -> Cron:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.signal_crons: list[CronSpec] = []
        self.command_crons: list[CronSpec] = []
        #: Run command crons when they fire (the scenario's choice; default: record).
        self.run_commands = bool(getattr(inst, "cron_commands", False))
        #: The last ``localtime()`` computed, and of which zone (``time.tzname``): a
        #: plan's candidate second is usually the second the master then wakes in.
        self._tm_cache: tuple[int, Any, Any] = (-1, None, None)
        self._days = LocalDays()
        #: The zone (``time.tzname``, a new tuple after each ``time.tzset()``) the plans
        #: were made in: a plan of another zone's local times is made again.
        self._zone = time.tzname
        opts = inst.opts
        # one table, in the options' order (uwsgi_cron_add appends to uwsgi.crons)
        for name, value in opts.items:
            if not isinstance(value, str):
                continue
            if name == "cron":
                self.command_crons.append(parse_cron_option(value))
            elif name == "unique-cron":
                self.command_crons.append(parse_cron_option(value, unique=True))
            elif name == "cron2":
                self.command_crons.append(parse_cron2_option(value))
        # a build with SSL: --legion-cron "LEGION m h d M w command" and its aliases
        for option in ("legion-cron", "cron-legion", "unique-legion-cron",
                       "unique-cron-legion"):
            for value in opts.strings(option):
                legion, space, rest = value.partition(" ")
                if not space:
                    raise ConfigError(f"invalid --{option} syntax, must be prefixed with a "
                                      f"legion name")
                spec = parse_cron_option(rest, unique=option.startswith("unique"))
                spec.legion = legion
                self.command_crons.append(spec)
        #: Every master iteration matters while the tables have entries (none without).
        self.needs_iteration = bool(self.command_crons)
        if _c is not None:  # the signal crons in C (see _cmaster.c)
            state = (self, inst, inst.kernel, inst.trace, self.signal_crons,
                     self.command_crons, self._days, inst.clock, type(inst).log)
            self.before_events = _c.cron_before_events(state)  # type: ignore[method-assign]
            self.next_wake = _c.cron_next_wake(state)  # type: ignore[method-assign]
            self.at_top = _c.cron_at_top  # type: ignore[method-assign]

    # -- wiring --------------------------------------------------------------------------
    def master_loop_started(self) -> None:
        loop = self.inst.master_loop
        if loop is not None and self.inst.has_master:
            loop.add_client(self)

    # -- the table -----------------------------------------------------------------------
    def add(self, sig: int, minute: int, hour: int, day: int, month: int, week: int) -> bool:
        if not self.inst.has_master:
            return False
        if len(self.signal_crons) >= MAX_CRONS:
            self.inst.log(f"you can register max {MAX_CRONS} cron !!!")
            return False
        self.signal_crons.append(CronSpec(minute, hour, day, month, week, sig=sig))
        self.needs_iteration = True
        self.inst.record("cron.add", num=sig, minute=minute, hour=hour, day=day,
                         month=month, week=week)
        loop = self.inst.master_loop
        if loop is not None and loop.started:
            loop.add_client(self)
        return True

    # -- loop client -----------------------------------------------------------------------
    def before_events(self, loop: MasterLoop, wall_s: int, timeout: bool) -> None:
        for spec in self.signal_crons:
            if self._due(spec, wall_s):
                self._fire_signal(spec, wall_s)
        if self.command_crons:
            self._before_commands(loop, wall_s)

    def _before_commands(self, loop: MasterLoop, wall_s: int) -> None:
        """``before_events`` for the command crons."""
        for spec in self.command_crons:
            if spec.legion is not None and not self._lord(spec.legion):
                if spec.plan is not None and spec.plan <= loop.kernel.now:
                    spec.plan = spec.plan_key = None  # checked again at the next wake-up
                continue
            if not self._due(spec, wall_s):
                continue
            spec.last_job = spec.started_at = wall_s
            spec.plan = None
            self.inst.record("cron.command", self.inst.master, command=spec.command,
                             unique=spec.unique)
            if self.run_commands:
                self._run_command(spec, wall_s)
            else:  # not run: it is over by the master's next look (master_checks.c)
                inst = self.inst
                inst.kernel.at(inst.next_tick(inst.now), self._over, spec)

    def _due(self, spec: CronSpec, wall_s: int) -> bool:
        """The master's check of one entry: it last ran a minute ago or more, and the
        local time matches (looked up only for such an entry with a field to match)."""
        return wall_s - spec.last_job >= 60 and (spec.always or spec.matches(self._tm(wall_s)))

    def _lord(self, legion: str) -> bool:
        """``uwsgi_legion_i_am_the_lord`` (a build without SSL does not check)."""
        legions = self.inst.subsystems.get("legion")
        if legions is None:
            return True
        found = legions.legions.get(legion)
        return bool(found is not None and found.i_am_the_lord)

    def _tm(self, secs: int) -> Any:
        cached_secs, zone, tm = self._tm_cache
        if cached_secs != secs or zone is not time.tzname:
            tm = _localtime(secs)
            self._tm_cache = (secs, time.tzname, tm)
        return tm

    @staticmethod
    def _over(spec: CronSpec) -> None:
        spec.pid, spec.started_at = -1, 0

    def _run_command(self, spec: CronSpec, wall_s: int) -> None:
        inst = self.inst
        command = spec.command or ""
        pid = spec.pid = inst.next_pid()
        started = int(inst.wall())
        inst.log_dated(f'{self._days.asctime(wall_s)} - [uwsgi-cron] running "{command}" '
                       f"(pid {pid})", inst.master)
        status = run_host_command(inst, command)
        if status is None:  # killed after the limit (said): over all the same
            inst.kernel.at(inst.next_tick(inst.now), self._over, spec)
            return
        inst.record("cron.command.exit", inst.master, command=command, status=status)
        # the master reaps the command at its next iteration (observed: "after 1 second(s)")
        inst.kernel.at(inst.next_tick(inst.now), self._reaped, spec, pid, started)

    def _reaped(self, spec: CronSpec, pid: int, started: int) -> None:
        inst = self.inst
        command = spec.command or ""
        self._over(spec)
        if not inst.stopped:
            inst.log(f'[uwsgi-cron] command "{command}" running with pid {pid} exited after '
                     f"{int(inst.wall()) - started} second(s)", inst.master)

    def _fire_signal(self, spec: CronSpec, wall_s: int) -> None:
        inst = self.inst
        inst.log_dated(f"{self._days.asctime(wall_s)} - [uwsgi-cron] routing signal "
                       f"{spec.sig}", inst.master)
        inst.trace.add(inst.kernel.now, "master", "cron.signal", {"num": spec.sig})
        spec.last_job = wall_s
        spec.plan = None
        signals = inst.subsystems.get("signals")
        if signals is not None:
            signals.route(spec.sig)

    def at_top(self, loop: MasterLoop, wall_s: int) -> None:
        pass

    def clock_stepped(self, loop: MasterLoop) -> None:
        for spec in self.signal_crons:
            spec.plan = None
        for spec in self.command_crons:
            spec.plan = None

    def next_wake(self, loop: MasterLoop) -> float | None:
        if self._zone is not time.tzname:  # time.tzset(): every plan is made again
            self._zone = time.tzname
            for spec in itertools.chain(self.signal_crons, self.command_crons):
                spec.plan_key = None
        best: float | None = None
        now = loop.kernel.now
        epoch, offset = loop.grid_epoch, loop.inst.clock.wall_offset
        for table in (self.signal_crons, self.command_crons):
            for spec in table:
                key = (epoch, offset, spec.last_job)
                if spec.plan_key != key or (spec.plan is not None and spec.plan <= now):
                    # planned for another grid, clock or last firing, or already past
                    spec.plan = self.plan(spec, loop)
                    spec.plan_key = key
                when = spec.plan
                if when is not None and (best is None or when < best):
                    best = when
        return best

    def plan(self, spec: CronSpec, loop: MasterLoop) -> float | None:
        """The virtual time of the next loop iteration at which ``spec`` fires, assuming
        only idle wake-ups (``last_wake + k * interval``) until then."""
        interval = loop.interval
        k0 = loop.first_wake_index()
        t0 = loop.last_wake + k0 * interval
        s0 = math.floor(loop.inst.clock.wall_offset + t0)
        lo = max(s0, spec.last_job + 60)
        j = -(-(lo - s0) // interval)
        limit = s0 + HORIZON
        while True:
            cand = s0 + j * interval
            if spec.always or spec.matches(self._tm(cand)):
                return t0 + j * interval  # the common case: the first candidate fires
            found = next_match(spec, cand, limit)
            if found is None:
                return None
            j = -(-(found - s0) // interval)
            cand = s0 + j * interval
            if spec.matches(_localtime(cand)):
                return t0 + j * interval

    # -- the uwsgi module -------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_cron = parser("Biiiii:add_cron")

        def add_cron(*args: Any, **kw: Any) -> bool:
            no_kwargs("add_cron", kw)
            sig, minute, hour, day, month, week = p_cron(args)
            if not self.add(sig, minute, hour, day, month, week):
                raise ValueError("unable to add cron")
            return True

        return {"add_cron": add_cron}
