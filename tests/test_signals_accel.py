"""The optional C accelerator of the signal path (``subsystems/_csignals.c``).

Random programs of ``uwsgi.signal``, ``signal_wait``, mule messages that raise signals,
timers and sleeps, run by several workers at once (with and without threads, with
harakiri armed, with a signal-queue fault), must give the same replies, trace digest
and log with the C functions and with the Python methods they stand for.
"""
from __future__ import annotations

import json
import os
import random

import pytest

from simuwsgi import Simulation
from simuwsgi.faults import SignalQueueFull

pytest.importorskip("simuwsgi.subsystems._csignals")

#: Signals of every kind of target the C route handles or hands back: every worker,
#: one worker, any worker, a worker that does not exist, a mule, active workers, a
#: handler that fails, an unregistered number, and one registered by a worker only.
APP = """
import json, time, uwsgi

def handler(num):
    uwsgi.log("handler %d in worker %d" % (num, uwsgi.worker_id()))
    if num == 4:
        raise RuntimeError("signal 4 fails")

for num, target in ((1, "workers"), (2, ""), (3, "worker1"), (4, "worker2"),
                    (5, "mule1"), (6, "active-workers"), (7, "worker9"), (8, "worker")):
    uwsgi.register_signal(num, target, handler)
uwsgi.add_timer(1, 1)
uwsgi.add_rb_timer(2, 2)

def application(environ, start_response):
    if uwsgi.worker_id() == 2 and not uwsgi.signal_registered(11):
        uwsgi.register_signal(11, "worker", handler)
    out = []
    for op, arg in json.loads(environ["QUERY_STRING"].replace("%22", '"')):
        if op == "raise":
            out.append(uwsgi.signal(arg))
        elif op == "wait":
            out.append(uwsgi.signal_wait() if arg is None else uwsgi.signal_wait(arg))
            out.append(uwsgi.signal_received())
        elif op == "mule":
            out.append(uwsgi.mule_msg(b"%d" % arg, 1))
        else:
            time.sleep(arg)
    start_response("200 OK", [])
    return [repr(out).encode()]
"""

MULE = """
import uwsgi
while True:
    uwsgi.signal(int(uwsgi.mule_get_msg()))
"""


def _program(rng: random.Random) -> list[list[object]]:
    ops: list[list[object]] = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["raise", "raise", "wait", "mule", "sleep"])
        if kind == "raise":
            ops.append([kind, rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 257])])
        elif kind == "wait":
            ops.append([kind, rng.choice([None, 1, 1])])  # the 1 s timer ends every wait
        elif kind == "mule":
            ops.append([kind, rng.choice([1, 2, 3, 6])])
        else:
            ops.append([kind, rng.choice([0.1, 0.5, 1.3])])
    return ops


def _run(tmp_path, options: list[str], seed: int, fault: bool) -> tuple[object, ...]:
    rng = random.Random(seed)
    with Simulation(options, app_dir=tmp_path, seed=seed) as sim:
        kinds = {type(getattr(sim.uwsgi, name)).__name__ for name in ("signal", "signal_wait")}
        if fault:
            sim.apply([SignalQueueFull(at=2.0, duration=1.5)])
        requests = [sim.submit("GET", "/?" + json.dumps(_program(rng)),
                               at=rng.uniform(0, 3)) for _ in range(16)]
        sim.wait(requests, timeout=60)
        sim.signal(1)
        sim.advance(3)
        replies = [(r.response.status, r.response.body) if r.response else None
                   for r in requests]
        return kinds, replies, sim.trace.digest(), list(sim.log)


@pytest.mark.parametrize("variant", ["plain", "threads", "harakiri", "fault"])
def test_signal_accelerator_gives_what_the_python_methods_give(tmp_path, monkeypatch,
                                                                variant):
    from simuwsgi.subsystems import _csignals, signals

    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "mule.py").write_text(MULE)
    options = ["--master", "--processes", "3", "--mule=mule.py", "--wsgi-file", "app.py"]
    options += {"plain": [], "threads": ["--threads", "2"], "harakiri": ["--harakiri", "30"],
                "fault": []}[variant]
    for seed in range(5):
        outs = []
        for accelerator in (_csignals, None):
            monkeypatch.setattr(signals, "_c", accelerator)
            outs.append(_run(tmp_path, options, seed, variant == "fault"))
        assert outs[0][0] == {"builtin_function_or_method"} and outs[1][0] == {"function"}
        assert outs[0][1:] == outs[1][1:]
        log = outs[0][3]
        assert any("handler 1 in worker" in line for line in log)
        assert all(reply is not None and reply[0] == 200 for reply in outs[0][1])


def test_signal_accelerator_is_used_unless_pure_python():
    from simuwsgi.subsystems import signals

    assert (signals._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))


#: Kernel timers only: no loop client needs the master's iteration, so a firing takes
#: the C master_read's own branch (the phase moved, then route with the timer's record).
TIMERS_APP = """
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
uwsgi.register_signal(1, "workers", tick)
uwsgi.register_signal(2, "", tick)
uwsgi.register_signal(3, "worker2", tick)
uwsgi.add_timer(1, 1)
uwsgi.add_timer(2, 3)
uwsgi.add_timer(3, 2)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"%d" % calls]
"""


@pytest.mark.parametrize("extra", [[], ["--threads", "2"], ["--thunder-lock"]])
def test_timer_firings_routed_in_c_give_what_the_python_methods_give(tmp_path, monkeypatch,
                                                                      extra):
    from simuwsgi.subsystems import _csignals, signals

    (tmp_path / "app.py").write_text(TIMERS_APP)
    outs = []
    for accelerator in (_csignals, None):
        monkeypatch.setattr(signals, "_c", accelerator)
        with Simulation(["--master", "--processes", "3", "--wsgi-file", "app.py", *extra],
                        app_dir=tmp_path, seed=3) as sim:
            requests = [sim.submit("GET", "/", at=i * 0.7) for i in range(20)]
            sim.wait(requests, timeout=60)
            sim.advance(30)
            fired = {r["num"] for r in sim.trace.select("timer.fire")}
            outs.append((type(sim.inst.subsystems.get("signals").route).__name__,
                         [r.response.body for r in requests], fired,
                         sim.trace.digest(), list(sim.log)))
    assert outs[0][0] == "builtin_function_or_method" and outs[1][0] == "method"
    assert outs[0][1:] == outs[1][1:]
    assert outs[0][2] == {1, 2, 3}
