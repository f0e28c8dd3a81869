"""``harakiri_lock.py`` fixed: the slow call outside the lock, one write for both."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("harakiri_lock.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
