"""``timer_reload.py`` fixed: the timer registered at import, again after each reload."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("timer_reload.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
