"""Shared test helpers: writing small apps into a temporary directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def write_app(tmp_path: Path):
    """write_app(source, name='app.py') -> Path: a dedented app file in tmp_path."""

    def write(source: str, name: str = "app.py") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(source))
        return path

    return write
