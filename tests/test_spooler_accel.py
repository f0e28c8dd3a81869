"""The optional C accelerator of the spooler's task path (``subsystems/_cspooler.c``).

Random programs of ``uwsgi.spool`` (dicts of every size, ``body``, ``at``, ``priority``,
a named ``spooler``, arguments it refuses), tasks that end in every way (done, retry,
ignore, an exception, a result that is not an int, one too big for a C long, a task
that spools another), ``spooler_jobs``, ``spooler_pids`` and a signal handler running in
the spooler, under the spooler's options (several directories, ``--spooler-processes 2``,
``--spooler-frequency``, quiet or not, ``--spooler-ordered``, ``--spooler-max-tasks``,
``--spooler-chdir``, harakiri, a non-ASCII directory, no ``uwsgi.spooler`` in the
spooler) and events (a disk fault, wall-clock steps), must give the same replies, spool
files (names, bytes, mtimes), trace digest and log with the C functions and with the
Python code they stand for.
"""
from __future__ import annotations

import json
import os
import random
import shutil

import pytest

from simuwsgi import Simulation
from simuwsgi.faults import DiskFault
from simuwsgi.protocol import encode_spool_file

pytest.importorskip("simuwsgi.subsystems._cspooler")

APP = """
import json, time, uwsgi

def spooler(task):
    do = task.get(b"do", b"ok")
    uwsgi.log("task %s do=%s keys=%d body=%d" % (task["spooler_task_name"][-12:], do,
                                                 len(task), len(task.get("body", b""))))
    if do == b"ok":
        return uwsgi.SPOOL_OK
    if do == b"retry":
        return uwsgi.SPOOL_RETRY
    if do == b"ignore":
        return uwsgi.SPOOL_IGNORE
    if do == b"raise":
        raise RuntimeError("task fails")
    if do == b"none":
        return None
    if do == b"big":
        return (1 << 70) + 1
    if do == b"wrap":
        return (1 << 32) - 2
    if do == b"chain":
        uwsgi.spool({b"do": b"ok", b"from": b"spooler"})
        return uwsgi.SPOOL_OK
    return uwsgi.SPOOL_OK

uwsgi.spooler = spooler

def busy(num):  # the spooler is neither waiting nor running a task: a write counts a wake-up
    uwsgi.log("spooler signal %d" % num)
    time.sleep(0.5)

uwsgi.register_signal(17, "spooler", busy)

def application(environ, start_response):
    out = []
    for op in json.loads(environ["QUERY_STRING"].replace("%22", '"')):
        kind = op[0]
        try:
            if kind == "spool":
                size, longest, do = op[1]
                task = {b"k%d" % i: b"v" * (i * 7 % (longest + 1)) for i in range(size)}
                if do:
                    task[b"do"] = do.encode()
                if op[2]:
                    task[b"body"] = op[2].encode("latin-1") * op[3]
                if op[4] == "at":
                    task[b"at"] = b"%d" % (int(time.time()) + 3)
                elif op[4] == "priority":
                    task[b"priority"] = b"5"
                elif op[4] == "named":
                    task[b"spooler"] = uwsgi.spoolers[-1]
                elif op[4] == "strkey":
                    task["text"] = b"x"
                elif op[4] == "intvalue":
                    task[b"n"] = 5
                elif op[4] == "bytearray":
                    task[b"raw"] = bytearray(b"abc")
                elif op[4] == "huge":
                    task[b"huge"] = b"h" * 70000
                elif op[4] == "kwargs":
                    out.append(uwsgi.spool(**{"a": b"b"}))
                    continue
                out.append(uwsgi.send_to_spooler(task) if op[5] else uwsgi.spool(task))
                out.append(sorted(task))
            elif kind == "jobs":
                out.append(len(uwsgi.spooler_jobs()))
            elif kind == "pids":
                out.append(len(uwsgi.spooler_pids()))
            elif kind == "signal":
                out.append(uwsgi.signal(17))
            else:
                time.sleep(op[1])
        except Exception as exc:
            out.append("%s: %s" % (type(exc).__name__, exc))
    start_response("200 OK", [])
    return [repr(out).encode()]
"""

DOS = ["ok", "ok", "ok", "retry", "ignore", "raise", "none", "big", "wrap", "chain"]
EXTRAS = ["", "", "", "", "at", "priority", "named", "strkey", "intvalue", "bytearray",
          "huge", "kwargs"]


def _task(rng: random.Random) -> list[object]:
    task = [rng.choice([0, 1, 3, 10, 40]), rng.choice([0, 1, 5, 300]),
            rng.choice(DOS) if rng.random() < 0.8 else ""]
    body = rng.choice(["", "", "B", "xyz"])
    return ["spool", task, body, rng.choice([1, 10, 2000]), rng.choice(EXTRAS),
            rng.random() < 0.2]


def _program(rng: random.Random) -> list[list[object]]:
    ops: list[list[object]] = []
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.7:
            ops.append(_task(rng))
        elif roll < 0.8:
            ops.append(["jobs"])
        elif roll < 0.85:
            ops.append(["pids"])
        elif roll < 0.92:
            ops.append(["signal"])
        else:
            ops.append(["sleep", rng.choice([0.1, 1.5])])
    return ops


