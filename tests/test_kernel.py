"""The kernel: ordering, clock, processes, determinism."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simuwsgi._core import kernel as kernel_module
from simuwsgi._core.kernel import Kernel, Process

_C_KERNEL = kernel_module._c_kernel


@pytest.fixture(autouse=True, scope="module", params=["C kernel", "Python kernel"])
def kernel_kind(request):
    """Every test of this module runs on the C kernel (``_ckernel.c``) and on its
    pure-Python twin: they must not differ in anything a test can see."""
    kernel_module._c_kernel = _C_KERNEL if request.param == "C kernel" else None
    yield request.param
    kernel_module._c_kernel = _C_KERNEL


def test_the_kernel_accelerator_is_built_here():
    # The machines this project runs on have a compiler: a silent fallback would hide
    # a broken build (and slow the kernel). SIMUWSGI_PURE_PYTHON=1 runs the whole suite
    # on the Python kernel.
    import os

    assert (_C_KERNEL is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    if _C_KERNEL is not None:  # and it is this source's build, not a stale one
        in_c = {name for name in vars(kernel_module._ckernel.KernelCore)
                if not name.startswith("__") and callable(getattr(Kernel, name, None))}
        assert in_c == {"_run_events", "sleep", "post", "post_at", "call_soon", "wake",
                        "park", "resume", "_hand_over", "_enter"}


def test_pure_python_is_forced_by_the_environment():
    import os
    import subprocess
    import sys

    code = "from simuwsgi._core import kernel; print(kernel._c_kernel is None)"
    env = dict(os.environ, SIMUWSGI_PURE_PYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "True"


def test_an_event_that_raises_leaves_the_kernel_as_the_loop_left_it():
    k = Kernel()
    seen = []

    def boom() -> None:
        raise ValueError("boom")

    def proc_body() -> None:
        seen.append(("ran", k.now))
        raise KeyError("in a process")

    k.post(1.0, seen.append, "a")
    k.post(2.0, boom)
    k.post(3.0, seen.append, "b")
    with pytest.raises(ValueError, match="boom"):
        k.run_until(10)
    assert (seen, k.now, k.events_run) == (["a"], 2.0, 2)
    p = Process(k, "p", 1, proc_body)
    k.wake(p)  # a resume by the loop: the hand-over flag is set around it
    with pytest.raises(KeyError):
        k.run_until(10)
    assert k._may_hand_over is False and seen[-1] == ("ran", 2.0)
    assert k.run_until(10) is False and seen[-1] == "b" and k.now == 10
    assert k.events_run == 4


def test_nested_run_until_and_stopping():
    k = Kernel()
    seen = []

    def outer_event() -> None:
        k.post(0.5, seen.append, "inner")
        assert k.run_until(k.now + 1) is False  # an event may run the loop itself
        seen.append(("back", k.now))
        k.stopping = True

    k.post(1.0, outer_event)
    k.post(5.0, seen.append, "later")
    assert k.run_until(10) is True
    assert seen == ["inner", ("back", 2.0)] and k.now == 2.0 and not k.stopping
    assert k.run_until(10) is False and seen[-1] == "later"


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


# -- direct hand-over between processes ---------------------------------------------------


def _ping_pong_program(k: Kernel, log: list, steps: list[tuple[int, int, float]]) -> None:
    """Three processes that wake each other (and schedule plain events) per ``steps``.

    ``steps[i] = (target, kind, delay)``: at its i-th turn a process wakes process
    ``target`` (kind 0), schedules a plain event that wakes it (kind 1) or resumes it
    from a plain event (kind 2), ``delay`` seconds on; then parks.
    """
    procs: list[Process] = []
    turn = iter(range(len(steps)))

    def body(index: int) -> None:
        while True:
            value = k.park(f"p{index}")
            log.append((k.now, index, value, k.current.name))
            i = next(turn, None)
            if i is None:
                continue
            target, kind, delay = steps[i]
            proc = procs[target]
            if kind == 0:
                k.wake(proc, i, delay=delay)
            elif kind == 1:
                k.schedule(delay, lambda p=proc, v=i: (log.append((k.now, "event", v)),
                                                     k.wake(p, v)))
            else:
                k.schedule(delay, lambda p=proc, v=i: (k.resume(p, v),
                                                     log.append((k.now, "after", v))))

    for index in range(3):
        procs.append(Process(k, f"p{index}", index + 1, lambda index=index: body(index)))
        k.start(procs[-1])
    k.wake(procs[0], "go")


def _run_program(steps: list[tuple[int, int, float]], hand_over: bool,
                 stop_after: int | None = None) -> tuple[list, int, float]:
    k = Kernel()
    if not hand_over:
        k._hand_over = lambda: None  # type: ignore[method-assign]
    log: list = []
    _ping_pong_program(k, log, steps)
    stop = (lambda: len(log) >= stop_after) if stop_after is not None else None
    k.run_until(10.0, stop=stop)
    k.close()
    return log, k.events_run, k.now


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2),
                          st.sampled_from([0.0, 0.0, 0.5, 20.0])), max_size=40),
       st.one_of(st.none(), st.integers(1, 30)))
@settings(max_examples=200, deadline=None)
def test_hand_over_runs_exactly_what_the_hub_would(steps, stop_after):
    """Direct process-to-process switches change no order, time, count or stop point."""
    assert _run_program(steps, True, stop_after) == _run_program(steps, False, stop_after)


def test_hand_over_happens_and_halves_hub_switches():
    k = Kernel()
    handed = []
    real = k._hand_over

    def counting():
        out = real()
        handed.append(out is not None)
        return out

    k._hand_over = counting  # type: ignore[method-assign]
    log: list = []
    _ping_pong_program(k, log, [(1, 0, 0.0), (2, 0, 0.0), (0, 0, 0.0), (1, 0, 0.0)])
    k.run_until(1.0)
    assert [entry[1] for entry in log] == [0, 1, 2, 0, 1]
    assert handed == [True, True, True, True, False]  # the last park has no successor


def test_hand_over_stops_where_the_loop_would():
    """The stop predicate is checked before handing over: the next process waits."""
    steps = [(1, 0, 0.0), (2, 0, 0.0)]
    log, events, _now = _run_program(steps, True, stop_after=2)
    assert [entry[1] for entry in log] == [0, 1]
    assert events == 2


def test_a_resume_inside_an_event_does_not_hand_over():
    """A process resumed by an event's code returns to that event before anyone else."""
    log, _events, _now = _run_program([(1, 2, 0.0), (2, 0, 0.0)], True)
    # p1 is resumed from the event; it wakes p2 and parks: the event finishes first.
    assert [entry[1] for entry in log] == [0, 1, "after", 2]


