"""Timers (``add_timer``, ``add_rb_timer``) and the master loop, in virtual time."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from simuwsgi import Simulation, SimulationError
from simuwsgi.modes.real.pytest_helpers import real_uwsgi_binary, real_uwsgi_factory, requires_real_uwsgi  # noqa: F401

_real_sleep = time.sleep
_real_time = time.time


def _app(tmp_path: Path, source: str, name: str = "app.py") -> None:
    (tmp_path / name).write_text(textwrap.dedent(source))


def _fires(sim: Simulation, kind: str = "signal.handler", **fields: object) -> list[tuple[float, str]]:
    return [(r.time, r.process) for r in sim.trace.select(kind, **fields)]


BASIC = """
import uwsgi
def h(num):
    pass
uwsgi.register_signal(1, "workers", h)
uwsgi.register_signal(2, "", h)
def application(env, start_response):
    return []
"""


def test_timer_fires_every_secs_after_arming_without_drift(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_timer(1, 3)\n")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(10)
        times = [r.time for r in sim.trace.select("timer.fire")]
        assert times == [3.0, 6.0, 9.0]
        handlers = _fires(sim, num=1)
        assert sorted(handlers) == sorted((t, w) for t in times for w in ("worker1", "worker2"))


def test_timer_secs_zero_and_negative_never_fire(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_timer(1, 0)\nuwsgi.add_timer(2, -5)\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(100)
        assert sim.trace.count("timer.fire") == 0
        assert "timerfd_settime(): Invalid argument [core/event.c line 1275]" in sim.log


def test_timers_need_a_master_and_have_64_slots(tmp_path):
    _app(tmp_path, "def application(e, sr):\n    return []\n")
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        with pytest.raises(ValueError, match="^unable to add timer$"):
            sim.uwsgi.add_timer(1, 1)
        with pytest.raises(ValueError, match="^unable to add rb_timer$"):
            sim.uwsgi.add_rb_timer(1, 1)
        assert not hasattr(sim.uwsgi, "add_ms_timer")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        for i in range(64):
            assert sim.uwsgi.add_timer(i, 10) is None
        with pytest.raises(ValueError, match="unable to add timer"):
            sim.uwsgi.add_timer(65, 10)
        assert "you can register max 64 timers !!!" in sim.log
        with pytest.raises(TypeError):
            sim.uwsgi.add_timer(1, 1.5)
        with pytest.raises(TypeError, match="takes no keyword arguments"):
            sim.uwsgi.add_timer(1, secs=1)


def test_rb_timer_iterations_and_rearm_from_firing(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_rb_timer(2, 2, 2)\nuwsgi.add_rb_timer(1, 5)\n"
         "uwsgi.add_rb_timer(2, 3, -1)\n")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(21)
        fires = [(r.time, r["num"]) for r in sim.trace.select("rb_timer.fire")]
        # 2 s x 2 iterations; 5 s forever; negative iterations: one firing (C rule)
        assert [t for t, n in fires if n == 2] == [2.0, 3.0, 4.0]
        assert [t for t, n in fires if n == 1] == [5.0, 10.0, 15.0, 20.0]


def test_rb_timer_deadlines_are_wall_seconds_but_timers_are_not(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_rb_timer(2, 10)\nuwsgi.add_timer(1, 10)\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(5)
        sim.step_clock(-100)  # NTP steps the wall clock back
        sim.advance(110)
        assert [r.time for r in sim.trace.select("timer.fire")][:2] == [10.0, 20.0]
        assert [r.time for r in sim.trace.select("rb_timer.fire")][0] == 110.0
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(2.5)
        sim.step_clock(+60)  # forward: due at the next master iteration, fired once
        sim.advance(11)
        assert [r.time for r in sim.trace.select("rb_timer.fire")] == [3.0, 13.0]


def test_rb_timer_without_a_future_deadline_is_reported(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_rb_timer(2, 0)\n")
    sim = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path)
    with pytest.raises(SimulationError, match="loop forever"):
        sim.start()  # armed and due when the master loop starts
    sim.close()


def test_timer_added_by_a_worker_is_armed_at_the_next_master_iteration(tmp_path):
    _app(tmp_path, BASIC + """
def application(e, sr):
    sr("200 OK", [])
    uwsgi.add_timer(2, 2)
    return [b"ok"]
""")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.advance(0.25)
        sim.get("/")
        sim.advance(6)
        assert [r.time for r in sim.trace.select("timer.fire")] == [3.0, 5.0]


def test_lazy_apps_every_worker_adds_its_own_timer(tmp_path):
    _app(tmp_path, """
import uwsgi
def h(num):
    pass
uwsgi.register_signal(3, "", h)
uwsgi.add_timer(3, 2)
def application(e, sr):
    sr("200 OK", [])
    return [b""]
