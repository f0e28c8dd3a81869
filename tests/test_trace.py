"""The trace: keeping only some kinds for long runs (``trace_kinds``)."""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import struct
import textwrap

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simuwsgi import Simulation
from simuwsgi._core.trace import Trace

TIMER_APP = """
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 1)
def application(environ, start_response):
    start_response("200 OK", [])
    return [b"%d" % calls]
"""

OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py"]


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(TIMER_APP))
    return tmp_path


def _run(app_dir, **kw):
    with Simulation(OPTIONS, app_dir=app_dir, **kw) as sim:
        sim.advance(100)
        body = sim.get("/").body
        return sim.trace, body


def test_kept_kinds_only_and_the_run_is_unchanged(app_dir):
    full, full_body = _run(app_dir)
    kept, body = _run(app_dir, trace_kinds=["timer.fire", "request.*"])
    assert body == full_body  # the simulation itself is not affected
    assert set(kept.kinds()) == {k for k in full.kinds()
                                 if k == "timer.fire" or k.startswith("request.")}
    assert kept.count("request.end") == full.count("request.end") == 1
    assert kept.count("timer.fire") == full.count("timer.fire") == 100
    assert kept.count("signal.handler") == 0 and full.count("signal.handler") == 200
    assert len(kept) < len(full) / 2
    assert kept.kinds_kept == ("timer.fire", "request.*")


def test_the_digest_is_the_full_traces_restricted_to_the_kept_kinds(app_dir):
    full, _ = _run(app_dir)
    kept, _ = _run(app_dir, trace_kinds=["signal.*"])
    rows = [row for row in full.rows() if row[3].startswith("signal.")]
    assert kept.rows() == rows
    expected = hashlib.sha256(msgpack.packb(rows, use_bin_type=True)).hexdigest()
    assert kept.digest() == expected
    assert _run(app_dir, trace_kinds=["signal.*"])[0].digest() == expected  # deterministic


def test_a_single_string_is_one_pattern_and_non_strings_are_refused():
    trace = Trace(kinds="cron.*")
    trace.add(1.0, "master", "cron.signal", {"num": 1})
    trace.add(1.0, "master", "c", {})
    assert trace.kinds() == {"cron.signal": 1}
    with pytest.raises(TypeError, match="trace kinds must be strings, not int"):
        Trace(kinds=["cron.*", 7])


def test_the_pytest_factory_passes_trace_kinds(app_dir, uwsgi_simulation):
    sim = uwsgi_simulation(OPTIONS, app_dir=app_dir, trace_kinds=["timer.*"])
    sim.advance(10)
    assert set(sim.trace.kinds()) == {"timer.add", "timer.fire"}


# -- bounded memory: old records spill to disk ----------------------------------------
def _spilling(monkeypatch, rows):
    """Keep only ``rows`` trace records and log lines in memory (the rest on disk)."""
    import simuwsgi._core._spool

    monkeypatch.setattr(simuwsgi._core._spool, "DEFAULT_LIMIT", rows)


def test_a_spilled_trace_answers_queries_and_digests_as_one_in_memory(app_dir, monkeypatch):
    memory, memory_body = _run(app_dir)
    _spilling(monkeypatch, 7)
    spilled, body = _run(app_dir)
    assert body == memory_body
    assert len(spilled._spool.tail) < 7 and len(spilled._spool.chunks()) > 30
    assert spilled.digest() == memory.digest()
    assert spilled.dumps() == memory.dumps()
    assert spilled.rows() == memory.rows()
    assert spilled.kinds() == memory.kinds()
    for kind in ("signal.handler", "signal.*", "request.end", "nothing", None):
        assert spilled.count(kind) == memory.count(kind)
        assert spilled.count(kind, process="worker2") == memory.count(kind, process="worker2")
    assert spilled.select("signal.*", num=1) == memory.select("signal.*", num=1)
    assert spilled[-1] == memory[-1] and spilled[3] == memory[3] and list(spilled) == list(memory)
    assert spilled.format(limit=20) == memory.format(limit=20)


