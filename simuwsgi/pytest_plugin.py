"""pytest plugin: the ``uwsgi_sim`` fixture, the ``uwsgi`` marker, ``--simuwsgi-seed``.

    @pytest.mark.uwsgi("--master", "--processes", "2", "--wsgi-file", "app.py",
                       seed=3, start="2026-03-29T01:59:00", tz="Europe/Paris")
    def test_cron(uwsgi_sim):
        uwsgi_sim.advance(120)
        assert uwsgi_sim.trace.count("signal.handler") == 2

The marker's positional arguments are uWSGI options (or pass ``options=`` a list, a dict
or an ``.ini`` path); its keywords go to ``Simulation``. Relative paths are resolved
in the test file's directory unless ``app_dir`` is given. ``--simuwsgi-seed N`` overrides
every seed; a failing test's report shows the seed, the command that replays it and the
last 30 lines of the uWSGI log.
``uwsgi_simulation`` is a factory for tests that need several simulations.

``mode="real"`` (marker keyword or factory argument) runs the same options on the real
uWSGI server instead (``simuwsgi.modes.real.RealRun``: same driver interface -- ``get``,
``submit``, ``advance``, ``signal``, ``kill``, ``trace``... -- on the real clock), so a test
can be parametrised over modes::

    @pytest.mark.parametrize("mode", ["sim", "real"])
    def test_both(uwsgi_simulation, mode):
        run = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], mode=mode)
        assert run.get("/").status == 200

``uwsgi_cluster`` is a :class:`~simuwsgi.Cluster` (seed from ``--simuwsgi-seed``, else
the ``uwsgi_cluster`` marker's ``seed``; ``start``/``tz`` from the marker; nodes'
relative paths resolved in the test file's directory), closed at the end of the test::

    def test_rpc(uwsgi_cluster):
        uwsgi_cluster.add("a", ["--master", "--socket", ":3031", "--wsgi-file", "app.py"])
        uwsgi_cluster.add("b", ["--master", "--socket", ":3031", "--wsgi-file", "app.py"])
        uwsgi_cluster.net.partition(["a"], ["b"])
        assert uwsgi_cluster["a"].get("/call-b").status == 200

``explore_seeds`` shards a scenario's exploration into one test per seed, which
pytest-xdist spreads over its workers (``pytest -n auto``) without changing any result:
each seed's run (``simuwsgi.explore.run_one``, with a fault plan drawn from the seed) is
the same in any process. The ``explored`` fixture is that run's ``Outcome``; a failing
test's report shows the failure shrunk to a minimal plan and its one-line replay::

    @pytest.mark.explore_seeds("scenarios/chaos/spool_twice_fixed.py", seeds=200,
                               faults="kill")
    def test_never_charged_twice(explored):
        assert explored.failure is None, explored.detail

``reuse=True`` (real mode) shares one running instance among the tests of a session
that use the same options and app directory (a start costs ~0.1 s, a stop ~1 s); its
clock, trace and log restart for each test, its state (caches, counters) does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .simulation import Simulation

_SIMS = pytest.StashKey[list[Any]]()
#: How many of the last uWSGI log lines a failing test's report shows.
LOG_TAIL = 30
_REAL_POOL = pytest.StashKey[dict[tuple, Any]]()
_REAL_ONLY = ("reuse", "deadline", "env")
_SIM_ONLY = ("seed", "start", "vfork", "decorators", "hostname", "fork_timeout", "network",
             "cron_commands", "strict", "stall_timeout", "subprocess")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simuwsgi")
    group.addoption("--simuwsgi-seed", type=int, default=None, metavar="N",
                    help="seed for every simuwsgi simulation (overrides markers)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "uwsgi(*options, options=None, seed=0, start=None, tz=None, app_dir=None, "
        "mode='sim', vfork=True, stall_timeout=5.0): uWSGI options and simulation "
        "settings for uwsgi_sim")
    config.addinivalue_line(
        "markers", "uwsgi_cluster(seed=0, start=None, tz=None, ssl=False): settings of "
        "uwsgi_cluster")
    config.addinivalue_line(
        "markers", "explore_seeds(scenario, seeds=100, faults='kill', first_seed=0, "
        "mode='sim'): one test per seed of the scenario's exploration (fixture explored)")


_EXPLORED = pytest.StashKey[Any]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("explore_seeds")
    if marker is None or "explored" not in metafunc.fixturenames:
        return
    first = marker.kwargs.get("first_seed", 0)
    seeds = range(first, first + marker.kwargs.get("seeds", 100))
    metafunc.parametrize("_explore_seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture
def _explore_seed(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def explored(request: pytest.FixtureRequest, _explore_seed: int) -> Any:
    """The ``Outcome`` of this test's seed of an ``explore_seeds`` exploration."""
    from .explore import parse_kinds, run_one

    marker = request.node.get_closest_marker("explore_seeds")
    if marker is None or not marker.args:
        raise pytest.UsageError("explored needs @pytest.mark.explore_seeds(SCENARIO, "
                                "seeds=N)")
    scenario = Path(str(marker.args[0]))
    if not scenario.is_absolute():
        scenario = Path(str(request.path)).parent / scenario
    if not scenario.is_file():
        raise pytest.UsageError(f"explore_seeds: no scenario file {scenario}")
    try:
        kinds = parse_kinds(marker.kwargs.get("faults", "kill"))
    except ValueError as exc:
        raise pytest.UsageError(f"explore_seeds: {exc}") from None
    mode = marker.kwargs.get("mode", "sim")
    outcome = run_one(scenario, _explore_seed, kinds=kinds, mode=mode)
    request.node.stash[_EXPLORED] = (scenario, outcome, mode)
    return outcome


