"""``cron_dst.py`` fixed: the nightly job at 04:30, a minute DST never repeats."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("cron_dst.py")))
OPTIONS = _buggy["OPTIONS"] + ["--set", "fixed=1"]
START, TZ, DURATION, check = _buggy["START"], _buggy["TZ"], _buggy["DURATION"], _buggy["check"]
