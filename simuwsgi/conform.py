"""The conformance diff: run a scenario in ``sim`` (and optionally ``fork``) and on the
real uWSGI server, and say, event by event, where they differ.

``simuwsgi conform SCENARIO [--fork] [--report DIR]``; exit status 1 on a difference.

The real run goes first; the simulation then starts at the real run's wall-clock instant
(so cron and anything reading the date see the same minute) with the scenario's ``TZ``.
Each mode runs in a private copy of the scenario's app directory.

What is compared (everything else in the sim trace is internal and not observable on the
real server -- the report lists those kinds as "not compared"):

1. **responses**: status and body of every request the timeline sent, in order;
2. **state**: the value of the scenario's optional ``state(driver)``;
3. **events** of the observable kinds (:data:`OBSERVABLE`), grouped by process and by
   the kind's key fields: counts must be equal and, matched in time order, times must
   agree within the tolerance;
4. **per-process order** of the ordered kinds (:data:`ORDERED`) when process identities
   are exact;
5. both runs must finish without error, and the scenario's ``check`` must pass in both.

Normalisation of what real uWSGI leaves to chance is explicit, set by the scenario:

``CONFORM_IDENTITY = "kind"`` (default)
    which worker (mule, spooler) took a request or a signal is chance: processes are
    compared by kind (``worker``, ``mule``...), not by id; ``"exact"`` compares by name
    (use it when the scenario targets a specific process);
``CONFORM_TOLERANCE = 1.5``
    seconds allowed between the matched sim and real times of an event; ``None``
    compares counts and order only;
``CONFORM_IGNORE = {"kind": "why"}``
    observable kinds left out of the comparison, each with its reason (printed in the
    report, so nothing is hidden);
``KNOWN_DIFFERENCE = "what"``
    the scenario documents a difference the simulator does not model yet: the diff is
    still computed, printed and makes the exit status 1; the test suite reports it as
    xfailed with the full diff.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import SimulationError
from .runner import RunResult, private_app_dir, run_scenario
from .scenario import Scenario, load_scenario
from ._core.trace import Trace

__all__ = ["OBSERVABLE", "ORDERED", "ConformResult", "LogDiff", "compare", "compare_logs",
           "conform", "main", "mask_line", "run_real"]

#: kinds observable on the real server, with the fields that identify an event
OBSERVABLE: dict[str, tuple[str, ...]] = {
    "spawn": (),
    "death": (),
    "harakiri": (),
    "postfork": (),
    "request.start": ("method", "path"),
    "request.end": ("status", "bytes"),
    "signal.handler": ("num",),
    "spool.start": (),
    "spool.end": ("rc",),
    "mule.msg": ("bytes", "hook"),
    "rpc.call": ("name", "argc"),
}

#: kinds whose order within one process is compared (with exact identities)
ORDERED = ("request.start", "request.end", "signal.handler", "spool.start", "spool.end",
           "mule.msg", "rpc.call")

DEFAULT_TOLERANCE = 1.5

#: kinds both modes record for what the timeline itself did (not compared)
_DRIVER_KINDS = ("request.submit", "fault.kill", "signal.raise", "filemon.touch")


@dataclass
class ConformResult:
    """The outcome of one conformance run."""

    scenario: str
    differences: list[str]
    runs: dict[str, RunResult]
    settings: dict[str, Any]
    not_compared: dict[str, int] = field(default_factory=dict)
    report_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.differences

    def format(self) -> str:
        lines = [f"conformance of {self.scenario}: "
                 + ("OK" if self.ok else f"{len(self.differences)} difference(s)")]
        s = self.settings
        lines.append(f"  identities: {s['identity']}; time tolerance: "
                     + (f"{s['tolerance']} s" if s["tolerance"] is not None else "order only"))
        for mode, run in self.runs.items():
            extra = ""
            if run.info.get("ready_after") is not None:
                extra = f", ready after {run.info['ready_after']:.3f} s"
            lines.append(f"  {mode}: {len(run.trace)} events, {len(run.responses)} requests, "
                         f"{run.wall_seconds:.2f} wall s{extra}")
        known = s.get("known_difference")
        if known:
            lines.append(f"  known difference (documented by the scenario): {known}")
        for kind, why in sorted(s["ignore"].items()):
            lines.append(f"  ignored by the scenario: {kind} ({why})")
        if self.not_compared:
            kinds = ", ".join(f"{k}×{n}" for k, n in sorted(self.not_compared.items()))
            lines.append(f"  sim-internal kinds, not observable on the real server: {kinds}")
        for d in self.differences:
            lines.append("  - " + d.replace("\n", "\n    "))
        return "\n".join(lines)


def _settings(scenario: Scenario) -> dict[str, Any]:
    mod = scenario.module
    identity = getattr(mod, "CONFORM_IDENTITY", "kind")
    if identity not in ("kind", "exact"):
        raise ValueError(f"CONFORM_IDENTITY must be 'kind' or 'exact', not {identity!r}")
    return {"identity": identity,
            "tolerance": getattr(mod, "CONFORM_TOLERANCE", DEFAULT_TOLERANCE),
            "ignore": dict(getattr(mod, "CONFORM_IGNORE", {}) or {}),
            "known_difference": getattr(mod, "KNOWN_DIFFERENCE", None),
            "tz": scenario.tz}


def _group_of(process: str, identity: str) -> str:
    if identity == "exact":
        return process
    return process.rstrip("0123456789?") or process


def _key(kind: str, fields: dict[str, Any]) -> tuple:
    return tuple((f, fields.get(f)) for f in OBSERVABLE[kind])


def _events(trace: Trace, settings: dict[str, Any]) -> dict[tuple, list[float]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in trace:
        if r.kind not in OBSERVABLE or r.kind in settings["ignore"]:
            continue
        groups[(_group_of(r.process, settings["identity"]), r.kind,
                _key(r.kind, r.fields))].append(r.time)
    return groups


def _fmt_group(g: tuple) -> str:
    proc, kind, key = g
    detail = " ".join(f"{k}={v!r}" for k, v in key)
    return f"{proc} {kind}" + (f" {detail}" if detail else "")


def _compare_events(a: Trace, b: Trace, an: str, bn: str,
                    settings: dict[str, Any]) -> list[str]:
    out = []
    ga, gb = _events(a, settings), _events(b, settings)
    tol = settings["tolerance"]
    for g in sorted(set(ga) | set(gb), key=lambda g: (g[1], g[0], repr(g[2]))):
        ta, tb = sorted(ga.get(g, [])), sorted(gb.get(g, []))
        if len(ta) != len(tb):
            out.append(f"{_fmt_group(g)}: {an} has {len(ta)} "
                       f"(at {_times(ta)}), {bn} has {len(tb)} (at {_times(tb)})")
            continue
        if tol is None:
            continue
        bad = [(x, y) for x, y in zip(ta, tb) if abs(x - y) > tol]
        if bad:
            pairs = ", ".join(f"{x:.3f}/{y:.3f}" for x, y in bad[:6])
            out.append(f"{_fmt_group(g)}: times differ by more than {tol} s "
                       f"({an}/{bn}: {pairs})")
    return out


def _times(ts: list[float]) -> str:
    shown = ", ".join(f"{t:.3f}" for t in ts[:8])
    return f"[{shown}{', ...' if len(ts) > 8 else ''}]"


def _sequences(trace: Trace, settings: dict[str, Any]) -> dict[str, list[tuple]]:
    seqs: dict[str, list[tuple]] = defaultdict(list)
    for r in trace:
        if r.kind in ORDERED and r.kind not in settings["ignore"]:
            fields = _key(r.kind, r.fields)
            seqs[r.process].append((r.kind, *[v for _k, v in fields]))
    return seqs


def _compare_sequences(a: Trace, b: Trace, an: str, bn: str,
                       settings: dict[str, Any]) -> list[str]:
    if settings["identity"] != "exact":
        return []
    out = []
    sa, sb = _sequences(a, settings), _sequences(b, settings)
    for proc in sorted(set(sa) | set(sb)):
        x, y = sa.get(proc, []), sb.get(proc, [])
        if sorted(map(repr, x)) == sorted(map(repr, y)) and x != y:
            first = next(i for i, (p, q) in enumerate(zip(x, y)) if p != q)
            out.append(f"{proc}: same events in another order from event {first + 1}: "
                       f"{an} {x[first:first + 4]} vs {bn} {y[first:first + 4]}")
    return out


def _compare_responses(a: RunResult, b: RunResult) -> list[str]:
    out = []
    if len(a.responses) != len(b.responses):
        out.append(f"{a.mode} sent {len(a.responses)} requests, {b.mode} sent "
                   f"{len(b.responses)}")
    for x, y in zip(a.responses, b.responses):
        for what in ("status", "body"):
            if x[what] != y[what]:
                out.append(f"response {x['n']} ({x['method']} {x['path']}) {what}: "
                           + _text_diff(x[what], y[what], a.mode, b.mode))
    return out


def _text_diff(x: Any, y: Any, an: str, bn: str) -> str:
    """Both values, cut around the first difference when they are long strings."""
    if isinstance(x, str) and isinstance(y, str) and max(len(x), len(y)) > 120:
        i = next((k for k, (p, q) in enumerate(zip(x, y)) if p != q), min(len(x), len(y)))
        lo = max(0, i - 40)
        cut = (lambda v: ("..." if lo else "") + v[lo:i + 80] + ("..." if len(v) > i + 80 else ""))
        return (f"first difference at character {i}:\n{an:>5}: {cut(x)!r}\n"
                f"{bn:>5}: {cut(y)!r}")
    return f"{an} {_short(x)} vs {bn} {_short(y)}"


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def compare(a: RunResult, b: RunResult, settings: dict[str, Any]) -> list[str]:
    """Every difference between two runs of the same scenario (see the module doc)."""
    out: list[str] = []
    for run in (a, b):
        if run.error:
            out.append(f"{run.mode} run failed: {run.error}")
        if run.check_error:
            out.append(f"{run.mode}: check failed: {run.check_error}")
    out.extend(_compare_responses(a, b))
    if a.state != b.state:
        out.append(f"final state: {a.mode} {_short(a.state, 600)} vs "
                   f"{b.mode} {_short(b.state, 600)}")
    out.extend(_compare_events(a.trace, b.trace, a.mode, b.mode, settings))
    out.extend(_compare_sequences(a.trace, b.trace, a.mode, b.mode, settings))
    return out


# -- the log diff ----------------------------------------------------------------------------
#: what differs between two runs of the same scenario by nature: pids, dates, object
#: addresses, ports, durations and the machine's own startup facts
_MASKS = [
    (re.compile(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"), "DATE"),
    (re.compile(r"0x[0-9a-f]+"), "0xADDR"),
    (re.compile(r"(pid:? |\(pid: |process |with pid )\d+"), r"\1P"),
    (re.compile(r"\b(\d{1,3}\.){3}\d{1,3}:\d+"), "ADDR:PORT"),
    (re.compile(r"\b\d+ (msecs|micros|seconds?)\b"), r"T \1"),
    (re.compile(r"\{\d+ vars in \d+ bytes\}"), "{VARS}"),
    # which worker took a request is chance (its own count R), and every signal the
    # harness raises on the real server is a request (modifier1 110) counted in T
    (re.compile(r"\|req: \d+/\d+\]"), "|req: R/T]"),
    (re.compile(r"\[\d{10}\]"), "[EPOCH]"),
    (re.compile(r"simuwsgi-conform-(real|sim|fork)-\w+"), "simuwsgi-conform-DIR"),
    # spool files are named after the host, the pid, a random number and the time
    (re.compile(r"uwsgi_spoolfile_on_\S+?(?=( |$))"), "uwsgi_spoolfile_on_NAME"),
    # the binary the real server re-executes: the harness's choice (--binary-path for
    # pyuwsgi's script in a venv, real/_server.reload_binary_path)
    (re.compile(r"^(detected binary path: |running )/\S+$"), r"\1BINARY"),
]
#: lines of the real harness, not of uWSGI, and the lines about the listen sockets the
#: harness adds to the real server (the simulated one has only the scenario's)
_HARNESS = re.compile(r"\[simuwsgi-harness\]|^running \"log:\[simuwsgi-harness|"
                      r"^uwsgi socket \d+ (bound to|inherited) |^found fd \d+ mapped to socket|"
                      r"^your server socket listen backlog is limited")


#: with ``CONFORM_IDENTITY = "kind"`` which worker (mule) did something is chance
_KIND_MASKS = [(re.compile(r"\b(worker|mule) \d+", re.IGNORECASE), r"\1 N"),
               (re.compile(r"\bwid: \d+"), "wid: N")]


def mask_line(line: str, identity: str = "exact") -> str:
    """``line`` with what legitimately differs between two runs masked."""
    for rx, repl in _MASKS:
        line = rx.sub(repl, line)
    if identity == "kind":
        for rx, repl in _KIND_MASKS:
            line = rx.sub(repl, line)
    return line.rstrip()


#: the writers whose lines interleave in uWSGI's log by the OS scheduler's chance (the
#: spooler may run a task before the worker that spooled it logs the request): lines are
#: compared in order within each writer; "peers" are lines every worker writes at the
#: same moment (their order is the scheduler's alone; the app's "ready" line is a
#: worker's under --lazy-apps): compared as a multiset
_WRITERS = (("request", re.compile(r"^\[pid: ")), ("spooler", re.compile(r"^\[spooler")),
            ("peers", re.compile(r"^Gracefully killing worker |^WSGI app \d+ \(mountpoint=")))


def _writer(line: str) -> str:
    return next((name for name, rx in _WRITERS if rx.search(line)), "other")


def _equal_lines(a: list[str], b: list[str]) -> int:
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


def _common_lines(a: list[str], b: list[str]) -> int:
    return sum((Counter(a) & Counter(b)).values())


@dataclass
class LogDiff:
    """Two logs compared line by line after masking: ``strict`` counts the lines equal in
    the one sequence (``difflib`` alignment), ``equal`` the lines equal in order within
    each writer (request lines, spooler lines, the rest; the workers' simultaneous lines
    in any order)."""

    sim: list[str]
    real: list[str]
    equal: int
    strict: int

    @property
    def lines(self) -> int:
        return max(len(self.sim), len(self.real))

    @property
    def fraction(self) -> float:
        return self.equal / self.lines if self.lines else 1.0

    def format(self, limit: int = 40) -> str:
        out = [f"log: {self.equal} masked-equal lines of {self.lines} "
               f"({100 * self.fraction:.1f}%; {self.strict} in one sequence)"]
        for line in difflib.unified_diff(self.real, self.sim, "real", "sim", lineterm="", n=0):
            if len(out) > limit:
                out.append("  ...")
                break
            out.append("  " + line)
        return "\n".join(out)


def compare_logs(sim: list[str], real: list[str], identity: str = "exact") -> LogDiff:
    """The masked logs of both runs and how many of their lines are equal, in order
    (``identity`` is the scenario's ``CONFORM_IDENTITY``)."""
    a = [mask_line(x, identity) for x in sim if x.strip() and not _HARNESS.search(x)]
    b = [mask_line(x, identity) for x in real if x.strip() and not _HARNESS.search(x)]
    per_writer = sum((_common_lines if w == "peers" else _equal_lines)(
        [x for x in a if _writer(x) == w], [x for x in b if _writer(x) == w])
        for w in ("request", "spooler", "peers", "other"))
    return LogDiff(sim=a, real=b, equal=per_writer, strict=_equal_lines(a, b))


class HarnessError(SimulationError):
    """The real server failed for a reason of its own installation, not of the scenario:
    nothing was compared, and no difference is blamed on the simulator."""


#: The first frame of a traceback in pyuwsgi's ``uwsgi`` launcher script: the server's
#: own program failed to start (e.g. a reload re-executed an interpreter that cannot
#: import ``pyuwsgi``).
_LAUNCHER_FRAME = re.compile(r'^\s*File "[^"]*/uwsgi", line \d+, in <module>')


def harness_failure(real: RunResult) -> str | None:
    """Why the real run failed by the harness's own fault, or None."""
    for i, line in enumerate(real.log):
        if _LAUNCHER_FRAME.match(line):
            excerpt = "\n".join(f"    {x}" for x in real.log[max(0, i - 2):i + 4])
            return (f"the real uWSGI server could not (re)start its own program, so nothing "
                    f"was compared (a problem of the installation or of simuwsgi's real-mode "
                    f"harness, not a simulator difference):\n{excerpt}")
    return None


def run_real(scenario: Scenario | str | Path) -> RunResult:
    """The real half of a conformance run (thread-safe: several can run at once)."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    with private_app_dir(scenario.app_dir, "simuwsgi-conform-real-") as app_dir:
        return run_scenario(scenario, "real", app_dir=app_dir)


def conform(scenario: Scenario | str | Path, *, fork: bool = False,
            report: str | Path | None = None, real: RunResult | None = None) -> ConformResult:
    """Run ``scenario`` on the real server (unless its ``real`` run is given) and in the
    simulator, and diff them."""
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    settings = _settings(scenario)
    runs: dict[str, RunResult] = {}
    runs["real"] = real if real is not None else run_real(scenario)
    failure = harness_failure(runs["real"])
    if failure is not None:
        raise HarnessError(failure)
    start = runs["real"].ready_wall
    modes = ["sim", "fork"] if fork else ["sim"]
    for mode in modes:
        with private_app_dir(scenario.app_dir, f"simuwsgi-conform-{mode}-") as app_dir:
            # this machine's facts in the startup lines, as the real server prints them
            runs[mode] = run_scenario(scenario, mode, start=start, app_dir=app_dir,
                                      machine="host")
    differences: list[str] = []
    for mode in modes:
        diff = compare(runs[mode], runs["real"], settings)
        if len(modes) > 1:
            diff = [f"[{mode} vs real] {d}" for d in diff]
        differences.extend(diff)
    not_compared: dict[str, int] = defaultdict(int)
    for r in runs["sim"].trace:
        if r.kind not in OBSERVABLE and r.kind not in _DRIVER_KINDS:
            not_compared[r.kind] += 1
    result = ConformResult(scenario.name, differences, runs, settings, dict(not_compared))
    if report is not None:
        result.report_dir = write_conform_report(result, report)
    return result


def write_conform_report(result: ConformResult, directory: str | Path) -> Path:
    """``diff.txt``, ``summary.json``, each mode's trace (msgpack and text) and log, and
    ``timeline.html`` (the runs side by side)."""
    out = Path(directory) / f"conform-{result.scenario}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "diff.txt").write_text(result.format() + "\n")
    summary = {"scenario": result.scenario, "ok": result.ok,
               "differences": result.differences, "settings": result.settings,
               "runs": {m: {"events": len(r.trace), "digest": r.trace.digest(),
                            "error": r.error, "check_error": r.check_error,
                            "wall_seconds": round(r.wall_seconds, 3),
                            "responses": r.responses, "state": r.state, "info": {
                                k: v for k, v in r.info.items() if k != "traceback"}}
                        for m, r in result.runs.items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=repr) + "\n")
    for mode, run in result.runs.items():
        run.trace.save(out / f"trace.{mode}.msgpack")
        (out / f"trace.{mode}.txt").write_text(run.trace.format() + "\n")
        (out / f"log.{mode}.txt").write_text("\n".join(run.log) + "\n")
        if run.info.get("traceback"):
            (out / f"error.{mode}.txt").write_text(run.info["traceback"])
    from .timeline import conform_timeline

    conform_timeline(result, out, result.settings.get("tz") or "UTC")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="simuwsgi conform",
                                description="diff a scenario's sim run against real uWSGI")
    p.add_argument("scenario")
    p.add_argument("--fork", action="store_true", help="also run (and diff) fork mode")
    p.add_argument("--report", default="reports", help="report directory (default reports/)")
    p.add_argument("--log", action="store_true",
                   help="also compare the logs line by line (masked) and print the diff")
    args = p.parse_args(argv)
    try:
        result = conform(args.scenario, fork=args.fork, report=args.report)
    except (ValueError, OSError, HarnessError) as exc:
        print(f"simuwsgi conform: {exc}", file=sys.stderr)
        return 2
    print(result.format())
    if args.log:
        print(compare_logs(result.runs["sim"].log, result.runs["real"].log,
                           result.settings["identity"]).format())
    if result.report_dir is not None:
        print(f"  report: {result.report_dir / 'diff.txt'}")
    return 0 if result.ok else 1
