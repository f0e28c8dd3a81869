"""The ``simuwsgi`` command.

    simuwsgi run [--for DURATION] [--seed N] [--start ISO] [--tz ZONE]
                 [--request 'AT METHOD PATH']... [--trace FILE] [--report DIR]
                 [--mode sim|fork|real] [--yes] [--allow-no-app] -- <uwsgi options>
    simuwsgi run SCENARIO.py [same flags, overriding the scenario's]
    simuwsgi run SCENARIO.py --seed S --faults PLAN   (a replay printed by explore)
    simuwsgi explore SCENARIO.py [--seeds N] [--faults KINDS] [--jobs J]
                     [--scheduler tcp://HOST:PORT]   (see ``simuwsgi.explore``)
    simuwsgi trace FILE [--kind K] [--process P] [--from T] [--to T]
    simuwsgi serve [--for SECONDS] [--seed N] [--start ISO] [--tz ZONE] -- <uwsgi options>
    simuwsgi ping|rpc|signal|cache|spool ADDR ...   (see ``simuwsgi.cli_net``)
    simuwsgi options [--status simulated|no-effect|not-simulated] [--markdown] [NAME]
    simuwsgi view REPORT_DIR|TRACE      (``simuwsgi.timeline``)
    simuwsgi explain SCENARIO|TRACE [--at TIME] [--process P] [--kind K]   (``simuwsgi.explain``)

Every error a user can cause is one line on stderr (plus the uWSGI log lines that
explain it) and a non-zero exit, never a Python traceback.

Exit status of ``run``: 0 the run completed (and the scenario's ``check`` passed); 1 the
check failed, or the app did not load (unless ``--allow-no-app``); 2 bad usage or a uWSGI
option uWSGI would refuse (or, with ``--strict``, an option the simulation does not
simulate); 3 the simulation failed (deadlock, crash); 130 interrupted (Ctrl-C). Every
command exits 141 without a traceback when its output's reader goes away
(``simuwsgi trace FILE | head``).
``trace``: 0, or 2 for a file it cannot read. ``options`` prints what the simulation does
with each uWSGI option (exit 2: unknown name). ``serve`` and the node client commands
document theirs in ``simuwsgi.cli_net``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from ._errors import AppLoadError, ConfigError, SimulationError
from ._core.clock import RealClock
from .report import format_summary, format_trace, summarize, write_report
from .scenario import Scenario, load_scenario, parse_duration

__all__ = ["main"]

#: The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130
#: The exit status when stdout's reader went away (128 + SIGPIPE, as shells report it).
BROKEN_PIPE = 141
#: ``--mode real`` runs in real time: longer scenarios need ``--yes``.
REAL_MODE_CONFIRM_AFTER = 60.0

_RUN_EPILOG = """\
uWSGI options go after --, exactly as you would give them to uwsgi:
  simuwsgi run --for 1d --request '5s GET /' -- --master --processes 2 --wsgi-file app.py
  simuwsgi run scenarios/quickstart.py --report reports/
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    p = _Parser(prog="simuwsgi", description="Simulate uWSGI in virtual time.",
                allow_abbrev=False)
    p.add_argument("--version", action="version",
                   version=f"simuwsgi {__version__} (simulates uWSGI 2.0.30)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser(
        "run", help="run a scenario, or uWSGI options after --",
        usage="simuwsgi run [SCENARIO.py] [flags] [-- UWSGI_OPTIONS...]",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)
    run.add_argument("scenario", nargs="?", help="a scenario file (SCENARIO.py)")
    run.add_argument("--for", dest="duration",
                     help="virtual duration: 90, 10m, 1d, 1w (not with a scenario that "
                          "has its own timeline)")
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
    run.add_argument("--yes", action="store_true",
                     help="--mode real: run a scenario longer than a minute (it takes "
                          "its whole duration in real time)")
    run.add_argument("--allow-no-app", action="store_true",
                     help="run on when the app did not load (uWSGI's full dynamic mode, "
                          "every request a 500) instead of failing")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--faults", metavar="PLAN",
                     help="a fault plan (simuwsgi.faults), as explore prints it: "
                          "\"Kill('spooler1', at=12.5); ClockStep(-60, at=30)\"")
    run.add_argument("--subprocess", choices=["run", "refuse"],
                     help="commands the app starts (subprocess, os.system, os.exec*...): "
                          "run them on this host (the default) or refuse them")
    run.add_argument("--stall-timeout", type=float, metavar="SECONDS",
                     help="real seconds app code may run without yielding before it is "
                          "stopped (default 5; 0: never)")
    trace = sub.add_parser("trace", help="print a saved trace (run --trace FILE) as a table",
                           allow_abbrev=False)
    trace.add_argument("file")
    trace.add_argument("--kind", help="only this kind (a trailing * matches a prefix)")
    trace.add_argument("--process", help="only this process (master, worker1, mule1...)")
    trace.add_argument("--from", dest="begin", metavar="T",
                       help="from virtual time T (seconds, or 10m, 1h...)")
    trace.add_argument("--to", dest="end", metavar="T", help="up to virtual time T")
    run.add_argument("--strict", action="store_true",
                     help="refuse uWSGI options the simulation does not simulate")
    options = sub.add_parser("options", help="what the simulation does with each uWSGI option")
    options.add_argument("name", nargs="?", help="one option (without --)")
    options.add_argument("--status", choices=["simulated", "no-effect", "not-simulated"])
    options.add_argument("--markdown", action="store_true", help="as docs/options.md")
    from .cli_net import add_commands

    add_commands(sub)
    explore = sub.add_parser("explore", help="run a scenario under many seeds and fault "
                                             "plans; shrink failures to a one-line replay")
    explore.add_argument("scenario")
    explore.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    explore.add_argument("--first-seed", type=int, default=0)
    explore.add_argument("--faults", metavar="KINDS",
                         help="fault kinds to draw, comma-separated: kill, clock, tz, "
                              "storm, slow, disk, signals (default kill)")
    explore.add_argument("--jobs", type=int, default=1, help="parallel processes")
    explore.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                         help="run the seeds on a Dask distributed cluster")
    explore.add_argument("--mode", default="sim", choices=["sim", "fork"])
    explore.add_argument("--stop", action="store_true", help="stop at the first failure")
    explore.add_argument("--report", default="reports", help="report dir (default reports/)")
    explore.add_argument("--quiet", action="store_true", help="no progress line")
    for name, text in (("view", "write (if needed) and open a report's timeline.html"),
                       ("explain", "narrate a run: what uWSGI did, and why")):
        sub.add_parser(name, help=text, add_help=False)
    conform = sub.add_parser("conform", help="diff a scenario's sim run against real uWSGI")
    conform.add_argument("scenario")
    conform.add_argument("--fork", action="store_true", help="also run and diff fork mode")
    conform.add_argument("--report", default="reports", help="report dir (default reports/)")
    conform.add_argument("--log", action="store_true",
                         help="also compare the logs line by line (masked)")
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a gone reader can still be answered
        return status
    except BrokenPipeError:
        # ``simuwsgi ... | head``: the reader is gone. Whatever is still buffered goes
        # to /dev/null (else the interpreter's last flush prints a traceback), and the
        # exit status is a shell's for a command killed by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and "SIMUWSGI_RUN_DIR" not in os.environ:
        from .explore import scratch_dir

        with scratch_dir():  # explore.run_dir(): where scenarios put spool directories
            return main(argv)
    uwsgi_options: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, uwsgi_options = argv[:cut], argv[cut + 1:]
    if argv and argv[0] in ("view", "explain"):
        from . import explain, timeline

        return {"view": timeline.main, "explain": explain.main}[argv[0]](argv[1:])
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, argv, extra, uwsgi_options)
    if args.command == "options":
        return _options(args)
    if args.command == "conform":
        from .conform import main as conform_main

        return conform_main([args.scenario, "--report", args.report]
                            + (["--fork"] if args.fork else [])
                            + (["--log"] if args.log else []))
    if args.command == "explore":
        from .explore import main as explore_main

        return explore_main(args)
    if args.command == "run" and args.faults is not None:
        if not args.scenario or args.mode == "real":
            print("simuwsgi run: --faults needs a SCENARIO.py in sim or fork mode",
                  file=sys.stderr)
            return 2
        from .explore import replay_main

        return replay_main(args.scenario, args.seed or 0, args.faults, args.mode)
    if args.command == "trace":
        return _trace(args)
    if args.command != "run":
        from .cli_net import run_command

        return run_command(args, uwsgi_options)
    try:
        scenario, sim, requests = _prepare(args, uwsgi_options)
    except (ConfigError, ValueError) as exc:
        print(f"simuwsgi run: {exc}", file=sys.stderr)
        return 2
    return _run(scenario, sim, requests, args)


