"""User locks (simuwsgi/subsystems/locks.py): blocking, FIFO, deadlocks, robust-mutex recovery."""
from __future__ import annotations

import pytest

import _diff
from _sim import run, start
from simuwsgi import DeadlockError

HOLD = "import time\nuwsgi.lock({n})\ntime.sleep({secs})\nuwsgi.unlock({n})\nout = uwsgi.worker_id()"
TAKE = "import time\nt0 = time.time()\nuwsgi.lock({n})\nout = [uwsgi.worker_id(), time.time() - t0]\nuwsgi.unlock({n})"


def test_lock_blocks_other_processes_until_unlock(tmp_path):
    with start(tmp_path, "--processes", "2", "--locks", "1") as sim:
        holder = sim.submit("POST", "/", body=HOLD.format(n=1, secs=5).encode())
        sim.advance(1)
        waiter = sim.submit("POST", "/", body=TAKE.format(n=1).encode())
        sim.wait([holder, waiter])
        wid, waited = waiter.response.json()
        assert waited == pytest.approx(4.0)
        assert wid != holder.response.json()
        assert sim.trace.count("lock.wait") == 1


def test_waiters_are_served_fifo(tmp_path):
    with start(tmp_path, "--processes", "4") as sim:
        holder = sim.submit("POST", "/", body=HOLD.format(n=0, secs=3).encode())
        sim.advance(0.5)
        first = sim.submit("POST", "/", body=TAKE.format(n=0).encode())
        sim.advance(0.5)
        second = sim.submit("POST", "/", body=TAKE.format(n=0).encode())
        sim.wait([holder, first, second])
        assert first.response.json()[1] == pytest.approx(2.5)
        assert second.response.json()[1] == pytest.approx(2.0)
        acquires = [r.process for r in sim.trace.select("lock.acquire")]
        assert len(acquires) == 3


def test_second_lock_by_the_holder_is_reported_as_a_deadlock(tmp_path):
    with start(tmp_path) as sim:
        with pytest.raises(DeadlockError, match=r"lock 0 \(held by itself: deadlock\)"):
            sim.request("POST", "/", body=b"uwsgi.lock()\nuwsgi.lock()")


def test_harakiri_ends_a_self_deadlock_and_the_lock_is_recovered(tmp_path):
    with start(tmp_path, "--harakiri", "2") as sim:
        r = sim.request("POST", "/", body=b"uwsgi.lock()\nuwsgi.lock()")
        assert r.status is None
        sim.advance(1)
        assert run(sim, "out = uwsgi.is_locked()") is True     # the dead holder still has it
        # is_locked() took the dead owner's mutex through trylock: this lock() hangs
        # (until harakiri again)
        assert sim.request("POST", "/", body=b"uwsgi.lock()").status is None
        assert sim.trace.count("harakiri") == 2
        assert sim.trace.count("lock.recovered") == 0


def test_killed_holder_lock_recovered_by_next_lock(tmp_path):
    with start(tmp_path, "--processes", "2") as sim:
        sim.submit("POST", "/", body=HOLD.format(n=0, secs=100).encode())
        sim.advance(1)
        holder = next(w for w in sim.inst.workers.values() if w.request is not None)
        sim.kill(holder.name)
        out = run(sim, "uwsgi.lock()\nout = uwsgi.is_locked()\nuwsgi.unlock()")
        assert out is True
        assert "[deadlock-detector] a process holding a robust mutex died. recovering..." in sim.log


def test_waiter_recovers_when_holder_dies(tmp_path):
    with start(tmp_path, "--processes", "2") as sim:
        sim.submit("POST", "/", body=HOLD.format(n=0, secs=100).encode())
        sim.advance(1)
        waiter = sim.submit("POST", "/", body=TAKE.format(n=0).encode())
        sim.advance(1)
        holder = next(w for w in sim.inst.workers.values()
                      if w.request is not None and w.id != waiter.worker)
        sim.kill(holder.name)
        sim.wait(waiter)
        assert waiter.response.json()[1] == pytest.approx(1.0)
        assert sim.trace.count("lock.recovered") == 1


def test_unlock_by_non_holder_only_clears_the_pid(tmp_path):
    with start(tmp_path, "--processes", "2") as sim:
        sim.submit("POST", "/", body=HOLD.format(n=0, secs=10).encode())
        sim.advance(1)
        assert run(sim, "out = uwsgi.is_locked()") is True
        assert run(sim, "uwsgi.unlock()\nout = uwsgi.is_locked()") is False
        locks = sim.inst.subsystems["locks"]
        assert locks.locks[0].holder is not None       # the mutex is still held


def test_lock_numbers_and_master_import_time(tmp_path):
    extra = "\nuwsgi.lock(3)\nIMPORT = uwsgi.is_locked(3)\nuwsgi.unlock(3)\n"
    with start(tmp_path, "--locks", "3", extra=extra) as sim:
        assert run(sim, "import sys\nout = [m.IMPORT for m in sys.modules.values() if hasattr(m, 'IMPORT') and hasattr(m, 'EXEC_MARK')]") == [True]
        assert run(sim, "out = [uwsgi.is_locked(3)]") == [False]
        assert run(sim, "uwsgi.lock(4)") == ["exc", "ValueError", "Invalid lock number"]


def test_spooler_cannot_lock(tmp_path):
    with start(tmp_path) as sim:
        from simuwsgi.server.processes import Spooler

        locks = sim.inst.subsystems["locks"]
        fake = Spooler.__new__(Spooler)
        sim.kernel.current = fake
        try:
            for fn in (sim.uwsgi.lock, sim.uwsgi.unlock, sim.uwsgi.is_locked):
                with pytest.raises(ValueError, match="The spooler cannot lock/unlock resources"):
                    fn("not even parsed")
        finally:
            sim.kernel.current = None
        assert locks.count == 0


@pytest.mark.real
def test_locks_match_real_uwsgi():
    _diff.compare("/locks")