def test_a_process_that_ends_after_a_hand_over_returns_control_to_the_loop():
    k = Kernel()
    log = []
    procs = {}

    def first():
        k.park()
        log.append("first woke")
        k.wake(procs["second"], "go")
        k.park()  # hands over to second
        log.append("first again")

    def second():
        value = k.park()
        log.append(f"second got {value}, ends")

    procs["first"] = Process(k, "first", 1, first)
    procs["second"] = Process(k, "second", 2, second)
    for p in procs.values():
        k.start(p)
    k.wake(procs["first"])
    k.schedule(1.0, log.append, "event at 1")
    k.schedule(2.0, k.wake, procs["first"])
    k.run_until(3.0)
    assert log == ["first woke", "second got go, ends", "event at 1", "first again"]
    assert not procs["second"].alive and not procs["first"].alive
    assert k.current is None and k.now == 3.0


def test_a_hundred_thousand_processes_woken_at_one_instant():
    # Each process that parks hands over to the next one directly -- but never to one
    # that has not started: a greenlet starts at the depth of the one that switches to
    # it, and 250 chained starts used to raise RecursionError.
    k = Kernel()
    woke = []

    def body() -> None:
        k.park("x")
        woke.append(1)

    procs = [Process(k, f"p{i}", i, body) for i in range(100_000)]
    for p in procs:
        k.wake(p)
    k.run_until(0)
    assert len(woke) == 0 and all(p.greenlet for p in procs)  # all started and parked
    for p in procs:
        k.wake(p)
    k.run_until(1)
    assert len(woke) == 100_000


def _closed_kernel_with_parked_processes():
    k = Kernel()
    unwound = []

    def body() -> None:
        try:
            k.park("forever")
        finally:
            unwound.append(k.current.name)

    procs = [Process(k, "a", 1, body), Process(k, "b", 2, body)]
    for p in procs:
        k.start(p)
    Process(k, "never started", 3, body)
    k.discard(procs[1])  # SIGKILLed while parked: unwound all the same
    k.close()
    return weakref.ref(k), unwound, [p.greenlet.dead for p in procs]


def test_close_unwinds_every_parked_process_and_frees_the_kernel():
    ref, unwound, dead = _closed_kernel_with_parked_processes()
    assert unwound == ["a", "b"] and dead == [True, True]
    gc.collect()
    assert ref() is None  # a parked greenlet is invisible to the cycle collector


