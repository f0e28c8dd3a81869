"""Mules and farms: queues, the default loop, programmed mules, signals, errors."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from simuwsgi import ConfigError, Simulation
from simuwsgi.subsystems.mules import DEFAULT_SNDBUF, MsgQueue, _truesize
from simuwsgi.modes.real.pytest_helpers import real_uwsgi_binary, real_uwsgi_factory, requires_real_uwsgi  # noqa: F401

_real_sleep = time.sleep

APP = """
import json, os, time
import uwsgi
OBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "obs.txt")
if uwsgi.worker_id() == 0 and uwsgi.mule_id() == 0:
    open(OBS, "w").close()
def note(*what):
    with open(OBS, "a") as f:
        f.write(json.dumps(list(what)) + "\\n")
def sig(num):
    note("sig", num, uwsgi.worker_id(), uwsgi.mule_id())
def hook(msg):
    note("hook", msg.decode("latin-1")[:20], len(msg), uwsgi.mule_id())
uwsgi.mule_msg_hook = hook
uwsgi.register_signal(10, "worker2", sig)
uwsgi.register_signal(11, "mules", sig)
uwsgi.register_signal(12, "mule1", sig)
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    path = environ["PATH_INFO"]
    out = None
    if path == "/signals":
        for n in (10, 11, 12):
            uwsgi.signal(n)
    elif path == "/msg1":
        out = uwsgi.mule_msg(b"to-mule-1", 1)
    elif path == "/msg2":
        out = uwsgi.mule_msg("to-mule-2", 2)
    elif path == "/big":
        out = [uwsgi.mule_msg(b"x" * 100000, 1), uwsgi.mule_msg(b"y" * 300000, 1)]
    elif path == "/errors":
        out = []
        for args in ((b"m", "name"), (b"m", 1.5), (b"m", b"nofarm")):
            try:
                uwsgi.mule_msg(*args)
            except Exception as exc:
                out.append([type(exc).__name__, str(exc)])
        for f in (uwsgi.mule_get_msg, uwsgi.farm_get_msg):
            try:
                f()
            except Exception as exc:
                out.append([type(exc).__name__, str(exc)])
        out.append(repr(uwsgi.in_farm()))
    with open(OBS) as f:
        rows = [json.loads(line) for line in f]
    return [json.dumps({"out": out, "rows": rows}).encode()]
"""

SCRIPT = """
import json, os
import uwsgi
OBS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "obs.txt")
def note(*what):
    with open(OBS, "a") as f:
        f.write(json.dumps(list(what)) + "\\n")
note("script", uwsgi.mule_id())
while True:
    m = uwsgi.mule_get_msg(timeout=1)
    note("got", repr(m), uwsgi.mule_id())
    if m:
        break
