"""Waiting for what a differential comparison needs from a real server's log, instead
of sleeping for a time a loaded machine may need more than."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Protocol


class _Logging(Protocol):
    @property
    def log(self) -> list[str]: ...


def wait_until(done: Callable[[], bool], timeout: float = 10) -> None:
    """Wait until ``done()`` is true, at most ``timeout`` seconds: the assertion that
    follows says what is missing."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_for_lines(real: _Logging, pattern: str, count: int, timeout: float = 10) -> None:
    """Wait until ``real.log`` has ``count`` lines matching ``pattern`` (re.search) - as
    many as the simulation wrote: if real writes fewer, the comparison that follows says
    so after ``timeout`` seconds."""
    rx = re.compile(pattern)
    wait_until(lambda: sum(bool(rx.search(line)) for line in real.log) >= count, timeout)