def test_a_spilled_trace_saves_and_loads_the_same_bytes(app_dir, monkeypatch, tmp_path):
    _spilling(monkeypatch, 5)
    trace, _ = _run(app_dir)
    trace.save(tmp_path / "t.msgpack")
    assert (tmp_path / "t.msgpack").read_bytes() == trace.dumps()
    assert msgpack.unpackb(trace.dumps()) == trace.rows()
    loaded = Trace.load(tmp_path / "t.msgpack")
    assert loaded.digest() == trace.digest() and len(loaded._spool.chunks()) > 30


def test_kept_kinds_spill_too(app_dir, monkeypatch):
    kept_in_memory, _ = _run(app_dir, trace_kinds=["signal.*"])
    _spilling(monkeypatch, 4)
    kept, _ = _run(app_dir, trace_kinds=["signal.*"])
    assert kept.digest() == kept_in_memory.digest()
    assert kept.count("signal.handler") == 200


def test_the_log_is_a_bounded_sequence_of_lines(app_dir, monkeypatch):
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        for _ in range(5):
            sim.get("/")
        expected = list(sim.log)
    _spilling(monkeypatch, 3)
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        for _ in range(5):
            sim.get("/")
        log = sim.log
        assert len(sim.inst.log_lines.tail) < 3 and sim.inst.log_lines.chunks()
    assert log == expected and list(log) == expected and len(log) == len(expected)
    assert log[0] == expected[0] and log[-1] == expected[-1] and log[2:9] == expected[2:9]
    assert expected[1] in log and "not a line" not in log
    assert log.count(expected[-1]) == expected.count(expected[-1])
    assert [t for t, _p, _line in sim.inst.log_lines][-1] == sim.now


def test_a_spilled_record_holding_an_object_keeps_its_encoded_values():
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    memory = Trace()
    spilled = Trace(memory_rows=2)
    for trace in (memory, spilled):
        trace.add(0.1234567, "master", "a", {"obj": Thing(), "n": 1})
        trace.add(1.0, "master", "b", {"k": (1, 2)})
        trace.add(2.0, "master", "c", {})
    assert spilled.digest() == memory.digest()
    assert spilled[0] == spilled.select("a")[0]
    assert (spilled[0].time, spilled[0].fields) == (0.123457, {"obj": "<thing>", "n": 1})
    assert spilled[1].fields == {"k": (1, 2)}  # marshal keeps plain values exact


def test_a_teed_trace_reads_its_spilled_records_from_the_shared_one():
    # every kind kept: the node's spilled rows are compressed once, in the shared
    # spool, and read back from there as if it had kept them
    shared = Trace(node="cluster", memory_rows=3)
    teed = {name: Trace(node=name, memory_rows=2) for name in ("n1", "n2")}
    alone = {name: Trace(node=name, memory_rows=2) for name in ("n1", "n2")}
    for trace in teed.values():
        trace.tee(shared)
    for i in range(11):
        shared.add(float(i), "cluster", "x", {"i": i})  # the shared trace's own rows
        for name in teed:
            for trace in (teed[name], alone[name]):
                trace.add(float(i), "worker1", "abc"[i % 3], {"i": i, "node": name})
    for name, trace in teed.items():
        assert trace._spool._end == 0 and len(trace._spool.chunks()) == 5
        own = alone[name]
        assert trace.digest() == own.digest() and len(trace) == len(own) == 11
        assert [trace[i] for i in (0, 3, 9, -1)] == [own[i] for i in (0, 3, 9, -1)]
        assert trace.kinds() == own.kinds() and trace.format() == own.format()
        assert trace.count("a") == 4 and trace.select("b", i=4) == own.select("b", i=4)


