"""``spool_twice.py`` with the fix: an idempotency key in the cache, so a task rerun
after a spooler kill does not charge again."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("spool_twice.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "idempotent=1"]
DURATION, timeline, check = _buggy["DURATION"], _buggy["timeline"], _buggy["check"]
