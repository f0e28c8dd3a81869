"""Cron (``add_cron``, ``--cron``) in virtual time: the C rule, the 60 s guard, DST and
clock steps, against an independent brute-force model and the real server."""

from __future__ import annotations

import json
import os
import textwrap
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simuwsgi import ConfigError, Simulation
from simuwsgi.modes.real.pytest_helpers import real_uwsgi_binary, real_uwsgi_factory, requires_real_uwsgi  # noqa: F401

_real_localtime = time.localtime
_real_sleep = time.sleep


def _cron_app(tmp_path: Path, *specs: tuple[int, int, int, int, int]) -> None:
    lines = ["import uwsgi", "def h(num):", "    pass"]
    for i, spec in enumerate(specs):
        lines.append(f"uwsgi.register_signal({i}, '', h)")
        lines.append(f"assert uwsgi.add_cron({i}, {', '.join(map(str, spec))}) is True")
    lines += ["def application(e, sr):", "    sr('200 OK', [])", "    return [b'']"]
    (tmp_path / "app.py").write_text("\n".join(lines) + "\n")


def _fired(sim: Simulation, num: int = 0) -> list[str]:
    """Local wall-clock times (ISO, seconds) of the firings of cron signal ``num``."""
    tz = ZoneInfo(sim.clock.tz)
    out = []
    for r in sim.trace.select("cron.signal", num=num):
        wall = sim.clock.wall_offset + r.time  # no steps in these tests
        out.append(datetime.fromtimestamp(wall, tz).isoformat())
    return out


def _sim(tmp_path: Path, start: str, tz: str = "UTC", processes: int = 1) -> Simulation:
    return Simulation(["--master", "--processes", str(processes), "--wsgi-file", "app.py"],
                      app_dir=tmp_path, start=start, tz=tz)


# -- the rule ------------------------------------------------------------------------------
def test_fires_at_the_first_iteration_then_every_60_seconds(tmp_path):
    _cron_app(tmp_path, (-1, -1, -1, -1, -1))
    with _sim(tmp_path, "2026-01-01T00:00:30") as sim:
        sim.advance(200)
        assert [r.time for r in sim.trace.select("cron.signal")] == [1.0, 61.0, 121.0, 181.0]
        assert "Thu Jan  1 00:00:31 2026 - [uwsgi-cron] routing signal 0" in sim.log
        assert sim.trace.count("signal.handler", num=0) == 4


def test_negative_fields_use_the_raw_calendar_value(tmp_path):
    _cron_app(tmp_path, (-15, -1, -1, -1, -1), (0, -3, -1, -1, -1), (0, 0, -1, -2, -1))
    with _sim(tmp_path, "2026-01-01T00:00:10") as sim:
        sim.run_until("2026-04-02T00:00:30")
        mins = {datetime.fromisoformat(x).minute for x in _fired(sim, 0)}
        assert mins == {0, 15, 30, 45}
        hours = {datetime.fromisoformat(x).hour for x in _fired(sim, 1)}
        assert hours == {0, 3, 6, 9, 12, 15, 18, 21}
        months = {datetime.fromisoformat(x).month for x in _fired(sim, 2)}
        assert months == {2, 4}  # -2 on 1-based months: Feb, Apr (not Jan, Mar)


def test_day_and_weekday_or_only_when_both_given(tmp_path):
    # 2026-03-01 is a Sunday. (0,5,1,-1,1): 05:00 on the 1st OR on Mondays;
    # (0,5,-1,-1,1): Mondays; (0,5,-2,-1,1): Mondays on even days; weekday 7 = Sunday.
    _cron_app(tmp_path, (0, 5, 1, -1, 1), (0, 5, -1, -1, 1), (0, 5, -2, -1, 1), (0, 5, -1, -1, 7))
    with _sim(tmp_path, "2026-03-01T00:00:00") as sim:
        sim.run_until("2026-04-01T00:00:00")
        days = [[datetime.fromisoformat(x).day for x in _fired(sim, i)] for i in range(4)]
        assert days[0] == [1, 2, 9, 16, 23, 30]
        assert days[1] == [2, 9, 16, 23, 30]
        assert days[2] == [2, 16, 30]
        assert days[3] == [1, 8, 15, 22, 29]


