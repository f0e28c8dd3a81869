"""The spooler subsystem (``simuwsgi.subsystems.spooler``) and the spool-file format (``simuwsgi.protocol``).

Rules from ``shared/spec/spoolfile.md``, ``semantics.md`` §5, ``api.md`` §8 and
``decorators.md`` §4; file vectors in ``tests/vectors/spoolfile_*.json``.
"""

from __future__ import annotations

import json
import os
import stat
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simuwsgi import Simulation
from simuwsgi import protocol as sf

VECTORS = Path(__file__).resolve().parent / "vectors"
START = 1_800_000_000  # virtual wall clock at t=0 (2027-01-15)

APP = textwrap.dedent('''
    import json, time, uwsgi

    def spooler(d):
        keys = sorted(("s:" + k) if isinstance(k, str) else ("b:" + k.decode()) for k in d)
        uwsgi.log("RAN " + json.dumps({"n": d.get(b"n", b"").decode(), "keys": keys,
                                        "name": d["spooler_task_name"].decode(),
                                        "body": d.get("body", b"").decode("latin-1")}))
        if b"sleep" in d:
            time.sleep(float(d[b"sleep"]))
        rc = d.get(b"rc", b"-2")
        if rc == b"none":
            return None
        if rc == b"str":
            return "x"
        if rc == b"raise":
            raise RuntimeError("boom")
        if rc == b"exit":
            raise SystemExit(3)
        return int(rc)

    uwsgi.spooler = spooler

    def application(env, start_response):
        spec = json.loads(env["wsgi.input"].read() or b"{}")
        path = uwsgi.spool({k.encode(): v.encode() for k, v in spec.items()})
        start_response("200 OK", [])
        return [path]
''')


def make_sim(tmp_path: Path, *extra: str, app: str = APP, spool: str = "spool",
             seed: int = 0) -> Simulation:
    (tmp_path / "app.py").write_text(app)
    opts = ["--master", "--spooler", str(tmp_path / spool), "--wsgi-file", "app.py", *extra]
    return Simulation(opts, app_dir=tmp_path, start=START, seed=seed)


def ran(sim: Simulation) -> list[dict]:
    return [json.loads(line[4:]) for line in sim.log if line.startswith("RAN ")]


def spool(sim: Simulation, **vars: str) -> bytes:
    """Spool from worker 1 through a request (so the writer is a worker)."""
    resp = sim.request("POST", "/", body=json.dumps(vars).encode())
    assert resp.status == 200, resp
    return resp.body


def sub(sim: Simulation):
    return sim.inst.subsystems["spooler"]


# -- the byte format ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["spoolfile_from_python_spool", "spoolfile_priority_at_body",
                                  "spoolfile_from_remote_request",
                                  "spoolfile_remote_request_body_dropped"])
def test_vectors_decode_and_encode(name: str) -> None:
    vec = json.loads((VECTORS / f"{name}.json").read_text())
    data = bytes.fromhex(vec["file_hex"])
    decoded = sf.decode_spool_file(data)
    assert decoded.valid and decoded.modifier1 == 17 and decoded.modifier2 == 0
    assert [(k.decode(), v.decode()) for k, v in decoded.vars] == [tuple(p) for p in vec["decoded"]["vars"]]
    assert decoded.body.decode() == vec["decoded"]["body"]
    block = sf.encode_spool_vars([(k.encode(), v.encode()) for k, v in vec["decoded"]["vars"]],
                                 truncate=True)
    assert sf.encode_spool_file(block, vec["decoded"]["body"].encode()) == data
    name = sf.parse_spool_file_name(vec["file_relative_path"].rsplit("/", 1)[-1])
    fields = {"hostname": name.hostname, "pid": str(name.pid), "counter": str(name.counter),
              "rand": str(name.rand), "tv_sec": str(name.sec), "tv_usec": str(name.usec)}
    assert fields == {k: v for k, v in vec["file_name_fields"].items() if k != "prefix"}


