"""``signal_some_workers.py`` fixed: the handler registered at import, in the master."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("signal_some_workers.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
