"""The ``simuwsgi`` command.

    simuwsgi run [--for DURATION] [--seed N] [--start ISO] [--tz ZONE]
                 [--request 'AT METHOD PATH']... [--trace FILE] [--report DIR]
                 [--mode sim|fork] -- <uwsgi options>
    simuwsgi run SCENARIO.py [same flags, overriding the scenario's]
    simuwsgi serve [--for SECONDS] [--seed N] [--start ISO] [--tz ZONE] -- <uwsgi options>
    simuwsgi ping|rpc|signal|cache|spool ADDR ...   (see ``simuwsgi.net._cli``)
    simuwsgi view REPORT_DIR|TRACE      (``simuwsgi.timeline``)
    simuwsgi explain SCENARIO|TRACE [--at TIME] [--process P] [--kind K]   (``simuwsgi.explain``)

Exit status of ``run``: 0 the run completed (and the scenario's ``check`` passed); 1 the
check failed; 2 bad usage or a uWSGI option uWSGI would refuse; 3 the simulation failed
(deadlock, crash). ``serve`` and the node client commands document theirs in
``simuwsgi.net._cli`` (0 success, 1 the node said no, 2 bad usage, 3 unreachable /
failed, 4 ping answered with a warning message).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._errors import ConfigError, SimulationError
from .clock import RealClock
from .report import format_summary, summarize, write_report
from .scenario import Scenario, load_scenario, parse_duration

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simuwsgi", description="Simulate uWSGI in virtual time.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario, or uWSGI options after --")
    run.add_argument("scenario", nargs="?", help="a scenario file (SCENARIO.py)")
    run.add_argument("--for", dest="duration", help="virtual duration: 90, 10m, 1d, 1w")
    run.add_argument("--seed", type=int)
    run.add_argument("--start", help="first virtual instant, ISO 8601")
    run.add_argument("--tz", help="time zone, e.g. Europe/Paris")
    run.add_argument("--request", action="append", default=[], metavar="'AT METHOD PATH'",
                     help="send a request at virtual time AT (repeatable)")
    run.add_argument("--trace", help="save the trace (msgpack) to FILE")
    run.add_argument("--trace-kinds", metavar="KINDS",
                     help="keep only these trace kinds, comma-separated; a trailing * "
                          "matches a prefix (e.g. 'cron.*,request.*'): for long runs")
    run.add_argument("--report", help="write a report directory under DIR")
    run.add_argument("--mode", default="sim", choices=["sim", "fork", "real"],
                     help="sim (virtual processes, virtual time), fork (one forked OS "
                          "process per virtual process, virtual time) or real (the real "
                          "uWSGI server on loopback, real time)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    from .net._cli import add_commands

    add_commands(sub)
    for name, text in (("view", "write (if needed) and open a report's timeline.html"),
                       ("explain", "narrate a run: what uWSGI did, and why")):
        sub.add_parser(name, help=text, add_help=False)
    conform = sub.add_parser("conform", help="diff a scenario's sim run against real uWSGI")
    conform.add_argument("scenario")
    conform.add_argument("--fork", action="store_true", help="also run and diff fork mode")
    conform.add_argument("--report", default="reports", help="report dir (default reports/)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    uwsgi_options: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, uwsgi_options = argv[:cut], argv[cut + 1:]
    if argv and argv[0] in ("view", "explain"):
        from . import explain, timeline

        return {"view": timeline.main, "explain": explain.main}[argv[0]](argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "conform":
        from .conform import main as conform_main

        return conform_main([args.scenario, "--report", args.report]
                            + (["--fork"] if args.fork else []))
    if args.command != "run":
        from .net._cli import run_command

        return run_command(args, uwsgi_options)
    try:
        if args.scenario:
            scenario = load_scenario(args.scenario)
            if uwsgi_options:
                scenario.options = uwsgi_options
        elif uwsgi_options:
            scenario = Scenario(name="cli", options=uwsgi_options, app_dir=Path.cwd())
        else:
            print("simuwsgi run: give a SCENARIO.py or uWSGI options after --", file=sys.stderr)
            return 2
        if args.duration is not None:
            scenario.duration = parse_duration(args.duration)
        requests = [_parse_request(text) for text in args.request]
        kinds = [k.strip() for k in args.trace_kinds.split(",")] if args.trace_kinds else None
        if args.mode == "real":
            if kinds is not None:
                raise ValueError("--trace-kinds: real mode records its trace as uWSGI "
                                 "runs; filter it afterwards")
            sim = _real_driver(scenario, args)
        else:
            sim = scenario.simulation(seed=args.seed, start=args.start, tz=args.tz,
                                      mode=args.mode, trace_kinds=kinds)
    except (ConfigError, ValueError) as exc:
        print(f"simuwsgi: {exc}", file=sys.stderr)
        return 2
    return _run(scenario, sim, requests, args)


def _real_driver(scenario: Scenario, args: argparse.Namespace) -> Any:
    """``--mode real``: the scenario on the real uWSGI server (``simuwsgi.real``)."""
    if args.start is not None:
        raise ValueError("--start: real mode runs on the host's real clock")
    if args.tz is not None:
        scenario.tz = args.tz
    from .runner import make_driver

    return make_driver(scenario, "real")


def _parse_request(text: str) -> tuple[float, str, str]:
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"--request takes 'AT METHOD PATH' (e.g. '5s GET /'), not {text!r}")
    return parse_duration(parts[0]), parts[1].upper(), parts[2]


def _run(scenario: Scenario, sim: Any, requests: list[tuple[float, str, str]],
         args: argparse.Namespace) -> int:
    began = RealClock.monotonic()
    check_error = None
    try:
        with sim:
            for at, method, path in requests:
                sim.submit(method, path, at=at)
            if scenario.timeline is not None:
                scenario.timeline(sim)
            else:
                _advance_with_progress(sim, scenario.duration, quiet=args.quiet)
            if scenario.check is not None:
                try:
                    scenario.check(sim)
                except AssertionError as exc:
                    check_error = str(exc) or "assertion failed"
    except ConfigError as exc:
        print(f"simuwsgi: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"simuwsgi: {'run' if args.mode == 'real' else 'simulation'} failed: {exc}",
              file=sys.stderr)
        return 3
    except RuntimeError as exc:  # RealUwsgiError: uWSGI failed to start (its log lines)
        if args.mode != "real":
            raise
        print(f"simuwsgi: the real uWSGI server failed: {exc}", file=sys.stderr)
        return 3
    summary = summarize(sim, name=scenario.name, wall_seconds=RealClock.monotonic() - began,
                        check_error=check_error)
    print(format_summary(summary))
    if args.trace:
        sim.trace.save(args.trace)
    if args.report:
        out = write_report(sim, summary, args.report)
        print(f"  report: {out / 'report.md'}")
    return 1 if check_error else 0


def _advance_with_progress(sim: Any, duration: float, *, quiet: bool) -> None:
    """Advance in slices, printing progress when a run takes more than a second."""
    began = RealClock.monotonic()
    slices = 20
    for i in range(1, slices + 1):
        sim.run_until(duration * i / slices)
        elapsed = RealClock.monotonic() - began
        if not quiet and elapsed > 1.0 and i < slices:
            print(f"  ... {100 * i // slices}% ({sim.now:.0f}/{duration:.0f} virtual s, "
                  f"{elapsed:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