def test_close_gives_up_on_a_process_that_swallows_its_death():
    k = Kernel()
    tries = []

    def stubborn() -> None:
        while True:
            try:
                k.park("forever")
            except BaseException:  # noqa: BLE001 - a user's bare except
                tries.append(1)

    p = Process(k, "stubborn", 1, stubborn)
    k.start(p)
    k.close()
    assert len(tries) == 3 and not p.alive and k.current is None


def _sleepers(delays: list[list[float]], fused: bool, stop_after: int | None,
              ticks: list[float]) -> tuple[list, int, float]:
    """Processes sleeping the given delays in turn, and callbacks at ``ticks``."""
    k = Kernel()
    log: list = []

    def body(name: str, mine: list[float]) -> None:
        for delay in mine:
            log.append((k.now, name))
            if fused:
                k.sleep(delay)
            else:
                k.wake(k.current, None, delay)
                k.park("sleep")
        log.append((k.now, name, "end"))

    for i, mine in enumerate(delays):
        k.start(Process(k, f"p{i}", i, lambda n=f"p{i}", m=mine: body(n, m)))
    for t in ticks:
        k.post(t, log.append, (t, "tick"))
    stop = None if stop_after is None else (lambda: len(log) >= stop_after)
    k.run_until(5.0, stop)
    k.run_until(100.0)
    return log, k.events_run, k.now


@given(st.lists(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.5, 7.0]), max_size=8),
                max_size=4),
       st.one_of(st.none(), st.integers(1, 20)),
       st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), max_size=3))
@settings(max_examples=200, deadline=None)
def test_sleep_runs_exactly_what_wake_and_park_would(delays, stop_after, ticks):
    assert (_sleepers(delays, True, stop_after, ticks)
            == _sleepers(delays, False, stop_after, ticks))


def test_a_lone_sleeper_does_not_switch():
    import greenlet

    k = Kernel()
    ended = []

    def body() -> None:
        for _ in range(1000):
            k.sleep(1.0)
        ended.append(k.now)

    proc = Process(k, "p", 1, body)
    k.start(proc)
    switches = []
    previous = greenlet.settrace(lambda event, args: switches.append(event))
    try:
        k.run_until(2000.0)
    finally:
        greenlet.settrace(previous)
    assert ended == [1000.0] and k.events_run == 1000
    assert switches == ["switch", "switch"]  # into the process once, and back at its end


def test_sleep_counts_as_a_yield_even_without_a_switch():
    k = Kernel()

    def body() -> None:
        for _ in range(10):
            k.sleep(1.0)

    k.start(Process(k, "p", 1, body))
    k.run_until(100.0)
    assert k.parks == 10  # what the stall watchdog watches


_LOOP_APP = """
import time
import uwsgi
calls = 0
def tick(num):
    global calls
    calls += 1
uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 2)
uwsgi.register_signal(2, "", tick)
uwsgi.add_cron(2, -1, -1, -1, -1, -1)
def application(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(3)  # past --harakiri 2: the worker is killed
    elif environ["PATH_INFO"] == "/nap":
        time.sleep(0.25)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d" % calls]
"""


def _on_both_kernels(run):
    """``run()`` with ``Kernel()`` making the C kernel, then the Python one."""
    before = kernel_module._c_kernel
    try:
        kernel_module._c_kernel = _C_KERNEL
        with_c = run()
        kernel_module._c_kernel = None
        return with_c, run()
    finally:
        kernel_module._c_kernel = before


def test_a_simulation_runs_the_same_on_both_kernels(tmp_path):
    from simuwsgi import Simulation

    (tmp_path / "app.py").write_text(_LOOP_APP)

    def run() -> tuple:
        with Simulation(["--master", "--processes", "3", "--harakiri", "2",
                         "--wsgi-file", "app.py"], app_dir=tmp_path, seed=7) as sim:
            handles = [sim.submit("GET", path, at=0.3 * i)
                       for i, path in enumerate(["/", "/nap", "/slow", "/nap", "/"] * 8)]
            sim.wait(handles)
            sim.advance(600)
            sim.get("/")
            return (sim.trace.digest(), list(sim.log), sim.kernel.events_run, sim.now,
                    [h.response.status for h in handles])

    with_c, pure = _on_both_kernels(run)
    assert with_c == pure
    assert None in with_c[4] and 200 in with_c[4]  # harakiri and answers both happened