def test_out_of_range_values_are_accepted_and_never_fire(tmp_path):
    _cron_app(tmp_path, (99, 99, 99, 99, 99), (0, 0, 0, 0, 0), (0, 0, 32, -1, -1))
    with _sim(tmp_path, "2026-01-01T00:00:00") as sim:
        sim.advance(400 * 86400)
        assert sim.trace.count("cron.signal") == 0


def test_add_cron_errors(tmp_path):
    _cron_app(tmp_path)
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        with pytest.raises(ValueError, match="^unable to add cron$"):
            sim.uwsgi.add_cron(1, -1, -1, -1, -1, -1)
    with _sim(tmp_path, "2026-01-01T00:00:00") as sim:
        for i in range(64):
            assert sim.uwsgi.add_cron(i, 0, 0, 1, 1, -1) is True
        with pytest.raises(ValueError, match="unable to add cron"):
            sim.uwsgi.add_cron(64, 0, 0, 1, 1, -1)
        assert "you can register max 64 cron !!!" in sim.log
        with pytest.raises(TypeError):
            sim.uwsgi.add_cron(1, -1, -1, -1, -1)


def test_missed_minutes_are_not_caught_up_after_a_forward_step(tmp_path):
    _cron_app(tmp_path, (-1, -1, -1, -1, -1), (30, 10, -1, -1, -1))
    with _sim(tmp_path, "2026-01-01T10:00:00") as sim:
        sim.advance(90)  # fired at 10:00:01 and 10:01:01
        sim.step_clock(3600)  # now 11:01:30: 10:30 was skipped
        sim.advance(200)
        assert _fired(sim, 1) == []
        walls = [r.time for r in sim.trace.select("cron.signal", num=0)]
        assert walls == [1.0, 61.0, 91.0, 151.0, 211.0, 271.0]


def test_backward_step_keeps_it_silent_until_60s_past_the_last_firing(tmp_path):
    _cron_app(tmp_path, (-1, -1, -1, -1, -1))
    with _sim(tmp_path, "2026-01-01T10:00:00") as sim:
        sim.advance(62)  # fired at t=1 (10:00:01) and t=61 (10:01:01)
        sim.step_clock(-1800)  # 09:31:02
        sim.advance(1990)
        times = [r.time for r in sim.trace.select("cron.signal")]
        # silent until wall >= 10:02:01 (60 s past 10:01:01), i.e. t = 61 + 1800 + 60
        assert times[:2] == [1.0, 61.0]
        assert times[2] == 61.0 + 1800 + 60
        assert times[3] == times[2] + 60


@pytest.mark.parametrize("tz,day,hour", [
    ("Europe/Paris", "2026-03-29", 2),
    ("America/New_York", "2026-03-08", 2),
    ("Australia/Sydney", "2026-10-04", 2),
])
def test_skipped_dst_hour_never_matches(tmp_path, tz, day, hour):
    _cron_app(tmp_path, (30, hour, -1, -1, -1), (-1, -1, -1, -1, -1))
    with _sim(tmp_path, f"{day}T00:00:00", tz) as sim:
        sim.run_until(f"{day}T06:00:00")
        assert _fired(sim, 0) == []
        every = _fired(sim, 1)
        # the per-minute cron goes on across the gap, 60 s apart in real time
        assert len(every) == 5 * 60
        assert every[2 * 60 - 1].startswith(f"{day}T01:59")
        assert every[2 * 60].startswith(f"{day}T03:00")


@pytest.mark.parametrize("tz,day", [
    ("Europe/Paris", "2026-10-25"),
    ("America/New_York", "2026-11-01"),
    ("Australia/Sydney", "2026-04-05"),
])
def test_repeated_dst_hour_matches_again(tmp_path, tz, day):
    # the repeated hour is 02:00-03:00 in Paris and Sydney, 01:00-02:00 in New York
    hour = 1 if tz == "America/New_York" else 2
    _cron_app(tmp_path, (30, hour, -1, -1, -1), (-1, -1, -1, -1, -1))
    with _sim(tmp_path, f"{day}T00:00:00", tz) as sim:
        sim.run_until(f"{day}T06:00:00")
        fired = _fired(sim, 0)
        assert len(fired) == 2
        assert fired[0][11:16] == fired[1][11:16] == f"0{hour}:30"
        assert fired[0][-6:] != fired[1][-6:]  # two different UTC offsets
        assert len(_fired(sim, 1)) == 7 * 60  # 6 local hours + the repeated one


