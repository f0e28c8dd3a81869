"""Run reports: a short summary for the terminal and a report directory on disk.

A report directory holds ``report.md`` (what ran, how long, what happened, the
digest), ``summary.json``, ``trace.msgpack`` (the trace, or the kinds kept), ``log.txt`` (the
lines uWSGI would have logged), ``timeline.html`` and ``timeline.png``
(:mod:`simuwsgi.timeline`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from .timeline import timeline_of_sim

__all__ = ["summarize", "format_summary", "write_report"]


def summarize(sim: Any, *, name: str, wall_seconds: float,
              check_error: str | None = None) -> dict[str, Any]:
    trace = sim.trace
    statuses = Counter(str(r.get("status")) for r in trace.select("request.end"))
    failed = sum(1 for r in trace.select("request.submit")) - sum(statuses.values())
    handlers = Counter(r.process for r in trace.select("signal.handler"))
    return {
        "scenario": name,
        "seed": sim.seed,
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
        "requests_without_response": max(0, failed),
        "signal_handlers_by_process": dict(sorted(handlers.items())),
        "spawns": trace.count("spawn"),
        "deaths": trace.count("death"),
        "digest": trace.digest(),
        "trace_kinds": list(trace.kinds_kept) if trace.kinds_kept is not None else None,
        "check": "failed: " + check_error if check_error else "passed",
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"scenario {summary['scenario']} (seed {summary['seed']}): "
        f"{summary['virtual_seconds']:.0f} virtual s in {summary['wall_seconds']:.2f} wall s"
        + (f" ({summary['speedup']:.0f}x)" if summary.get("speedup") else ""),
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
    lines.append(f"  check: {summary['check']}")
    if summary.get("trace_kinds"):
        lines.append(f"  trace kept only {', '.join(summary['trace_kinds'])} "
                     "(the counts above are of those kinds)")
    lines.append(f"  trace digest {summary['digest']}")
    return "\n".join(lines)


def _argv(sim: Any) -> list[str]:
    """The uWSGI command line of the run (real mode: the one actually executed)."""
    server = getattr(sim, "server", None)
    if server is not None and getattr(server, "argv", None):
        return list(server.argv)
    return sim.opts.argv()


def write_report(sim: Any, summary: dict[str, Any], directory: str | Path) -> Path:
    out = Path(directory) / f"{summary['scenario']}-seed{summary['seed']}"
    out.mkdir(parents=True, exist_ok=True)
    sim.trace.save(out / "trace.msgpack")
    timeline = timeline_of_sim(sim, out, summary["scenario"])
    (out / "log.txt").write_text("\n".join(sim.log) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    kinds = "\n".join(f"| {k} | {v} |" for k, v in summary["events_by_kind"].items())
    first = sim.trace.format(limit=40)
    (out / "report.md").write_text(
        f"# simuwsgi run: {summary['scenario']}\n\n"
        f"```\n{format_summary(summary)}\n```\n\n"
        f"## Options\n\n```\n{' '.join(_argv(sim))}\n```\n\n"
        f"## Events by kind\n\n| kind | count |\n|---|---|\n{kinds}\n\n"
        f"## First events\n\n```\n{first}\n```\n\n"
        f"Trace: `trace.msgpack` (msgpack rows: time, node, process, kind, fields); "
        f"uWSGI log: `log.txt`.\n\n{timeline}")
    return out
