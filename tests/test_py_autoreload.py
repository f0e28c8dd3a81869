"""``--py-autoreload N``: each worker looks at the loaded modules' files every N
seconds; a file whose modification time changed since the worker's first look makes it
log ``[uwsgi-python-reloader] module/file NAME has been modified`` and gracefully reload
the instance (SIGHUP to the master, which ignores a second one while it reloads). The
``real`` test asks uWSGI 2.0.30 the same, in real seconds.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import helper

def application(env, start_response):
    start_response("200 OK", [])
    return [helper.WORD]
"""
HELPER = 'WORD = b"hello"\n'
ARGV = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--py-autoreload", "1"]
MODIFIED = "[uwsgi-python-reloader] module/file {} has been modified"


def _write_app(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "helper.py").write_text(HELPER)


def _touch(path: Path) -> None:
    """A later modification time, in whole seconds (what the reloader compares)."""
    st = os.stat(path)
    os.utime(path, (st.st_atime, st.st_mtime + 10))


def _reloader_lines(log: list[str]) -> list[str]:
    return [line for line in log if "reloader" in line or "gracefully killing" in line
            or line.startswith(("gracefully (RE)spawned", "binary reloading"))]


#: the lines of a reload by the reloader, sorted: two workers each see the change (the
#: real ones in either order around the master's first line)
RELOADED = sorted(["Python auto-reloader enabled", MODIFIED.format("app.py"),
                   MODIFIED.format("app.py"), "...gracefully killing workers...",
                   "binary reloading uWSGI...", "gracefully (RE)spawned uWSGI master process",
                   "Python auto-reloader enabled"])


def _reload_shape(log: list[str]) -> list[str]:
    return sorted(line.split(" (pid")[0] for line in _reloader_lines(log))


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_a_changed_module_reloads_the_instance(tmp_path, mode):
    _write_app(tmp_path)
    with Simulation(ARGV, app_dir=tmp_path, mode=mode) as sim:
        sim.advance(2.5)
        before = [p.pid for p in sim.processes() if p.kind == "worker" and p.alive]
        _touch(tmp_path / "app.py")
        sim.advance(4)
        after = [p.pid for p in sim.processes() if p.kind == "worker" and p.alive]
        assert sim.get("/").body == b"hello"
        log = list(sim.log)
    assert not [line for line in log if "not simulated" in line]
    assert _reload_shape(log) == RELOADED
    assert len(before) == len(after) == 2 and not set(before) & set(after)


def test_a_change_before_the_first_look_is_not_seen(tmp_path):
    """The first look only remembers the times: a file changed before it is not new."""
    _write_app(tmp_path)
    with Simulation(ARGV, app_dir=tmp_path) as sim:
        sim.advance(0.5)
        _touch(tmp_path / "helper.py")
        sim.advance(5)
        assert not [line for line in sim.log if "has been modified" in line]


@pytest.mark.parametrize("ignored, reloads", [([], True), (["helper"], False)])
def test_an_imported_module_is_looked_at_unless_ignored(tmp_path, ignored, reloads):
    _write_app(tmp_path)
    argv = [*ARGV, *[f"--py-auto-reload-ignore={name}" for name in ignored]]
    with Simulation(argv, app_dir=tmp_path) as sim:
        sim.advance(1.5)
        _touch(tmp_path / "helper.py")
        sim.advance(2)
        lines = [line for line in sim.log if "has been modified" in line]
    helper = str(tmp_path / "helper.py")
    assert lines == ([MODIFIED.format(helper)] * 2 if reloads else [])


def test_lazy_apps_workers_look_once_their_app_is_loaded(tmp_path):
    _write_app(tmp_path)
    with Simulation([*ARGV, "--lazy-apps"], app_dir=tmp_path) as sim:
        sim.advance(1.5)
        _touch(tmp_path / "app.py")
        sim.advance(2)
        assert len([line for line in sim.log if "has been modified" in line]) == 2


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    _write_app(tmp_path)
    with RealUwsgi(ARGV, app_dir=tmp_path) as real:
        time.sleep(2.5)
        _touch(tmp_path / "app.py")
        time.sleep(4)
        assert real.get("/", timeout=5).body == b"hello"
        time.sleep(0.5)
        log = real.app_log()
    # the second worker may be killed by the reload before its own look (real timing)
    shape = _reload_shape(log)
    assert shape in (RELOADED, [line for i, line in enumerate(RELOADED)
                                if i != RELOADED.index(MODIFIED.format("app.py"))])


@pytest.mark.real
@requires_real_uwsgi
def test_an_imported_module_is_named_as_on_the_real_server(tmp_path):
    _write_app(tmp_path)
    with RealUwsgi(ARGV, app_dir=tmp_path) as real:
        time.sleep(1.5)
        _touch(tmp_path / "helper.py")
        time.sleep(2)
        lines = [line for line in real.app_log() if "has been modified" in line]
    # each worker that looked before the reload killed it says so: one or both
    assert lines in ([MODIFIED.format(tmp_path / "helper.py")] * 2,
                     [MODIFIED.format(tmp_path / "helper.py")])
