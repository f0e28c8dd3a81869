"""The trace: keeping only some kinds for long runs (``trace_kinds``)."""

from __future__ import annotations

import hashlib
import textwrap

import msgpack
import pytest

from simuwsgi import Simulation
from simuwsgi.trace import Trace

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