def test_command_crons_are_recorded_not_executed(tmp_path):
    _cron_app(tmp_path)
    opts = ["--master", "--cron", "-5 -1 -1 -1 -1 echo five", "--unique-cron", "0 -1 -1 -1 -1 hourly",
            "--cron2", "minute=30,unique=1 touch /tmp/x", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path, start="2026-01-01T00:00:00") as sim:
        sim.advance(3599)
        commands = [r["command"] for r in sim.trace.select("cron.command")]
        assert commands.count("echo five") == 12
        assert commands.count("hourly") == 1
        assert commands.count("touch /tmp/x") == 1
    with pytest.raises(ConfigError):
        Simulation(["--master", "--cron", "1 2 3 echo", "--wsgi-file", "app.py"],
                   app_dir=tmp_path).start()


def test_command_crons_run_when_the_scenario_asks(tmp_path):
    _cron_app(tmp_path)
    opts = ["--master", "--cron", "-1 -1 -1 -1 -1 echo ran >> out.txt; echo hello",
            "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path, cron_commands=True) as sim:
        sim.advance(150)
        assert sim.trace.count("cron.command.exit", status=0) == 3
        assert any('[uwsgi-cron] running "echo ran >> out.txt; echo hello" (pid ' in line
                   for line in sim.log)
        assert sim.log.count("hello") == 3
    assert (tmp_path / "out.txt").read_text() == "ran\n" * 3


def test_rare_crons_are_planned_without_stepping_minutes(tmp_path):
    _cron_app(tmp_path, (0, 5, 29, 2, -1), (-1, -1, -1, -1, -1))
    with _sim(tmp_path, "2026-01-01T00:00:00") as sim:
        sim.advance(30 * 86400)
        assert sim.trace.count("cron.signal", num=1) == 30 * 24 * 60
    (tmp_path / "app.py").unlink()
    _cron_app(tmp_path, (0, 5, 29, 2, -1))
    with _sim(tmp_path, "2026-01-01T00:00:00") as sim:
        sim.run_until("2029-01-01T00:00:00")
        assert _fired(sim, 0) == ["2028-02-29T05:00:00+00:00"]
        assert sim.kernel.events_run < 50


@pytest.mark.parametrize("spec,firings", [((0, -1, -1, -1, -1), 25), ((-5, -1, -1, -1, -1), 289),
                                           ((30, -3, -1, -1, -1), 8)])
def test_replanning_jumps_to_the_next_matching_minute_and_hour(tmp_path, monkeypatch, spec,
                                                               firings):
    """The next firing is found from the broken-down time, not by a local time per
    candidate minute (an hourly cron looked up ~120 per firing)."""
    from simuwsgi.subsystems import cron

    calls = []
    real = cron._localtime
    monkeypatch.setattr(cron, "_localtime", lambda s: calls.append(s) or real(s))
    _cron_app(tmp_path, spec)
    with _sim(tmp_path, "2026-01-01T00:00:00") as sim:
        sim.advance(86400)
        assert sim.trace.count("cron.signal") == firings
    assert len(calls) < 16 * firings  # (before: 120-135 per firing)


# -- an independent brute-force model -----------------------------------------------------------
def _c_rule(tm: time.struct_time, minute: int, hour: int, day: int, month: int, week: int) -> bool:
    """uwsgi_cron_task_needs_execution, transcribed once more for the oracle."""
    c_min, c_hour, c_mday, c_mon = tm.tm_min, tm.tm_hour, tm.tm_mday, tm.tm_mon
    c_wday = (tm.tm_wday + 1) % 7
    u = {"min": minute, "hour": hour, "day": day, "mon": month, "week": 0 if week == 7 else week}
    for key, raw, cur in (("min", minute, c_min), ("hour", hour, c_hour), ("mon", month, c_mon),
                          ("day", day, c_mday), ("week", week, c_wday)):
        if raw < 0 and cur % abs(raw) == 0:
            u[key] = cur
    common = c_min == u["min"] and c_hour == u["hour"] and c_mon == u["mon"]
    if day >= 0 and week >= 0:
        return common and (c_mday == u["day"] or c_wday == u["week"])
    return common and c_mday == u["day"] and c_wday == u["week"]


def _brute_force(start: float, ticks: int, spec: tuple[int, ...]) -> list[int]:
    """Master iterations at start+1, start+2, ...: the tick numbers that fire."""
    last = 0
    out = []
    for k in range(1, ticks + 1):
        now = int(start + k) if start + k >= 0 else int(start + k) - 1
        if _c_rule(_real_localtime(now), *spec) and now - last >= 60:
            out.append(k)
            last = now
    return out


ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
         "Australia/Lord_Howe"]
