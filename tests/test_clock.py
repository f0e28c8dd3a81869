"""Virtual time as app code sees it, and the patch going in and out cleanly."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import sys
import threading
import time

import pytest

from simuwsgi import Simulation, SimulationError, real_time
from simuwsgi._core.clock import parse_start

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
        "realtime": time.clock_gettime(time.CLOCK_REALTIME),
        "clock_mono": time.clock_gettime(time.CLOCK_MONOTONIC),
        "boottime_ns": time.clock_gettime_ns(time.CLOCK_BOOTTIME),
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
    assert out["realtime"] == start + 2.5, "clock_gettime reads the virtual clocks too"
    assert out["clock_mono"] == out["mono"]
    assert out["boottime_ns"] == int(out["mono"] * 1e9)
    assert sim.now == 2.5


def test_os_getpid_is_the_virtual_pid_of_the_worker(write_app):
    out, sim = _run(write_app)
    assert out["pid"] == sim.process("worker1").pid
    assert out["pid"] != out["masterpid"] == sim.process("master").pid


def test_patch_is_removed_when_the_simulation_closes(write_app):
    def patched():
        return (time.time, time.sleep, time.monotonic, time.clock_gettime,
                time.clock_gettime_ns, dt.datetime, dt.date, os.getpid, os.environ.get("TZ"))

    before = patched()
    _run(write_app, tz="Asia/Tokyo")
    after = patched()
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


DATES_APP = """
import copy, datetime, pickle
import uwsgi

OUTSIDE = None  # a pickle made by the test, loaded here

def application(env, sr):
    sr("200 OK", [])
    now = datetime.datetime.now()
    today = datetime.date.today()
    aware = datetime.datetime.now(datetime.timezone.utc)
    checks = {
        "types": type(now) is datetime.datetime and type(today) is datetime.date,
        "copy": copy.copy(now) == now and copy.deepcopy(aware) == aware,
        "roundtrip": pickle.loads(pickle.dumps((now, today, aware))) == (now, today, aware),
        "outside": pickle.loads(bytes.fromhex(env["QUERY_STRING"])).year,
    }
    return [repr((checks, pickle.dumps((now, today, aware)).hex())).encode()]
