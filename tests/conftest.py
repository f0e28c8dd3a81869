"""Shared test helpers: writing small apps into a temporary directory; Ctrl-C as an
interactive run has it."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as an interactive run has it: a run started as a background job of a
    shell without job control (``... &`` in a script, CI) ignores SIGINT, and so would
    the tests' child processes; the tests that send SIGINT (to the simulation, to
    ``simuwsgi serve``) would then wait for ever."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_app(tmp_path: Path):
    """write_app(source, name='app.py') -> Path: a dedented app file in tmp_path."""

    def write(source: str, name: str = "app.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write
