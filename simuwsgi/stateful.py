"""Property tests that drive a simulation: ``@simuwsgi.explore`` and ``SimulationMachine``.

``@simuwsgi.explore(OPTIONS, seeds=N, faults="kill")`` turns a test function taking a
started ``Simulation`` into a Hypothesis search: each example is a seed and a fault plan
(``simuwsgi.strategies.fault_plans``, over the processes the simulation started), applied
before the function runs. A failure shrinks through Hypothesis (seed toward 0, fewer
faults, earlier times) and its report carries the one-line replay::

    SIMUWSGI_REPLAY="3 Kill('worker1', at=1.5)" python -m pytest tests/test_x.py::test_y

which runs only that seed and plan. The target may also be a scenario file: its
options, ``FAULTS`` and ``PROPERTIES`` (checked after the function returns).

``SimulationMachine`` is a Hypothesis ``RuleBasedStateMachine`` around one simulation:
its rules send requests (``PATHS``), kill processes (``KILL``), advance the virtual
clock (``ADVANCE``), step the wall clock (``CLOCK_STEPS``) and raise signals
(``SIGNALS``); its invariant checks the ``always`` properties ``properties()`` returns
(``simuwsgi.properties``) and the history checkers in ``CHECKS`` after every step.
Subclasses add their own rules and invariants on ``self.sim``. Hypothesis is the
``chaos`` extra.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .explore import MAX_FAULTS, parse_kinds, quote, scratch_dir
from .faults import FaultPlan
from .properties import _Always
from .scenario import load_scenario, parse_duration
from .simulation import Simulation
from .strategies import _st, fault_plans

__all__ = ["REPLAY_VAR", "SimulationMachine", "explore"]

#: Built on first use (``_machine``): its base class is Hypothesis', an optional extra.
SimulationMachine: Any

#: ``SEED PLAN``: run an ``@explore`` test once with that seed and fault plan.
REPLAY_VAR = "SIMUWSGI_REPLAY"


def explore(target: Any, *, seeds: int = 100, faults: str | None = "kill",
            max_faults: int = MAX_FAULTS, within: Any = None, app_dir: Any = None,
            processes: Sequence[str] | None = None,
            **simulation: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate ``test(sim, ...)`` to run under ``seeds`` examples of a seed and a fault
    plan of ``faults`` kinds (comma-separated, as ``simuwsgi explore --faults``; ``None``
    or ``""``: no faults, seeds only) at times in ``[0, within]`` (default: the
    scenario's duration, else 60 s), against ``processes`` (default: every process the
    simulation started). ``target`` is the uWSGI options (a list, a dict, an
    ``.ini`` path), a function returning them, called for each example in a fresh
    ``$SIMUWSGI_RUN_DIR`` (so ``run_dir("spool")`` is a new spool directory each time:
    files a killed spooler left must not reach the next example), or a scenario file
    (``.py``); ``app_dir`` and other keywords go to ``Simulation``. The test's other
    parameters stay pytest fixtures."""
    if seeds < 1:
        raise ValueError(f"explore: seeds={seeds!r} must be at least 1")
    kinds = parse_kinds(faults) if faults else ()
    scenario = str(target) if isinstance(target, (str, Path)) and str(target).endswith(".py") \
        else None
    if scenario is not None and not Path(scenario).is_file():
        raise ValueError(f"explore: no scenario file {scenario!r}")

    @contextmanager
    def simulation_for(seed: int) -> Iterator[tuple[Simulation, list[Any], float]]:
        """A started simulation for ``seed``, its scenario's properties, its span."""
        with scratch_dir():
            if scenario is None:
                options = target() if callable(target) else target
                sim = Simulation(options, seed=seed, app_dir=app_dir, **simulation)
                props: list[Any] = []
                span = 60.0
            else:
                loaded = load_scenario(scenario)
                sim = loaded.simulation(seed=seed, **simulation)
                props = list(getattr(loaded.module, "PROPERTIES", ()))
                span = loaded.duration
            with sim:
                if scenario is not None:
                    sim.apply(FaultPlan.coerce(getattr(loaded.module, "FAULTS", None)))
                yield sim, props, parse_duration(within) if within is not None else span

    def decorate(test: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(test)
        params = list(signature.parameters.values())
        if not params:
            raise TypeError(f"@explore: {test.__name__} must take the simulation as its "
                            f"first parameter")

        def once(seed: int, plan: Any, args: Sequence[Any], kwargs: dict[str, Any],
                 draw: Callable[[Any], Any] | None = None,
                 say: Callable[[str], None] | None = None) -> None:
            with simulation_for(seed) as (sim, props, span):
                if draw is not None:
                    names = list(processes or [p.name for p in sim.processes()])
                    plan = draw(fault_plans(processes=names, within=span,
                                            max_faults=max_faults, kinds=kinds)) \
                        if kinds else FaultPlan()
                if say is not None:  # shown with the falsifying example
                    say(f"replay: {replay_line(test, seed, plan)}")
                sim.apply(plan)
                for prop in props:
                    prop.attach(sim)
                test(sim, *args, **kwargs)
                for prop in props:
                    prop.verify()

        @functools.wraps(test)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            replay = os.environ.get(REPLAY_VAR)
            if replay:
                seed, plan = parse_replay(replay)
                once(seed, plan, args, kwargs)
                return

            st = _st()  # Hypothesis, the ``chaos`` extra, or an ImportError saying so
            from hypothesis import HealthCheck, given, note, settings

            def search(seed: int, data: Any) -> None:
                once(seed, None, args, kwargs,
                     lambda strategy: data.draw(strategy, label="faults"), note)

            search.__name__ = search.__qualname__ = test.__name__  # Hypothesis prints it
            given(seed=st.integers(0, seeds - 1), data=st.data())(
                settings(max_examples=seeds, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))(search))()

        # pytest sees the test's fixtures, not the simulation it is handed
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=params[1:])
        wrapper.replay = lambda seed, plan="": once(  # type: ignore[attr-defined]
            seed, FaultPlan.coerce(plan or None), (), {})
        return wrapper

    return decorate