def test_decode_rules() -> None:
    def disposition(data: bytes) -> str:
        with pytest.raises(sf.SpoolFileError) as info:
            sf.decode_spool_file(data)
        return info.value.disposition

    assert disposition(b"") == "skip"
    assert disposition(b"\x11\x05\x00") == "skip"
    assert disposition(b"\x11\x05\x00\x00abc") == "delete"
    empty = sf.decode_spool_file(b"\x11\x00\x00\x00")
    assert empty.valid and empty.vars == () and empty.body == b""

    def parse_vars(block: bytes, partial: bool = False) -> list | None:
        pairs, error = sf.decode_dict_prefix(block)
        return list(pairs) if error is None or partial else None

    # uwsgi_hooked_parse: empty key, dangling bytes, value past the end
    assert parse_vars(b"\x00\x00\x01\x00x") is None
    assert parse_vars(b"\x01\x00a\x00\x00\x07") is None
    assert parse_vars(b"\x01\x00a\x05\x00xy") is None
    assert parse_vars(b"\x01\x00a\x00\x00") == [(b"a", b"")]
    assert parse_vars(b"\x01\x00a\x00\x00\x00\x00", partial=True) == [(b"a", b"")]
    assert not sf.decode_spool_file(b"\x11\x03\x00\x00\x00\x00x").valid


def test_uint16_truncation_and_at_value() -> None:
    block = sf.encode_spool_vars([(b"k", b"x" * 70000)], truncate=True)
    assert block[3:5] == (70000 & 0xFFFF).to_bytes(2, "little")
    assert len(block) == 2 + 1 + 2 + 4464
    with pytest.raises(sf.LocalProtocolError):  # a wire encoder refuses instead
        sf.encode_spool_vars([(b"k", b"x" * 70000)])
    assert sf.spool_at(b"4102444800") == 4102444800
    assert sf.spool_at(b"12.9") == 12
    assert sf.spool_at(b"") == 0
    assert sf.spool_at(b"-5") < 0  # garbage, as uwsgi_str_num gives; never > 0
    assert sf.spool_at(b"1a") == 10 + (ord("a") - 48)


def test_versionsort_matches_glibc() -> None:
    import ctypes
    import random

    libc = ctypes.CDLL(None)
    libc.strverscmp.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    rng = random.Random(5)
    alphabet = b"0123456789_u."
    for _ in range(3000):
        a = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        b = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        x, y = libc.strverscmp(a, b), sf.strverscmp(a, b)
        assert (x > 0) - (x < 0) == (y > 0) - (y < 0), (a, b)
    names = [f"{rng.randrange(30)}x{rng.randrange(300)}" for _ in range(200)] + ["0", "007"]
    expected = sorted(names, key=__import__("functools").cmp_to_key(
        lambda p, q: libc.strverscmp(p.encode(), q.encode())))
    assert sf.versionsort(names) == expected
    assert sf.versionsort(["uwsgi_spoolfile_on_h_1_2", "10", "9", "1"])[:3] == ["1", "9", "10"]


# -- writing -------------------------------------------------------------------------------
def test_spool_writes_uwsgi_file(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "1000") as sim:
        sim.uwsgi.set_spooler_frequency(1000)
        path = spool(sim, n="1", rc="-1")
        worker = sim.process("worker1")
        p = Path(path.decode())
        assert p.parent == (tmp_path / "spool").resolve()
        fields = sf.parse_spool_file_name(p.name)
        assert fields.hostname == "simuwsgi" and fields.pid == worker.pid
        assert fields.counter == 1 and fields.sec == START
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert p.read_bytes() == sf.encode_spool_file([(b"n", b"1"), (b"rc", b"-1")])
        assert int(p.stat().st_mtime) == START
        second = Path(spool(sim, n="2", rc="-1").decode())
        assert sf.parse_spool_file_name(second.name).counter == 2
        assert "[spooler] written 18 bytes to file " + str(p) in sim.log
        assert sim.trace.count("spool.enqueue") == 2