"""

OPTS = ["--master", "--processes", "2", "--mules", "1", "--mule=prog.py", "--wsgi-file", "app.py"]


def _write(d: Path) -> None:
    (d / "app.py").write_text(textwrap.dedent(APP))
    (d / "prog.py").write_text(textwrap.dedent(SCRIPT))


def _rows(body: bytes) -> list[list[object]]:
    return json.loads(body)["rows"]


def test_default_loop_hook_programmed_mule_and_respawn(tmp_path):
    _write(tmp_path)
    with Simulation(OPTS, app_dir=tmp_path) as sim:
        assert json.loads(sim.get("/msg1").body)["out"] is True
        sim.advance(2.5)  # mule 2: two timeouts (b'') at +1 and +2
        assert json.loads(sim.get("/msg2").body)["out"] is True
        sim.advance(0.5)  # the script returned: mule 2 exits, respawned ~1 s later
        sim.advance(1.0)
        rows = _rows(sim.get("/").body)
        assert ["hook", "to-mule-1", 9, 1] in rows
        assert rows.count(["got", "b''", 2]) == 2
        assert ["got", "b'to-mule-2'", 2] in rows
        assert rows.count(["script", 2]) == 2
        assert sim.process("mule2").respawn_count == 1
        assert any("OOOPS mule 2" in line for line in sim.log)


def test_signal_routing_to_workers_and_mules(tmp_path):
    _write(tmp_path)
    with Simulation(OPTS, app_dir=tmp_path) as sim:
        sim.get("/signals")
        sim.advance(0.1)
        rows = [r for r in _rows(sim.get("/").body) if r[0] == "sig"]
        # worker2; 'mules': mule 1 handles it, mule 2 (programmed, in mule_get_msg with
        # the default signals=True) does not; mule1
        assert sorted(rows) == sorted([["sig", 10, 2, 0], ["sig", 11, 0, 1], ["sig", 12, 0, 1]])
        assert list(sim.process("mule2").signal_queue) == [11]


def test_errors_sizes_and_truncation(tmp_path):
    _write(tmp_path)
    with Simulation(OPTS, app_dir=tmp_path) as sim:
        out = json.loads(sim.get("/errors").body)["out"]
        assert out == [["ValueError", "invalid mule"], ["ValueError", "invalid mule"],
                       ["ValueError", "unknown farm"],
                       ["ValueError", "you can receive mule messages only in a mule !!!"],
                       ["ValueError", "you can receive farm messages only in a mule !!!"],
                       "None"]
        assert json.loads(sim.get("/big").body)["out"] == [True, False]
        sim.advance(0.1)
        rows = _rows(sim.get("/").body)
        assert ["hook", "x" * 20, 65536, 1] in rows  # default loop reads 64 KiB
        with pytest.raises(TypeError, match="takes no keyword arguments"):
            sim.uwsgi.mule_msg(b"x", target=1)
        assert sim.uwsgi.mule_msg(b"x", 7) is False
    (tmp_path / "app2.py").write_text("def application(e, sr):\n    return []\n")
    with Simulation(["--master", "--wsgi-file", "app2.py"], app_dir=tmp_path) as sim:
        with pytest.raises(ValueError, match="^no mule configured$"):
            sim.uwsgi.mule_msg(b"x")
        assert sim.uwsgi.farm_msg("f", b"x") is None
        with pytest.raises(TypeError):
            sim.uwsgi.farm_msg(b"f", b"x")
        with pytest.raises(TypeError):
            sim.uwsgi.in_farm(None)


def test_queue_capacity_follows_the_socket_buffer():
    q = MsgQueue("t", DEFAULT_SNDBUF)
    assert sum(1 for _ in iter(lambda: q.push(b"x") == "", False)) == 278
    for size, count in ((200, 167), (1000, 93), (2000, 49), (4000, 26), (8000, 13),
                        (65536, 4), (100000, 3), (200000, 2), (212960, 1)):
        q = MsgQueue("t", DEFAULT_SNDBUF)
        assert sum(1 for _ in iter(lambda: q.push(b"x" * size) == "", False)) == count, size
    assert MsgQueue("t", DEFAULT_SNDBUF).push(b"x" * 212961) == "too long"
    assert _truesize(1) == 768 and _truesize(192) == 768 and _truesize(193) == 1280


def test_a_waiting_mule_takes_what_fits_and_a_message_too_long_is_refused(tmp_path):
    """The hand-off to a mule waiting on its empty queue: the size limit still holds."""
    (tmp_path / "app.py").write_text("def application(e, sr):\n    sr('200 OK', [])\n"
                                     "    return [b'']\n")
    (tmp_path / "reader.py").write_text(textwrap.dedent("""
        import uwsgi
        while True:
            uwsgi.log("read %d" % len(uwsgi.mule_get_msg(buffer_size=1 << 20)))
    """))
    opts = ["--master", "--mule=reader.py", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim.advance(1)
        limit = DEFAULT_SNDBUF - 32
        assert sim.uwsgi.mule_msg(b"x" * (limit + 1), 1) is False
        assert "mule_send_msg(): Message too long [core/mule.c line 28]" in sim.log
        assert sim.uwsgi.mule_msg(b"x" * limit, 1) is True
        assert sim.uwsgi.mule_msg(b"y", 1) is True and sim.uwsgi.mule_msg(b"z", 1) is True
        sim.advance(1)
        assert [line for line in sim.log if line.startswith("read")] == \
            [f"read {limit}", "read 1", "read 1"]
        assert [r["ok"] for r in sim.trace.select("mule.send")] == [False, True, True, True]


def test_full_queue_returns_false_and_messages_survive_a_mule_death(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        got = []
        def application(e, sr):
            sr("200 OK", [])
            return [b""]
    """))
    (tmp_path / "slow.py").write_text(textwrap.dedent("""
        import time, uwsgi
        time.sleep(100)
        while True:
            uwsgi.log("read %d" % len(uwsgi.mule_get_msg()))
    """))
    opts = ["--master", "--mule=slow.py", "--mule-msg-size=4096", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        results = [sim.uwsgi.mule_msg(b"m" * 100, 1) for _ in range(12)]
        assert results == [True] * 11 + [False]
        assert any("MULE MSG QUEUE IS FULL: buffer size 8192" in line for line in sim.log)
        sim.kill("mule1")
        sim.advance(101)
        assert sim.log.count("read 100") == 11


def test_farms_messages_and_signals(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        def h(num):
            uwsgi.log("farm signal %d in mule %d" % (num, uwsgi.mule_id()))
        uwsgi.register_signal(20, "farm_pair", h)
        uwsgi.register_signal(21, "farm1", h)
        uwsgi.register_signal(22, "farm_nope", h)
        uwsgi.register_signal(23, "farm9", h)
        def hook(msg):
            uwsgi.log("msg %r in mule %d in_farm=%r" % (msg, uwsgi.mule_id(), uwsgi.in_farm("pair")))
        uwsgi.mule_msg_hook = hook
        def application(e, sr):
            sr("200 OK", [])
            return [b""]
    """))
    opts = ["--master", "--mules", "3", "--farm", "pair:2,3", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path, seed=3) as sim:
        assert "created farm 1 name: pair mules:2,3" in sim.log
        assert sim.uwsgi.farm_msg("pair", b"a") is None
        assert sim.uwsgi.mule_msg(b"b", b"pair") is True
        for n in (20, 21, 22, 23):
            sim.signal(n)
        sim.advance(0.1)
        farm_lines = [line for line in sim.log if line.startswith(("msg", "farm signal"))]
        assert len(farm_lines) == 4
        assert all(not line.endswith("mule 1") and "mule 1 " not in line for line in farm_lines)
        assert "unknown farm: nope" in sim.log
        assert "invalid signal target: farm9" in sim.log
        assert sim.trace.count("choice") >= 1
    with pytest.raises(ConfigError):
        Simulation(["--master", "--mules", "1", "--farm", "x:5", "--wsgi-file", "app.py"],
                   app_dir=tmp_path).start()


def test_mule_get_msg_flags_and_buffer(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        def h(num):
            uwsgi.log("handled %d" % num)
        uwsgi.register_signal(30, "mule1", h)
        def application(e, sr):
            sr("200 OK", [])
            return [b""]
    """))
    (tmp_path / "m.py").write_text(textwrap.dedent("""
        import uwsgi
        uwsgi.log("A %r" % (uwsgi.mule_get_msg(buffer_size=4),))
        uwsgi.log("B %r" % (uwsgi.mule_get_msg(signals=False),))
        uwsgi.log("C %r" % (uwsgi.mule_get_msg(None, timeout=0),))
        uwsgi.log("D %r" % (uwsgi.mule_get_msg(False, True, 65536, 2),))
        while True:
            uwsgi.mule_get_msg()
    """))
    opts = ["--master", "--mule=m.py", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim.uwsgi.mule_msg(b"abcdefgh", 1)
        sim.advance(0.1)
        sim.signal(30)
        sim.advance(3)
        assert [line for line in sim.log if line[:2] in ("A ", "B ", "C ", "D ", "ha")] == [
            "A b'abcd'", "handled 30", "B None", "C b''", "D b''"]


# -- differential test against real uWSGI ---------------------------------------------------------
@requires_real_uwsgi
def test_mules_match_real_uwsgi(tmp_path, real_uwsgi_factory):  # noqa: F811
    for sub in ("real", "sim"):
        (tmp_path / sub).mkdir()
        _write(tmp_path / sub)
    u = real_uwsgi_factory(OPTS, app_dir=tmp_path / "real")
    _real_sleep(0.3)
    real = {}
    real["msg1"] = json.loads(u.get("/msg1").body)["out"]
    real["signals"] = json.loads(u.get("/signals").body)["out"]
    _real_sleep(1.6)  # mule 2 times out at least once (b'')
    real["msg2"] = json.loads(u.get("/msg2").body)["out"]
    _real_sleep(0.3)
    real_rows = _rows(u.get("/").body)
    with Simulation(OPTS, app_dir=tmp_path / "sim") as sim:
        sim.advance(0.3)
        simulated = {"msg1": json.loads(sim.get("/msg1").body)["out"],
                     "signals": json.loads(sim.get("/signals").body)["out"]}
        sim.advance(1.6)
        simulated["msg2"] = json.loads(sim.get("/msg2").body)["out"]
        sim.advance(0.3)
        sim_rows = _rows(sim.get("/").body)
    assert real == simulated == {"msg1": True, "signals": None, "msg2": True}

    def norm(rows: list[list[object]]) -> list[list[object]]:
        keep = [r for r in rows if r[0] != "got" or r[1] != "b''"]
        return sorted(keep, key=repr)

    assert norm(real_rows) == norm(sim_rows)
    assert ["got", "b''", 2] in real_rows and ["got", "b''", 2] in sim_rows


# -- the optional C accelerator of the round trip (subsystems/_cmules.c) ---------------
_ROUND_TRIP_APP = """
import time, uwsgi
def application(environ, start_response):
    out = []
    for i in range(14):
        out.append(uwsgi.mule_msg(b"m%d" % i * (i + 1), 1 + i % 2))
        if i % 4 == 0:
            out.append(uwsgi.mule_msg(b"s%d" % i))
        if i % 5 == 0:
            out.append(uwsgi.mule_msg(b"x" * 300000, 1))
        if i == 6:
            out.append(uwsgi.mule_msg(b"p", 7))
        time.sleep(0.3 * (i % 3))
    start_response("200 OK", [])
    return [repr(out).encode()]
"""

#: Mule 1 waits every way (the common call, a timeout, a short buffer) and is sometimes
#: busy, so that messages queue up and are found waiting.
_ROUND_TRIP_MULE = """
import time, uwsgi
n = 0
while True:
    n += 1
    if n % 4 == 0:
        msg = uwsgi.mule_get_msg(timeout=1)
    elif n % 4 == 1:
        msg = uwsgi.mule_get_msg(buffer_size=3)
    else:
        msg = uwsgi.mule_get_msg()
    uwsgi.log("mule1 got %r" % (msg,))
    if n % 3 == 0:
        time.sleep(0.5)
"""


def test_the_mules_accelerator_is_built_here():
    import os

    from simuwsgi.subsystems import _cmules, mules

    assert _cmules.sender is not None
    assert (mules._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))


