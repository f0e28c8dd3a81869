"""``simuwsgi explain``: the trace of a run told as a story, one line per event, each
saying what uWSGI did and why.

The narrator reads the trace in order and keeps just enough state to give the reason
(the rules are those the subsystem modules model): the options of the instance (the
harakiri limit), the registered signals (their targets), the crons and timers, which
request each worker is busy with, and the master's last choice of worker. It knows
nothing the trace does not say: a kind it has no rule for is shown as its fields.

    simuwsgi explain SCENARIO.py|TRACE|REPORT_DIR [--at TIME] [--process P] [--kind K]

The same sentences appear when an item of ``timeline.html`` is clicked
(:mod:`simuwsgi.timeline` calls :func:`narrate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ._errors import SimulationError

__all__ = ["Clock", "narrate", "main"]

Row = tuple[float, str, str, str, dict[str, Any]]

_SPOOL_RC = {-1: "SPOOL_RETRY", -2: "SPOOL_OK", -3: "SPOOL_IGNORE"}
_CRON_FIELDS = ("minute", "hour", "day", "month", "week")


class Clock:
    """Virtual seconds since the start -> the simulation's local clock."""

    def __init__(self, start_epoch: float | None = None, tz: str = "UTC") -> None:
        self.start_epoch = start_epoch
        self.tz = tz

    def datetime(self, t: float) -> datetime | None:
        if self.start_epoch is None:
            return None
        from zoneinfo import ZoneInfo

        return datetime.fromtimestamp(self.start_epoch + t, timezone.utc).astimezone(
            ZoneInfo(self.tz))

    def format(self, t: float) -> str:
        """``HH:MM:SS.mmm`` on the local clock (``+seconds`` when the start is unknown)."""
        when = self.datetime(t)
        if when is None:
            return f"+{t:.3f}s"
        return when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}"

    @classmethod
    def of(cls, sim: Any) -> Clock:
        """The clock of a simulation (or a real run: its wall clock at the start)."""
        tz = getattr(getattr(sim, "clock", None), "tz", None) or getattr(sim, "tz", None)
        try:
            wall = float(sim.wall) - float(sim.now)
        except (AttributeError, TypeError, ValueError):
            wall = None
        return cls(wall, tz or "UTC")

    @classmethod
    def of_summary(cls, summary: dict[str, Any]) -> Clock:
        """The clock of a report's ``summary.json`` (its end instant and duration)."""
        end = datetime.fromisoformat(summary["end"])
        start = end - timedelta(seconds=float(summary["virtual_seconds"]))
        if summary.get("tz"):
            return cls(start.timestamp(), summary["tz"])
        return _FixedClock(start.timestamp(), end.utcoffset() or timedelta(0))


class _FixedClock(Clock):
    """A clock at a fixed UTC offset (a report whose zone name was not saved)."""

    def __init__(self, start_epoch: float, offset: timedelta) -> None:
        super().__init__(start_epoch, "UTC")
        self.offset = timezone(offset)

    def datetime(self, t: float) -> datetime | None:
        return datetime.fromtimestamp(self.start_epoch + t, self.offset)  # type: ignore[operator]


def _worker_words(process: str) -> str:
    """``worker2`` -> ``worker 2`` (uWSGI's way of naming them in its log)."""
    for prefix in ("worker", "mule", "spooler"):
        if process.startswith(prefix) and process[len(prefix):].isdigit():
            return f"{prefix} {process[len(prefix):]}"
    return process