def test_spool_argument_rules(tmp_path: Path) -> None:
    with make_sim(tmp_path) as sim:
        u = sim.uwsgi
        msg = "spooler callable dictionary must contains only bytes"
        for bad in ({"a": b"1"}, {b"a": "x"}, {b"a": 5}, {b"a": None}):
            with pytest.raises(ValueError, match=msg):
                u.spool(bad)
        with pytest.raises(ValueError, match=msg):
            u.spool(a=b"1")  # kwargs: str keys in Python 3
        with pytest.raises(ValueError, match="The argument of spooler callable must be a dictionary"):
            u.spool()
        with pytest.raises(ValueError, match="The argument of spooler callable must be a dictionary"):
            u.spool([(b"a", b"b")])
        d = {b"list": [104, 105], b"ba": bytearray(b"xy"), b"body": b"RAW"}
        path = u.spool(d)
        assert d == {b"list": [104, 105], b"ba": bytearray(b"xy")}  # body removed from caller
        task = u.spooler_get_task(path.decode())
        assert task[b"list"] == b"hi" and task[b"ba"] == b"xy" and task["body"] == b"RAW"
        # body that is not bytes is an ordinary var
        d2 = {b"body": bytearray(b"zz")}
        p2 = u.spool(d2)
        assert d2 == {b"body": bytearray(b"zz")}
        assert u.spooler_get_task(p2.decode())[b"body"] == b"zz"
        # body removed even when spooling then fails
        d3 = {b"body": b"x", "bad": b"1"}
        with pytest.raises(ValueError, match=msg):
            u.spool(d3)
        assert d3 == {"bad": b"1"}
        # 64 KiB limit on the vars block; values are truncated modulo 65536
        with pytest.raises(ValueError, match="unable to spool job"):
            u.spool({b"a": b"x" * 40000, b"b": b"y" * 40000})
        assert any("args buffer is limited to 64k" in line for line in sim.log)
        p3 = u.spool({b"big": b"z" * 70000})
        assert len(u.spooler_get_task(p3.decode())[b"big"]) == 4464
        # the body has no size limit
        p4 = u.spool({b"body": b"B" * 1_000_000})
        assert u.spooler_get_task(p4.decode())["body"] == b"B" * 1_000_000
        # unknown spooler
        with pytest.raises(ValueError, match="unable to spool job"):
            u.spool({b"spooler": b"/nonexistent"})
        assert any('unable to find spooler "/nonexistent"' in line for line in sim.log)


def test_facade_names(tmp_path: Path) -> None:
    with make_sim(tmp_path) as sim:
        u = sim.uwsgi
        assert u.spool is u.send_to_spooler
        assert not hasattr(u, "spooler_dir")
        assert u.spoolers == (str((tmp_path / "spool").resolve()).encode(),)
        assert u.spooler_pid() == sim.process("spooler1").pid
        assert u.spooler_pids() == [sim.process("spooler1").pid]
        assert u.set_spooler_frequency(5) is True
        with pytest.raises(TypeError):
            u.set_spooler_frequency("5")
        with pytest.raises(TypeError, match="takes no keyword arguments"):
            u.spooler_jobs(x=1)
        with pytest.raises(TypeError, match="must be str, not bytes"):
            u.spooler_get_task(b"/x")
        assert u.spooler_get_task("/nonexistent") is None
    (tmp_path / "plain.py").write_text("def application(e, s):\n    return []\n")
    with Simulation(["--master", "--wsgi-file", "plain.py"], app_dir=tmp_path) as sim:
        for name in ("spool", "send_to_spooler", "spooler_jobs", "spooler_pid", "spoolers"):
            assert not hasattr(sim.uwsgi, name)