def replay_line(test: Callable[..., Any], seed: int, plan: Any) -> str:
    """The shell line that reruns ``test`` with only ``seed`` and ``plan``."""
    source = inspect.getsourcefile(test) or test.__module__
    shown = os.path.relpath(source)
    node = f"{shown if not shown.startswith('..') else source}::" + \
        test.__qualname__.replace(".", "::")
    return (f"{REPLAY_VAR}={quote(f'{seed} {FaultPlan.coerce(plan).spec()}'.strip())} "
            f"python -m pytest {quote(node)}")


def parse_replay(text: str) -> tuple[int, FaultPlan]:
    """``$SIMUWSGI_REPLAY``: a seed, then the fault plan's text (may be empty)."""
    seed, _, plan = text.strip().partition(" ")
    try:
        return int(seed), FaultPlan.parse(plan)
    except ValueError as exc:
        raise ValueError(f"${REPLAY_VAR}={text!r}: {exc}; write 'SEED PLAN', e.g. "
                         f"\"3 Kill('worker1', at=1.5)\"") from None


# -- stateful testing --------------------------------------------------------------------------
def _machine() -> type:
    """Define ``SimulationMachine`` (once: importing Hypothesis on the way)."""
    st = _st()
    from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

    class SimulationMachine(RuleBasedStateMachine):
        """A Hypothesis state machine around one ``Simulation`` (``self.sim``).

        Class attributes: ``OPTIONS`` (required, or an ``options()`` method),
        ``APP_DIR``, ``SEED``, ``SIMULATION`` (more ``Simulation`` keywords); ``PATHS``
        the request paths the ``request`` rule GETs (responses are appended to
        ``self.responses`` as ``(path, response)``); ``KILL`` the process-name prefixes
        the ``kill`` rule may SIGKILL (``"worker"``, ``"spooler"``, ``"mule"``,
        ``"master"``); ``ADVANCE`` the virtual seconds the ``advance`` rule may run;
        ``CLOCK_STEPS`` wall-clock steps; ``SIGNALS`` signal numbers to raise; ``CHECKS``
        history checkers called with the trace after every step
        (``simuwsgi.properties.requests_answered``...). An empty tuple turns its rule
        off. Override ``properties()`` to return fresh ``always`` properties for each
        run.
        """

        OPTIONS: Any = None
        APP_DIR: Any = None
        SEED = 0
        SIMULATION: dict[str, Any] = {}  # noqa: RUF012 - read, never changed
        PATHS: Sequence[str] = ()
        KILL: Sequence[str] = ("worker",)
        ADVANCE: Sequence[float] = (0.1, 1.0, 10.0)
        CLOCK_STEPS: Sequence[float] = ()
        SIGNALS: Sequence[int] = ()
        CHECKS: Sequence[Callable[[Any], None]] = ()

        def __init__(self) -> None:
            super().__init__()
            self._scratch = scratch_dir()
            self._scratch.__enter__()
            options = self.options()
            if options is None:
                self._scratch.__exit__(None, None, None)
                raise TypeError(f"{type(self).__name__}: set OPTIONS to the uWSGI options")
            self.sim = Simulation(options, seed=self.SEED, app_dir=self.APP_DIR,
                                  **self.SIMULATION)
            self.sim.start()
            self.responses: list[tuple[str, Any]] = []
            self._properties = [p.attach(self.sim) for p in self.properties()]

        def options(self) -> Any:
            """The uWSGI options of this run (``OPTIONS``), made in its own fresh
            ``$SIMUWSGI_RUN_DIR``: override it to put a spool directory there,
            ``run_dir("spool")``, so no run sees the files an earlier one left."""
            return self.OPTIONS

        def properties(self) -> list[Any]:
            """Properties to watch over this run (fresh objects each time)."""
            return []

        @precondition(lambda self: bool(self.PATHS))
        @rule(data=st.data())
        def request(self, data: Any) -> None:
            path = data.draw(st.sampled_from(list(self.PATHS)), label="path")
            self.responses.append((path, self.sim.get(path)))

        @precondition(lambda self: bool(self.KILL))
        @rule(data=st.data())
        def kill(self, data: Any) -> None:
            names = [p.name for p in self.sim.processes()
                     if p.name.startswith(tuple(self.KILL))]
            if names:
                self.sim.kill(data.draw(st.sampled_from(names), label="process"))

        @precondition(lambda self: bool(self.ADVANCE))
        @rule(data=st.data())
        def advance(self, data: Any) -> None:
            self.sim.advance(data.draw(st.sampled_from(list(self.ADVANCE)), label="seconds"))

        @precondition(lambda self: bool(self.CLOCK_STEPS))
        @rule(data=st.data())
        def step_clock(self, data: Any) -> None:
            self.sim.step_clock(data.draw(st.sampled_from(list(self.CLOCK_STEPS)),
                                          label="seconds"))

        @precondition(lambda self: bool(self.SIGNALS))
        @rule(data=st.data())
        def signal(self, data: Any) -> None:
            self.sim.signal(data.draw(st.sampled_from(list(self.SIGNALS)), label="signal"))

        @invariant()
        def properties_hold(self) -> None:
            for prop in self._properties:
                if isinstance(prop, _Always):
                    prop.verify()
            for check in self.CHECKS:
                check(self.sim.trace)

        def teardown(self) -> None:
            try:
                self.sim.close()
            finally:
                self._scratch.__exit__(None, None, None)

    return SimulationMachine


def __getattr__(name: str) -> Any:
    if name == "SimulationMachine":
        machine = globals()["SimulationMachine"] = _machine()
        return machine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
