"""The optional C accelerator of the virtual fork (``server/_cvfork.c``).

``AppLoader.switch`` (every switch between processes), ``AppLoader.resolve`` and
``Instance.call_python`` (every call into the app) have C twins for their common case. A
program that takes those paths and every way out of them (handlers a global holds and
lambdas copied at their first call, calls in the master, a handler that raises, one that
exits, app modules first imported after the fork, a respawn, graceful and brutal
reloads, which make a new loader the C functions must read afresh) must give the same
replies, trace digest and log both ways.
"""
from __future__ import annotations

import json
import os
import textwrap

import pytest

from simuwsgi import Simulation

pytest.importorskip("simuwsgi.server._cvfork")

APP = """
import json, uwsgi
state = {"n": 0}

def bump(where):
    state["n"] += 1
    uwsgi.log("%s %d" % (where, state["n"]))

def tick(num):  # a global holds it: copied at fork time
    bump("tick w%d" % uwsgi.worker_id())

uwsgi.register_signal(1, "workers", tick)
# a lambda no global refers to: copied by the first process that calls it
uwsgi.register_signal(2, "workers", lambda num: bump("lambda w%d" % uwsgi.worker_id()))
def fails(num):  # printed with its traceback
    raise RuntimeError("signal %d fails in worker %d" % (num, uwsgi.worker_id()))

def leaves(num):  # ends the worker, which is respawned
    raise SystemExit(3)

uwsgi.register_signal(3, "workers", fails)
uwsgi.register_signal(4, "worker2", leaves)
uwsgi.register_rpc("bump", lambda: bump("rpc w%d" % uwsgi.worker_id()) or b"")
uwsgi.mule_msg_hook = lambda msg: bump("mule%d %s" % (uwsgi.mule_id(), msg.decode()))
uwsgi.add_timer(1, 1)

def application(environ, start_response):
    import late  # first imported by whichever worker runs first: adopted at a switch
    bump("req w%d" % uwsgi.worker_id())
    uwsgi.call(b"bump")
    uwsgi.mule_msg(b"hi", 1)
    uwsgi.signal(2)
    start_response("200 OK", [])
    return [json.dumps([state["n"], late.bump()]).encode()]
"""

LATE = """
calls = 0
def bump():
    global calls
    calls += 1
    return calls
"""


def _run(tmp_path) -> tuple[object, ...]:
    options = ["--master", "--processes", "2", "--mules", "1", "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=tmp_path, seed=4) as sim:
        kinds = {type(sim.inst.app.switch).__name__, type(sim.inst.app.resolve).__name__,
                 type(sim.inst.call_python).__name__}
        replies = [sim.get("/").body for _ in range(4)]
        sim.signal(1)
        sim.signal(3)
        sim.signal(4)
        sim.kill("worker1")
        sim.advance(3)
        replies += [sim.get("/").body for _ in range(4)]
        loader = sim.inst.app
        sim.reload()
        sim.advance(2)
        replies += [sim.get("/").body for _ in range(3)]
        sim.inst.request_brutal_reload()  # SIGTERM to the master
        sim.advance(2)
        replies += [sim.get("/").body for _ in range(3)]
        assert sim.inst.app is not loader
        replies.append(sim.uwsgi.call(b"bump"))  # called by the test: the master's copy
        return kinds, replies, sim.trace.digest(), list(sim.log)


def test_vfork_accelerator_gives_what_the_python_methods_give(tmp_path, monkeypatch):
    from simuwsgi.server import _cvfork, apps

    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "late.py").write_text(textwrap.dedent(LATE))
    outs = []
    for accelerator in (_cvfork, None):
        monkeypatch.setattr(apps, "_c", accelerator)
        outs.append(_run(tmp_path))
    assert outs[0][0] == {"builtin_function_or_method"}
    assert outs[1][0] == {"method"}
    assert outs[0][1:] == outs[1][1:]
    replies, log = outs[0][1], outs[0][3]
    assert all(json.loads(body)[1] >= 1 for body in replies[:-1])
    for line in ("tick w1 ", "tick w2 ", "lambda w", "rpc w", "mule1 hi ",
                 "RuntimeError: signal 3 fails in worker 1", "    raise RuntimeError(",
                 "Respawned uWSGI worker 2"):
        assert any(line in entry for entry in log), line


def test_vfork_accelerator_is_used_unless_pure_python():
    from simuwsgi.server import apps

    assert (apps._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
