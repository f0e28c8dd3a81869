"""Real runs that mostly wait on the real clock (Legion's rounds, a master's reaping
tick), started together instead of one after the other.

A test module lists its real runs by case name; its tests take a ``case`` parameter; a
module fixture calls ``started_together``, which starts the runs of the selected tests
at once in threads (as the conformance suite's ``real_runs`` does) and gives their
futures by case. Each test then takes its run's result and compares its simulated twin,
which runs in the test itself (simulations share the process's patches: one at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import pytest

T = TypeVar("T")


def started_together(request: pytest.FixtureRequest, run: Callable[[str], T]
                     ) -> Iterator[dict[str, Future[T]]]:
    """``run(case)`` for the case of each selected test of the requesting module, all at
    once; the futures by case (the block ends when every run has)."""
    cases = sorted({item.callspec.params["case"] for item in request.session.items
                    if item.module is request.module and hasattr(item, "callspec")
                    and "case" in item.callspec.params})
    with ThreadPoolExecutor(max(len(cases), 1)) as pool:
        yield {case: pool.submit(run, case) for case in cases}
