"""``thundering_herd.py`` fixed: one worker computes, the others wait for its value."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("thundering_herd.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
