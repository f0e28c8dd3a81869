"""File monitors (``add_file_monitor``, ``--touch-reload``): arming, batches, the
scenario's ``touch`` and changes made on the real filesystem."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from _waits import wait_for_lines

from simuwsgi import Simulation
from simuwsgi.modes.real.pytest_helpers import real_uwsgi_binary, real_uwsgi_factory, requires_real_uwsgi  # noqa: F401

_real_sleep = time.sleep

APP = """
import uwsgi
def on(num):
    uwsgi.log("FILEMON %d" % num)
for num, target in SIGNALS:
    uwsgi.register_signal(num, "", on)
for num, path in MONITORS:
    uwsgi.add_file_monitor(num, path)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
"""

OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "app.py"]


def _app(directory: Path, monitors: list[tuple[int, str]]) -> None:
    signals = sorted({(num, "") for num, _ in monitors})
    (directory / "app.py").write_text(
        f"SIGNALS = {signals!r}\nMONITORS = {monitors!r}\n" + textwrap.dedent(APP))


def _fired(sim: Simulation) -> list[tuple[float, int]]:
    return [(t, int(line.split()[1])) for t, _p, line in sim.inst.log_lines
            if line.startswith("FILEMON ")]


def test_bad_calls_and_the_64_monitor_table(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        def application(e, sr):
            sr("200 OK", [])
            return [b""]
    """))
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        u = sim.uwsgi
        with pytest.raises(TypeError):
            u.add_file_monitor(1)
        with pytest.raises(TypeError):
            u.add_file_monitor(1, b"bytes")
        with pytest.raises(ValueError, match="unable to add file monitor"):
            u.add_file_monitor(1, "x" * 255)
        assert "uwsgi_add_file_monitor: invalid filename length" in sim.log
        assert [u.add_file_monitor(2, f"f{i}") for i in range(64)] == [None] * 64
        with pytest.raises(ValueError, match="unable to add file monitor"):
            u.add_file_monitor(2, "one-too-many")
        assert "you can register max 64 file monitors !!!" in sim.log


def test_touch_fires_at_that_instant_and_a_batch_routes_one_signal(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    _app(tmp_path, [(10, "a.txt"), (11, "b.txt"), (12, "a.txt")])
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        sim.advance(2.3)
        sim.touch("b.txt")
        assert _fired(sim) == [(2.3, 11)]
        # same instant: one inotify read, one signal -- the last event's monitor; a path
        # registered twice has one watch, whose signal is the last monitor added (12)
        fs = sim.inst.subsystems["filemon"]
        fs.touch("b.txt")
        fs.touch("a.txt")
        sim.advance(0.5)
        assert _fired(sim)[1:] == [(2.3, 12)]
        assert [r["events"] for r in sim.trace.select("filemon.fire")] == [1, 2]


def test_missing_paths_never_fire_and_monitors_arm_at_the_next_iteration(tmp_path):
    (tmp_path / "here.txt").write_text("x")
    _app(tmp_path, [(20, "later.txt"), (21, "here.txt")])
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        arms = {r["path"]: r["watching"] for r in sim.trace.select("filemon.arm")}
        assert arms == {"later.txt": False, "here.txt": True}
        (tmp_path / "later.txt").write_text("created after arming")
        sim.touch("later.txt")
        sim.advance(1)
        assert _fired(sim) == []
        sim.advance(0.3)
        sim.uwsgi.add_file_monitor(22, "here.txt")  # at run time: armed on the next tick
        sim.advance(2)
        assert [(r.time, r["num"]) for r in sim.trace.select("filemon.arm")][-1] == (2.0, 22)


def test_changes_on_the_real_filesystem_fire_when_the_scenario_drives_the_run(tmp_path):
    watched = tmp_path / "conf.txt"
    watched.write_text("v1")
    (tmp_path / "drop").mkdir()
    _app(tmp_path, [(30, "conf.txt"), (31, "drop")])
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        sim.advance(5)
        assert _fired(sim) == []                      # nothing changed: nothing fires
        watched.write_text("v2")                      # the test edits the file
        sim.advance(1)
        assert _fired(sim) == [(5.0, 30)]             # seen at the instant the run resumes
        (tmp_path / "drop" / "new.csv").write_text("1,2")
        sim.get("/")                                  # any call that drives the run
        assert _fired(sim)[-1] == (6.0, 31)
        os.unlink(tmp_path / "drop" / "new.csv")      # removal is an event too
        watched.write_text("v3")                      # with another change: one batch
        sim.advance(1)
        assert _fired(sim)[2:] == [(6.0, 30)]
        assert [r["events"] for r in sim.trace.select("filemon.fire")][-1] == 2


def test_touch_reload_sees_a_real_modification(tmp_path):
    (tmp_path / "app.py").write_text("def application(e, sr):\n    sr('200 OK', [])\n"
                                     "    return [b'']\n")
    flag = tmp_path / "reload.flag"
    flag.write_text("0")
    with Simulation(["--master", "--touch-reload", "reload.flag", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(3)
        assert sim.trace.count("instance.start") == 1
        flag.write_text("1")
        sim.advance(3)
        assert any(line.endswith(" - *** reload.flag has been touched... grace them all !!! ***")
                   for line in sim.log)  # uwsgi_log_verbose: after the date
        assert sim.trace.count("instance.start") == 2


#: Changes that make exactly one inotify event each (a write makes one per truncate and
#: per write(), read by the master in one or several batches depending on timing).
DIFF_STEPS = [("touch", "a.txt"), ("create", "dir/new.txt"), ("touch", "a.txt"),
              ("create", "later.txt"), ("touch", "dir/new.txt")]


@requires_real_uwsgi
def test_real_filesystem_changes_match_real_uwsgi(tmp_path, real_uwsgi_factory):  # noqa: F811
    """Edit files under a running real uWSGI and under a simulation: the same monitors
    fire, once per change, and a path created after arming never does."""
    monitors = [(40, "a.txt"), (41, "dir"), (42, "later.txt")]

    def prepare(d: Path) -> None:
        d.mkdir()
        (d / "a.txt").write_text("0")
        (d / "dir").mkdir()
        _app(d, monitors)

    def change(d: Path, what: str, path: str) -> None:
        if what == "touch":
            os.utime(d / path)
        else:
            (d / path).touch()

    sim_dir = tmp_path / "sim"
    prepare(sim_dir)
    with Simulation(OPTIONS, app_dir=sim_dir) as sim:
        sim.advance(1.2)
        for what, path in DIFF_STEPS:
            change(sim_dir, what, path)
            sim.advance(0.7)
        simulated = [num for _t, num in _fired(sim)]

    real_dir = tmp_path / "real"
    prepare(real_dir)
    u = real_uwsgi_factory(OPTIONS, app_dir=real_dir)
    u.get("/")
    _real_sleep(1.2)  # the master has armed its watches
    for what, path in DIFF_STEPS:
        change(real_dir, what, path)
        _real_sleep(0.7)  # the master reads each change before the next (one batch each)
    # the handlers' lines, which a worker writes when it gets to them
    wait_for_lines(u, "^FILEMON ", len(simulated))
    real = [int(line.split()[-1]) for line in u.app_log() if line.startswith("FILEMON ")]
    assert simulated == real == [40, 41, 40, 41]
