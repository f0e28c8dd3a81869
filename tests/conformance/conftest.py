"""The conformance suite: every ``scenarios/conformance/*.py`` must pass ``conform``
against the real uWSGI server.

The real runs are the slow half (real seconds); they all start at once in a thread pool
(``real_runs`` fixture, session scope), then each test runs its scenario in ``sim``
mode (virtual time, in this process) and diffs the two. The diff of a failing scenario
is written under ``reports/conformance/`` and printed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simuwsgi.conform import run_real
from simuwsgi.modes.real.pytest_helpers import real_uwsgi_binary  # noqa: F401  (fixture)
from simuwsgi.scenario import load_scenario

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "conformance"
SCENARIOS = sorted(p for p in SCENARIO_DIR.glob("*.py") if not p.name.startswith("_"))
PARALLEL = 6  # real instances at once (mostly sleeping: timelines wait on the real clock)


@pytest.fixture(scope="session")
def real_runs(real_uwsgi_binary):  # noqa: F811
    """Scenario name -> its real RunResult, all run concurrently once per session."""
    scenarios = [load_scenario(p) for p in SCENARIOS]
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run_real, scenarios))
    return {s.name: r for s, r in zip(scenarios, results)}
