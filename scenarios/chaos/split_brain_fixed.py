"""``split_brain.py`` with the fix: a majority quorum (2 of 3), so the side of a
partition with one node has no Lord."""

import runpy
from pathlib import Path

_buggy = runpy.run_path(str(Path(__file__).with_name("split_brain.py")))
_buggy["EXTRA"].extend(["--legion-quorum", "billing 2"])  # read by its node()
NODES = {name: _buggy["node"](name) for name in _buggy["IPS"]}
DURATION, check = _buggy["DURATION"], _buggy["check"]
