"""Sharedareas (simuwsgi/subsystems/sharedarea.py)."""
from __future__ import annotations

import pytest

import _diff
import simuwsgi
from _sim import b, run, start


def test_ids_sizes_and_keyval(tmp_path):
    with start(tmp_path, "--sharedarea", "2", "--sharedarea", "size=5000",
               "--py-sharedarea", "10", "--sharedarea", "pages=1") as sim:
        sa = sim.inst.subsystems["sharedarea"]
        assert [a.max_pos + 1 for a in sa.areas] == [8192, 8192, 4096, 10]
        out = run(sim, "uwsgi.sharedarea_write(3, 0, b'hi')\n"
                       "out = [bytes(uwsgi.sharedarea_object(3)[:2]), "
                       "uwsgi.sharedarea_read(3, 8), len(uwsgi.sharedarea_memoryview(3))]")
        assert out == [b(b"hi"), b(bytes(2)), 10]
        assert run(sim, "uwsgi.sharedarea_object(0)")[1] == "SystemError"


def test_shared_between_workers_and_memoryview_writes(tmp_path):
    with start(tmp_path, "--processes", "2", "--sharedarea", "1") as sim:
        run(sim, "mv = uwsgi.sharedarea_memoryview(0)\nmv[0:3] = b'abc'\n"
                 "uwsgi.sharedarea_inc64(0, 8, 5)")
        sim.kill("worker1")
        sim.kill("worker2")
        assert run(sim, "out = [uwsgi.sharedarea_read(0, 0, 3), uwsgi.sharedarea_read64(0, 8)]") \
            == [b(b"abc"), 5]


def test_inc64_pos_plus_4_bug_keeps_low_bytes(tmp_path):
    with start(tmp_path, "--sharedarea", "1") as sim:
        out = run(sim, "uwsgi.sharedarea_inc64(0, 4092, 0x0102030405)\n"
                       "out = uwsgi.sharedarea_read(0, 4092)")
        assert out == b(bytes.fromhex("05040302"))


def test_absent_without_option_and_file_backed_refused(tmp_path):
    with start(tmp_path) as sim:
        assert not hasattr(sim.uwsgi, "sharedarea_read")
    with pytest.raises(simuwsgi.NotSimulatedError):
        start(tmp_path, "--sharedarea", "file=/tmp/x,size=10")


def test_wlock_blocks_other_readers(tmp_path):
    hold = b"import time\nuwsgi.sharedarea_wlock(0)\ntime.sleep(3)\nuwsgi.sharedarea_unlock(0)"
    take = b"import time\nt=time.time()\nuwsgi.sharedarea_rlock(0)\nuwsgi.sharedarea_unlock(0)\nout=time.time()-t"
    with start(tmp_path, "--processes", "2", "--sharedarea", "1") as sim:
        h = sim.submit("POST", "/", body=hold)
        sim.advance(1)
        w = sim.submit("POST", "/", body=take)
        sim.wait([h, w])
        assert w.response.json() == pytest.approx(2.0)


@pytest.mark.real
def test_sharedarea_matches_real_uwsgi():
    _diff.compare("/sharedarea")