class _Narrator:
    """The state the reasons need, updated record by record."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.options: dict[str, Any] = {}
        self.targets: dict[int, str] = {}
        self.crons: dict[int, dict[str, Any]] = {}
        self.timers: dict[int, float] = {}
        #: process -> request id -> the start fields of its requests (one per core)
        self.busy: dict[str, dict[Any, dict[str, Any]]] = {}
        self.submitted: dict[Any, float] = {}
        self.choices: dict[str, dict[str, Any]] = {}  # picked process -> the choice
        self.raised: dict[int, tuple[float, str]] = {}
        # num -> its latest routings: (time, the processes busy then, those it reached)
        self.routed: dict[int, deque[tuple[float, set[str], set[str]]]] = {}
        self.spool_tries: dict[str, int] = {}

    def line(self, t: float, proc: str, kind: str, f: dict[str, Any]) -> str:
        rule = getattr(self, "_" + kind.replace(".", "_"), None)
        text = rule(t, proc, f) if rule is not None else None
        if text is None:
            detail = " ".join(f"{k}={v!r}" for k, v in f.items())
            text = f"{kind} {detail}".rstrip()
        return text

    # -- the instance ------------------------------------------------------------------
    def _instance_start(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.options = {k: v for k, v in f.get("options") or []}
        argv = " ".join(f"--{k}" + ("" if v is True else f" {v}")
                        for k, v in f.get("options") or [])
        if f.get("reload"):
            return "the master re-executes itself with the same options: the reload's new instance"
        return f"uWSGI starts: {argv}" if argv else "uWSGI starts"

    def _instance_ready(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return (f"the instance is ready: {f.get('workers')} worker(s), {f.get('mules')} "
                f"mule(s), {f.get('spoolers')} spooler(s) spawned, the master loop runs")

    def _spawn(self, t: float, proc: str, f: dict[str, Any]) -> str:
        if proc == "master":
            return f"the master process starts (pid {f.get('pid')})"
        again = f.get("respawn")
        why = (f": respawn number {again}, the master replaces every process that dies"
               if again else ": forked by the master after the app was loaded")
        return f"{_worker_words(proc)} spawned (pid {f.get('pid')}){why}"

    def _death(self, t: float, proc: str, f: dict[str, Any]) -> str:
        reason = f.get("reason")
        reqs = list(self.busy.pop(proc, {}).values())
        why = {"max-requests": "it served --max-requests "
                               f"{self.options.get('max-requests', '?')} requests "
                               "and exits by itself ('The work of process ... is done')",
               "harakiri": "the master killed it (harakiri)",
               "reload": "a reload replaces every worker"}.get(str(reason), str(reason))
        lost = ""
        if reqs:
            which = ", ".join(f"{r.get('id')} ({r.get('path')})" for r in reqs)
            lost = (f"; request {which} is lost" if len(reqs) == 1
                    else f"; requests {which} are lost")
        return f"{_worker_words(proc)} (pid {f.get('pid')}) died: {why}{lost}"

    def _harakiri(self, t: float, proc: str, f: dict[str, Any]) -> str:
        reqs = self.busy.get(proc, {}).values()
        limit = self.options.get("harakiri", "?")
        on = (" on " + ", ".join(str(r.get("path")) for r in reqs) if reqs
              else " in a signal handler or between requests")
        return (f"HARAKIRI: {_worker_words(proc)} exceeded {limit} s{on}; the master sends "
                f"it (pid {f.get('pid')}) SIGUSR2, then SIGKILL a second later, and respawns it")

    def _reload_begin(self, t: float, proc: str, f: dict[str, Any]) -> str:
        how = ("graceful: each worker finishes its request, then exits"
               if f.get("graceful") else "brutal: the workers are killed at once")
        return f"reload begins ({how})"

    def _api_reload(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return f"{_worker_words(proc)} called uwsgi.reload(): the master is asked to reload"

    def _api_stop(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return f"{_worker_words(proc)} called uwsgi.stop(): the master shuts the instance down"

    def _instance_stop(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return "the instance stops"

    # -- requests ----------------------------------------------------------------------
    def _request_submit(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.submitted[f.get("id")] = t
        return f"request {f.get('id')} arrives: {f.get('method')} {f.get('path')}"

    def _choice(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.choices[str(f.get("picked"))] = f
        among = f.get("among") or 0
        choices = (f"the {among} idle ones" if isinstance(among, int)
                   else ", ".join(among))  # a count (traces before it: the names)
        return (f"{f.get('what')}: {f.get('picked')} is chosen among {choices} "
                "(the seeded RNG stands for the kernel's wake-up order)")

    def _request_start(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.busy.setdefault(proc, {})[f.get("id")] = f
        choice = self.choices.pop(proc, None)
        if choice is not None:
            among = choice.get("among") or 0
            idle = among if isinstance(among, int) else len(among)
            why = ("the only idle worker" if idle == 1 else
                   f"one of {idle} idle workers blocked in accept(), the one the kernel woke")
        else:
            why = "the only worker free to accept"
        waited = t - self.submitted.get(f.get("id"), t)
        queued = f", after {waited:.3f} s in the listen queue" if waited > 0.0005 else ""
        core = f" (core {f['core']})" if "core" in f else ""
        return (f"{_worker_words(proc)}{core} took request {f.get('id')} "
                f"({f.get('method')} {f.get('path')}): {why}{queued}")

    def _request_end(self, t: float, proc: str, f: dict[str, Any]) -> str:
        reqs = self.busy.get(proc, {})
        req = reqs.pop(f.get("id"), {})
        if not reqs:
            self.busy.pop(proc, None)
        took = ""
        started = req.get("_t")
        if started is not None:
            took = f" in {t - started:.3f} s"
        status = f.get("status")
        if f.get("exception"):
            return (f"request {f.get('id')} ({req.get('path', '?')}) failed: the app raised "
                    "an exception; uWSGI logs the traceback and closes the connection")
        return (f"request {f.get('id')} ({req.get('path', '?')}) answered {status}, "
                f"{f.get('bytes')} bytes{took}")

    # -- signals -----------------------------------------------------------------------
    def _signal_register(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.targets[f.get("num")] = str(f.get("target"))
        return f"signal {f.get('num')} registered by {proc} for target '{f.get('target')}'"

    def _signal_raise(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.raised[f.get("num")] = (t, proc)
        return (f"{_worker_words(proc)} raised signal {f.get('num')}: it goes through the "
                "master's signal pipe")

    def _signal_route(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.routed.setdefault(f.get("num"), deque(maxlen=64)).append((t, set(self.busy), set()))
        return (f"the master routes signal {f.get('num')} to '{f.get('target')}' "
                "(the target it was registered with)")

    def _timer_fire(self, t: float, proc: str, f: dict[str, Any]) -> str:
        secs = self.timers.get(f.get("num"))
        every = f" (every {secs:g} s)" if secs is not None else ""
        return f"timer {f.get('num')} fired{every}"

    def _rb_timer_fire(self, t: float, proc: str, f: dict[str, Any]) -> str:
        secs = self.timers.get(f.get("num"))
        every = f" (every {secs:g} s)" if secs is not None else ""
        return f"rb_timer {f.get('num')} fired{every}"

    def _timer_add(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.timers[f.get("num")] = f.get("secs")
        return f"timer for signal {f.get('num')} added: every {f.get('secs')} s"

    _rb_timer_add = _timer_add

    def _cron_add(self, t: float, proc: str, f: dict[str, Any]) -> str:
        self.crons[f.get("num")] = f
        spec = " ".join(f"{k}={f.get(k)}" for k in _CRON_FIELDS if f.get(k, -1) != -1)
        return f"cron for signal {f.get('num')} added: {spec or 'every minute'}"

    def _cron_signal(self, t: float, proc: str, f: dict[str, Any]) -> str:
        num = f.get("num")
        spec = self.crons.get(num, {})
        now = self.clock.datetime(t)
        reasons = []
        if now is not None:
            current = {"minute": now.minute, "hour": now.hour, "day": now.day,
                       "month": now.month, "week": (now.weekday() + 1) % 7}
            for k in _CRON_FIELDS:
                v = spec.get(k, -1)
                if v != -1:
                    why = f"every {-v}" if isinstance(v, int) and v < -1 else str(v)
                    reasons.append(f"{k}={v} matches {current[k]}" if why == str(v)
                                   else f"{k}={v} ({why}) matches {current[k]}")
        why = ": " + ", ".join(reasons) if reasons else ""
        return f"cron {num} fired at {self.clock.format(t)[:8]}{why}"

    def _signal_handler(self, t: float, proc: str, f: dict[str, Any]) -> str:
        num = f.get("num")
        # the oldest routing of this signal not yet handled here is the one handled now
        routed = next((r for r in self.routed.get(num, ()) if proc not in r[2]), None)
        text = f"{_worker_words(proc)} ran the handler of signal {num}"
        if routed is not None:
            routed[2].add(proc)
        if routed is not None and t - routed[0] > 0.0005:
            if proc in routed[1]:
                text = (f"signal {num} queued to {_worker_words(proc)}: {_worker_words(proc)} "
                        f"was busy, delivered after the request ({t - routed[0]:.3f} s later)")
            else:
                text += f" ({t - routed[0]:.3f} s after it was routed)"
        return text

    def _signal_lost(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return f"signal {f.get('num')} lost: {f.get('why')}"

    def _signal_unhandled(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return (f"signal {f.get('num')} reached {_worker_words(proc)}, which has no handler "
                "for it: uWSGI logs 'error managing signal'")

    # -- spooler and mules -------------------------------------------------------------
    def _spool_enqueue(self, t: float, proc: str, f: dict[str, Any]) -> str:
        at = f" (not before {f.get('at')})" if f.get("at") else ""
        return f"{_worker_words(proc)} wrote spool file {Path(str(f.get('path'))).name}{at}"

    def _spool_start(self, t: float, proc: str, f: dict[str, Any]) -> str:
        path = str(f.get("path"))
        self.spool_tries[path] = self.spool_tries.get(path, 0) + 1
        again = self.spool_tries[path]
        nth = f" (attempt {again})" if again > 1 else ""
        return f"{_worker_words(proc)} runs the task {Path(path).name}{nth}"

    def _spool_end(self, t: float, proc: str, f: dict[str, Any]) -> str:
        rc = f.get("rc")
        name = _SPOOL_RC.get(rc, str(rc))
        return f"task done: the spooler function returned {name}, the file is removed"

    def _spool_retry(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return ("task retried: the spooler function returned SPOOL_RETRY, the file stays "
                "for the next scan")

    def _mule_msg(self, t: float, proc: str, f: dict[str, Any]) -> str:
        hook = f" to its {f.get('hook')}" if f.get("hook") else ""
        return f"{_worker_words(proc)} received a {f.get('bytes')}-byte message{hook}"

    def _clock_step(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return (f"the wall clock stepped by {f.get('delta')} s (virtual time goes on): crons "
                "and timers see the new wall time")

    def _fault_kill(self, t: float, proc: str, f: dict[str, Any]) -> str:
        return f"fault: {_worker_words(proc)} (pid {f.get('pid')}) is killed from outside"


def _with_start_times(rows: Iterable[Row]) -> Iterable[Row]:
    """Request-start fields remember their time (for the duration at the end)."""
    for t, node, proc, kind, f in rows:
        if kind == "request.start":
            f = {**f, "_t": t}
        yield t, node, proc, kind, f


def narrate(rows: Iterable[Row], clock: Clock | None = None) -> list[str]:
    """One sentence per record of ``rows`` (``(time, node, process, kind, fields)``)."""
    narrator = _Narrator(clock or Clock())
    return [narrator.line(t, proc, kind, f) for t, _n, proc, kind, f in _with_start_times(rows)]


# -- the command ------------------------------------------------------------------------
def _parse_time(text: str, clock: Clock, end: float) -> float:
    """``10:05``, ``10:05:30`` (local clock; the first such instant of the run) or a
    virtual offset (``90``, ``2h``)."""
    from .scenario import parse_duration

    if ":" not in text:
        return parse_duration(text)
    parts = text.split(":")
    try:
        hms = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"--at: {text!r} is neither HH:MM[:SS] nor a duration") from None
    if len(hms) > 3:
        raise ValueError(f"--at: {text!r} is neither HH:MM[:SS] nor a duration")
    want = hms[0] * 3600 + hms[1] * 60 + (hms[2] if len(hms) == 3 else 0)
    start = clock.datetime(0)
    if start is None:
        raise ValueError("--at HH:MM needs the run's clock (give a scenario or a report dir)")
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset = (midnight + timedelta(seconds=want) - start).total_seconds()
    while offset < 0:
        offset += 86400
    return offset if offset <= end else offset % 86400


def load_run(source: str) -> tuple[list[Row], Clock]:
    """The rows and clock of a scenario (run now, in sim mode), a report directory or a
    trace file (with the report's ``summary.json`` beside it, if any)."""
    from ._core.trace import Trace

    path = Path(source)
    if path.is_dir():
        path = path / "trace.msgpack"
    if not path.is_file():
        raise ValueError(f"{source}: no such scenario, report directory or trace file")
    if path.suffix == ".py":
        from .scenario import load_scenario

        scenario = load_scenario(str(path))
        with scenario.simulation() as sim:
            if scenario.timeline is not None:
                scenario.timeline(sim)
            else:
                sim.run_until(scenario.duration)
            rows = [tuple(r) for r in sim.trace.rows()]
            return rows, Clock.of(sim)  # type: ignore[return-value]
    try:
        trace = Trace.load(path)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is bad input
        raise ValueError(f"{source}: not a simuwsgi trace ({exc})") from None
    summary = path.with_name("summary.json")
    clock = Clock()
    if summary.is_file():
        clock = Clock.of_summary(json.loads(summary.read_text()))
    return [tuple(r) for r in trace.rows()], clock  # type: ignore[misc]


def select(rows: list[Row], lines: list[str], clock: Clock, *, at: str | None = None,
           process: str | None = None, kind: str | None = None,
           limit: int | None = None) -> list[str]:
    """The narrated lines, ``HH:MM:SS.mmm process  sentence``, filtered as the flags say."""
    end = rows[-1][0] if rows else 0.0
    since = _parse_time(at, clock, end) if at else None
    prefix = kind[:-1] if kind and kind.endswith("*") else None
    out = []
    for (t, _node, proc, k, _f), text in zip(rows, lines):
        if since is not None and t < since:
            continue
        if process is not None and proc != process:
            continue
        if kind is not None and not (k.startswith(prefix) if prefix is not None
                                     else k == kind):
            continue
        out.append(f"{clock.format(t)} {proc:<9} {text}")
        if limit is not None and len(out) >= limit:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    """``simuwsgi explain``: 0 printed, 2 bad input, 3 the scenario's simulation failed."""
    p = argparse.ArgumentParser(prog="simuwsgi explain",
                                description="Narrate a run: what uWSGI did, and why.")
    p.add_argument("source", help="a scenario (SCENARIO.py), a report directory or a trace")
    p.add_argument("--at", help="start at this local time (HH:MM[:SS]) or offset (90, 2h)")
    p.add_argument("--process", help="only this process (master, worker2, mule1...)")
    p.add_argument("--kind", help="only this kind (a trailing * matches a prefix)")
    p.add_argument("--limit", type=int, help="at most this many lines (default: 60 with --at)")
    args = p.parse_args(argv)
    try:
        rows, clock = load_run(args.source)
        lines = narrate(rows, clock)
        limit = args.limit if args.limit is not None else (60 if args.at else None)
        out = select(rows, lines, clock, at=args.at, process=args.process, kind=args.kind,
                     limit=limit)
    except (ValueError, OSError) as exc:
        print(f"simuwsgi explain: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"simuwsgi explain: the simulation failed: {exc}", file=sys.stderr)
        return 3
    print("\n".join(out))
    return 0