@pytest.mark.parametrize("kinds", [None, ["a", "c*"]])
def test_a_teed_trace_keeps_its_own_records_and_adds_them_to_the_shared_one(kinds):
    # a cluster's node: its own trace (maybe filtered) and the cluster's, both spilling
    shared = Trace(node="cluster", memory_rows=3)
    nodes = {name: Trace(node=name, kinds=kinds, memory_rows=2) for name in ("n1", "n2")}
    for trace in nodes.values():
        trace.tee(shared)
    for i in range(10):
        for name, trace in nodes.items():
            trace.add(float(i), "worker1", "abc"[i % 3], {"i": i, "node": name})
    kept = [(float(i), name, "abc"[i % 3]) for i in range(10) for name in nodes
            if kinds is None or i % 3 != 1]
    assert [(r.time, r.node, r.kind) for r in shared] == kept
    for name, trace in nodes.items():
        assert [(r.time, r.node, r.kind) for r in trace] == [k for k in kept if k[1] == name]
        assert [r.fields for r in trace] == [r.fields for r in shared if r.node == name]
    assert shared.kinds() == ({"a": 8, "b": 6, "c": 6} if kinds is None else {"a": 8, "c": 6})


# -- the optional C accelerator of Trace.add (_core/_ctrace.c) -------------------------
from simuwsgi._core import trace as trace_module  # noqa: E402

_C_TRACE = trace_module._c_trace


class _PyTrace(Trace):
    """The pure-Python ``Trace.add`` (a subclass is not replaced by the C class)."""


def test_the_trace_accelerator_is_built_here():
    # The machines this project runs on have a compiler: a silent fallback would hide
    # a broken build (and slow every record). SIMUWSGI_PURE_PYTHON=1 runs the Python add.
    import os

    assert (_C_TRACE is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    assert type(Trace()) is (Trace if _C_TRACE is None else _C_TRACE)
    assert type(_PyTrace()).add is Trace.add


def test_pure_python_trace_is_forced_by_the_environment_and_a_stale_build_falls_back():
    import os
    import subprocess
    import sys

    code = ("from simuwsgi._core.trace import Trace, _c_trace\n"
            "print(_c_trace is None, type(Trace()).__name__)")
    stale = ("import sys, types\n"
             "sys.modules['simuwsgi._core._ctrace'] = types.ModuleType('_ctrace')\n")
    older = stale + "sys.modules['simuwsgi._core._ctrace'].SpoolCore = object\n" + \
        "sys.modules['simuwsgi._core._ctrace'].TraceCore = object\n"  # before the codec
    for env, prelude in ((dict(os.environ, SIMUWSGI_PURE_PYTHON="1"), ""), (None, stale),
                         (None, older)):
        out = subprocess.run([sys.executable, "-c", prelude + code], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["True", "Trace"]


class _Thing:
    def __repr__(self) -> str:
        return "<thing>"


_values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.floats(allow_nan=False), st.text(max_size=4), st.binary(max_size=4),
                    st.tuples(st.integers(-9, 9), st.text(max_size=2)),
                    st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-9, 9), max_size=2),
                    st.just(_Thing()))
_records = st.lists(st.tuples(
    st.one_of(st.floats(0, 1e6), st.integers(0, 10**6)),
    st.sampled_from(["master", "worker1", "mule1"]),
    st.sampled_from(["a", "ab", "b.x", "b.y", "c", ""]),
    st.dictionaries(st.one_of(st.sampled_from(["num", "n", "x"]), st.integers(0, 3)),
                    _values, max_size=3)), max_size=40)


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
@settings(max_examples=150, deadline=None)
@given(records=_records, limit=st.integers(1, 9),
       kinds=st.one_of(st.none(), st.lists(st.sampled_from(["a", "b.*", "a*", "", "*", "c"]),
                                           max_size=3)),
       teed=st.sampled_from([None, "cluster", "n1"]))
