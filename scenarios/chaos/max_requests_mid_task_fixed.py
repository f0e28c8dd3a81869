"""``max_requests_mid_task.py`` fixed: the export runs in the spooler, which
``--max-requests`` does not recycle."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("max_requests_mid_task.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
