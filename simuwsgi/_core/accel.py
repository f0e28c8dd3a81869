"""Which optional C accelerators run.

Each ``_c*.c`` module beside a Python one is the C twin of its hot path, built by
``pip install`` when a compiler is there (pyproject.toml lists them). :func:`load`
gives the module, or None when the Python twin must run instead:

* ``SIMUWSGI_PURE_PYTHON=1`` is set;
* it was not built (no compiler), or a build lacks a name the Python side needs;
* the build is stale: its C source beside it (or a header of the package the source
  includes) is newer than the built file, as after a checkout updated without
  ``pip install -e .``. Old C called by new Python fails in odd ways (a changed
  signature is a ``TypeError`` deep in a run), so the Python twin runs and a warning
  names the fix. Only a source checkout is looked at (its ``pyproject.toml`` beside the
  package): an installed package's files are as the installer wrote them, in any
  order (a ``pip install .`` wrote a header after the build and turned every
  accelerator off).
"""

from __future__ import annotations

import importlib
import os
import re
import types
import warnings
from pathlib import Path

__all__ = ["load"]

#: Whether this is a source checkout (an editable install), whose builds can go stale.
_SOURCE_TREE = (Path(__file__).resolve().parents[2] / "pyproject.toml").is_file()


def load(name: str, *needs: str) -> types.ModuleType | None:
    """The accelerator module ``name`` (dotted), or None (see the module's docstring);
    ``needs``: names it must have."""
    if os.environ.get("SIMUWSGI_PURE_PYTHON"):
        return None
    try:
        module = importlib.import_module(name)
        for need in needs:
            getattr(module, need)
    except (ImportError, AttributeError):
        return None
    if not _SOURCE_TREE:
        return module
    built = Path(getattr(module, "__file__", None) or "")
    source = built.with_name(name.rpartition(".")[2] + ".c")
    try:
        built_at = built.stat().st_mtime
        newer = [path.name for path in (source, *_local_headers(source))
                 if path.stat().st_mtime > built_at]
    except OSError:  # no source beside it (an installed wheel), or no file at all
        return module
    if newer:
        warnings.warn(f"simuwsgi: {built.name} was built before the last change to "
                      f"{', '.join(newer)}; running the pure-Python code (rebuild: "
                      f"pip install -e .)", RuntimeWarning, stacklevel=2)
        return None
    return module


def _local_headers(source: Path) -> list[Path]:
    """The headers of this package ``source`` includes (``#include "name.h"`` beside it,
    or ``"../_core/_cutil.h"`` relative to it): a change to one alone makes the build
    stale too."""
    names = re.findall(r'^#include "([^"]+)"', source.read_text(), re.MULTILINE)
    # one not there is Python's, found on the include path ("structmember.h")
    return [path for path in (source.parent / name for name in names) if path.exists()]
