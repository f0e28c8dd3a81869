"""Waiting for what a differential comparison needs from a real server's log, instead
of sleeping for a time a loaded machine may need more than."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
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


def proc_state(pid: int) -> str | None:
    """The state letter of a process (``/proc/PID/stat``: R, S, Z...), None when gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rfind(b")") + 2 :].split()[0].decode()


def settles_asleep(pid: int, patience: float = 2.0) -> bool:
    """The process is (or within ``patience`` s becomes) asleep in its loop: a process
    caught running for an instant (the master's 1 s tick) is not still initialising."""
    deadline = time.monotonic() + patience
    while proc_state(pid) != "S":
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
