"""The queue (simuwsgi/subsystems/queue.py), semantics.md §8."""
from __future__ import annotations

import pytest

import _diff
from _sim import b, run, start


def test_semantics_md_trace(tmp_path):
    code = ("u = uwsgi\nout = []\nout.append(u.queue_pop()); out.append(u.queue_pop())\n"
            "out.append(u.queue_slot())\n"
            "for m in (b'a', b'b', b'c'): u.queue_push(m)\n"
            "out.append(u.queue_slot()); u.queue_push(b'X'); out.append(u.queue_pop())\n"
            "out.append(u.queue_slot()); out.append(u.queue_last(3))")
    with start(tmp_path, "--queue", "4", "--queue-blocksize", "4096") as sim:
        assert run(sim, code) == [None, None, 2, 1, b(b"X"), 1, [b(b"c"), b(b"b"), b(b"a")]]


def test_pull_stalls_on_a_hole_and_push_overwrites(tmp_path):
    with start(tmp_path, "--queue", "2", "--queue-blocksize", "4096") as sim:
        code = ("u = uwsgi\nu.queue_push(b'1'); u.queue_push(b'2'); u.queue_push(b'3')\n"
                "out = [u.queue_get(0), u.queue_pull(), u.queue_set(1, b'x'), u.queue_pop(),"
                " u.queue_pull(), u.queue_pull_slot()]")
        # push 3 overwrote slot 0; pull takes it; pop takes slot 0 (now empty) -> None
        assert run(sim, code) == [b(b"3"), b(b"3"), True, None, b(b"x"), 0]


def test_queue_set_overflow_runs_into_the_next_slot(tmp_path):
    with start(tmp_path, "--queue", "2", "--queue-blocksize", "4096") as sim:
        out = run(sim, "u = uwsgi\nmsg = (5).to_bytes(8, 'little') * 514\n"
                       "out = [u.queue_set(0, msg), u.queue_set(0, msg + b'!'), u.queue_get(1)]")
        assert out[0] is True and out[1] is None
        assert out[2] == b((5).to_bytes(8, "little")[:5])


def test_queue_last_negative_kills_the_caller(tmp_path):
    with start(tmp_path, "--queue", "2", "--queue-blocksize", "4096") as sim:
        r = sim.request("POST", "/", body=b"uwsgi.queue_last(-1)")
        assert r.status is None
        assert any("tried memory allocation" in line for line in sim.log)


def test_bad_geometry_and_absence(tmp_path):
    from simuwsgi import ConfigError

    with pytest.raises(ConfigError, match="multiple of memory page size"):
        start(tmp_path, "--queue", "3", "--queue-blocksize", "1000")
    with start(tmp_path) as sim:
        assert not hasattr(sim.uwsgi, "queue_push") and not hasattr(sim.uwsgi, "queue_size")


@pytest.mark.real
def test_queue_matches_real_uwsgi():
    _diff.compare("/queue")
