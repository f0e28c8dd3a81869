"""The optional C accelerator of the master loop, cron and timers (``subsystems/_cmaster.c``).

Random programs of signal crons (every field kind: any, a value, ``-N`` steps, day and
weekday OR-ed, months, out-of-range values), timers and rb_timers, command crons,
signals to every kind of target (workers, any worker, one worker, a worker that does not
exist, mules, spoolers, active workers), unregistered signals, a failing handler, a
handler that adds a cron and a timer while the master iterates, ``signal_wait`` in
requests, clock steps, DST in the simulation's zone and a request that changes the zone
(``time.tzset()``), run with and without threads,
harakiri and ``--log-date``, must give the same replies, trace digest and log with the C
functions and with the Python methods they stand for.
"""
from __future__ import annotations

import json
import os
import random

import pytest

from simuwsgi import Simulation

pytest.importorskip("simuwsgi.subsystems._cmaster")

TARGETS = ["workers", "", "worker1", "worker2", "worker9", "mule1", "mules", "spooler",
           "active-workers", "worker"]
ZONES = ["Europe/Paris", "UTC", "Australia/Lord_Howe", "Asia/Tokyo"]
FIELDS = {  # minute, hour, day, month, weekday: the values each may take
    "minute": [-1, -1, -1, -5, -15, 0, 7, 30, 59, 60],
    "hour": [-1, -1, -1, -2, 0, 1, 2, 3, 13, 24],
    "day": [-1, -1, -1, -2, 1, 15, 28, 31, 0],
    "month": [-1, -1, -1, -2, 3, 10, 13],
    "week": [-1, -1, -1, 0, 1, 6, 7, -2],
}


def _app(rng: random.Random) -> str:
    lines = ["import json, os, time, uwsgi",
             "added = []",
             "def handler(num):",
             "    uwsgi.log('handler %d in %d at %d' % (num, uwsgi.worker_id(), time.time()))",
             "    if num == 4:",
             "        raise RuntimeError('signal 4 fails')",
             "    if num == 9 and not added:  # while the master iterates",
             "        added.append(1)",
             "        uwsgi.add_cron(10, -1, -1, -1, -1, -1)",
             "        uwsgi.add_timer(11, 3)",
             ]
    for num in range(1, 12):
        if num != 3:  # 3 stays unregistered
            lines.append(f"uwsgi.register_signal({num}, {rng.choice(TARGETS)!r}, handler)")
    for _ in range(rng.randint(1, 4)):
        fields = [rng.choice(values) for values in FIELDS.values()]
        lines.append(f"uwsgi.add_cron({rng.choice([1, 2, 3, 4, 5, 9])}, "
                     f"{', '.join(map(str, fields))})")
    lines.append("uwsgi.add_cron(1, -1, -1, -1, -1, -1)")
    if rng.random() < 0.5:
        lines.append(f"uwsgi.add_timer({rng.choice([2, 4, 6])}, {rng.choice([7, 61, 3600])})")
    if rng.random() < 0.5:
        lines.append(f"uwsgi.add_rb_timer({rng.choice([5, 8])}, {rng.choice([30, 90])}, "
                     f"{rng.choice([0, 3])})")
    lines += ["def application(environ, start_response):",
              "    out = []",
              "    for op, arg in json.loads(environ['QUERY_STRING'].replace('%22', '\"')):",
              "        if op == 'raise':",
              "            out.append(uwsgi.signal(arg))",
              "        elif op == 'wait':",
              "            out.append(uwsgi.signal_wait(arg))",
              "        elif op == 'tz':",
              "            os.environ['TZ'] = arg",
              "            time.tzset()",
              "        else:",
              "            time.sleep(arg)",
              "    start_response('200 OK', [])",
              "    return [repr(out).encode()]"]
    return "\n".join(lines) + "\n"


def _program(rng: random.Random) -> list[list[object]]:
    ops: list[list[object]] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(["raise", "raise", "wait", "sleep", "tz"])
        if kind == "tz":
            ops.append([kind, rng.choice(ZONES)])
        elif kind == "raise":
            ops.append([kind, rng.randint(1, 11)])
        elif kind == "wait":
            ops.append([kind, 1])  # the per-minute cron ends every wait
        else:
            ops.append([kind, rng.choice([0.5, 30, 61])])
    return ops


