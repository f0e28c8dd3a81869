"""Which optional C accelerators run (``simuwsgi._core.accel``): none under
``SIMUWSGI_PURE_PYTHON=1``, none that is missing a name, and none built before the last
change to its C source (a checkout updated without ``pip install -e .``: old C called
by new Python failed with a ``TypeError`` deep in a run)."""

from __future__ import annotations

import os
import sys
import warnings

import pytest

from simuwsgi._core.accel import load

ACCELERATORS = ["simuwsgi._core._ckernel", "simuwsgi._core._ctrace",
                "simuwsgi.subsystems._csignals", "simuwsgi.subsystems._cmaster",
                "simuwsgi.subsystems._cmules",
                "simuwsgi.subsystems._ccache", "simuwsgi.server._cvfork",
                "simuwsgi.protocol._cvars", "simuwsgi.subsystems._cspooler",
                "simuwsgi.server._cwsgi", "simuwsgi.server._creq", "simuwsgi.net._cserve"]


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A package ``fakeacc`` with an "accelerator" ``_cfast`` (a .py standing for the
    build) and its C source beside it; returns (build, source)."""
    pkg = tmp_path / "fakeacc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    build, source = pkg / "_cfast.py", pkg / "_cfast.c"
    build.write_text("def go():\n    return 1\n")
    source.write_text("/* the twin */\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SIMUWSGI_PURE_PYTHON", raising=False)
    yield build, source
    for name in ("fakeacc._cfast", "fakeacc"):
        sys.modules.pop(name, None)


def test_a_build_newer_than_its_source_is_loaded(fake):
    build, source = fake
    os.utime(source, (1_000, 1_000))
    os.utime(build, (2_000, 2_000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = load("fakeacc._cfast", "go")
    assert module is not None and module.go() == 1


def test_a_build_older_than_its_source_is_not_loaded_and_says_so(fake):
    build, source = fake
    os.utime(build, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    with pytest.warns(RuntimeWarning, match=r"_cfast\.py was built before the last change "
                                            r"to _cfast\.c.*pip install -e \."):
        assert load("fakeacc._cfast", "go") is None



def test_an_installed_package_is_not_checked(fake, monkeypatch):
    """Outside a source checkout the installer wrote the files in any order (``pip install
    .`` wrote a header after the build): the build is the package's, and is loaded."""
    from simuwsgi._core import accel

    build, source = fake
    os.utime(build, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    monkeypatch.setattr(accel, "_SOURCE_TREE", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = load("fakeacc._cfast", "go")
    assert module is not None and module.go() == 1


@pytest.mark.parametrize("include", ["_cshared.h", "../_core/_cshared.h"])
def test_a_build_older_than_a_header_its_source_includes_is_not_loaded(fake, include):
    """A header beside the source, or in another directory of the package (as the twins
    include "../_core/_cutil.h"); a quoted header that is not there (Python's
    "structmember.h") does not stop the check."""
    build, source = fake
    header = source.parent / include
    header.parent.mkdir(exist_ok=True)
    header.write_text("/* shared */\n")
    source.write_text(f'#include <Python.h>\n#include "structmember.h"\n#include "{include}"\n')
    os.utime(source, (1_000, 1_000))
    os.utime(build, (2_000, 2_000))
    os.utime(header, (3_000, 3_000))
    with pytest.warns(RuntimeWarning, match=r"before the last change to _cshared\.h"):
        assert load("fakeacc._cfast", "go") is None
    os.utime(header, (1_500, 1_500))
    assert load("fakeacc._cfast", "go") is not None
    os.utime(source, (2_500, 2_500))
    with pytest.warns(RuntimeWarning, match=r"before the last change to _cfast\.c"):
        assert load("fakeacc._cfast", "go") is None


def test_no_source_beside_the_build_a_missing_name_or_the_environment(fake, monkeypatch):
    build, source = fake
    source.unlink()  # an installed wheel
    assert load("fakeacc._cfast", "go") is not None
    assert load("fakeacc._cfast", "go", "gone") is None  # an older build lacks a name
    assert load("fakeacc._cnothing") is None  # not built
    monkeypatch.setenv("SIMUWSGI_PURE_PYTHON", "1")
    assert load("fakeacc._cfast", "go") is None


def test_every_accelerator_is_built_and_current_here():
    # The machines this project runs on have a compiler: a silent fallback would hide a
    # broken or stale build. SIMUWSGI_PURE_PYTHON=1 runs the suite on the twins.
    pure = bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [name for name in ACCELERATORS if (load(name) is None) != pure] == []