TRANSITIONS = [1774746000, 1792890000, 1772953200, 1793512800, 1775318400, 1791043200]


def _field(wild: list[int], lo: int, hi: int):
    return st.one_of(st.sampled_from(wild), st.integers(lo, hi))


SPECS = st.tuples(_field([-1, -1, -2, -5, -7, -15], 0, 60), _field([-1, -1, -2, -3], 0, 24),
                  _field([-1, -1, -2], 1, 31), _field([-1, -1, -2], 1, 12),
                  _field([-1, -1, -2, -3], 0, 7))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=SPECS, zone=st.sampled_from(ZONES),
       start=st.one_of(st.floats(1.6e9, 1.9e9),
                       st.builds(lambda t, d: t + d, st.sampled_from(TRANSITIONS),
                                 st.floats(-7200, 3600))),
       hours=st.integers(1, 4))
def test_cron_agrees_with_brute_force(tmp_path, spec, zone, start, hours):
    start = round(start, 3)
    ticks = hours * 3600
    (tmp_path / "app.py").unlink(missing_ok=True)
    _cron_app(tmp_path, spec)
    os.environ["TZ"] = zone
    time.tzset()
    try:
        expected = _brute_force(start, ticks, spec)
    finally:
        os.environ.pop("TZ", None)
        time.tzset()
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path, start=start,
                    tz=zone) as sim:
        sim.advance(ticks + 0.5)
        got = [round(r.time, 6) for r in sim.trace.select("cron.signal")]
    assert got == [float(k) for k in expected]


@pytest.mark.parametrize("zone,transition",
                         list(zip(ZONES, TRANSITIONS)) + [("right/UTC", 1483228826)])
def test_local_days_stamp_every_second_as_asctime_does(zone, transition):
    """The firing's date, by arithmetic within a cached local day, is asctime(localtime())
    of every second around an offset change (Lord Howe's moves by 30 minutes) or a leap
    second (23:59:60 in a "right/" zone), asked in order, backwards and by jumps."""
    from simuwsgi.subsystems.cron import LocalDays

    seconds = list(range(transition - 26 * 3600, transition + 26 * 3600, 37))
    seconds += [transition - 1, transition, transition + 1] + seconds[::-7]
    os.environ["TZ"] = zone
    time.tzset()
    try:
        days = LocalDays()
        got = [days.asctime(s) for s in seconds]
        expected = [time.asctime(_real_localtime(s)) for s in seconds]
    finally:
        os.environ.pop("TZ", None)
        time.tzset()
    assert got == expected


def test_cron_log_lines_are_dated_in_local_time_across_dst(tmp_path):
    _cron_app(tmp_path, (-1, -1, -1, -1, -1))
    with _sim(tmp_path, "2026-10-25T00:00:00Z", tz="Europe/Paris") as sim:
        sim.advance(4 * 3600)
        lines = [x for x in sim.log if "[uwsgi-cron] routing signal 0" in x]
        walls = [int(sim.clock.wall_offset + r.time) for r in sim.trace.select("cron.signal")]
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    try:
        expected = [f"{time.asctime(_real_localtime(w))} - [uwsgi-cron] routing signal 0"
                    for w in walls]
    finally:
        os.environ.pop("TZ", None)
        time.tzset()
    assert len(lines) == 240
    assert lines == expected
    assert lines[59].startswith("Sun Oct 25 02:59:01") and lines[60].startswith(
        "Sun Oct 25 02:00:01")  # the repeated hour


TZSET_APP = """
import os, time, uwsgi
def tick(num):
    pass
uwsgi.register_signal(1, "", tick)
uwsgi.register_signal(2, "", tick)
uwsgi.add_cron(1, -1, -1, -1, -1, -1)
uwsgi.add_cron(2, 0, 3, -1, -1, -1)  # 03:00 local time
def application(environ, start_response):
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    start_response("200 OK", [])
    return [b"ok"]
"""