def _run(tmp_path, options: list[str], seed: int) -> tuple[object, ...]:
    rng = random.Random(seed)
    (tmp_path / "app.py").write_text(_app(rng))
    (tmp_path / "mule.py").write_text("import uwsgi\nwhile True:\n    uwsgi.mule_get_msg()\n")
    start = rng.choice(["2026-03-28T22:00:00Z", "2026-10-24T23:58:30Z", "2026-01-31T23:00:00Z",
                        "2027-02-28T20:10:05Z"])
    opts = ["--master", "--processes", "2", "--mule=mule.py", "--wsgi-file", "app.py",
            "--cron", "-1 -1 -1 -1 -1 true", *options]
    with Simulation(opts, app_dir=tmp_path, seed=seed, start=start,
                    tz=rng.choice(ZONES)) as sim:
        requests = [sim.submit("GET", "/?" + json.dumps(_program(rng)),
                               at=rng.uniform(0, 7200)) for _ in range(8)]
        sim.advance(3 * 3600)
        sim.step_clock(rng.choice([-1800, 90, 7200]))
        sim.signal(rng.randint(1, 11))
        sim.advance(rng.uniform(86400, 2 * 86400))
        replies = [(r.response.status, r.response.body) if r.response else None
                   for r in requests]
        loop = sim.inst.master_loop
        kinds = {type(loop.event).__name__, type(sim.inst.subsystems["cron"].next_wake).__name__}
        return kinds, replies, sim.trace.digest(), list(sim.log)


def _both(tmp_path, monkeypatch, options: list[str], seed: int) -> list[tuple[object, ...]]:
    """The run with the C functions, then with the Python methods only."""
    from simuwsgi.subsystems import _cmaster, _csignals, cron, signals, timers

    outs = []
    for master, signal_path in ((_cmaster, _csignals), (None, None)):
        monkeypatch.setattr(timers, "_c", master)
        monkeypatch.setattr(cron, "_c", master)
        monkeypatch.setattr(signals, "_c", signal_path)
        outs.append(_run(tmp_path, options, seed))
    return outs


@pytest.mark.parametrize("variant", ["plain", "threads", "harakiri", "log-date"])
def test_master_accelerator_gives_what_the_python_methods_give(tmp_path, monkeypatch, variant):
    options = {"plain": [], "threads": ["--threads", "2"], "harakiri": ["--harakiri", "30"],
               "log-date": ["--log-date"]}[variant]
    for seed in range(4):
        fast, slow = _both(tmp_path, monkeypatch, options, seed)
        assert fast[0] == {"builtin_function_or_method"}
        assert slow[0] == {"method"}
        assert fast[1:] == slow[1:]
        log = fast[3]
        assert any("[uwsgi-cron] routing signal 1" in line for line in log)
        assert any("handler " in line for line in log)


def test_master_accelerator_is_used_unless_pure_python():
    from simuwsgi.subsystems import cron, timers

    assert (timers._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    assert cron._c is timers._c


_RUN_ONE = """
import hashlib, json, sys
from simuwsgi import Simulation
app_dir, start, zone, seed, program = sys.argv[1:6]
opts = ["--master", "--processes", "2", "--mule=mule.py", "--wsgi-file", "app.py",
        "--cron", "-1 -1 -1 -1 -1 true"]
with Simulation(opts, app_dir=app_dir, seed=int(seed), start=start, tz=zone) as sim:
    requests = [sim.submit("GET", "/?" + query, at=at) for at, query in json.loads(program)]
    sim.advance(3 * 3600)
    sim.step_clock(-1800)
    sim.advance(2 * 86400)
    replies = [(r.response.status, r.response.body.decode()) if r.response else None
               for r in requests]
    trace = sim.trace
    print(json.dumps([replies, trace.digest(), len(trace), trace.kinds(),
                      [(r.time, r.process, tuple(r.fields.items()))
                       for r in trace.select("cron.signal")[::97]],
                      [(w.signals, w.in_handler) for w in sim.inst.workers.values()],
                      hashlib.sha256("\\n".join(sim.log).encode()).hexdigest(),
                      list(sim.log)[-3:]]))
"""


@pytest.mark.parametrize("seed", range(3))
def test_c_and_pure_python_runs_agree_in_subprocesses(tmp_path, seed):
    """The whole run in two interpreters, every accelerator built and none
    (``SIMUWSGI_PURE_PYTHON=1``): the trace (tens of thousands of records, most spilled
    and read back: the chunk codec's floats stepped from the one before), its queries,
    the workers' signal counters, the log and the replies are the same."""
    import subprocess
    import sys

    rng = random.Random(seed)
    (tmp_path / "app.py").write_text(_app(rng) + "uwsgi.add_timer(12, 1)\n"
                                     "uwsgi.register_signal(12, 'workers', handler)\n")
    (tmp_path / "mule.py").write_text("import uwsgi\nwhile True:\n    uwsgi.mule_get_msg()\n")
    program = [(rng.uniform(0, 7200), json.dumps(_program(rng))) for _ in range(8)]
    args = [str(tmp_path), rng.choice(["2026-03-28T22:00:00Z", "2026-10-24T23:58:30Z"]),
            rng.choice(ZONES), str(seed), json.dumps(program)]
    outs = []
    for pure in ("", "1"):
        env = dict(os.environ, SIMUWSGI_PURE_PYTHON=pure)
        done = subprocess.run([sys.executable, "-c", _RUN_ONE, *args], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outs.append(json.loads(done.stdout.splitlines()[-1]))
    assert outs[0] == outs[1]
    assert outs[0][2] > 3 * 8192  # spilled chunks were read back
