"""The kernel: ordering, clock, processes, determinism."""

from __future__ import annotations

import pytest

from simuwsgi.kernel import Kernel, Process


def test_events_run_in_time_then_sequence_order():
    k = Kernel()
    seen = []
    k.schedule(2.0, seen.append, "c")
    k.schedule(1.0, seen.append, "a")
    k.schedule(1.0, seen.append, "b")
    k.schedule(0.0, seen.append, "first")
    k.run_until(10)
    assert seen == ["first", "a", "b", "c"]
    assert k.now == 10


def test_priority_breaks_ties_before_sequence():
    k = Kernel()
    seen = []
    k.schedule(1.0, seen.append, "normal")
    k.schedule(1.0, seen.append, "urgent", priority=0)
    k.run_until(1)
    assert seen == ["urgent", "normal"]


def test_cancelled_timer_does_not_run():
    k = Kernel()
    seen = []
    t = k.schedule(1.0, seen.append, "x")
    assert t.active
    t.cancel()
    assert not t.active
    k.run_until(5)
    assert seen == []
    assert k.peek() is None


def test_clock_jumps_to_next_event_and_stops_at_target():
    k = Kernel()
    times = []
    k.schedule(100.0, lambda: times.append(k.now))
    k.run_until(50)
    assert k.now == 50 and times == []
    assert k.step()
    assert times == [100.0]
    assert not k.step()


def test_run_until_stop_predicate_leaves_clock_at_event():
    k = Kernel()
    box = []
    k.schedule(3.0, box.append, 1)
    k.schedule(7.0, box.append, 2)
    assert k.run_until(100, stop=lambda: bool(box)) is True
    assert k.now == 3.0


def test_processes_park_and_wake_with_values():
    k = Kernel()
    log = []

    def body():
        log.append(("start", k.now, k.current.name))
        value = k.park("waiting")
        log.append(("woke", k.now, value))

    p = Process(k, "p1", 42, body)
    k.start(p)
    assert p.wait_reason == "waiting"
    assert k.current is None
    k.wake(p, "hello", delay=5)
    k.run_until(10)
    assert log == [("start", 0.0, "p1"), ("woke", 5.0, "hello")]
    assert not p.alive


def test_park_outside_a_process_is_an_error():
    from simuwsgi import SimulationError

    with pytest.raises(SimulationError, match="outside a virtual process"):
        Kernel().park()


def test_seeded_rng_is_per_kernel_and_reproducible():
    a, b = Kernel(seed=7), Kernel(seed=7)
    assert [a.rng.random() for _ in range(5)] == [b.rng.random() for _ in range(5)]
    assert Kernel(seed=8).rng.random() != Kernel(seed=7).rng.random()


def test_discarded_process_never_runs_again_and_is_finalised_on_close():
    k = Kernel()
    ran = []

    def body():
        try:
            k.park()
            ran.append("resumed")
        finally:
            ran.append("finally")

    p = Process(k, "p", 1, body)
    k.start(p)
    k.discard(p)
    k.wake(p, None)
    k.run_until(1)
    assert ran == []
    k.close()
    assert ran == ["finally"]
