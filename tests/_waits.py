"""Waiting for what a differential comparison needs from a real server's log, instead
of sleeping for a time a loaded machine may need more than."""

from __future__ import annotations

import re
import time
from typing import Protocol


class _Logging(Protocol):
    @property
    def log(self) -> list[str]: ...


def wait_for_lines(real: _Logging, pattern: str, count: int, timeout: float = 10) -> None:
    """Wait until ``real.log`` has ``count`` lines matching ``pattern`` (re.search) - as
    many as the simulation wrote: if real writes fewer, the comparison that follows says
    so after ``timeout`` seconds."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while sum(bool(rx.search(line)) for line in real.log) < count \
            and time.monotonic() < deadline:
        time.sleep(0.05)
