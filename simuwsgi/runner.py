"""Run a scenario in one mode and collect what the conformance diff compares.

``run_scenario(scenario, mode)`` builds the mode's driver (``Simulation`` for ``sim`` and
``fork``, :class:`simuwsgi.modes.real.RealRun` for ``real``), runs ``timeline(driver)`` (or just
lets ``DURATION`` pass), waits for every request still in flight, calls the scenario's
optional ``state(driver)`` (the final state to compare, any JSON-able value) and
``check(driver)``, and returns a :class:`RunResult`: the trace, the log, every response
in the order the timeline sent the requests, the state, the check's failure if any, and
the error that ended the run early if any.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._core.clock import RealClock
from .driver import MODES
from .scenario import Scenario
from ._core.trace import Trace

__all__ = ["RequestRecorder", "RunResult", "make_driver", "private_app_dir", "run_scenario"]


@dataclass
class RunResult:
    """What one mode's run of a scenario produced."""

    mode: str
    trace: Trace
    log: list[str]
    responses: list[dict[str, Any]]
    state: Any = None
    check_error: str | None = None
    error: str | None = None
    wall_seconds: float = 0.0
    ready_wall: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class RequestRecorder:
    """A driver proxy that remembers every request the timeline sends (in order), so the
    responses can be compared after the run; everything else goes to the driver."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver
        self.sent: list[tuple[str, str, Any]] = []  # (method, path, handle or response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def submit(self, method: str, path: str, **kwargs: Any) -> Any:
        handle = self._driver.submit(method, path, **kwargs)
        self.sent.append((method.upper(), path, handle))
        return handle

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        index = len(self.sent)
        self.sent.append((method.upper(), path, None))
        response = self._driver.request(method, path, **kwargs)
        self.sent[index] = (method.upper(), path, response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def responses(self) -> list[dict[str, Any]]:
        handles = [h for _m, _p, h in self.sent if hasattr(h, "done")]
        pending = [h for h in handles if not h.done]
        if pending:
            try:
                self._driver.wait(pending, timeout=10.0)
            except Exception:  # noqa: BLE001, S110 - unfinished ones are reported as such
                pass
        out = []
        for i, (method, path, h) in enumerate(self.sent, 1):
            resp = h.response if hasattr(h, "done") else h
            if resp is None:
                out.append({"n": i, "method": method, "path": path, "status": "pending",
                            "body": None})
            else:
                out.append({"n": i, "method": method, "path": path, "status": resp.status,
                            "body": resp.body.decode("utf-8", "replace")})
        return out


@contextlib.contextmanager
def private_app_dir(app_dir: Path, prefix: str) -> Iterator[Path]:
    """A private copy of the scenario's app directory for one run (runs write spool
    files, touch files...), without caches; removed when the run is over."""
    with tempfile.TemporaryDirectory(prefix=prefix) as root:
        dest = Path(root) / "app"
        shutil.copytree(app_dir, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        yield dest


def make_driver(scenario: Scenario, mode: str, *, app_dir: Path | None = None,
                start: Any = None, deadline: float | None = None,
                allow_no_app: bool = False, machine: str = "virtual") -> Any:
    """The (unstarted) driver of ``mode`` for ``scenario``; ``allow_no_app`` keeps an
    instance whose app did not load (else its start fails); ``machine`` is whose facts a
    simulation's startup lines print (``Simulation``)."""
    if mode not in MODES and mode != "fork":
        raise ValueError(f"unknown mode {mode!r}: use one of {', '.join(MODES)} or fork")
    app_dir = app_dir or scenario.app_dir
    if mode == "real":
        from .modes.real import RealRun

        limit = deadline if deadline is not None else max(30.0, scenario.duration + 20.0)
        return RealRun(scenario.options, app_dir=app_dir, tz=scenario.tz, deadline=limit,
                       allow_no_app=allow_no_app)
    overrides: dict[str, Any] = {"app_dir": app_dir, "allow_no_app": allow_no_app,
                                 "machine": machine}
    if start is not None:
        overrides["start"] = start
    if mode == "fork":
        overrides["mode"] = "fork"
    return scenario.simulation(**overrides)


def run_scenario(scenario: Scenario, mode: str, *, app_dir: Path | None = None,
                 start: Any = None, deadline: float | None = None,
                 machine: str = "virtual") -> RunResult:
    """Run ``scenario`` in ``mode`` (see the module docstring)."""
    began = RealClock.monotonic()
    driver = make_driver(scenario, mode, app_dir=app_dir, start=start, deadline=deadline,
                         machine=machine)
    rec = RequestRecorder(driver)
    result = RunResult(mode=mode, trace=Trace(), log=[], responses=[])
    try:
        driver.start()
        result.ready_wall = getattr(driver, "ready_wall", None)
        if result.ready_wall is None and hasattr(driver, "wall"):
            result.ready_wall = driver.wall
        if scenario.timeline is not None:
            scenario.timeline(rec)
        else:
            driver.run_until(scenario.duration)
        result.responses = rec.responses()
        state_fn = getattr(scenario.module, "state", None) if scenario.module else None
        if state_fn is not None:
            result.state = state_fn(rec)
        if scenario.check is not None:
            try:
                scenario.check(rec)
            except AssertionError as exc:
                result.check_error = str(exc) or "assertion failed"
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        result.error = f"{type(exc).__name__}: {exc}"
        result.info["traceback"] = traceback.format_exc()
        if not result.responses:
            try:
                result.responses = rec.responses()
            except Exception:  # noqa: BLE001, S110
                pass
    finally:
        try:
            result.trace = driver.trace
            result.log = list(driver.log)
            if mode == "real":
                result.info["ready_after"] = driver.ready_after
                result.info["argv"] = list(driver.server.argv) if driver.server else []
        finally:
            driver.close()
            if mode == "real":
                result.trace = driver.trace  # final: cut where the timeline ended
    result.wall_seconds = RealClock.monotonic() - began
    return result