def _unrecognized(parser: argparse.ArgumentParser, argv: list[str], extra: list[str],
                  uwsgi_options: list[str]) -> NoReturn:
    """Arguments no flag takes: most often uWSGI options given without ``--``."""
    command = argv[0]
    if command in ("run", "serve") and extra[0].startswith("-"):
        cut = argv.index(extra[0])
        mine, theirs = argv[:cut], argv[cut:] + uwsgi_options
        parser.exit(2, f"simuwsgi {command}: unrecognized arguments: {' '.join(argv[cut:])}: "
                       f"uWSGI options go after --, e.g. simuwsgi {' '.join(mine)} -- "
                       f"{' '.join(theirs)}\n")
    parser.exit(2, f"simuwsgi {command}: unrecognized arguments: {' '.join(extra)} "
                   f"(see simuwsgi {command} --help)\n")


def _prepare(args: argparse.Namespace, uwsgi_options: list[str]
             ) -> tuple[Scenario, Any, list[tuple[float, str, str]]]:
    """The scenario, its (unstarted) driver and the ``--request``s, or a ValueError
    that says which argument is wrong and why."""
    if args.scenario:
        scenario = _load(args.scenario)
        if uwsgi_options:
            scenario.options = uwsgi_options
    elif uwsgi_options:
        scenario = Scenario(name="cli", options=uwsgi_options, app_dir=Path.cwd())
    else:
        raise ValueError("give a SCENARIO.py or uWSGI options after --, e.g. "
                         "simuwsgi run -- --master --wsgi-file app.py")
    if args.duration is not None:
        if scenario.timeline is not None:
            raise ValueError(f"--for: scenario {scenario.name} has its own timeline, which "
                             f"decides how long it runs: drop --for or edit the timeline")
        duration = parse_duration(args.duration)
        if duration <= 0:
            raise ValueError(f"--for takes a positive duration (e.g. 90, 10m, 1d), not "
                             f"{args.duration!r}")
        scenario.duration = duration
    requests = [_parse_request(text) for text in args.request]
    for (at, _method, _path), text in zip(requests, args.request, strict=True):
        if scenario.timeline is None and at >= scenario.duration:
            raise ValueError(f"--request {text!r}: at {at:g} s, past the end of the run "
                             f"({scenario.duration:g} s): give a longer --for")
    kinds = _trace_kinds(args.trace_kinds) if args.trace_kinds is not None else None
    _check_outputs(args)
    if args.mode != "real":
        sim = scenario.simulation(seed=args.seed, start=args.start, tz=args.tz,
                                  mode=args.mode, trace_kinds=kinds,
                                  allow_no_app=args.allow_no_app or None,
                                  strict=args.strict or None,
                                  stall_timeout=args.stall_timeout,
                                  subprocess=args.subprocess)
        return scenario, sim, requests
    if kinds is not None:
        raise ValueError("--trace-kinds: real mode records its trace as uWSGI runs; "
                         "filter it afterwards")
    if scenario.duration > REAL_MODE_CONFIRM_AFTER and not args.yes:
        raise ValueError(f"--mode real runs in real time: {scenario.name} lasts "
                         f"{format_duration(scenario.duration)}, so it would take "
                         f"{format_duration(scenario.duration)} of real time: add --yes "
                         f"to run it anyway")
    return scenario, _real_driver(scenario, args), requests


