"""Helpers of the hostile-apps tests: the apps are copied into the test's directory
(they write their atexit log next to themselves)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

APPS = Path(__file__).parent / "apps"
#: Virtual seconds between requests: the master reaps a death on its 1 s tick.
GAP = 1.5


def copy_app(tmp_path: Path, name: str) -> Path:
    shutil.copy(APPS / name, tmp_path / name)
    return tmp_path / name


def atexit_lines(tmp_path: Path) -> list[str]:
    """Who ran the app's atexit handler, in order (``apps/exits.py``)."""
    log = tmp_path / "atexit.log"
    return log.read_text().split() if log.exists() else []


@contextlib.contextmanager
def stdin_from_a_pipe() -> Iterator[Callable[[bytes], None]]:
    """The test process's fd 0 and ``sys.stdin`` read a pipe that stays open (a read of
    it would block) until the test calls what this gives: ``send(data)`` writes ``data``
    and closes the pipe's write end."""
    reader, writer = os.pipe()
    saved_fd, saved_stream = os.dup(0), sys.stdin
    os.dup2(reader, 0)
    sys.stdin = os.fdopen(os.dup(0), "r")
    open_ends = [saved_fd, reader, writer]

    def send(data: bytes) -> None:
        os.write(writer, data)
        os.close(writer)
        open_ends.remove(writer)

    try:
        yield send
    finally:
        sys.stdin.close()
        sys.stdin = saved_stream
        os.dup2(saved_fd, 0)
        for fd in open_ends:
            os.close(fd)