def _make(request: pytest.FixtureRequest, options: Any = None, **kwargs: Any) -> Any:
    marker = request.node.get_closest_marker("uwsgi")
    settings: dict[str, Any] = {}
    if marker is not None:
        settings.update(marker.kwargs)
        if marker.args and options is None:
            options = list(marker.args)
    settings.update(kwargs)
    if options is None:
        options = settings.pop("options", None)
    else:
        settings.pop("options", None)
    if options is None:
        raise pytest.UsageError(
            "uwsgi_sim needs uWSGI options: @pytest.mark.uwsgi('--master', '--wsgi-file', "
            "'app.py', ...) or uwsgi_simulation([...])")
    override = request.config.getoption("--simuwsgi-seed")
    if override is not None:
        settings["seed"] = override
    settings.setdefault("seed", 0)
    if "app_dir" not in settings and not isinstance(options, (str, Path)):
        settings["app_dir"] = Path(str(request.path)).parent
    if settings.get("mode", "sim") == "real":
        sim = _make_real(request, options, settings)
        request.node.stash.setdefault(_SIMS, []).append(sim)
        return sim
    for name in _REAL_ONLY:
        settings.pop(name, None)
    sim = Simulation(options, **settings)
    request.node.stash.setdefault(_SIMS, []).append(sim)
    return sim


def _make_real(request: pytest.FixtureRequest, options: Any, settings: dict[str, Any]) -> Any:
    """A started ``RealRun`` (or a reused one, checked out afresh)."""
    from .modes.real import RealRun

    settings = {k: v for k, v in settings.items() if k not in _SIM_ONLY and k != "mode"}
    reuse = settings.pop("reuse", False)
    if not reuse:
        return _Owned(RealRun(options, **settings))
    pool = request.config.stash.setdefault(_REAL_POOL, {})
    key = (repr(options), str(settings.get("app_dir")), repr(sorted(settings.items())))
    run = pool.get(key)
    if run is not None and not run.closed and run.server is not None and run.server.running:
        return _Shared(run.checkout())
    run = RealRun(options, **settings)
    pool[key] = run
    return _Shared(run)