def _trace_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        raise ValueError(f"--trace-kinds takes kinds such as 'cron.*,request.end', not "
                         f"{text!r}")
    return kinds


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before a long run, a time zone, trace file or report directory that
    would fail at its start or its end."""
    if args.tz is not None:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(args.tz)
        except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"--tz: no time zone {args.tz!r}: use an IANA name such as "
                             f"Europe/Paris or UTC") from None
    if args.trace is not None and not Path(args.trace).resolve().parent.is_dir():
        raise ValueError(f"--trace {args.trace}: no directory {Path(args.trace).parent} to "
                         f"write it in")
    if args.report is not None:
        try:
            Path(args.report).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"--report {args.report}: cannot create it: {exc.strerror}"
                             ) from None


def _load(path: str) -> Scenario:
    """``load_scenario``, refusing what is not a scenario with a reason."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no such scenario file: {path}")
    try:
        tree = ast.parse(file.read_bytes(), filename=path)
    except SyntaxError as exc:
        raise ValueError(f"scenario {path}, line {exc.lineno}: {exc.msg}") from None
    names = _top_level_names(tree)
    if "OPTIONS" not in names and "NODES" not in names:  # NODES: a cluster (scenario.py)
        raise ValueError(f"{path} is not a scenario (it sets no OPTIONS); to run it as the "
                         f"app, give uWSGI options after --: simuwsgi run -- --master "
                         f"--wsgi-file {path}")
    try:
        return load_scenario(file)
    except Exception as exc:  # noqa: BLE001 - the user's file: one line says what failed
        raise ValueError(f"scenario {path} failed to load: {type(exc).__name__}: {exc}"
                         ) from None


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names a module's top level assigns or imports (read, not run: an app file
    would import ``uwsgi``)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _options(args: argparse.Namespace) -> int:
    from .server.options_status import format_table, status, table

    if args.name is not None:
        try:
            rows = [status(args.name.lstrip("-"))]
        except KeyError:
            print(f"simuwsgi options: uWSGI 2.0.30 has no option '--{args.name.lstrip('-')}'",
                  file=sys.stderr)
            return 2
    else:
        rows = table()
    if args.status is not None:
        rows = [r for r in rows if r.status == args.status]
    print(format_table(rows, markdown=args.markdown), end="")
    return 0


