"""Search, shrink, replay: run a scenario under many seeds and random fault plans.

``explore(path, seeds=N, faults="kill,clock", jobs=J)`` runs seed 0..N-1 of a scenario,
each with a fault plan drawn from the seed (kinds from ``faults``) on top of the
scenario's own ``FAULTS``, checks the scenario's ``check`` and ``PROPERTIES``, shrinks
every failing run (fewer faults, earlier times, fewer requests: ``SendOnly(n)`` sends
only the first n the timeline submits) and gives the one-line replay,
``simuwsgi run SCENARIO --seed S --faults '...'``, which reproduces the same digest.

Each run gets a scratch directory of its own in ``$SIMUWSGI_RUN_DIR`` (scenarios put
their spool directories there: ``--spooler``, ``run_dir("spool")``); the digest reads
that path as ``$(SIMUWSGI_RUN_DIR)``, so it is the same wherever the run happens:
in this process, a ``multiprocessing`` worker (``jobs``) or a Dask worker
(``scheduler='tcp://host:port'``, the ``dask`` extra).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import types
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from .faults import (
    AfterRequests,
    ClockDrift,
    ClockStep,
    DiskFault,
    DuringSpoolTask,
    ExceptionStorm,
    Fault,
    FaultPlan,
    Kill,
    Partition,
    SendOnly,
    SignalQueueFull,
    SlowRequests,
    TimeZone,
)

__all__ = ["FAULT_KINDS", "Outcome", "explore", "run_dir", "run_one", "shrink"]

RUN_DIR_VAR = "SIMUWSGI_RUN_DIR"
#: What ``--faults SPEC`` may name: the families of faults a random plan draws from.
FAULT_KINDS = ("kill", "clock", "tz", "storm", "slow", "disk", "signals", "net")
#: Failing seeds printed by ``simuwsgi explore`` (all are in the report).
SHOWN = 3
#: A random plan has up to this many faults.
MAX_FAULTS = 3


@dataclass(frozen=True)
class Outcome:
    """One run: its seed and plan, its digest, and why it failed (None: it passed)."""

    seed: int
    plan: str
    digest: str
    failure: str | None = None
    sometimes_seen: tuple[str, ...] = field(default=())
    #: How many requests the scenario submitted (``SendOnly`` may have sent fewer).
    requests: int = 0
    #: The whole failure message (a property's violation has the trace around it).
    detail: str | None = None


# -- one run ---------------------------------------------------------------------------------
def run_one(path: str | Path, seed: int, plan: Any = None, *, kinds: Iterable[str] = (),
            mode: str = "sim") -> Outcome:
    """Run scenario ``path`` with ``seed`` and ``plan`` (a ``FaultPlan`` or its text;
    None: drawn from the seed among ``kinds``)."""
    from ._errors import SimulationError
    from .scenario import load_scenario

    with scratch_dir() as run_dir:
        scenario = load_scenario(path)
        module = scenario.module
        sim = scenario.simulation(seed=seed, mode=mode)
        failure = detail = None
        props = list(getattr(module, "PROPERTIES", ()))
        try:
            with sim:
                nodes = list(getattr(sim, "nodes", ()))  # a cluster's (NODES)
                if plan is None:
                    names = list(dict.fromkeys(p.name for p in _processes(sim)))
                    plan = random_plan(seed, kinds, scenario.duration, names, nodes)
                plan = FaultPlan.coerce(plan)
                sim.apply(FaultPlan.coerce(getattr(module, "FAULTS", None)))
                sim.apply(plan)
                for prop in props:
                    prop.attach(sim)
                if scenario.timeline is not None:
                    scenario.timeline(sim)
                else:
                    sim.run_until(scenario.duration)
                try:
                    if scenario.check is not None:
                        scenario.check(sim)
                    for prop in props:
                        prop.verify()
                except AssertionError as exc:
                    detail = str(exc) or "assertion failed"
                    failure = detail.split("\n", 1)[0]
        except SimulationError as exc:
            detail = f"simulation failed: {exc}"
            failure = detail.split("\n", 1)[0]
        seen = tuple(p.name for p in props if p.seen is not None)
        # a cluster's requests are not counted: SendOnly does not shrink its timeline
        submitted = 0 if nodes else sim.inst.faults.submitted
        return Outcome(seed, FaultPlan.coerce(plan).spec(), digest(sim.trace, run_dir),
                       failure, seen, submitted, detail)


def _processes(sim: Any) -> Iterator[Any]:
    """A simulation's processes, or every node's in a cluster."""
    for item in sim.processes():
        yield item[1] if isinstance(item, tuple) else item


def run_dir(*parts: str) -> str:
    """A path in this run's scratch directory (``$SIMUWSGI_RUN_DIR``, which ``explore``
    and ``simuwsgi run`` make fresh for each run): for a scenario's spool directories,
    ``OPTIONS = [..., "--spooler", run_dir("spool")]``. Without one (a scenario loaded
    by hand), a fresh directory is made and used from then on."""
    base = os.environ.get(RUN_DIR_VAR)
    if base is None:
        base = os.environ[RUN_DIR_VAR] = os.path.realpath(
            tempfile.mkdtemp(prefix="simuwsgi-run-"))
    return os.path.join(base, *parts)


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A fresh directory as ``$SIMUWSGI_RUN_DIR`` for one run, removed after it."""
    # in memory where there is a tmpfs: a run's files are small and short-lived
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    # its real path: the spooler records realpaths, and the digest rewrites this one
    run_dir = os.path.realpath(tempfile.mkdtemp(prefix="simuwsgi-run-", dir=shm))
    saved = os.environ.get(RUN_DIR_VAR)
    os.environ[RUN_DIR_VAR] = run_dir
    try:
        yield run_dir
    finally:
        if saved is None:
            os.environ.pop(RUN_DIR_VAR, None)
        else:
            os.environ[RUN_DIR_VAR] = saved
        shutil.rmtree(run_dir, ignore_errors=True)