def test_cron_follows_a_time_zone_the_app_changes(tmp_path):
    """After ``time.tzset()`` the master's ``localtime()`` is the new zone's: the firing
    lines are dated in it (not from the day cached before) and a cron of an hour fires at
    that local hour (not at the time planned in the old zone)."""
    (tmp_path / "app.py").write_text(TZSET_APP)
    with _sim(tmp_path, "2026-01-01T00:00:00Z") as sim:
        sim.advance(90)
        sim.get("/")  # 00:01:30 UTC: 09:01:30 in Tokyo
        sim.advance(20 * 3600)
        walls = {num: [int(sim.clock.wall_offset + r.time)
                       for r in sim.trace.select("cron.signal", num=num)] for num in (1, 2)}
        lines = [x for x in sim.log if "[uwsgi-cron] routing signal 1" in x]
    assert lines[:3] == ["Thu Jan  1 00:00:01 2026 - [uwsgi-cron] routing signal 1",
                         "Thu Jan  1 00:01:01 2026 - [uwsgi-cron] routing signal 1",
                         "Thu Jan  1 09:02:01 2026 - [uwsgi-cron] routing signal 1"]
    start = walls[1][0] - 1
    assert walls[2] == [start + 18 * 3600]  # 03:00 in Tokyo is 18:00 UTC, not 03:00 UTC
    assert len(lines) == len(walls[1]) == 20 * 60 + 2


# -- differential test against real uWSGI -------------------------------------------------------
DIFF_APP = """
import json, os, time
import uwsgi
OBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "obs.txt")
T0 = time.time()
open(OBS, "w").close()
def note(num):
    with open(OBS, "a") as f:
        f.write(json.dumps([num, time.time() - T0]) + "\\n")
uwsgi.register_signal(4, "", note)
uwsgi.add_cron(4, -1, -1, -1, -1, -1)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    with open(OBS) as f:
        rows = [json.loads(line) for line in f]
    return [json.dumps({"elapsed": time.time() - T0, "rows": rows}).encode()]
"""


@requires_real_uwsgi
def test_every_minute_cron_fires_within_a_second_like_real_uwsgi(tmp_path, real_uwsgi_factory):  # noqa: F811
    opts = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
    for sub in ("real", "sim"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "app.py").write_text(textwrap.dedent(DIFF_APP))
    u = real_uwsgi_factory(opts, app_dir=tmp_path / "real")
    first = json.loads(u.get("/").body)
    _real_sleep(max(0.0, 2.0 - first["elapsed"]))
    real = json.loads(u.get("/").body)
    with Simulation(opts, app_dir=tmp_path / "sim") as sim:
        sim.advance(real["elapsed"])
        simulated = json.loads(sim.get("/").body)
    assert [n for n, _t in real["rows"]] == [n for n, _t in simulated["rows"]] == [4]
    assert 0.0 < real["rows"][0][1] <= 1.2  # real: first master iteration, <= ~1 s
    assert simulated["rows"][0][1] == 1.0


CRON_INI = """
[uwsgi]
master = true
wsgi-file = app.py
log-date = true
cron = -1 -1 -1 -1 -1 echo A
cron2 = minute=-1 echo B
unique-cron = -1 -1 -1 -1 -1 echo C
"""


def test_cron_lines_with_log_date_and_the_table_in_the_options_order(tmp_path):
    """As uWSGI 2.0.30 logged them (a real run with this ini): ``uwsgi_log_verbose``'s
    lines have one date, never a second from ``--log-date``; ``--cron``, ``--cron2`` and
    ``--unique-cron`` make one table in the file's order; a command's output is written
    to the log as it is."""
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        uwsgi.register_signal(5, "", lambda signum: None)
        uwsgi.add_cron(5, -1, -1, -1, -1, -1)
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b""]
    """))
    (tmp_path / "uwsgi.ini").write_text(CRON_INI)
    with Simulation.from_ini(str(tmp_path / "uwsgi.ini"), app_dir=tmp_path,
                             start="2026-12-05T12:59:50", tz="UTC", cron_commands=True) as sim:
        sim.advance(3)
        lines = [line for line in sim.log if "uwsgi-cron" in line or line in ("A", "B", "C")]
    date = "Sat Dec  5 12:59:5"
    assert lines[:3] == [f'{date}0 2026 - [uwsgi-cron] command "echo {c}" registered as '
                         f"cron task" for c in "ABC"]
    assert lines[3:10] == [
        f"{date}1 2026 - [uwsgi-cron] routing signal 5",
        f'{date}1 2026 - [uwsgi-cron] running "echo A" (pid 1003)', "A",
        f'{date}1 2026 - [uwsgi-cron] running "echo B" (pid 1004)', "B",
        f'{date}1 2026 - [uwsgi-cron] running "echo C" (pid 1005)', "C"]
