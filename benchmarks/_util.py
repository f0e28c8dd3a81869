"""Shared helpers for the benchmark scripts: timing with the real clock, printing."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from simuwsgi.clock import RealClock


def best_rate(fn: Callable[[], int], repeat: int = 3) -> float:
    """Operations per second of ``fn`` (which returns how many it did), best of N."""
    rates = []
    for _ in range(repeat):
        began = RealClock.monotonic()
        count = fn()
        rates.append(count / (RealClock.monotonic() - began))
    return max(rates)


def median_seconds(fn: Callable[[], object], repeat: int = 50) -> float:
    times = []
    for _ in range(repeat):
        began = RealClock.monotonic()
        fn()
        times.append(RealClock.monotonic() - began)
    return statistics.median(times)


def show(name: str, value: str, target: str, ok: bool) -> None:
    print(f"{name:<52} {value:>22}   target {target:<28} {'OK' if ok else 'MISSED'}")