def _real_driver(scenario: Scenario, args: argparse.Namespace) -> Any:
    """``--mode real``: the scenario on the real uWSGI server (``simuwsgi.modes.real``)."""
    if args.start is not None:
        raise ValueError("--start: real mode runs on the host's real clock")
    if args.tz is not None:
        scenario.tz = args.tz
    from .runner import make_driver

    return make_driver(scenario, "real", allow_no_app=args.allow_no_app)


def _parse_request(text: str) -> tuple[float, str, str]:
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"--request takes 'AT METHOD PATH' (e.g. '5s GET /'), not {text!r}")
    at = parse_duration(parts[0])
    if at < 0:
        raise ValueError(f"--request {text!r}: AT is a time since the start, not {at:g}")
    return at, parts[1].upper(), parts[2]


def format_duration(seconds: float) -> str:
    """``86400`` -> ``1 d``, ``5400`` -> ``1 h 30 min``, ``90`` -> ``1 min 30 s``."""
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size} {unit}")
            rest %= size
    return " ".join(parts[:2]) or f"{seconds:g} s"


def _run(scenario: Scenario, sim: Any, requests: list[tuple[float, str, str]],
         args: argparse.Namespace) -> int:
    began = RealClock.monotonic()
    check_error = None
    what = "run" if args.mode == "real" else "simulation"
    driver = _CliDriver(sim, scenario.duration, quiet=args.quiet)
    try:
        with driver.deferring_ctrl_c(), sim:
            faults = getattr(scenario.module, "FAULTS", None)
            if faults:
                if args.mode == "real":
                    raise ConfigError("the scenario's FAULTS cannot be applied to the real "
                                      "server: run it in sim or fork mode")
                sim.apply(faults)
            for at, method, path in requests:
                sim.submit(method, path, at=at)
            if scenario.timeline is not None:
                scenario.timeline(driver)
            else:
                driver.run_until(scenario.duration)
            driver.done()
            late = [at for at, _m, _p in requests if at > sim.now]
            if late:
                print(f"simuwsgi run: --request at {max(late):g} s: past the end of the run "
                      f"(the timeline stopped at {sim.now:g} s)", file=sys.stderr)
                return 2
            if scenario.check is not None:
                try:
                    scenario.check(driver)
                except AssertionError as exc:
                    check_error = str(exc) or "assertion failed"
    except KeyboardInterrupt:
        print(f"simuwsgi run: interrupted (the {what} was shut down)", file=sys.stderr)
        return INTERRUPTED
    except AppLoadError as exc:
        print(f"simuwsgi run: {app_load_message(exc)}", file=sys.stderr)
        for line in exc.cause:
            print(f"  {line}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"simuwsgi run: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"simuwsgi run: the {what} failed: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:
        where = _scenario_line(scenario, exc)
        if where is not None:  # the scenario's own code raised: say where, no traceback
            print(f"simuwsgi run: {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
        if args.mode != "real" or not isinstance(exc, RuntimeError):
            raise
        # RealUwsgiError: uWSGI failed to start (its log lines follow)
        log = list(getattr(exc, "log", ()))
        if any("*** no app loaded" in line for line in log):
            # as in sim mode: one line, then the log lines that say why
            print("simuwsgi run: the app did not load on the real uWSGI server (--allow-no-app "
                  "runs it anyway)", file=sys.stderr)
            for line in _app_failure_lines(log):
                print(f"  {line}", file=sys.stderr)
            return 1
        print(f"simuwsgi run: the real uWSGI server failed: {exc}", file=sys.stderr)
        return 3
    summary = summarize(sim, name=scenario.name, wall_seconds=RealClock.monotonic() - began,
                        check_error=check_error, checked=scenario.check is not None)
    print(format_summary(summary))
    if args.trace:
        sim.trace.save(args.trace)
    if args.report:
        out = write_report(sim, summary, args.report)
        print(f"  report: {out / 'report.md'}")
    return 1 if check_error else 0


def _app_failure_lines(log: list[str]) -> list[str]:
    """The real log's lines about the app that did not load: from its first traceback
    (or ``failed to open``) through ``*** no app loaded``."""
    end = next(i for i, line in enumerate(log) if "*** no app loaded" in line)
    start = next((i for i, line in enumerate(log[:end])
                  if line.startswith(("Traceback", "failed to open"))), end)
    return log[start:end + 1]


def _scenario_line(scenario: Scenario, exc: BaseException) -> str | None:
    """``scenario s.py, line 12`` when the scenario file's code raised ``exc``."""
    path = getattr(scenario.module, "__file__", None)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == path]
    if not frames:
        return None
    return f"scenario {Path(frames[-1].filename).name}, line {frames[-1].lineno}"


def app_load_message(exc: AppLoadError) -> str:
    """The one line ``run`` and ``serve`` print when the app did not load."""
    if exc.exit_status is not None:
        return exc.what
    return (f"{exc.what}: uWSGI would run on, answering every request with a 500 "
            f"(--allow-no-app runs it anyway)")


class _CliDriver:
    """The driver as ``run`` drives it: a long ``run_until``/``advance`` goes in slices,
    and between slices the progress bar is redrawn (on a terminal; not with ``--quiet``,
    nothing on a pipe) and a Ctrl-C is acted upon.

    Ctrl-C must not land inside the app's code, where an ``except Exception`` or uWSGI's
    own printing of a handler's exception would swallow it (the master takes SIGINT, not
    the app): while the run lasts, the first Ctrl-C is only noted and raised as
    ``KeyboardInterrupt`` at the end of the slice; a second one interrupts at once.
    """

    SLICES = 50
    AFTER = 0.5  # real seconds: a run shorter than that draws no bar
    EVERY = 0.1  # real seconds between redraws (a timeline may advance in tiny steps)
    SLICE_WALL = 0.25  # real seconds a slice should take, at most (about)

    def __init__(self, driver: Any, duration: float, *, quiet: bool) -> None:
        self._driver = driver
        self._duration = duration
        self._bar = not quiet and sys.stderr.isatty()
        self._began = RealClock.monotonic()
        self._drawn_at: float | None = None
        self._interrupted = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def __getitem__(self, name: str) -> Any:
        return self._driver[name]  # a cluster's node (a scenario with NODES)

    @contextlib.contextmanager
    def deferring_ctrl_c(self) -> Iterator[None]:
        """Note the first Ctrl-C instead of raising it wherever the run is."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers belong to the main thread
            return

        def note(signum: int, frame: Any) -> None:
            self._interrupted = True
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the next one: now

        previous = signal.signal(signal.SIGINT, note)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def advance(self, seconds: float) -> None:
        self.run_until(self._driver.now + seconds)

    def run_until(self, when: Any) -> None:
        if not isinstance(when, (int, float)) or when <= self._driver.now:
            self._driver.run_until(when)
            self._check()
            return
        largest = step = max(self._duration, when - self._driver.now) / self.SLICES
        at = self._driver.now
        while at < when:
            at = min(when, at + step)
            began = RealClock.monotonic()
            self._driver.run_until(at)
            took = RealClock.monotonic() - began
            self._check()
            self._draw()
            # slices of about SLICE_WALL real seconds: Ctrl-C is acted upon that soon
            if took > self.SLICE_WALL:
                step /= 2
            elif took < self.SLICE_WALL / 4:
                step = min(largest, step * 2)

    def _check(self) -> None:
        if self._interrupted:
            raise KeyboardInterrupt

    def _draw(self, *, final: bool = False) -> None:
        now = RealClock.monotonic()
        if not self._bar or not final and (now - self._began < self.AFTER or (
                self._drawn_at is not None and now - self._drawn_at < self.EVERY)):
            return
        done = min(1.0, self._driver.now / self._duration) if self._duration else 1.0
        stamp = self._driver.datetime.strftime("%Y-%m-%d %H:%M:%S")
        sys.stderr.write(f"\r  {draw_bar(done)} {stamp} "
                         f"({self._driver.now:.0f}/{self._duration:.0f} virtual s, "
                         f"{now - self._began:.1f} s)")
        sys.stderr.flush()
        self._drawn_at = now

    def done(self) -> None:
        """End the bar's line (if one was drawn)."""
        if self._drawn_at is not None:
            self._draw(final=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


def draw_bar(done: float, width: int = 30) -> str:
    """``[#####     ]  50%``: the progress bars of ``run`` and ``explore``."""
    return f"[{'#' * int(done * width):<{width}}] {done:4.0%}"


def _trace(args: argparse.Namespace) -> int:
    """``simuwsgi trace FILE``: a saved trace as a table."""
    from ._core.trace import Trace

    try:
        begin = parse_duration(args.begin) if args.begin is not None else None
        end = parse_duration(args.end) if args.end is not None else None
    except ValueError as exc:
        print(f"simuwsgi trace: {exc}", file=sys.stderr)
        return 2
    try:
        trace = Trace.load(args.file)
    except OSError as exc:
        print(f"simuwsgi trace: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - msgpack's errors have no common base
        print(f"simuwsgi trace: {args.file} is not a simuwsgi trace (run --trace FILE "
              f"saves one): {type(exc).__name__}", file=sys.stderr)
        return 2
    records = [r for r in trace.select(args.kind, args.process)
               if (begin is None or r.time >= begin) and (end is None or r.time <= end)]
    print(format_trace(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