def test_c_and_python_add_give_the_same_records_files_and_digests(records, limit, kinds,
                                                                  teed, tmp_path_factory):
    """Random record sequences, spill sizes, kinds filters and tees (a cluster's node,
    whose spilled rows are read back from the shared trace): the C ``add`` and the
    Python one leave the same rows, chunks, saved bytes and digests."""
    out = tmp_path_factory.mktemp("traces")
    results = []
    for make in (_C_TRACE, _PyTrace):
        with _chunk_codec(make is _C_TRACE):
            results.append(_record(make, out, records, limit, kinds, teed))
    assert results[0] == results[1]


@contextlib.contextmanager
def _chunk_codec(accelerated):
    """Spill chunks and encode rows for files and digests with the build's C functions
    (``_ctrace.pack``, ``_ctrace.packed``) or with marshal and trace.py's ``_packed``."""
    from simuwsgi._core import _spool

    saved = _spool._dumps, _spool._loads, trace_module._ctrace
    if not accelerated:
        _spool._dumps, _spool._loads = marshal.dumps, marshal.loads
        trace_module._ctrace = None
    try:
        yield
    finally:
        _spool._dumps, _spool._loads, trace_module._ctrace = saved


def _record(make, out, records, limit, kinds, teed):
    """What a trace made by ``make`` shows after ``records`` (see the test above)."""
    trace = make(node="n1", kinds=kinds, memory_rows=limit)
    shared = make(node=teed, memory_rows=limit + 1) if teed else None
    if shared is not None:
        trace.tee(shared)
    for time, process, kind, fields in records:
        trace.add(time, process, kind, dict(fields))
        if shared is not None:
            shared.add(time, "cluster", kind, {"own": 1})
    trace.save(out / f"{make.__name__}.msgpack")
    return [
        (out / f"{make.__name__}.msgpack").read_bytes(), trace.digest(), trace.rows(),
        trace.kinds(), len(trace), len(trace._spool.tail), trace._spool.chunks(),
        trace.format(), [trace.count(k) for k in ("a", "b.*", None)],
        [_typed(row) for row in trace._spool], shared.dumps() if shared else None]


def _typed(value):
    """``value`` with the type of every part spelled out (``1 == 1.0 == True``)."""
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, [_typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(_typed(k), _typed(v)) for k, v in value.items()])
    return (type(value).__name__, repr(value))


_nested = st.recursive(
    _values | st.floats() | st.text() | st.integers() | st.sets(st.integers(), max_size=2),
    lambda inner: st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.floats(allow_nan=False)),
                      inner, max_size=3),
    max_leaves=12)


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
@settings(max_examples=300, deadline=None)
@given(value=_nested)
def test_the_chunk_codec_reads_back_what_marshal_reads_back(value):
    from simuwsgi._core import _ctrace

    def read_back(dumps, loads):
        try:
            return _typed(loads(dumps(value)))
        except ValueError as exc:  # an object neither can write
            return str(exc)

    assert read_back(_ctrace.pack, _ctrace.unpack) == read_back(marshal.dumps, marshal.loads)


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
def test_the_chunk_codec_refuses_what_marshal_refuses_and_damaged_chunks():
    from simuwsgi._core import _ctrace

    deep: list = []
    for _ in range(500):  # deeper than the codec's own nesting: marshal writes the rest
        deep = [deep]
    assert _ctrace.unpack(_ctrace.pack(deep)) == deep
    with pytest.raises(ValueError, match="unmarshallable"):
        _ctrace.pack([1, _Thing()])
    packed = _ctrace.pack([(1.5, "a", "a", b"x", 2**70)])
    for damaged in (packed[:-1], packed + b"\0", b"\x63", b"\x07\x00"):
        with pytest.raises(ValueError, match="spool chunk"):
            _ctrace.unpack(damaged)


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
def test_c_and_python_add_refuse_the_same_calls():
    for make in (_C_TRACE, _PyTrace):
        with pytest.raises(TypeError):
            make().add(1.0, "master", "a")
        with pytest.raises(TypeError):  # unhashable kind under a filter
            make(kinds=["a*"]).add(1.0, "master", ["a"], {})
        with pytest.raises(AttributeError):  # a kind that is not a string
            make(kinds=["a*"]).add(1.0, "master", 3, {})


