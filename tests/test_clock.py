"""Virtual time as app code sees it, and the patch going in and out cleanly."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.clock import parse_start

APP = """
import datetime, os, time
from time import time as bound_time
import uwsgi

def application(env, sr):
    sr("200 OK", [])
    t0 = time.time()
    time.sleep(2.5)
    out = {
        "t0": t0, "t1": time.time(), "bound": bound_time(), "mono": time.monotonic(),
        "perf": time.perf_counter(), "ns": time.time_ns(),
        "local": list(time.localtime()[:6]), "gm": list(time.gmtime()[:6]),
        "strftime": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "now": datetime.datetime.now().isoformat(),
        "utcnow": datetime.datetime.utcnow().isoformat(),
        "today": datetime.date.today().isoformat(),
        "aware": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "pid": os.getpid(), "masterpid": uwsgi.masterpid(),
    }
    return [repr(out).encode()]
"""


def _run(write_app, **kwargs):
    write_app(APP)
    with Simulation(["--master", "--wsgi-file", "app.py"],
                    app_dir=write_app("", "empty.py").parent, **kwargs) as sim:
        resp = sim.get("/")
        return eval(resp.body), sim  # noqa: S307 - our own repr


def test_app_sees_virtual_time_and_sleep_takes_virtual_seconds(write_app):
    out, sim = _run(write_app, start="2026-03-29T01:59:00", tz="Europe/Paris")
    start = dt.datetime(2026, 3, 29, 0, 59, tzinfo=dt.timezone.utc).timestamp()
    assert out["t0"] == start
    assert out["t1"] == start + 2.5
    assert out["bound"] == start + 2.5, "from time import time binds the virtual clock"
    assert out["ns"] == int((start + 2.5) * 1e9)
    assert out["local"] == [2026, 3, 29, 1, 59, 2]
    assert out["gm"] == [2026, 3, 29, 0, 59, 2]
    assert out["strftime"] == "2026-03-29 01:59:02 CET"
    assert out["now"] == "2026-03-29T01:59:02.500000"
    assert out["utcnow"] == "2026-03-29T00:59:02.500000"
    assert out["today"] == "2026-03-29"
    assert out["aware"] == "2026-03-29T00:59:02.500000+00:00"
    assert out["perf"] - out["mono"] == 0
    assert sim.now == 2.5


def test_os_getpid_is_the_virtual_pid_of_the_worker(write_app):
    out, sim = _run(write_app)
    assert out["pid"] == sim.process("worker1").pid
    assert out["pid"] != out["masterpid"] == sim.process("master").pid


def test_patch_is_removed_when_the_simulation_closes(write_app):
    before = (time.time, time.sleep, time.monotonic, dt.datetime, dt.date, os.getpid,
              os.environ.get("TZ"))
    _run(write_app, tz="Asia/Tokyo")
    after = (time.time, time.sleep, time.monotonic, dt.datetime, dt.date, os.getpid,
             os.environ.get("TZ"))
    assert before == after
    assert abs(time.time() - dt.datetime.now().timestamp()) < 5


def test_start_defaults_to_2026_and_accepts_several_forms():
    assert parse_start(None, None) == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    assert parse_start(1000, None) == 1000.0
    assert parse_start("2026-06-01T12:00:00Z", "Europe/Paris") == \
        dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc).timestamp()
    assert parse_start("2026-06-01T12:00:00", "Europe/Paris") == \
        dt.datetime(2026, 6, 1, 10, tzinfo=dt.timezone.utc).timestamp()
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_start("yesterday", None)


def test_freezegun_active_freeze_time_sets_the_start(write_app):
    from freezegun import freeze_time

    write_app("def application(e, sr):\n    sr('200 OK', [])\n    return [b'']\n")
    with freeze_time("2030-05-05 05:05:05"):
        with Simulation(["--master", "--wsgi-file", "app.py"],
                        app_dir=write_app("", "x.py").parent) as sim:
            assert sim.wall == dt.datetime(2030, 5, 5, 5, 5, 5, tzinfo=dt.timezone.utc).timestamp()
            sim.advance(10)
            assert time.time() == sim.wall
        frozen = time.time()
    assert frozen == dt.datetime(2030, 5, 5, 5, 5, 5, tzinfo=dt.timezone.utc).timestamp()


def test_clock_step_moves_wall_time_but_not_monotonic(write_app):
    write_app("import time\ndef application(e, sr):\n    sr('200 OK', [])\n"
              "    return [repr((time.time(), time.monotonic())).encode()]\n")
    with Simulation(["--master", "--wsgi-file", "app.py"],
                    app_dir=write_app("", "x.py").parent) as sim:
        w0, m0 = eval(sim.get("/").body)
        sim.step_clock(-3600)
        sim.advance(1)
        w1, m1 = eval(sim.get("/").body)
    assert w1 == w0 - 3599
    assert m1 == m0 + 1
