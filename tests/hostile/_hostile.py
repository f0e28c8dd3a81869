"""Helpers of the hostile-apps tests: the apps are copied into the test's directory
(they write their atexit log next to themselves)."""

from __future__ import annotations

import shutil
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