def digest(trace: Any, run_dir: str) -> str:
    """The trace's digest with the run's scratch directory read as ``$(RUN_DIR)``."""
    data = trace.dumps()
    if run_dir.encode() not in data:
        return hashlib.sha256(data).hexdigest()  # the common case: nothing to rewrite
    marker = f"$({RUN_DIR_VAR})"

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(run_dir, marker) if run_dir in value else value
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value

    rows = [norm(row) for row in trace.rows()]
    return hashlib.sha256(msgpack.packb(rows, use_bin_type=True,
                                                unicode_errors="surrogateescape")).hexdigest()


def random_plan(seed: int, kinds: Iterable[str], duration: float,
                processes: list[str], nodes: list[str] | None = None) -> FaultPlan:
    """A plan of 0..``MAX_FAULTS`` faults of ``kinds``, drawn from ``seed`` alone; in a
    cluster (``nodes``) each on a node drawn too, and ``net`` partitions one node from
    the others."""
    kinds = tuple(kinds)
    if not kinds:
        return FaultPlan()
    rng = random.Random(f"simuwsgi-faults-{seed}")
    faults: list[Fault] = []
    for _ in range(rng.randint(0, MAX_FAULTS)):
        kind = rng.choice(kinds)
        at = round(rng.uniform(0, duration), 3)
        if kind == "net":
            if nodes and len(nodes) > 1:
                alone = rng.choice(nodes)
                faults.append(Partition([alone], [n for n in nodes if n != alone], at=at,
                                        duration=rng.choice((10, 30, 60, 120))))
            continue
        fault = _random_fault(rng, kind, at, processes)
        faults.append(fault.on(rng.choice(nodes)) if nodes else fault)
    return FaultPlan(*faults)