def _files(tmp_path) -> list[tuple[str, bytes, int]]:
    out = []
    for root, _dirs, files in sorted(os.walk(tmp_path)):
        for name in sorted(files):
            if name.startswith("uwsgi_spoolfile_on_"):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out.append((path, f.read(), int(os.stat(path).st_mtime)))
    return out


def _run(tmp_path, options: list[str], seed: int, variant: str) -> tuple[object, ...]:
    for name in ("spool1", "spool2", ODD_DIR, "work"):
        shutil.rmtree(tmp_path / name, ignore_errors=True)
    (tmp_path / "work").mkdir()
    (tmp_path / "spool1").mkdir()
    odd = os.path.join(os.fsencode(tmp_path / "spool1"), ODD_TASK)
    with open(odd, "wb") as f:
        f.write(encode_spool_file([(b"do", b"ok"), (b"odd", b"1")]))
    os.utime(odd, (0, 0))  # not a task for the future: it runs at the first scan
    rng = random.Random(seed)
    with Simulation(options, app_dir=tmp_path, seed=seed) as sim:
        kinds = {type(getattr(sim.uwsgi, name)).__name__ for name in ("spool", "send_to_spooler")}
        if variant == "fault":
            sim.apply([DiskFault(rng.choice(["full", "eio", "torn"]), 1.0,
                                 at=rng.uniform(0, 2))])
        requests = [sim.submit("GET", "/?" + json.dumps(_program(rng), separators=(",", ":")),
                               at=rng.uniform(0, 4)) for _ in range(12)]
        if variant == "clock-step":  # the wall clock back, then forward: tasks wait, then run
            sim.advance(1.5)
            sim.step_clock(-4)
            sim.advance(1)
            sim.step_clock(3)
        sim.wait(requests, timeout=60)
        sim.advance(8)
        replies = [(r.response.status, r.response.body) if r.response else None
                   for r in requests]
        return kinds, replies, _files(tmp_path), sim.trace.digest(), list(sim.log)


#: a spool directory whose name is not ASCII
ODD_DIR = "sp\u00e9"
#: a task file with a name that is not ASCII, there before the start
ODD_TASK = "uwsgi_spoolfile_on_\u00e9_1_1_1_1_1".encode()

VARIANTS = {
    "plain": [],
    "quiet": ["--spooler-quiet"],
    "two-dirs-two-processes": ["--spooler", "spool2", "--spooler-processes", "2"],
    "frequency": ["--spooler-frequency", "1", "--spooler-quiet"],
    "odd-directory-name": ["--spooler", ODD_DIR],
    "ordered": ["--spooler-ordered", "--spooler-frequency", "2"],
    "max-tasks-chdir": ["--spooler-max-tasks", "3", "--spooler-chdir", "work"],
    "harakiri": ["--spooler-harakiri", "5", "--spooler-frequency", "1"],
    "fault": [],
    "clock-step": [],
    "no-hook-in-the-spooler": ["--lazy-apps"],  # the app (and uwsgi.spooler) in workers only
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_spooler_accelerator_gives_what_the_python_code_gives(tmp_path, monkeypatch, variant):
    from simuwsgi.subsystems import _cspooler, spooler

    (tmp_path / "app.py").write_text(APP)
    options = ["--master", "--processes", "2", "--spooler", "spool1", "--wsgi-file", "app.py",
               *VARIANTS[variant]]
    for seed in range(4):
        outs = []
        for accelerator in (_cspooler, None):
            monkeypatch.setattr(spooler, "_c", accelerator)
            monkeypatch.setattr(spooler, "readdir_order", accelerator.readdir_order
                                if accelerator else spooler._readdir_order)
            outs.append(_run(tmp_path, options, seed, variant))
        assert outs[0][0] == {"builtin_function_or_method"} and outs[1][0] == {"function"}
        assert outs[0][1:] == outs[1][1:]
        log = outs[0][4]
        if variant == "no-hook-in-the-spooler":
            assert any("unable to find the spooler function" in line for line in log)
        else:
            assert any("do=b'ok'" in line for line in log)
            assert any("_1_1_1_1_1' do=b'ok' keys=3" in line for line in log)  # ODD_TASK ran
        assert all(reply is not None and reply[0] == 200 for reply in outs[0][1])


def test_spooler_accelerator_is_used_unless_pure_python():
    from simuwsgi.subsystems import spooler

    assert (spooler._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))


def test_readdir_order_in_c_is_the_python_order():
    from simuwsgi.subsystems import _cspooler, spooler

    rng = random.Random(7)
    alphabet = "abcxyz_0123456789é\udcff"
    for _ in range(200):
        names = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
                 for _ in range(rng.randint(0, 30))]
        names = list(dict.fromkeys(names))
        seed = rng.getrandbits(32)
        assert _cspooler.readdir_order(names, seed) == spooler._readdir_order(names, seed)