"""


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_datetimes_made_inside_pickle_copy_and_load_outside_exactly(write_app, mode):
    """Today ``pickle.dumps(datetime.datetime.now())`` raises PicklingError in the app."""
    write_app(DATES_APP)
    outside = pickle.dumps(dt.datetime(1999, 12, 31, 23, 59)).hex()
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent,
                    start="2026-06-01T12:00:00", mode=mode) as sim:
        resp = sim.get("/?" + outside)
        assert resp.status == 200, sim.log[-20:]
        checks, dumped = eval(resp.body)  # noqa: S307 - our own repr
        inside = pickle.loads(bytes.fromhex(dumped))
        test_side = dt.datetime.now()
    assert checks == {"types": True, "copy": True, "roundtrip": True, "outside": 1999}
    now, today, aware = inside
    assert (now, today, aware) == (dt.datetime(2026, 6, 1, 12), dt.date(2026, 6, 1),
                                   dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc))
    assert type(now) is dt.datetime and type(today) is dt.date
    assert type(test_side) is dt.datetime and test_side == now, "the test sees the sim's clock"


def test_logging_asctime_works_when_the_app_imports_logging_first(write_app, monkeypatch):
    """Today ``Formatter.converter = time.localtime`` binds the replacement as a method:
    TypeError in ``formatTime``."""
    for name in [n for n in sys.modules if n == "logging" or n.startswith("logging.")]:
        monkeypatch.delitem(sys.modules, name)
    write_app("""
        import logging
        def application(env, sr):
            sr("200 OK", [])
            fmt = logging.Formatter("%(asctime)s %(message)s")
            record = logging.LogRecord("app", logging.INFO, __file__, 1, "hello", None, None)
            return [fmt.format(record).encode()]
    """)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent,
                    start="2026-03-29T01:59:00", tz="Europe/Paris") as sim:
        resp = sim.get("/")
    assert resp.status == 200, sim.log[-20:]
    assert resp.body == b"2026-03-29 01:59:00,000 hello"


def _sim(write_app, start, **kwargs):
    write_app("import time\ndef application(e, sr):\n    sr('200 OK', [])\n"
              "    return [repr(time.time()).encode()]\n")
    return Simulation(["--master", "--wsgi-file", "app.py"],
                      app_dir=write_app("", "x.py").parent, start=start, **kwargs).start()


def _epoch(iso):
    return dt.datetime.fromisoformat(iso).replace(tzinfo=dt.timezone.utc).timestamp()


def test_nested_simulations_each_see_their_own_clock_and_close_in_any_order(write_app):
    before = (time.time, time.localtime, dt.datetime.__dict__["now"],
              dt.date.__dict__["today"], sys.modules.get("uwsgi"), os.environ.get("TZ"))
    first = _sim(write_app, "2001-01-01T00:00:00+00:00", tz="Asia/Tokyo")
    second = _sim(write_app, "2030-01-01T00:00:00")
    assert float(first.get("/").body) == _epoch("2001-01-01T00:00:00")
    assert float(second.get("/").body) == _epoch("2030-01-01T00:00:00")
    first.advance(5)
    assert float(first.get("/").body) == _epoch("2001-01-01T00:00:05")
    assert time.time() == first.wall, "the test sees the simulation that ran last"
    first.close()  # the first one first: the factory fixture's order
    assert float(second.get("/").body) == _epoch("2030-01-01T00:00:00")
    assert time.time() == second.wall
    second.close()
    after = (time.time, time.localtime, dt.datetime.__dict__["now"],
             dt.date.__dict__["today"], sys.modules.get("uwsgi"), os.environ.get("TZ"))
    assert after == before
    assert abs(time.time() - real_time.time()) < 5
    assert abs(dt.datetime.now().timestamp() - real_time.time()) < 5


def test_simulations_in_two_threads_see_their_own_clocks_and_close_from_any_thread(write_app):
    sims = {}
    seen = {}

    def in_thread():
        sims["t"] = _sim(write_app, "2040-01-01T00:00:00")
        seen["t"] = (float(sims["t"].get("/").body), time.time())

    main = _sim(write_app, "2001-01-01T00:00:00")
    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    seen["main"] = (float(main.get("/").body), time.time())
    assert seen == {"t": (_epoch("2040-01-01T00:00:00"),) * 2,
                    "main": (_epoch("2001-01-01T00:00:00"),) * 2}
    main.close()
    assert abs(time.time() - real_time.time()) < 5, "the thread's simulation is not ours"
    assert sys.modules.get("uwsgi") is not main.uwsgi
    closer = threading.Thread(target=sims["t"].close)
    closer.start()
    closer.join()
    assert time.time is before_time and "uwsgi" not in sys.modules


before_time = time.time


def test_real_time_reads_the_real_clock_while_a_simulation_is_open(write_app):
    sim = _sim(write_app, "2001-01-01T00:00:00")
    try:
        t0 = real_time.perf_counter()
        assert time.time() == _epoch("2001-01-01T00:00:00")
        assert abs(real_time.time() - dt.datetime.now().timestamp()) > 1e8
        assert abs(real_time.now().timestamp() - real_time.time()) < 5
        real_time.sleep(0.01)
        assert real_time.perf_counter() - t0 >= 0.01
        assert real_time.monotonic() != time.monotonic()
    finally:
        sim.close()


def test_a_different_time_zone_than_a_simulation_open_in_another_thread_is_refused(write_app):
    errors = []
    main = _sim(write_app, "2001-01-01T00:00:00", tz="Europe/Paris")
    try:
        def other():
            try:
                _sim(write_app, "2001-01-01T00:00:00", tz="Asia/Tokyo").close()
            except SimulationError as exc:
                errors.append(str(exc))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert float(main.get("/").body) == _epoch("2000-12-31T23:00:00")
    finally:
        main.close()
    assert len(errors) == 1 and "'Asia/Tokyo' differs from 'Europe/Paris'" in errors[0]
    assert time.time is before_time and os.environ.get("TZ") == before_tz


before_tz = os.environ.get("TZ")


def test_utcnow_warns_exactly_as_the_real_one(write_app):
    """3.12 deprecates ``utcnow()``: the virtual one warns the same, at the caller."""
    import warnings

    def warned(call):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            call()
        return [(w.category, str(w.message), w.filename) for w in caught]

    real = warned(dt.datetime.utcnow)
    sim = _sim(write_app, "2001-01-01T00:00:00")
    try:
        assert warned(dt.datetime.utcnow) == real
    finally:
        sim.close()
    assert bool(real) == (sys.version_info >= (3, 12))