def _random_fault(rng: random.Random, kind: str, at: float, processes: list[str]) -> Fault:
    """One fault of family ``kind`` (not ``net``) at ``at``."""
    if kind == "kill":
        target = rng.choice(processes)
        if target.startswith("spooler") and rng.random() < 0.3:
            return Kill(target, when=DuringSpoolTask(nth=rng.randint(1, 5)))
        if target.startswith("worker") and rng.random() < 0.3:
            return Kill(target, when=AfterRequests("/", rng.randint(1, 5)))
        return Kill(target, at=at)
    if kind == "clock":
        if rng.random() < 0.5:
            return ClockStep(rng.choice((-3600, -60, -1, 1, 60, 3600)), at=at)
        return ClockDrift(rng.choice((-0.01, 0.01)), at=at, duration=60)
    if kind == "tz":
        return TimeZone(rng.choice(("UTC", "Europe/Paris", "America/New_York")), at=at)
    if kind == "storm":
        return ExceptionStorm(rng.choice((1, 10, 60)), at=at)
    if kind == "slow":
        return SlowRequests(rng.choice((1, 10, 60)), at=at)
    if kind == "disk":
        return DiskFault(rng.choice(("full", "readonly", "eio", "torn")), at=at)
    return SignalQueueFull(10, at=at)


def parse_kinds(spec: str | None) -> tuple[str, ...]:
    """``--faults`` for ``explore``: fault families, comma-separated (default: kill)."""
    kinds = tuple(k.strip() for k in (spec or "kill").split(",") if k.strip())
    bad = [k for k in kinds if k not in FAULT_KINDS]
    if bad:
        raise ValueError(f"--faults: unknown fault kind {bad[0]!r}; use a comma-separated "
                         f"list of {', '.join(FAULT_KINDS)}")
    return kinds


# -- shrinking -------------------------------------------------------------------------------
def shrink(path: str | Path, outcome: Outcome, *, mode: str = "sim",
           budget: int = 60) -> tuple[Outcome, int]:
    """A smaller failing run than ``outcome``: fewer faults, then earlier times, then
    fewer requests (``SendOnly``). Returns it and the number of runs tried (at most
    ``budget``)."""
    best = outcome
    faults = [f for f in FaultPlan.parse(outcome.plan) if not isinstance(f, SendOnly)]
    limit = [f.count for f in FaultPlan.parse(outcome.plan) if isinstance(f, SendOnly)]
    tries = 0

    def attempt(candidate: list[Fault]) -> bool:
        nonlocal best, tries
        if tries >= budget:
            return False
        tries += 1
        result = run_one(path, outcome.seed, FaultPlan(*candidate), mode=mode)
        if result.failure is None:
            return False
        best = result
        return True

    changed = True
    while changed:  # drop faults one at a time while the run still fails
        changed = False
        for i in range(len(faults)):
            candidate = faults[:i] + faults[i + 1:]
            if attempt(candidate):
                faults = candidate
                changed = True
                break
    for i, fault in enumerate(faults):  # then move each timed fault earlier
        if fault.at is None:
            continue
        low, high = 0.0, float(fault.at)
        if high > 0 and attempt(faults[:i] + [fault.with_time(0)] + faults[i + 1:]):
            faults = faults[:i] + [fault.with_time(0)] + faults[i + 1:]
            continue
        while high - low > 0.5 and tries < budget:
            mid = round((low + high) / 2, 3)
            candidate = faults[:i] + [fault.with_time(mid)] + faults[i + 1:]
            if attempt(candidate):
                high = mid
                faults = candidate
            else:
                low = mid
    # then the fewest requests that still fail: the first n the timeline submits
    low, high = 0, limit[0] if limit else outcome.requests
    found = bool(limit)
    while low < high and tries < budget:
        mid = (low + high) // 2
        if attempt(faults + [SendOnly(mid)]):
            high, found = mid, True
        else:
            low = mid + 1
    if found and low == high and not best.plan.endswith(f"SendOnly({high})"):
        attempt(faults + [SendOnly(high)])  # ``best`` is that run
    return best, tries


# -- exploring -------------------------------------------------------------------------------
def _run_seed(args: tuple[str, int, tuple[str, ...], str]) -> Outcome:
    path, seed, kinds, mode = args
    return run_one(path, seed, kinds=kinds, mode=mode)


