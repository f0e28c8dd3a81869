"""``mule_queue_full.py`` fixed: ``mule_msg``'s False means retry."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("mule_queue_full.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