""")
    with Simulation(["--master", "--lazy-apps", "--processes", "3", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(7.5)
        # three timers (one per worker, added after the master loop started, so armed
        # at its first iteration, t=1), each firing every 2 s
        assert [r.time for r in sim.trace.select("timer.fire")] == [3.0] * 3 + [5.0] * 3 + [7.0] * 3
        assert sim.trace.count("signal.route", num=3) == 9


def test_timer_option_and_master_interval(tmp_path):
    _app(tmp_path, BASIC)
    with Simulation(["--master", "--timer", "2 4", "--rbtimer", "1 3", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(9)
        assert [r.time for r in sim.trace.select("timer.fire")] == [4.0, 8.0]
        assert [r.time for r in sim.trace.select("rb_timer.fire")] == [3.0, 6.0, 9.0]


def test_timer_determinism(tmp_path):
    _app(tmp_path, BASIC + "uwsgi.add_timer(2, 1)\nuwsgi.add_rb_timer(2, 3)\n")

    def run() -> str:
        with Simulation(["--master", "--processes", "3", "--wsgi-file", "app.py"],
                        app_dir=tmp_path, seed=7) as sim:
            sim.advance(30)
            return repr([(r.time, r.process, r.kind) for r in sim.trace])

    assert run() == run()


# -- differential test against real uWSGI ---------------------------------------------------
DIFF_APP = """
import json, os, time
import uwsgi
OBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "obs.txt")
T0 = time.time()
open(OBS, "w").close()
def note(num):
    with open(OBS, "a") as f:
        f.write(json.dumps([num, uwsgi.worker_id(), time.time() - T0]) + "\\n")
uwsgi.register_signal(1, "workers", note)
uwsgi.register_signal(2, "worker", note)
uwsgi.add_timer(1, 1)
uwsgi.add_rb_timer(2, 2, 2)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    with open(OBS) as f:
        rows = [json.loads(line) for line in f]
    return [json.dumps({"elapsed": time.time() - T0, "rows": rows}).encode()]
"""


def _summary(rows: list[list[float]], horizon: float) -> dict[str, list[int]]:
    """Ticks per (signal, worker), as whole seconds after import, up to ``horizon``."""
    out: dict[str, list[int]] = {}
    for num, wid, t in rows:
        if t <= horizon:
            key = f"sig{num}" + (f"-w{wid}" if num == 1 else "")
            out.setdefault(key, []).append(round(t))
    return {k: sorted(v) for k, v in sorted(out.items())}


@requires_real_uwsgi
def test_timers_match_real_uwsgi(tmp_path, real_uwsgi_factory):  # noqa: F811
    opts = ["--master", "--processes", "2", "--wsgi-file", "app.py"]
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    _app(real_dir, DIFF_APP)
    u = real_uwsgi_factory(opts, app_dir=real_dir)
    first = json.loads(u.get("/").body)
    _real_sleep(max(0.0, 5.5 - first["elapsed"]))
    real = json.loads(u.get("/").body)
    horizon = real["elapsed"] - 0.3  # ticks in the last instants may be in flight
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    _app(sim_dir, DIFF_APP)
    with Simulation(opts, app_dir=sim_dir) as sim:
        sim.advance(horizon)
        simulated = json.loads(sim.get("/").body)
    for rows in (real["rows"], simulated["rows"]):
        for _num, _wid, t in rows:  # real: within 150 ms of whole seconds after import
            assert abs(t - round(t)) < 0.15
    assert _summary(real["rows"], horizon) == _summary(simulated["rows"], horizon)
    summary = _summary(simulated["rows"], horizon)
    assert summary["sig1-w1"] == summary["sig1-w2"] == list(range(1, int(horizon) + 1))
    assert summary["sig2"] == [2, 4]


@pytest.mark.parametrize("target", ["workers", "active-workers"])
def test_a_signal_for_every_worker_reaches_each_in_turn_and_a_busy_one_after(tmp_path,
                                                                              target):
    _app(tmp_path, f"""
        import time
        import uwsgi
        def h(num):
            pass
        uwsgi.register_signal(1, "{target}", h)
        uwsgi.add_timer(1, 10)
        def application(env, start_response):
            time.sleep(3)
            start_response("200 OK", [])
            return [b""]
        """)
    with Simulation(["--master", "--processes", "3", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(9)
        req = sim.submit("GET", "/")
        sim.advance(2)
        busy = next(w for w in sim.inst.workers.values() if w.busy)
        idle = sorted(w.name for w in sim.inst.workers.values() if w is not busy)
        assert _fires(sim, num=1) == [(10.0, idle[0]), (10.0, idle[1])]
        sim.wait([req])  # ends at 12: the worker reads the signal queued for it
        sim.advance(1)
        assert _fires(sim, num=1)[2:] == [(12.0, busy.name)]