def explore(path: str | Path, *, seeds: int = 100, first_seed: int = 0,
            faults: str | None = None, jobs: int = 1, mode: str = "sim",
            scheduler: str | None = None, stop_on_failure: bool = False,
            shrink_failures: bool = True, progress: Any = None) -> dict[str, Any]:
    """Run ``seeds`` seeds of scenario ``path`` and shrink the failures; a report dict
    (what ``explore.json`` holds). ``progress(done, total, failing, shrunk=0)`` is
    called after each seed, then after each failing seed is shrunk."""
    path = str(Path(path).resolve())
    kinds = parse_kinds(faults)
    work = [(path, seed, kinds, mode) for seed in range(first_seed, first_seed + seeds)]
    outcomes: list[Outcome] = []
    for outcome in _map(work, jobs, scheduler):
        outcomes.append(outcome)
        if progress is not None:
            progress(len(outcomes), len(work), sum(o.failure is not None for o in outcomes))
        if stop_on_failure and outcome.failure is not None:
            break
    outcomes.sort(key=lambda o: o.seed)
    failing: list[dict[str, Any]] = []
    failed = [o for o in outcomes if o.failure is not None]
    for outcome in failed:
        small, tries = shrink(path, outcome, mode=mode) if shrink_failures else (outcome, 0)
        failing.append({
            "seed": outcome.seed, "failure": outcome.failure, "plan": outcome.plan,
            "minimal_plan": small.plan, "minimal_failure": small.failure,
            "minimal_detail": small.detail,
            "digest": small.digest, "shrink_runs": tries,
            "replay": replay_command(path, outcome.seed, small.plan)})
        if progress is not None and shrink_failures:
            progress(len(outcomes), len(work), len(failed), shrunk=len(failing))
        if stop_on_failure:
            break
    props = list(getattr(_module(path), "PROPERTIES", ()))
    never = sorted({p.name for p in props if type(p).__name__ == "_Sometimes"}
                   - {name for o in outcomes for name in o.sometimes_seen})
    return {"scenario": path, "seeds": len(outcomes), "first_seed": first_seed,
            "faults": list(kinds), "mode": mode, "failing": failing,
            "sometimes_never_seen": never,
            "runs": [asdict(o) for o in outcomes]}


def _module(path: str) -> Any:
    from .scenario import load_scenario

    with scratch_dir():
        return load_scenario(path).module