def test_a_simulation_gives_the_same_trace_with_the_c_and_the_python_add(app_dir,
                                                                         monkeypatch):
    """Timers to two workers and requests, spilling: the same saved bytes both ways."""
    _spilling(monkeypatch, 50)
    traces = []
    for accelerator in (_C_TRACE, None):
        monkeypatch.setattr(trace_module, "_c_trace", accelerator)
        trace, _ = _run(app_dir)
        assert (type(trace) is _C_TRACE) == (accelerator is not None)
        traces.append((trace.dumps(), trace.digest(), trace.kinds()))
    assert traces[0] == traces[1]


_simple = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1),
                    st.sampled_from([-2**63, -2**31 - 1, -2**31, -2**15 - 1, -2**15, -129,
                                     -128, -33, -32, 127, 128, 255, 256, 2**16 - 1, 2**16,
                                     2**32 - 1, 2**32, 2**64 - 1]),
                    st.floats(), st.text(max_size=40), st.binary(max_size=40),
                    st.sampled_from([n * "s" for n in (31, 32, 255, 256, 2**16 - 1, 2**16)]),
                    st.sampled_from([n * b"b" for n in (255, 256, 2**16 - 1, 2**16)]),
                    st.just("\udc80"), st.just(_Thing()), st.integers(2**64, 2**65))
_times = st.one_of(st.floats(), st.floats(-1e-5, 1e-5), st.floats(0, 3.2e7),
                   st.integers(-10**13, 10**13).map(lambda n: n / 10**6 + 5e-7),
                   st.integers(-10**13, 10**13).map(lambda n: n / 10**6 - 5e-7),
                   st.integers(-10**6, 10**6))


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
@settings(max_examples=400, deadline=None)
@given(rows=st.lists(st.tuples(
    _times, st.sampled_from(["node0", "ü" * 40]), st.text(max_size=3), st.just("kind"),
    st.dictionaries(st.one_of(st.text(max_size=3), st.integers(0, 3)), _simple,
                    max_size=20)), max_size=6))
def test_the_c_encoding_of_rows_is_the_python_one(rows):
    """``_ctrace.packed`` writes what ``_packed`` writes (times rounded to the
    microsecond, near ties and signed zeros included; every int, string and map form),
    or raises what it raises."""
    from simuwsgi._core import _ctrace

    def encoded(pack):
        try:
            return pack(rows)
        except (OverflowError, UnicodeEncodeError) as exc:
            return type(exc).__name__

    assert encoded(lambda r: _ctrace.packed(r, trace_module._packed)) == \
        encoded(trace_module._packed)


@pytest.mark.parametrize("accelerated", [True, False])
def test_a_name_that_is_not_utf8_is_traced_saved_and_digested_as_its_bytes(accelerated,
                                                                            tmp_path):
    """A file name the OS handed over with a byte that is not UTF-8 (a surrogate escape)
    is encoded as those bytes: no error from the digest, the same string read back."""
    name = os.fsdecode(b"uwsgi_spoolfile_\xff")
    with _chunk_codec(accelerated):
        trace = Trace(memory_rows=2)
        for i in range(5):
            trace.add(float(i), "spooler", "spool.run", {"file": name, "i": i})
        plain = Trace()
        for i in range(5):
            plain.add(float(i), "spooler", "spool.run", {"file": "uwsgi_spoolfile_?", "i": i})
        trace.save(tmp_path / "t.msgpack")
        loaded = Trace.load(tmp_path / "t.msgpack")
        assert trace.digest() == loaded.digest() != plain.digest()
        assert [row[4]["file"] for row in loaded.rows()] == [name] * 5
        assert b"uwsgi_spoolfile_\xff" in trace.dumps()


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
@settings(max_examples=200, deadline=None)
@given(start=st.floats(), steps=st.lists(st.one_of(
    st.integers(-3, 2**54), st.floats(allow_nan=True, allow_infinity=True)), max_size=12))