_ACTIONS = st.tuples(st.sampled_from(["sleep", "post", "post_at", "call_soon", "wake",
                                      "schedule", "cancel", "park"]),
                     st.sampled_from([0, 0.0, 0.5, 1, 1.0, 2.5]), st.integers(0, 3))


def _mixed_program(programs: list[list[tuple[str, float, int]]], stop_after: int | None):
    """Processes running a random mix of the kernel's calls, with integer and float
    times, ties at one instant, cancelled events and wake-ups carrying values."""
    k = Kernel()
    log: list = []
    procs: list[Process] = []
    timers: list = []

    def body(name: str, actions: list[tuple[str, float, int]]) -> None:
        for what, delay, other in actions:
            log.append((k.now, name, what))
            if what == "sleep":
                k.sleep(delay)
            elif what == "post":
                k.post(delay, log.append, (name, "posted", delay))
            elif what == "post_at":
                k.post_at(k.now + delay, log.append, (name, "at", delay))
            elif what == "call_soon":
                k.call_soon(log.append, (name, "soon"))
            elif what == "wake":
                k.wake(procs[other % len(procs)], (name, delay), delay=delay)
            elif what == "schedule":
                timers.append(k.schedule(delay, log.append, (name, "timer"), priority=other % 2))
            elif what == "cancel" and timers:
                timers.pop(other % len(timers)).cancel()
            elif what == "park":
                log.append(("parked got", k.park("test")))
        log.append((k.now, name, "end"))

    for i, actions in enumerate(programs):
        procs.append(Process(k, f"p{i}", i, lambda n=f"p{i}", a=actions: body(n, a)))
        k.start(procs[-1])
    for i in range(len(programs)):
        k.post(float(i), k.wake, procs[i], "kick")
    stop = None if stop_after is None else (lambda: len(log) >= stop_after)
    stopped = k.run_until(3, stop)
    k.run_until(50.0)
    heap = sorted((e[0], e[1], e[2]) for e in k._heap if e[3] is not None)
    result = (log, stopped, k.events_run, k.parks, k.now, heap,
              [p.wait_reason for p in procs], [p.alive for p in procs])
    k.close()
    return result


@given(st.lists(st.lists(_ACTIONS, max_size=12), min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(1, 30)))
@settings(max_examples=150, deadline=None)
def test_the_c_kernel_runs_exactly_what_the_python_kernel_does(programs, stop_after):
    """Event order, times, values, counts, stop points and what is left on the heap."""
    with_c, pure = _on_both_kernels(lambda: _mixed_program(programs, stop_after))
    assert with_c == pure


def test_processes_handing_over_run_no_python_code_of_the_kernel():
    """On the C kernel a process's sleep, the switch to the next process, the loop and
    its resumes are C: the only Python frames are the processes' own (and run_until's)."""
    import sys

    k = Kernel()

    def body() -> None:
        for _ in range(50):
            k.sleep(1.0)

    for i in range(10):
        k.start(Process(k, f"p{i}", i, body))
    called: list[str] = []

    def profile(frame, event, _arg) -> None:
        if event == "call" and frame.f_code.co_filename == kernel_module.__file__:
            called.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        k.run_until(40.0)
    finally:
        sys.setprofile(None)
    assert k.events_run == 10 * 40
    if kernel_module._c_kernel is not None:  # resumes and hand-overs included
        assert called == ["run_until"]
    else:
        assert called.count("sleep") == 10 * 40


def test_a_handle_of_an_event_that_ran_still_names_it():
    """The C kernel reuses a spent event's list for the next event, but never one that a
    handle still holds: cancelling it late cancels nothing else."""
    k = Kernel()
    log: list = []
    handle = k.schedule(1.0, log.append, "timer")

    def body() -> None:
        for _ in range(20):
            k.sleep(0.5)
        log.append(("done", k.now))

    k.start(Process(k, "p", 1, body))
    k.run_until(2.0)
    handle.cancel()  # ran already
    k.run_until(20.0)
    assert handle.when == 1.0 and log == ["timer", ("done", 10.0)]


def test_a_c_kernel_left_by_an_older_build_falls_back_to_python():
    """A checkout updated without `pip install` keeps an old ``_ckernel`` module without
    the kernel types: the package still imports and runs the Python kernel."""
    code = (
        "import sys, types\n"
        "sys.modules['simuwsgi._core._ckernel'] = types.ModuleType('simuwsgi._core._ckernel')\n"
        "from simuwsgi._core import kernel\n"
        "print(kernel._c_kernel, type(kernel.Kernel()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "Kernel"]