def test_two_spoolers_select_by_realpath(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler", str(tmp_path / "two")) as sim:
        u = sim.uwsgi
        two = str((tmp_path / "two").resolve()).encode()
        assert u.spoolers[1] == two
        path = u.spool({b"spooler": two, b"rc": b"-1"})
        assert path.startswith(two + b"/uwsgi_spoolfile_on_")
        with pytest.raises(ValueError, match="unable to spool job"):
            u.spool({b"spooler": b"two"})  # relative: no match
        sim.advance(0)
        assert [r.process for r in sub(sim).tasks_run()] == ["spooler2"]
        assert len(u.spooler_pids()) == 2
        # spooler_jobs lists the first spooler only
        assert u.spooler_jobs() == []


# -- running tasks -------------------------------------------------------------------------
def test_task_dict_types(tmp_path: Path) -> None:
    with make_sim(tmp_path) as sim:
        spool(sim, n="1", priority_x="p")
        sim.uwsgi.spool({b"n": b"2", b"body": b"payload"})
        sim.advance(0)
        runs = sorted(ran(sim), key=lambda r: r["n"])
        assert runs[0]["keys"] == ["b:n", "b:priority_x", "s:spooler_task_name"]
        assert runs[0]["name"].startswith("uwsgi_spoolfile_on_simuwsgi_")
        assert "/" not in runs[0]["name"]
        assert runs[1]["keys"] == ["b:n", "s:body", "s:spooler_task_name"]
        assert runs[1]["body"] == "payload"


@pytest.mark.parametrize("rc,kept", [("-2", False), ("-1", True), ("0", True), ("1", True),
                                     ("none", True), ("str", True), ("raise", True),
                                     ("4294967294", False)])
def test_return_codes(tmp_path: Path, rc: str, kept: bool) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "3") as sim:
        spool(sim, n="x", rc=rc)
        sim.advance(10)
        runs = sub(sim).tasks_run()
        assert len(runs) == (4 if kept else 1)  # t=0, 3, 6, 9
        assert [r.started for r in runs] == ([0.0, 3.0, 6.0, 9.0] if kept else [0.0])
        assert bool(sub(sim).pending()) == kept
        if rc == "0":
            assert sim.log.count("unable to find the spooler function, have you loaded it "
                                 "into the spooler process ?") == 4
        if rc == "raise":
            assert any("RuntimeError: boom" in line for line in sim.log)
        if not kept:
            assert sim.trace.count("spool.remove", reason="done") == 1


def test_missing_spooler_function_keeps_task(tmp_path: Path) -> None:
    app = "import uwsgi\ndef application(e, s):\n    return []\n"
    with make_sim(tmp_path, "--spooler-frequency", "5", app=app) as sim:
        sim.uwsgi.spool({b"a": b"1"})
        sim.advance(6)
        assert sim.log.count("unable to find the spooler function, have you loaded it "
                             "into the spooler process ?") == 2
        assert len(sub(sim).pending()) == 1


def test_unparsable_short_and_foreign_files(tmp_path: Path) -> None:
    spooldir = tmp_path / "spool"
    spooldir.mkdir()
    (spooldir / "uwsgi_spoolfile_on_h_1_1_1_1_1").write_bytes(b"\x11\x07\x00\x00\x00\x00\x01\x00xxx")
    (spooldir / "uwsgi_spoolfile_on_h_1_2_1_1_1").write_bytes(b"\x11\x30\x00\x00\x01\x00a\x00\x00")
    (spooldir / "uwsgi_spoolfile_on_h_1_3_1_1_1").write_bytes(b"\x11\x05")
    (spooldir / "other_file").write_bytes(b"\x11\x00\x00\x00")
    for f in spooldir.iterdir():
        os.utime(f, (START - 10, START - 10))
    with make_sim(tmp_path) as sim:
        sim.advance(1)
        assert ran(sim) == []  # the function was never called
        left = sorted(p.name for p in spooldir.iterdir())
        assert left == ["other_file", "uwsgi_spoolfile_on_h_1_3_1_1_1"]
        assert sim.trace.count("spool.remove", reason="truncated") == 1
        assert sim.trace.count("spool.remove", reason="done") == 1


def test_at_defers_until_mtime(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "4") as sim:
        path = sim.uwsgi.spool({b"n": b"later", b"at": str(START + 10).encode() + b".75"})
        assert int(os.stat(path).st_mtime) == START + 10
        sim.advance(9.5)
        assert ran(sim) == []
        sim.advance(10)
        runs = sub(sim).tasks_run()
        assert [r.started for r in runs] == [12.0]  # the first scan after 'at' (t=0,4,8,12)
        assert sim.trace.select("spool.enqueue")[0]["at"] == START + 10


def test_priority_needs_ordered(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "1") as sim:
        path = sim.uwsgi.spool({b"n": b"p", b"priority": b"5"})
        assert path.decode().rsplit("/", 2)[1] == "5"
        sim.advance(5)
        assert ran(sim) == []
        assert len(sub(sim).pending()) == 1


