"""Each conformance scenario: sim mode against the real uWSGI server (see conftest).

A scenario that documents a difference the simulator does not model yet sets
``KNOWN_DIFFERENCE`` (with the analysis in its docstring): when the diff is not empty it
is reported as xfailed with the full diff, never skipped or hidden; when the real run
happens to agree, it passes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from simuwsgi.conform import conform, harness_failure, write_conform_report
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi
from simuwsgi.scenario import load_scenario

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios" / "conformance"
SCENARIOS = sorted(p for p in SCENARIO_DIR.glob("*.py") if not p.name.startswith("_"))
REPORTS = Path(__file__).resolve().parents[2] / "reports" / "conformance"


def test_the_suite_is_broad_enough():
    assert len(SCENARIOS) >= 25


@requires_real_uwsgi
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_conforms(path, real_runs):
    scenario = load_scenario(path)
    result = conform(scenario, real=real_runs[scenario.name])
    if not result.ok:
        out = write_conform_report(result, REPORTS)
        known = getattr(scenario.module, "KNOWN_DIFFERENCE", None)
        if known:  # reported in the scenario's docstring; shows as xfailed with the diff
            pytest.xfail(f"known difference: {known}\n{result.format()}")
        pytest.fail(f"{result.format()}\n(report: {out})", pytrace=False)


@requires_real_uwsgi
def test_conform_leaves_no_temporary_files(tmp_path, monkeypatch):
    """Every mode runs in a private copy of the app directory, removed afterwards
    (``simuwsgi conform`` in a loop must not fill /tmp)."""
    import tempfile

    scenario = min((load_scenario(p) for p in SCENARIOS), key=lambda s: s.duration)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = conform(scenario, fork=True)
    assert set(result.runs) == {"real", "sim", "fork"}
    assert all(not run.error for run in result.runs.values()), result.format()
    assert list(tmp_path.iterdir()) == []


def test_a_real_server_that_cannot_restart_its_own_program_is_a_harness_error(tmp_path):
    """A real run whose ``uwsgi`` launcher failed (as a reload in a virtualenv did before
    the harness passed ``--binary-path``) is reported as the harness's failure, with the
    log excerpt, never as differences blamed on the simulator."""
    from simuwsgi.conform import HarnessError
    from simuwsgi.runner import RunResult
    from simuwsgi._core.trace import Trace

    log = ["binary reloading uWSGI...", "running /usr/bin/python3.12",
           "Traceback (most recent call last):",
           '  File "/tmp/venv/bin/uwsgi", line 5, in <module>',
           "    from pyuwsgi import run",
           "ModuleNotFoundError: No module named 'pyuwsgi'"]
    broken = RunResult(mode="real", trace=Trace(), log=log, responses=[])
    scenario = min((load_scenario(p) for p in SCENARIOS), key=lambda s: s.duration)
    with pytest.raises(HarnessError, match="not a simulator difference") as info:
        conform(scenario, real=broken)
    assert "No module named 'pyuwsgi'" in str(info.value)
    # An app's own traceback is not the harness's failure.
    app_error = dataclasses.replace(broken, log=[
        "Traceback (most recent call last):",
        '  File "/tmp/app/app.py", line 5, in <module>', "ZeroDivisionError: x"])
    assert harness_failure(app_error) is None