class _Owned:
    """A real run that belongs to one test: ``close()`` kills it."""

    def __init__(self, run: Any) -> None:
        object.__setattr__(self, "_run", run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._run, name)

    def start(self) -> Any:
        self._run.start()
        return self


class _Shared(_Owned):
    """A pooled real run: ``close()`` leaves it running for the next test."""

    def close(self) -> None:
        pass

    def stop(self) -> None:
        pass


def pytest_sessionfinish(session: pytest.Session) -> None:
    pool = session.config.stash.get(_REAL_POOL, {})
    for run in pool.values():
        run.close()
    pool.clear()


@pytest.fixture
def uwsgi_sim(request: pytest.FixtureRequest) -> Iterator[Simulation]:
    """A started simulation built from the test's ``uwsgi`` marker."""
    sim = _make(request)
    try:
        yield sim.start()
    finally:
        sim.close()
        _forget(request, sim)


@pytest.fixture
def uwsgi_simulation(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A factory: ``uwsgi_simulation(options, **settings)`` returns a started simulation;
    all are closed at the end of the test."""
    made: list[Simulation] = []

    def factory(options: Any = None, **kwargs: Any) -> Simulation:
        sim = _make(request, options, **kwargs)
        made.append(sim)
        return sim.start()

    try:
        yield factory
    finally:
        for sim in reversed(made):  # innermost first, as nested ``with`` blocks close
            sim.close()
            _forget(request, sim)


def _forget(request: pytest.FixtureRequest, sim: Any) -> None:
    """Drop a closed simulation from the test item (which pytest keeps for the whole
    session), so that its memory goes with it; a failed call has been reported on by
    then (``pytest_runtest_makereport``)."""
    sims = request.node.stash.get(_SIMS, [])
    if sim in sims:
        sims.remove(sim)


@pytest.fixture
def uwsgi_cluster(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A :class:`~simuwsgi.Cluster` for the test (add nodes, then drive it)."""
    from .cluster import Cluster

    marker = request.node.get_closest_marker("uwsgi_cluster")
    settings = dict(marker.kwargs) if marker is not None else {}
    override = request.config.getoption("--simuwsgi-seed")
    if override is not None:
        settings["seed"] = override
    settings.setdefault("app_dir", Path(str(request.path)).parent)
    cluster = Cluster(**settings)
    request.node.stash.setdefault(_SIMS, []).append(cluster)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    explored = item.stash.get(_EXPLORED, None)
    if report.failed and explored is not None and explored[1].failure is not None:
        report.sections.append(("simuwsgi explore", _shrunk(*explored)))
    sims = item.stash.get(_SIMS, [])
    if report.failed and sims:
        lines = []
        for sim in sims:
            lines.append(f"seed {sim.seed}, virtual time {sim.now:.6f} s, "
                         f"trace digest {sim.trace.digest()[:16]}")
        lines.append(f"replay: pytest '{item.nodeid}' --simuwsgi-seed={sims[0].seed}")
        for n, sim in enumerate(sims, 1):
            log = sim.log
            which = f" of simulation {n}" if len(sims) > 1 else ""
            lines.append(f"last {min(LOG_TAIL, len(log))} of {len(log)} lines of the uWSGI "
                         f"log{which}:")
            lines += ["  " + line for line in log[-LOG_TAIL:]]
        report.sections.append(("simuwsgi", "\n".join(lines)))


def _shrunk(scenario: Path, outcome: Any, mode: str) -> str:
    """A failing seed's report: the failure shrunk to a minimal plan, and its replay."""
    from .explore import replay_command, shrink

    small, tries = shrink(scenario, outcome, mode=mode)
    return "\n".join([f"seed {outcome.seed}: {small.failure}",
                      f"plan drawn: {outcome.plan or '(none)'}",
                      f"minimal plan ({tries} shrink runs): {small.plan or '(none)'}",
                      f"replay: {replay_command(str(scenario), outcome.seed, small.plan)}",
                      f"digest: {small.digest}"])