def test_ordered_priorities_run_in_versionsort_order(tmp_path: Path) -> None:
    app = APP.replace("uwsgi.spooler = spooler", "uwsgi.spooler = spooler\nuwsgi.log('IMPORT')")
    with make_sim(tmp_path, "--spooler-ordered", app=app) as sim:
        sim.kill("spooler1")  # keep it from running while we spool (it respawns at once)
        for n, prio in ((1, None), (2, "9"), (3, "10"), (4, "1"), (5, None)):
            d = {b"n": str(n).encode()}
            if prio:
                d[b"priority"] = prio.encode()
            sim.uwsgi.spool(d)
        sim.advance(40)
        order = [r["n"] for r in ran(sim)]
        assert order == ["4", "2", "3", "1", "5"]
        assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["1", "10", "9"]


def test_readdir_order_is_seeded_and_traced(tmp_path: Path) -> None:
    orders = []
    for seed in (1, 1, 2):
        (tmp_path / f"s{seed}").mkdir(exist_ok=True)
        with make_sim(tmp_path / f"s{seed}", seed=seed, spool=f"spool{len(orders)}") as sim:
            sim.kill("spooler1")
            for n in range(8):
                sim.uwsgi.spool({b"n": str(n).encode()})
            sim.advance(31)
            orders.append([r["n"] for r in ran(sim)])
            scans = [s for s in sim.trace.select("spool.scan") if s["entries"] == 8]
            assert [r.task for r in sub(sim).tasks_run()] == scans[0]["order"]
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == [str(n) for n in range(8)]


def test_wakeup_runs_new_task_at_once_but_not_during_a_task(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "30") as sim:
        spool(sim, n="a")
        sim.advance(0)
        assert [r.started for r in sub(sim).tasks_run()] == [0.0]
        sim.advance(5)
        spool(sim, n="long", sleep="10")
        sim.advance(2)
        spool(sim, n="during")  # the spooler is running a task: no wake-up
        sim.advance(40)
        runs = {r["n"]: r for r in ran(sim)}
        starts = {Path(r.path).name: r.started for r in sub(sim).tasks_run()}
        assert starts[runs["long"]["name"]] == 5.0
        # 'during' waits for the next scan: 30 s after the long task's scan ended (t=15)
        assert starts[runs["during"]["name"]] == 45.0


def test_set_spooler_frequency_takes_effect_when_idle(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "10") as sim:
        spool(sim, rc="-1")
        sim.advance(0)  # the spooler ran the task and waits 10 s
        sim.uwsgi.set_spooler_frequency(2)
        sim.advance(15)
        # the wait in progress keeps its 10 s; then every 2 s
        assert [r.started for r in sub(sim).tasks_run()] == [0.0, 10.0, 12.0, 14.0]


def test_jobs_and_get_task(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "100") as sim:
        u = sim.uwsgi
        spool(sim, n="1", sleep="5")
        sim.advance(1)
        p2 = u.spool({b"n": b"2", b"priority": b"3"})
        sim.advance(1)
        jobs = u.spooler_jobs()
        assert len(jobs) == 1 and b"/3/" not in jobs[0]  # top level only, running task included
        assert u.spooler_get_task(jobs[0].decode()) is None  # locked: being executed
        task = u.spooler_get_task(p2.decode())
        assert task["spooler_task_name"] == p2 and task[b"priority"] == b"3"
        sim.advance(10)
        assert u.spooler_jobs() == []


# -- crash safety ---------------------------------------------------------------------------
def test_kill_mid_task_reruns_it(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "30") as sim:
        spool(sim, n="slow", sleep="5")
        sim.advance(2)
        old = sim.process("spooler1").pid
        sim.kill("spooler1")
        sim.advance(1)  # the master reaps and respawns at its next 1 s tick
        assert sim.process("spooler1").pid != old
        sim.advance(10)
        runs = sub(sim).tasks_run()
        assert [r.outcome for r in runs] == ["aborted", "done"]
        assert runs[1].started == 3.0 and runs[1].ended == 8.0
        assert sub(sim).pending() == []
        assert "OOOPS the spooler is no more...trying respawn..." in sim.log