@pytest.mark.parametrize("farm", [[], ["--farm", "f:1,2"]])
def test_mules_accelerator_gives_what_the_python_functions_give(tmp_path, monkeypatch, farm):
    """Direct hand-overs to a mule waiting in mule_get_msg() and in the default loop
    (C), and every way out of them (a busy mule, a timed or short-buffer wait, the
    shared queue, a message too long, an unknown mule, farms): the same replies, trace
    and log with the C functions and the Python ones."""
    from simuwsgi.subsystems import _cmules, mules

    (tmp_path / "app.py").write_text(_ROUND_TRIP_APP)
    (tmp_path / "mule1.py").write_text(_ROUND_TRIP_MULE)
    options = ["--master", "--processes", "1", "--mule=mule1.py", "--mule", *farm,
               "--wsgi-file", "app.py"]
    outs = []
    for accelerator in (_cmules, None):
        monkeypatch.setattr(mules, "_c", accelerator)
        with Simulation(options, app_dir=tmp_path) as sim:
            kinds = {type(getattr(sim.uwsgi, name)).__name__
                     for name in ("mule_msg", "mule_get_msg")}
            body = sim.get("/").body
            sim.advance(3)
            outs.append((kinds, body, sim.trace.digest(), list(sim.log)))
    assert outs[0][0] == {"builtin_function_or_method"} and outs[1][0] == {"function"}
    assert outs[0][1:] == outs[1][1:]
    log = outs[0][3]
    for line in ("mule1 got b'm2m2m2'", "mule1 got b'm8m'", "mule1 got b''",
                 "*** mule 2 received a 4 bytes message ***",
                 "mule_send_msg(): Message too long [core/mule.c line 28]"):
        assert line in log
    assert outs[0][1].count(b"False") == 4  # three too long, one to no such mule
