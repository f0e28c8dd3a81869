"""Run reports: a short summary for the terminal and a report directory on disk.

A report directory holds ``report.md``, ``summary.json``, ``trace.msgpack`` (the trace,
or the kinds kept), ``log.txt`` (the lines uWSGI would have logged, each stamped as
``--log-date`` stamps it, in the simulation's time zone), ``timeline.html`` and
``timeline.png`` (:mod:`simuwsgi.timeline`).

``report.md`` tells the run's story rather than listing routine requests: the notable
events first, in order (deaths and their causes, harakiri, reloads, the app's
exceptions with their tracebacks, spool retries, clock steps), then signals, timers and
cron summarised per signal, then requests by status, with the reason spelled out for
every request that got no response. Every time is shown as the clock time of the
simulation's zone next to the virtual seconds since the start.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .timeline import timeline_of_sim
from ._core.trace import Record

__all__ = ["format_summary", "format_trace", "notable_events", "summarize",
           "unanswered_requests", "write_report"]

#: uWSGI's ``--log-date`` default format (``uwsgi_log_do_write``: ``%a %b %e %H:%M:%S %Y``).
LOG_DATE = "%a %b %e %H:%M:%S %Y"
#: How many requests without a response the report lists one by one.
UNANSWERED_LISTED = 50


def summarize(sim: Any, *, name: str, wall_seconds: float,
              check_error: str | None = None, checked: bool = True) -> dict[str, Any]:
    """The run in numbers. ``check`` is ``"passed"``, ``"failed: ..."``, or None when
    no check ran."""
    trace = sim.trace
    statuses = Counter(str(r.get("status")) for r in trace.select("request.end")
                       if r.get("status") is not None)
    handlers = Counter(r.process for r in trace.select("signal.handler"))
    clock = clock_of(sim)
    check = "failed: " + check_error if check_error else "passed" if checked else None
    return {
        "scenario": name,
        "seed": sim.seed,
        "start": clock(0.0),
        "end": sim.datetime.isoformat(),
        "tz": getattr(getattr(sim, "clock", None), "tz", None),
        "virtual_seconds": round(sim.now, 6),
        "wall_seconds": round(wall_seconds, 3),
        "speedup": round(sim.now / wall_seconds, 1) if wall_seconds > 0 else None,
        "events": len(trace),
        "kernel_events": getattr(getattr(sim, "kernel", None), "events_run", 0),
        "mode": getattr(sim, "mode", "sim"),
        "events_by_kind": trace.kinds(),
        "requests_by_status": dict(sorted(statuses.items())),
        "requests_without_response": len(unanswered_requests(trace))
        if _keeps(trace, *_REQUEST_KINDS) else None,
        "signal_handlers_by_process": dict(sorted(handlers.items())),
        "spawns": trace.count("spawn"),
        "deaths": trace.count("death"),
        "digest": trace.digest(),
        "trace_kinds": list(trace.kinds_kept) if trace.kinds_kept is not None else None,
        "check": check,
    }


#: The kinds that tell which requests got no response, and why.
_REQUEST_KINDS = ("request.submit", "request.start", "request.end", "death")


def _keeps(trace: Any, *kinds: str) -> bool:
    """Whether the trace kept every record of these kinds (``trace_kinds``)."""
    kept = trace.kinds_kept
    return kept is None or all(
        any(k == p or p.endswith("*") and k.startswith(p[:-1]) for p in kept) for k in kinds)


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"scenario {summary['scenario']} (seed {summary['seed']}): "
        f"{summary['virtual_seconds']:.0f} virtual s in {summary['wall_seconds']:.2f} wall s"
        + (f" ({summary['speedup']:.0f}x)" if summary.get("speedup") else ""),
        f"  from {summary['start']}",
        f"  {summary['events']} trace events, {summary['kernel_events']} kernel events, "
        f"{summary['spawns']} spawns, {summary['deaths']} deaths",
    ]
    if summary["requests_by_status"] or summary["requests_without_response"]:
        statuses = ", ".join(f"{k}: {v}" for k, v in summary["requests_by_status"].items())
        lines.append(f"  requests: {statuses or 'none'}"
                     + (f"; {summary['requests_without_response']} without a response"
                        if summary["requests_without_response"] else ""))
    if summary["signal_handlers_by_process"]:
        handlers = ", ".join(f"{k}: {v}" for k, v in summary["signal_handlers_by_process"].items())
        lines.append(f"  signal handlers run: {handlers}")
    if summary["check"] is not None:
        lines.append(f"  check: {summary['check']}")
    if summary.get("trace_kinds"):
        lines.append(f"  trace kept only {', '.join(summary['trace_kinds'])} "
                     "(the counts above are of those kinds)")
    lines.append(f"  trace digest {summary['digest']}")
    return "\n".join(lines)


def format_trace(records: Iterable[Record]) -> str:
    """Records as an aligned table: virtual time, process, kind, fields."""
    rows = [(f"{r.time:.6f}", r.process, r.kind,
             " ".join(f"{k}={_short(v)}" for k, v in r.fields.items())) for r in records]
    header = ("time (s)", "process", "kind", "fields")
    widths = [max([len(header[i])] + [len(row[i]) for row in rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        lines.append(f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
                     f"{row[3]}".rstrip())
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


# -- clock times -----------------------------------------------------------------------------
def clock_of(sim: Any, fmt: str = "%Y-%m-%d %H:%M:%S %Z") -> Callable[[float], str]:
    """``clock(t)``: the clock time at virtual second ``t``, in the run's time zone.

    A simulation's wall clock is its start plus the virtual seconds plus the clock
    steps made so far; a real run's is its ready instant plus the seconds since.
    """
    clock = getattr(sim, "clock", None)
    if clock is not None:
        zone: ZoneInfo | None = ZoneInfo(clock.tz)
        steps: list[tuple[float, float]] = list(clock.steps)
        first = float(clock.wall_offset) - sum(delta for _at, delta in steps)

        def wall(t: float) -> float:
            return first + t + sum(delta for at, delta in steps if at <= t)
    else:
        tz = getattr(sim, "tz", None)
        zone = ZoneInfo(tz) if tz else None
        ready = float(getattr(sim, "ready_wall", None) or 0.0)

        def wall(t: float) -> float:
            return ready + t

    def clock_time(t: float) -> str:
        return datetime.fromtimestamp(wall(t), timezone.utc).astimezone(zone).strftime(fmt)

    return clock_time


# -- the story -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """One notable thing that happened: when, who, what, and the log lines that show it."""

    time: float
    process: str
    what: str
    detail: tuple[str, ...] = ()


def notable_events(trace: Iterable[Record], log: Iterable[tuple[float, str, str]] = ()
                   ) -> list[Event]:
    """The events a person wants first, in time order: deaths (grouped when several
    processes die at once for one reason), harakiri, reloads and stops, the app's
    exceptions (with the traceback from ``log``: ``(time, process, line)`` triples),
    spool retries, clock steps and requests that got no response."""
    events: list[Event] = []
    deaths: dict[tuple[float, str], list[Record]] = {}
    retries: dict[str, list[Record]] = {}
    started: dict[Any, Record] = {}
    for r in trace:
        kind = r.kind
        if kind == "death":
            deaths.setdefault((r.time, str(r.get("reason"))), []).append(r)
        elif kind == "harakiri":
            request = next((s for s in started.values() if s.process == r.process), None)
            on = f" on {request['method']} {request['path']}" if request is not None else ""
            events.append(Event(r.time, r.process,
                                f"harakiri: {r.process} (pid {r.get('pid')}) was stuck{on}"))
        elif kind == "reload.begin":
            how = "graceful" if r.get("graceful") else "brutal"
            events.append(Event(r.time, r.process, f"reload ({how}): the master re-executes "
                                                   "itself and respawns every process"))
        elif kind in ("api.reload", "api.stop"):
            events.append(Event(r.time, r.process,
                                f"{r.process} called uwsgi.{kind[4:]}()"))
        elif kind == "instance.stop":
            events.append(Event(r.time, r.process, "the instance stopped"))
        elif kind == "spool.retry":
            retries.setdefault(str(r.get("path")), []).append(r)
        elif kind == "clock.step":
            events.append(Event(r.time, r.process,
                                f"the wall clock stepped by {r.get('delta'):+g} s"))
        elif kind == "fault.kill":
            events.append(Event(r.time, r.process, f"{r.process} was killed (sim.kill)"))
        elif kind in _NETWORK_EVENTS:
            events.append(Event(r.time, r.process, _NETWORK_EVENTS[kind](r.fields)))
        elif kind == "subscription.dead":
            events.append(Event(r.time, r.process, (
                f"the {r.process} router of {r.node}: backend {r['address']} of {r['key']} "
                f"{_DEAD_WHY.get(r['why'], r['why'])}")))
        elif kind == "request.start":
            started[r.get("id")] = r
        elif kind == "request.end":
            started.pop(r.get("id"), None)
    for (time, reason), dead in deaths.items():
        who = ", ".join(f"{d.process} (pid {d.get('pid')})" for d in dead)
        events.append(Event(time, dead[0].process,
                            f"{who} died: {_death(reason)}"))
    for path, tries in retries.items():
        first, last = tries[0], tries[-1]
        events.append(Event(first.time, first.process,
                            f"spool task {Path(path).name} asked to be retried (returned "
                            f"{first.get('rc')}) {len(tries)} time{'s' if len(tries) > 1 else ''}"
                            f", the last at {last.time:g} s"))
    events.extend(_tracebacks(log))
    return sorted(events, key=lambda e: e.time)


#: What the report says of a cluster's network verbs and nodes (cluster.trace records).
_NETWORK_EVENTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "net.partition": lambda f: "the network was partitioned: "
                               + " | ".join(", ".join(g) for g in f["groups"]),
    "net.isolate": lambda f: f"node {f['name']} was isolated from the network",
    "net.heal": lambda f: "the network was healed",
    "node.kill": lambda f: f"node {f['name']} was killed (every process, kill -9)",
}
_DEAD_WHY = {"failed": "failed (connection refused or timed out): requests rerouted",
             "unsubscribed": "unsubscribed",
             "silent": "sent no announce within the tolerance: dropped"}


def _routers_section(trace: Any) -> list[str]:
    """Which backends each router sent requests to, and when (a cluster's routers)."""
    rows: dict[tuple[str, str], list[float]] = {}
    for r in trace.select("router.route"):
        rows.setdefault((f"{r.node}/{r.process}", r["backend"]), []).append(r.time)
    if not rows:
        return []
    return ["## Routed requests", "", "| router | backend | requests | first | last |",
            "|---|---|---|---|---|",
            *(f"| {router} | {backend} | {len(times)} | {times[0]:g} s | {times[-1]:g} s |"
              for (router, backend), times in rows.items()), ""]


def _death(reason: str) -> str:
    return {"max-requests": "reached --max-requests and was recycled (respawned)",
            "harakiri": "killed by harakiri (signal 9), respawned",
            "reload": "stopped for the reload"}.get(reason, reason)


def _tracebacks(log: Iterable[tuple[float, str, str]]) -> list[Event]:
    """Every traceback in the log, as an event titled by its last line."""
    events: list[Event] = []
    block: list[str] | None = None
    at: tuple[float, str] = (0.0, "")
    for time, process, line in log:
        if line.startswith("Traceback (most recent call last):"):
            block, at = [line], (time, process)
        elif block is not None:
            block.append(line)
            if not line.startswith(" "):
                events.append(Event(at[0], at[1], f"exception in {at[1]}: {line}",
                                    tuple(block)))
                block = None
    return events


def unanswered_requests(trace: Iterable[Record]) -> list[tuple[Record, str]]:
    """Each request that got no response, with why: ``(its request.submit, reason)``."""
    submitted: dict[Any, Record] = {}
    started: dict[Any, Record] = {}
    ended: dict[Any, Record] = {}
    deaths: list[Record] = []
    for r in trace:
        if r.kind == "request.submit":
            submitted[r.get("id")] = r
        elif r.kind == "request.start":
            started[r.get("id")] = r
        elif r.kind == "request.end":
            ended[r.get("id")] = r
        elif r.kind == "death":
            deaths.append(r)
    out = []
    for ident, sub in submitted.items():
        end = ended.get(ident)
        if end is not None:
            if end.get("status") is None:
                out.append((sub, "the connection was closed without a response: "
                                 + ("the app raised before start_response" if end.get("exception")
                                    else "start_response was never called")))
            continue
        start = started.get(ident)
        if start is None:
            out.append((sub, "still waiting for a worker when the run ended"))
            continue
        death = next((d for d in deaths if d.process == start.process and d.time >= start.time),
                     None)
        out.append((sub, f"{start.process} died ({death.get('reason')}) while serving it"
                         if death is not None else
                         f"{start.process} was still serving it when the run ended"))
    return out


def _timed_log(sim: Any) -> list[tuple[float, str, str]]:
    """The log as ``(time, process, line)``: a simulation keeps when each line was
    written; a real run's lines carry their own."""
    inst = getattr(sim, "inst", None)
    if inst is not None:
        return list(inst.log_lines)
    return [(0.0, "", line) for line in sim.log]


def _story(sim: Any, summary: dict[str, Any]) -> str:
    clock = clock_of(sim)
    trace = sim.trace

    def when(t: float) -> str:
        return f"{clock(t)} ({t:g} s)"

    out = [f"# simuwsgi run: {summary['scenario']}", "",
           f"{summary['mode']} mode, seed {summary['seed']}: from {clock(0.0)} to "
           f"{clock(sim.now)}, {sim.now:g} virtual seconds in {summary['wall_seconds']:g} "
           f"wall seconds.", ""]
    if summary["check"] is not None:
        out += [f"Check: **{summary['check']}**.", ""]
    if summary.get("trace_kinds"):
        out += [f"The trace kept only {', '.join(summary['trace_kinds'])}: events of other "
                "kinds are not in this report.", ""]
    out += ["## What happened", ""]
    events = notable_events(trace, _timed_log(sim))
    if not events:
        out.append("Nothing notable: no death, harakiri, reload or exception.")
    for e in events:
        out.append(f"- {when(e.time)}: {e.what}")
        if e.detail:
            out += ["", "  ```", *("  " + line for line in e.detail), "  ```", ""]
    out += ["", *_unanswered_section(trace, when), *_signals_section(trace, _handlers(sim)),
            *_statuses_section(trace), *_routers_section(trace),
            "## Options", "", "```", " ".join(_argv(sim)), "```", "",
            "## Events by kind", "", "| kind | count |", "|---|---|",
            *(f"| {k} | {v} |" for k, v in summary["events_by_kind"].items()), "",
            "## Files", "",
            "`trace.msgpack`: every event (print it with `simuwsgi trace trace.msgpack "
            "[--kind K] [--process P] [--from T --to T]`); `log.txt`: what uWSGI would have "
            "logged, with `--log-date` stamps; `summary.json`: the numbers above.",
            "", f"Trace digest `{summary['digest']}`.", ""]
    return "\n".join(out)


def _unanswered_section(trace: Any, when: Callable[[float], str]) -> list[str]:
    if not _keeps(trace, *_REQUEST_KINDS):
        return []
    unanswered = unanswered_requests(trace)
    if not unanswered:
        return []
    out = ["### Requests without a response", ""]
    for sub, why in unanswered[:UNANSWERED_LISTED]:
        out.append(f"- {sub.get('method')} {sub.get('path')} sent {when(sub.time)}: {why}")
    if len(unanswered) > UNANSWERED_LISTED:
        out.append(f"- ... and {len(unanswered) - UNANSWERED_LISTED} more")
    return [*out, ""]


def _handlers(sim: Any) -> dict[int, str]:
    """The name of the function registered for each signal (a live simulation only)."""
    signals = getattr(getattr(sim, "inst", None), "subsystems", {}).get("signals")
    names: dict[int, str] = {}
    for table in getattr(signals, "tables", {}).values():
        for num, entry in table.items():
            handler = entry.handler
            names.setdefault(num, getattr(handler, "__qualname__", None) or repr(handler))
    return names


def _signals_section(trace: Any, handlers: dict[int, str]) -> list[str]:
    """Signals per number: what raised them (timer, cron, ...), their handler and where
    it ran."""
    sources: dict[int, str] = {}
    for r in trace.select("timer.add"):
        sources[r.get("num")] = f"timer every {r.get('secs')} s"
    for r in trace.select("rb_timer.add"):
        sources[r.get("num")] = f"rb_timer every {r.get('secs')} s"
    for r in trace.select("cron.add"):
        spec = " ".join("*" if r.get(f) == -1 else str(r.get(f))
                        for f in ("minute", "hour", "day", "month", "week"))
        sources[r.get("num")] = f"cron `{spec}`"
    for r in trace.select("signal.raise"):
        sources.setdefault(r.get("num"), "uwsgi.signal()")
    fired = Counter(r.get("num") for r in trace.select("*")
                    if r.kind in ("timer.fire", "rb_timer.fire", "cron.signal", "signal.raise"))
    handled: dict[int, Counter[str]] = {}
    for r in trace.select("signal.handler"):
        handled.setdefault(r.get("num"), Counter())[r.process] += 1
    commands = Counter(r.get("command") for r in trace.select("cron.command"))
    if not (sources or handled or commands):
        return []
    out = ["### Signals, timers and cron", "",
           "| signal | raised by | fired | handler | runs |", "|---|---|---|---|---|"]
    for num in sorted(set(sources) | set(handled)):
        runs = handled.get(num, Counter())
        where = ", ".join(f"{p}: {n}" for p, n in sorted(runs.items())) or "none"
        out.append(f"| {num} | {sources.get(num, '-')} | {fired.get(num, '-')} | "
                   f"{handlers.get(num, '-')} | {where} |")
    for command, n in sorted(commands.items()):
        out.append(f"| - | cron command `{command}` | {n} | - | - |")
    return [*out, ""]


def _statuses_section(trace: Any) -> list[str]:
    statuses = Counter(r.get("status") for r in trace.select("request.end")
                       if r.get("status") is not None)
    unanswered = len(unanswered_requests(trace)) if _keeps(trace, *_REQUEST_KINDS) else 0
    if not statuses and not unanswered:
        return []
    return ["## Requests by status", "", "| status | count |", "|---|---|",
            *(f"| {k} | {v} |" for k, v in sorted(statuses.items())),
            *([f"| no response | {unanswered} (see above) |"] if unanswered else []), ""]


def _argv(sim: Any) -> list[str]:
    """The uWSGI command line of the run (real mode: the one actually executed)."""
    server = getattr(sim, "server", None)
    if server is not None and getattr(server, "argv", None):
        return list(server.argv)
    nodes = getattr(sim, "nodes", None)
    if nodes is not None:  # a cluster: each node's, after its name
        return [part for name, node in nodes.items()
                for part in (f"\n{name}:", *node.opts.argv())]
    return list(sim.opts.argv())


def _log_text(sim: Any) -> str:
    """``log.txt``: a simulation's lines with ``--log-date`` stamps in its time zone
    (``uwsgi_log_verbose``'s lines have theirs); a real run's as uWSGI wrote them."""
    inst = getattr(sim, "inst", None)
    if inst is None:
        return "\n".join(sim.log) + "\n"
    stamp = clock_of(sim, LOG_DATE)
    out = []
    for t, _proc, line in inst.log_lines:
        date = f"{stamp(t)} - "
        # uwsgi_log_verbose's lines carry their date already and skip --log-date's
        out.append(f"{line}\n" if line.startswith(date) else f"{date}{line}\n")
    return "".join(out)


def write_report(sim: Any, summary: dict[str, Any], directory: str | Path) -> Path:
    name = f"{summary['scenario']}-seed{summary['seed']}"
    out = Path(directory) / name
    if Path(name).name != name or name.startswith("."):
        raise ValueError(f"report name {name!r} (scenario name and SEED) would write outside "
                         f"{directory}: a scenario's name and SEED must be plain words")
    out.mkdir(parents=True, exist_ok=True)
    sim.trace.save(out / "trace.msgpack")
    timeline = timeline_of_sim(sim, out, summary["scenario"])
    (out / "log.txt").write_text(_log_text(sim))
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    (out / "report.md").write_text(_story(sim, summary) + "\n" + timeline)
    return out