def test_spooler_harakiri(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-harakiri", "3", "--spooler-frequency", "100") as sim:
        spool(sim, n="slow", sleep="10", rc="-1")
        sim.advance(5.5)
        assert any(line.startswith("*** HARAKIRI ON THE SPOOLER (pid: ") for line in sim.log)
        runs = sub(sim).tasks_run()
        assert runs[0].outcome == "aborted" and runs[0].ended == 4.0  # int(0)+3 < now at 4
        assert runs[1].started == 5.0, "respawned at the master's next tick"
        assert len(sub(sim).pending()) == 1


def test_max_tasks_recycles_the_spooler(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-max-tasks", "2") as sim:
        first = sim.process("spooler1").pid
        for n in range(3):
            sim.uwsgi.spool({b"n": str(n).encode()})
        sim.advance(1)
        assert len(ran(sim)) == 3
        assert any("maximum number of tasks reached (2) recycling ..." in line for line in sim.log)
        assert sim.process("spooler1").pid != first
        assert sub(sim).pending() == []


def test_system_exit_in_task_kills_the_spooler(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "5") as sim:
        spool(sim, rc="exit")
        sim.advance(1)  # dead at once, reaped at the master's next tick
        assert sim.trace.count("death", "spooler1") >= 1
        assert len(sub(sim).pending()) == 1


def test_reload_mid_task_keeps_the_file(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-frequency", "30") as sim:
        spool(sim, n="slow", sleep="5")
        sim.advance(1)
        sim.reload()
        sim.advance(10)
        runs = sub(sim).tasks_run()
        assert [r.outcome for r in runs] == ["aborted", "done"]
        assert sub(sim).pending() == []


def test_task_deleting_its_own_file_kills_the_spooler(tmp_path: Path) -> None:
    app = APP.replace("    rc = d.get", "    if b'self' in d:\n        import os\n"
                      "        os.unlink(uwsgi.spoolers[0] + b'/' + d['spooler_task_name'])\n"
                      "    rc = d.get")
    with make_sim(tmp_path, app=app) as sim:
        sim.uwsgi.spool({b"self": b"1"})
        sim.advance(0.1)
        assert any(line.startswith("unlink(): No such file or directory") for line in sim.log)
        sim.advance(1)  # reaped at the master's next tick
        assert sim.trace.count("death", "spooler1") == 1


# -- signals, several processes, imports --------------------------------------------------
def test_spooler_signals_only_when_idle(tmp_path: Path) -> None:
    app = APP + textwrap.dedent('''
        def on_sig(num):
            uwsgi.log("SIG %d in %s" % (num, "spooler" if uwsgi.i_am_the_spooler() else "?"))
        uwsgi.register_signal(17, "spooler", on_sig)
    ''')
    with make_sim(tmp_path, "--spooler-frequency", "100", app=app) as sim:
        spool(sim, n="slow", sleep="4")
        sim.advance(1)
        sim.signal(17)
        assert not any(line.startswith("SIG 17") for line in sim.log)
        sim.advance(4)
        times = [t for t, _p, line in sim.inst.log_lines if line.startswith("SIG 17")]
        assert times == [4.0]
        assert "SIG 17 in spooler" in sim.log


def test_several_processes_share_a_directory(tmp_path: Path) -> None:
    with make_sim(tmp_path, "--spooler-processes", "2", "--spooler-frequency", "1") as sim:
        assert len(sim.uwsgi.spooler_pids()) == 2
        assert sim.uwsgi.spoolers[0] == sim.uwsgi.spoolers[1]
        for n in range(4):
            sim.uwsgi.spool({b"n": str(n).encode(), b"sleep": b"2"})
        sim.advance(20)
        runs = sub(sim).tasks_run()
        assert len(runs) == 4 and {r.outcome for r in runs} == {"done"}
        assert {r.process for r in runs} == {"spooler1", "spooler2"}


def test_spooler_import_and_external(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(textwrap.dedent('''
        import uwsgi
        def job(d):
            uwsgi.log("JOB " + d[b"n"].decode())
            return uwsgi.SPOOL_OK
        uwsgi.spooler = job
    '''))
    app = "import uwsgi\ndef application(e, s):\n    return []\n"
    ext = tmp_path / "ext"
    with make_sim(tmp_path, "--spooler-import", "tasks.py", "--spooler-external", str(ext),
                  app=app) as sim:
        sim.uwsgi.spool({b"n": b"1"})
        p = sim.uwsgi.spool({b"n": b"2", b"spooler": str(ext.resolve()).encode()})
        sim.advance(1)
        assert "JOB 1" in sim.log and "JOB 2" not in sim.log
        assert os.path.exists(p)  # no process consumes an external directory
        assert sim.uwsgi.spooler_pids() == [sim.process("spooler1").pid, 0]


# -- the real uwsgidecorators ---------------------------------------------------------------
DECO_APP = textwrap.dedent('''
    import uwsgi
    from uwsgidecorators import spool, spoolforever, spoolraw

    @spool
    def plain(args):
        uwsgi.log("PLAIN " + repr(sorted(args.items())))
        return "ignored"

    @spool(pass_arguments=True)
    def witharg(a, b=None):
        uwsgi.log("WITHARG %r %r" % (a, b))

    @spoolforever
    def forever(args):
        uwsgi.log("FOREVER")

    @spoolraw
    def raw(args):
        uwsgi.log("RAW " + args["x"])
        return int(args["x"])

    def application(env, start_response):
        what = env["PATH_INFO"]
        if what == "/plain":
            plain.spool(x="1")
        elif what == "/witharg":
            witharg.spool({"a": 1}, b=b"\\xff", priority="2")
        elif what == "/forever":
            forever.spool()
        elif what == "/raw-retry":
            raw.spool(x="-1")
        elif what == "/raw-ok":
            raw.spool(x="-2")
        elif what == "/rawspool":
            uwsgi.spool({b"x": b"1"})
        start_response("200 OK", [])
        return [b"ok"]
''')


@pytest.mark.parametrize("decorators", ["real", "simuwsgi"])
def test_uwsgidecorators(tmp_path: Path, decorators: str) -> None:
    (tmp_path / "app.py").write_text(DECO_APP)
    opts = ["--master", "--spooler", str(tmp_path / "spool"), "--spooler-ordered",
            "--spooler-frequency", "2", "--wsgi-file", "app.py"]
    kwargs = {"decorators": "simuwsgi"} if decorators == "simuwsgi" else {}
    with Simulation(opts, app_dir=tmp_path, start=START, **kwargs) as sim:
        if decorators == "real":
            import uwsgidecorators

            assert "site-packages" in uwsgidecorators.__file__
        for path in ("/plain", "/witharg", "/forever", "/raw-retry", "/raw-ok", "/rawspool"):
            assert sim.get(path).status == 200
        sim.advance(0)
        before = list(sim.log)
        sim.advance(5)  # scans at t=2 and t=4
        log = sim.log
        assert log.count("FOREVER") - before.count("FOREVER") == 2
        assert log.count("RAW -1") - before.count("RAW -1") == 2
        plain_line = next(line for line in log if line.startswith("PLAIN "))
        assert "('ud_spool_func', 'plain')" in plain_line and "('x', '1')" in plain_line
        assert "('ud_spool_ret', '-2')" in plain_line
        assert "WITHARG {'a': 1} b'\\xff'" in log
        assert sum(line.startswith("PLAIN ") for line in log) == 1 and log.count("RAW -2") == 1
        assert any("KeyError: 'ud_spool_func'" in line for line in log)
        pending = sub(sim).pending()
        assert len(pending) == 3  # forever, raw -1, the raw uwsgi.spool task


# -- hypothesis: never lose a task, never re-run a completed one ----------------------------
HYPO_APP = textwrap.dedent('''
    import time, uwsgi
    def spooler(d):
        if d.get(b"sleep"):
            time.sleep(float(d[b"sleep"]))
        return int(d[b"rc"])
    uwsgi.spooler = spooler
    def application(e, s):
        return []
''')

actions = st.lists(st.one_of(
    st.tuples(st.just("spool"), st.sampled_from([-2, -2, -1, 0, 1]),
              st.sampled_from([None, "1", "7"]), st.sampled_from([None, 0, 3, 8]),
              st.sampled_from([0, 0, 1.5])),
    st.tuples(st.just("kill"), st.integers(1, 2)),
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0])),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=actions, seed=st.integers(0, 3))
def test_never_lose_or_repeat_a_task(tmp_path_factory: pytest.TempPathFactory, plan: list,
                                     seed: int) -> None:
    base = tmp_path_factory.mktemp("hypo")
    (base / "app.py").write_text(HYPO_APP)
    opts = ["--master", "--spooler", str(base / "spool"), "--spooler-processes", "2",
            "--spooler-ordered", "--spooler-frequency", "1", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=base, start=START, seed=seed) as sim:
        spooled: dict[str, int] = {}
        for step in plan:
            if step[0] == "spool":
                _, rc, prio, at, sleep = step
                d = {b"rc": str(rc).encode(), b"sleep": str(sleep).encode()}
                if prio:
                    d[b"priority"] = prio.encode()
                if at is not None:
                    d[b"at"] = str(int(sim.wall) + at).encode()
                spooled[sim.uwsgi.spool(d).decode()] = rc
            elif step[0] == "kill":
                sim.kill(f"spooler{step[1]}")
            else:
                sim.advance(step[1])
        # Every deferred task is due and every retried one ran again: a scan runs each
        # kept task once, so it lasts up to the sum of their sleeps.
        total_sleep = sum(step[4] for step in plan if step[0] == "spool")
        sim.advance(15 + 3 * total_sleep)
        runs = sub(sim).tasks_run()
        pending = set(sub(sim).pending())
        for path, rc in spooled.items():
            mine = [r for r in runs if r.path == path]
            done = [r for r in mine if r.outcome == "done"]
            if rc == -2:
                assert len(done) == 1, (path, mine)
                assert mine[-1] is done[0]  # never run again after completion
                assert path not in pending
            else:
                assert path in pending  # never lost
                assert done == []
                assert len(mine) >= 2
        assert pending <= set(spooled)


def test_tasks_run_in_the_spooler_directory_or_spooler_chdir(tmp_path: Path) -> None:
    import os

    app = tmp_path / "app.py"
    app.write_text('''
import os, uwsgi
def task(args):
    with open("seen.txt", "a") as f:
        f.write(os.getcwd() + "\\n")
    return uwsgi.SPOOL_OK
uwsgi.spooler = task
def application(env, sr):
    uwsgi.spool({b"a": b"1"})
    sr("200 OK", [])
    return [os.getcwd().encode()]
''')
    (tmp_path / "elsewhere").mkdir()
    here = os.getcwd()
    for extra, where in [([], tmp_path / "spool"),
                         (["--spooler-chdir", str(tmp_path / "elsewhere")], tmp_path / "elsewhere")]:
        opts = ["--master", "--spooler", str(tmp_path / "spool"), *extra, "--wsgi-file", "app.py"]
        with Simulation(opts, app_dir=tmp_path) as sim:
            assert sim.get("/").body == here.encode(), "workers keep the starting directory"
            sim.advance(1)
            assert os.getcwd() == here, "the test's directory is back after each run"
        assert (where / "seen.txt").read_text() == f"{where}\n"


def test_spool_into_an_unusable_directory_is_uwsgis_error(tmp_path: Path) -> None:
    import shutil

    (tmp_path / "app.py").write_text('''
import uwsgi
def application(env, sr):
    sr("200 OK", [])
    try:
        return [repr(uwsgi.spool({b"a": b"1"})).encode()]
    except Exception as e:
        return [repr(e).encode()]
''')
    spool_dir = tmp_path / "spool"
    opts = ["--master", "--spooler", str(spool_dir), "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        shutil.rmtree(spool_dir)            # gone (or full, or read-only): open() fails
        assert sim.get("/").body == b"ValueError('unable to spool job')"
        assert any(line.startswith(f'open("{spool_dir}/uwsgi_spoolfile_on_')
                   and "No such file or directory [core/spooler.c line 271]" in line
                   for line in sim.log)


def test_file_names_follow_the_codecs_name_format(tmp_path: Path) -> None:
    from simuwsgi.protocol import parse_spool_file_name, spool_file_name

    opts = ["--master", "--spooler", str(tmp_path / "spool"), "--wsgi-file", "app.py"]
    (tmp_path / "app.py").write_text("def application(e, sr):\n    sr('200 OK', [])\n    return [b'']\n")
    with Simulation(opts, app_dir=tmp_path, hostname="host-1") as sim:
        path = sim.uwsgi.spool({b"a": b"1"}).decode()
        name = Path(path).name
        parsed = parse_spool_file_name(name)
        assert spool_file_name(parsed) == name
        assert (parsed.hostname, parsed.pid, parsed.counter) == ("host-1", sim.process("master").pid, 1)