def _map(work: list[tuple[str, int, tuple[str, ...], str]], jobs: int,
         scheduler: str | None) -> Iterable[Outcome]:
    if scheduler is not None:
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise ValueError("--scheduler needs dask.distributed: pip install "
                             "'simuwsgi[dask]'") from None
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            futures = client.map(_run_seed, work, pure=False)
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                yield future.result()
        return
    if jobs <= 1:
        for item in work:
            yield _run_seed(item)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs) as pool:
        yield from pool.imap_unordered(_run_seed, work, chunksize=max(1, len(work) // (jobs * 8)))


def replay_command(path: str, seed: int, plan: str) -> str:
    shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    return f"simuwsgi run {shown} --seed {seed} --faults {quote(plan)}"


def quote(text: str) -> str:
    """``text`` as one shell word: in double quotes when that needs no escaping (a plan's
    reprs use single quotes), else in single quotes."""
    if not any(c in text for c in '"$`\\!'):
        return f'"{text}"'
    return "'" + text.replace("'", "'\\''") + "'"


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown."""
    lines = [f"# Exploration of {report['scenario']}", "",
             (f"{report['seeds']} seeds (from {report['first_seed']}), faults "
             f"{', '.join(report['faults'])}, mode {report['mode']}: "
             f"{len(report['failing'])} failing."), ""]
    for f in report["failing"]:
        lines += [f"## seed {f['seed']}", "", f"- violated: {f['failure']}",
                  f"- plan drawn: `{f['plan'] or '(none)'}`",
                  (f"- minimal plan ({f['shrink_runs']} shrink runs): "
                  f"`{f['minimal_plan'] or '(none)'}`"),
                  f"- replay (digest {f['digest'][:16]}): `{f['replay']}`", ""]
        if f["minimal_detail"] and "\n" in f["minimal_detail"]:
            lines += ["```", f["minimal_detail"], "```", ""]  # the trace around it
    if report["sometimes_never_seen"]:
        lines.append("sometimes() never seen: " + ", ".join(report["sometimes_never_seen"]))
    return "\n".join(lines) + "\n"


def main(args: Any) -> int:
    """``simuwsgi explore``: 0 no failure, 1 failures found, 2 bad usage."""
    from .cli import _load

    began = _now()
    progress = SeedBar(quiet=args.quiet)
    try:
        with scratch_dir():
            _load(args.scenario)  # a missing or broken scenario is one line, not N runs
        report = explore(args.scenario, seeds=args.seeds, first_seed=args.first_seed,
                         faults=args.faults, jobs=args.jobs, mode=args.mode,
                         scheduler=args.scheduler, stop_on_failure=args.stop,
                         progress=progress)
    except (ValueError, OSError) as exc:
        progress.done()
        print(f"simuwsgi explore: {exc}", file=sys.stderr)
        return 2
    progress.done()
    out = Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explore.json").write_text(json.dumps(report, indent=1))
    (out / "explore.md").write_text(markdown(report))
    print(f"explored {report['seeds']} seeds in {_now() - began:.1f} s: "
          f"{len(report['failing'])} failing")
    for f in report["failing"][:SHOWN]:
        print(f"  seed {f['seed']}: {f['minimal_failure']}")
        print(f"    minimal plan: {f['minimal_plan'] or '(none)'}")
        print(f"    replay: {f['replay']}")
        print(f"    digest: {f['digest']}")
    if len(report["failing"]) > SHOWN:
        print(f"  ... and {len(report['failing']) - SHOWN} more failing seeds in the report")
    print(f"  report: {out / 'explore.md'}")
    return 1 if report["failing"] else 0


class SeedBar:
    """``simuwsgi explore``'s progress bar, on stderr when it is a terminal (nothing on a
    pipe or a file, nor with ``--quiet``): seeds done, failing, seeds/s, time left; then
    how many failing seeds are shrunk."""

    EVERY = 0.1  # real seconds between redraws

    def __init__(self, *, quiet: bool) -> None:
        self.shown = not quiet and sys.stderr.isatty()
        self.began = _now()
        self.drawn_at: float | None = None
        self.rate = 0.0  # seeds per second, while the seeds run

    def __call__(self, done: int, total: int, failing: int, shrunk: int = 0) -> None:
        now = _now()
        last = done == total and (not shrunk or shrunk == failing)
        if not self.shown or not last and self.drawn_at is not None \
                and now - self.drawn_at < self.EVERY:
            return
        from .cli import draw_bar

        if not shrunk:
            self.rate = done / max(now - self.began, 1e-9)
        left = f", {(total - done) / self.rate:.0f} s left" if done < total else ""
        then = f", shrunk {shrunk}/{failing}" if shrunk else ""
        sys.stderr.write(f"\r  {draw_bar(done / total if total else 1.0)} {done}/{total} "
                         f"seeds, {failing} failing, {self.rate:.1f} seeds/s{left}{then}  ")
        sys.stderr.flush()
        self.drawn_at = now

    def done(self) -> None:
        """End the bar's line (if one was drawn)."""
        if self.drawn_at is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()


def replay_main(scenario: str, seed: int, faults: str, mode: str) -> int:
    """``simuwsgi run SCENARIO --seed S --faults PLAN``: one run as ``explore`` made it;
    prints the digest to compare with the one ``explore`` printed."""
    try:
        plan = FaultPlan.parse(faults)
    except ValueError as exc:
        print(f"simuwsgi: --faults: {exc}", file=sys.stderr)
        return 2
    outcome = run_one(scenario, seed, plan, mode=mode)
    print(f"{Path(scenario).name}: seed {seed}, faults {plan.spec() or '(none)'}")
    print(f"  {'FAILED: ' + outcome.detail if outcome.detail else 'check passed'}")
    print(f"  digest: {outcome.digest}")
    return 1 if outcome.failure else 0


def _now() -> float:
    from ._core.clock import RealClock

    return RealClock.monotonic()


class _ExploreModule(types.ModuleType):
    """``simuwsgi.explore`` is this module and, called, the ``@simuwsgi.explore`` test
    decorator (``simuwsgi.stateful.explore``): one name for exploring from the command
    line and from pytest."""

    def __call__(self, target: Any, **kwargs: Any) -> Any:
        from .stateful import explore as decorator

        return decorator(target, **kwargs)


sys.modules[__name__].__class__ = _ExploreModule
