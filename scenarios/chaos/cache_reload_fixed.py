"""``cache_reload.py`` fixed: the counter in a file, which outlives the master."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("cache_reload.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
timeline, check = _buggy["timeline"], _buggy["check"]