def test_the_chunk_codec_writes_a_time_as_its_step_from_the_one_before(start, steps):
    """A float that is the one before plus a whole number (the instants of a per-minute
    cron) is written as that step (FLOAT_STEP: 2 bytes instead of 9); every float, stepped
    or not, reads back bit for bit."""
    from simuwsgi._core import _ctrace

    values = [start]
    for step in steps:
        values.append(values[-1] + step if isinstance(step, int) else step)
    back = _ctrace.unpack(_ctrace.pack(values))
    assert [struct.pack("<d", v) for v in back] == [struct.pack("<d", v) for v in values]
    minutes = [1.0 + 60 * i for i in range(50)]
    assert _ctrace.pack(minutes)[11:14] == b"\x0e\x3c\x0e"  # 60 later, twice
    assert len(_ctrace.pack(minutes)) < 2 + 9 + 49 * 2 + 2


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
def test_the_chunk_codec_writes_a_string_as_an_edit_of_the_one_before():
    """Log lines repeat the line before but for a date and a counter: the codec writes
    the bytes that differ (a few instead of ~60), and reads back the same strings, also
    when the edit cuts through a UTF-8 sequence or a string between is not UTF-8."""
    from simuwsgi._core import _ctrace

    lines = [(60.0 * i, "master", f"Thu Jan  1 00:{i:02d}:01 2026 - [uwsgi-cron] routing "
              f"signal 1") for i in range(60)]
    assert _ctrace.unpack(_ctrace.pack(lines)) == lines
    assert len(_ctrace.pack(lines)) < 60 * 25 < len(marshal.dumps(lines)) / 2
    texts = ["héllo wörld ab", "héllo wörld ày", "h\udcffllo", "héllo wörld àz", "",
             "aaaa", "aaaaaaaa", "aaaa", "aaaa" + "é", "é" + "aaaa", "aaaa"]
    assert _typed(_ctrace.unpack(_ctrace.pack(texts))) == _typed(texts)
    edited = _ctrace.pack(["abcdefgh", "abcdXfgh"])
    assert edited.endswith(b"\x0d\x04\x03\x01X")  # STR_EDIT: 4 kept, 3 kept, 1 new: X
    for damaged in (edited[:-1], edited.replace(b"\x0d\x04\x03", b"\x0d\x09\x03"),
                    edited.replace(b"\x0d\x04\x03", b"\x0d\x04\x05"),
                    b"\x0a\x01\x0d\x00\x00\x01x"):  # an edit of no string
        with pytest.raises(ValueError, match="spool chunk"):
            _ctrace.unpack(damaged)


@pytest.mark.skipif(_C_TRACE is None, reason="the C accelerator is off or not built")
@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.one_of(
    st.tuples(st.floats(0, 9), st.just("n"), st.just("p"), st.sampled_from(["a", "b.x", ""]),
              st.just({})),
    st.lists(st.sampled_from(["a", "c"]), min_size=4, max_size=5)), max_size=30))
def test_c_and_python_count_the_kinds_of_a_chunk_alike(rows):
    from simuwsgi._core import _ctrace

    # past the 64 kinds the C count tells apart by identity; equal kinds that are
    # different string objects
    many = [(0, "n", "p", str(i % 100)) for i in range(300)] + [(0, "n", "p", "a" + str(i))
                                                               for i in (1, 1)]
    for chunk in (rows, many, many[250:] + rows):
        counts = _ctrace.count_kinds(chunk)
        assert counts == trace_module._py_count_kinds(chunk)
        assert list(counts) == list(trace_module._py_count_kinds(chunk))
    for bad in ([(1.0, "n")], [None]):
        with pytest.raises((IndexError, TypeError)):
            _ctrace.count_kinds(bad)
        with pytest.raises((IndexError, TypeError)):
            trace_module._py_count_kinds(bad)
