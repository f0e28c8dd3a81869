"""Threads the app starts (``threading.Thread``, ``@postfork @thread``, ``Timer``) are
virtual threads of their virtual process, and the locks between the threads of a
simulation wait in virtual time (``simuwsgi/server/appthreads.py``)."""

from __future__ import annotations

import threading

import pytest

from simuwsgi import DeadlockError, Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

LOOP = '''
import threading, time, uwsgi
from uwsgidecorators import postfork, thread

ticks = []


@postfork
@thread
def loop():
    for i in range(5):
        time.sleep(10)
        ticks.append(time.time())
        print("tick %d of worker %d in %s" % (i, uwsgi.worker_id(),
                                              threading.current_thread().name))


def application(env, sr):
    sr("200 OK", [])
    return [repr(ticks).encode()]
'''


def _loop(tmp_path, *extra: str) -> tuple[list[str], str, list[float]]:
    (tmp_path / "app.py").write_text(LOOP)
    with Simulation(["--master", "--module", "app:application", *extra],
                    app_dir=tmp_path) as sim:
        sim.start()
        began = sim.wall
        sim.advance(60)
        ticks = [t - began for t in eval(sim.get("/").text)]
        return [x for x in sim.log if "tick" in x], sim.trace.digest(), ticks


def test_the_postfork_thread_loop_sleeps_in_virtual_time(tmp_path):
    lines, digest, ticks = _loop(tmp_path)
    assert lines == [f"tick {i} of worker 1 in Thread-1 (loop)" for i in range(5)]
    assert [round(t) for t in ticks] == [10, 20, 30, 40, 50]  # no real second went by
    assert _loop(tmp_path) == (lines, digest, ticks)  # the same run, to the digest


def test_each_worker_runs_its_own_postfork_thread(tmp_path):
    lines, _digest, _ticks = _loop(tmp_path, "--processes", "2")
    assert sorted(x[:18] for x in lines) == sorted(
        f"tick {i} of worker {w}" for i in range(5) for w in (1, 2))


CALLS = '''
import os, threading, time, uwsgi

seen = []


def handler(num):
    seen.append("signal %d in worker %d" % (num, uwsgi.worker_id()))


uwsgi.register_signal(17, "worker", handler)


def background():
    uwsgi.cache_set("k", b"from a thread")
    os.kill(uwsgi.masterpid(), 0)  # the virtual master exists
    uwsgi.signal(17)
    seen.append("ident %s" % (threading.get_ident() != MAIN))


MAIN = threading.get_ident()


def application(env, sr):
    p = env["PATH_INFO"]
    if p == "/start":
        t = threading.Thread(target=background)
        t.start()
        t.join()
        body = "alive=%s" % t.is_alive()
    elif p == "/join":
        t = threading.Thread(target=time.sleep, args=(30,))
        t.start()
        t.join(5)
        first = t.is_alive()
        t.join()
        body = "%s %s" % (first, t.is_alive())
    elif p == "/timer":
        threading.Timer(5, lambda: seen.append("timer at %.1f" % time.time())).start()
        body = "%.1f" % time.time()
    elif p == "/boom":
        threading.Thread(target=lambda: 1 / 0, name="boom").start()
        body = "started"
    else:
        body = "%s %r" % (uwsgi.cache_get("k"), seen)
    sr("200 OK", [])
    return [body.encode()]
'''


@pytest.fixture
def calls(tmp_path):
    (tmp_path / "app.py").write_text(CALLS)
    with Simulation(["--master", "--module", "app:application", "--cache2",
                     "name=default,items=10"], app_dir=tmp_path) as sim:
        sim.start()
        yield sim


def test_a_thread_acts_on_its_own_process(calls):
    assert calls.get("/start").text == "alive=False"
    calls.advance(1)
    assert calls.get("/seen").text == ("b'from a thread' ['ident True', "
                                       "'signal 17 in worker 1']")


def test_join_with_a_timeout_waits_in_virtual_time(calls):
    began = calls.now
    response = calls.get("/join")
    assert response.text == "True False"
    assert round(calls.now - began) == 30


RESULT = '''
import threading, time


class Result(threading.Thread):
    """A thread whose join() returns what it computed (its own over Thread's)."""

    def run(self):
        time.sleep(2)
        self.value = 42

    def join(self, timeout=None):
        super().join(timeout)
        return getattr(self, "value", None)


def application(env, sr):
    t = Result(name="result")
    t.start()
    early = t.join(1)
    body = "%s %s %s %r" % (early, t.is_alive(), t.join(), t)
    sr("200 OK", [])
    return [body.encode()]
'''


def test_a_thread_subclass_joins_through_its_own_join(tmp_path):
    (tmp_path / "app.py").write_text(RESULT)
    with Simulation(["--master", "--module", "app:application"], app_dir=tmp_path) as sim:
        assert sim.get("/").text == "None True 42 <Result(result, stopped 4294967296)>"
        assert round(sim.now) == 2


def test_a_timer_fires_after_its_virtual_interval(calls):
    started = float(calls.get("/timer").text)
    calls.advance(4.9)
    assert "timer" not in calls.get("/seen").text
    calls.advance(0.2)
    assert f"'timer at {started + 5:.1f}'" in calls.get("/seen").text


def test_an_exception_in_a_thread_is_printed_to_the_log(calls, capsys, monkeypatch):
    assert calls.get("/boom").text == "started"
    calls.advance(1)
    log = list(calls.log)
    at = log.index("Exception in thread boom:")
    assert "ZeroDivisionError: division by zero" in log[at:]
    # Up to the app's frame, as this Python prints a host thread's (3.13 adds carets).
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    host = threading.Thread(target=lambda: 1 / 0, name="boom")
    host.start()
    host.join()
    printed = capsys.readouterr().err.splitlines()
    app = next(i for i, line in enumerate(printed) if line.endswith("in <lambda>"))
    assert log[at:at + app] == printed[:app]


LOCKS = '''
import queue, threading, time

lock = threading.Lock()
event = threading.Event()
jobs = queue.Queue()
done = queue.Queue()


def consumer():
    while True:
        n = jobs.get()
        time.sleep(1)
        done.put(n * 2)


threading.Thread(target=consumer, daemon=True).start()


def application(env, sr):
    p = env["PATH_INFO"]
    t0 = time.time()
    if p == "/hold":
        with lock:
            time.sleep(3)
    elif p == "/want":
        time.sleep(0.5)
        with lock:
            pass
    elif p == "/try":
        time.sleep(0.5)
        body = str(lock.acquire(timeout=1))
    elif p == "/wait":
        event.wait()
    elif p == "/set":
        time.sleep(2)
        event.set()
    elif p == "/job":
        jobs.put(21)
        body = str(done.get())
    elif p == "/self":
        lock.acquire()
        lock.acquire()
    if p not in ("/try", "/job"):
        body = "%.1f" % (time.time() - t0)
    sr("200 OK", [])
    return [body.encode()]
'''


def _locks(tmp_path, *extra: str) -> Simulation:
    (tmp_path / "app.py").write_text(LOCKS)
    return Simulation(["--master", "--threads", "2", "--lazy-apps", "--module",
                       "app:application", *extra], app_dir=tmp_path, stall_timeout=1)


def test_a_lock_held_across_a_sleep_makes_the_other_core_wait_in_virtual_time(tmp_path):
    with _locks(tmp_path) as sim:
        sim.start()
        hold, want = sim.submit("GET", "/hold"), sim.submit("GET", "/want")
        sim.wait([hold, want])
        assert (hold.response.text, want.response.text) == ("3.0", "3.0")  # 0.5 s + 2.5 s
        hold, tried = sim.submit("GET", "/hold"), sim.submit("GET", "/try")
        sim.wait([hold, tried])
        assert tried.response.text == "False"  # gave up after 1 virtual second


def test_an_event_and_a_queue_between_requests_and_a_thread(tmp_path):
    with _locks(tmp_path) as sim:
        sim.start()
        waiting, setting = sim.submit("GET", "/wait"), sim.submit("GET", "/set")
        sim.wait([waiting, setting])
        assert waiting.response.text == "2.0"
        began = sim.now
        assert sim.get("/job").text == "42"
        assert sim.now - began == pytest.approx(1.0)


def test_a_deadlock_among_the_threads_of_a_process_is_reported(tmp_path):
    with _locks(tmp_path, "--threads", "1") as sim:
        sim.start()
        with pytest.raises(DeadlockError, match=r"deadlock in worker1 \(pid \d+\): every "
                           r"thread .* the main thread handling GET /self, thread "):
            sim.get("/self")


def test_a_harakiri_ends_a_deadlocked_worker(tmp_path):
    with _locks(tmp_path, "--threads", "1", "--harakiri", "5") as sim:
        sim.start()
        assert sim.get("/self").status is None  # killed at its deadline
        assert any("HARAKIRI" in line for line in sim.log)


RESPAWN = '''
import threading, time, uwsgi

def loop():
    while True:
        time.sleep(1)
        print("alive in pid %d" % uwsgi.worker_id())

threading.Thread(target=loop).start()  # in the master, before the fork

def application(env, sr):
    threading.Thread(target=loop, daemon=True).start()
    sr("200 OK", [])
    return [" ".join(t.name for t in threading.enumerate()
                     if t.name.startswith("Thread-")).encode()]
'''


def test_threads_die_with_their_process_and_never_outlive_the_simulation(tmp_path):
    (tmp_path / "app.py").write_text(RESPAWN)
    before = set(threading.enumerate())
    with Simulation(["--master", "--module", "app:application"], app_dir=tmp_path) as sim:
        sim.start()
        # the master's thread is not the worker's
        assert sim.get("/").text == "Thread-2 (loop)"
        sim.advance(2.5)
        sim.kill("worker1")
        sim.advance(0.1)
        count = len(sim.log)
        sim.advance(3)
        later = [line for line in list(sim.log)[count:] if line.startswith("alive")]
        assert later == ["alive in pid 0"] * 3  # only the master's thread is left
        assert sim.get("/").text == "Thread-2 (loop)"  # the new worker counts from the master
        # no host thread but the stall watchdog's
        assert {t.name for t in set(threading.enumerate()) - before} == {"simuwsgi-watchdog"}
    assert set(threading.enumerate()) == before


# -- against the real uWSGI 2.0.30 ----------------------------------------------------------
REAL_LOOP = '''
import threading, time, uwsgi
from uwsgidecorators import postfork, thread


@postfork
@thread
def loop():
    for i in range(3):
        time.sleep(1)
        print("tick %d of worker %d in %s" % (i, uwsgi.worker_id(),
                                              threading.current_thread().name))
    if uwsgi.worker_id() == 1:  # (two tracebacks at once would interleave their lines)
        raise ValueError("done")


def application(env, sr):
    sr("200 OK", [])
    return [b"ok"]
'''


def _threads_lines(log: list[str]) -> list[str]:
    """The ticks, and the traceback (its lines in the order they came: the other
    worker's tick may come between them; Python 3.13's carets make it longer)."""
    ticks = sorted(line for line in log if line.startswith("tick"))
    at = log.index("Exception in thread Thread-1 (loop):")
    end = log.index("ValueError: done", at)
    return ticks + [line for line in log[at:end + 1] if not line.startswith("tick")]


@pytest.mark.real
@requires_real_uwsgi
def test_the_postfork_thread_loop_is_real_uwsgis(tmp_path):
    """Without --enable-threads too (pyuwsgi 2.0.30 always runs Python threads): each
    worker's loop ticks on its own, and what it raises is printed to the log."""
    (tmp_path / "app.py").write_text(REAL_LOOP)
    argv = ["--master", "--processes", "2", "--module", "app:application"]
    with RealUwsgi(argv, app_dir=tmp_path) as real:
        for worker in (1, 2):
            real.wait_for_log(rf"tick 2 of worker {worker}", timeout=15)
        real.wait_for_log("ValueError: done", timeout=5)
        expected = _threads_lines(real.app_log())
    with Simulation(argv, app_dir=tmp_path) as sim:
        sim.start()
        sim.advance(5)
        log = list(sim.log)
    got = _threads_lines(log)
    assert got == expected
    assert "tick 2 of worker 2 in Thread-1 (loop)" in got
    assert sum(line.startswith("Exception in thread") for line in log) == 1


POOL = '''
import concurrent.futures, queue, threading, time

POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2)
Q = queue.SimpleQueue()


def producer():
    for n in range(3):
        time.sleep(2)
        Q.put(n)


def consumer():
    while True:
        print("got %d at %.0f" % (Q.get(), time.time() % 100))


threading.Thread(target=consumer, daemon=True).start()
threading.Thread(target=producer, daemon=True).start()


def slow_square(x):
    time.sleep(3)
    return x * x


def application(env, sr):
    began = time.time()
    futures = [POOL.submit(slow_square, x) for x in range(4)]
    results = [f.result() for f in futures]
    sr("200 OK", [])
    return [("%s in %.0f s" % (results, time.time() - began)).encode()]
'''


@pytest.mark.parametrize("lazy", [False, True])
def test_a_thread_pool_and_a_simple_queue_wait_in_virtual_time(tmp_path, lazy):
    """``queue.SimpleQueue`` (C) waited on a lock no virtual wait could see: a
    ``ThreadPoolExecutor``'s worker thread (APScheduler's default executor) stalled the
    simulation for the watchdog's 5 real seconds, then ended it."""
    (tmp_path / "app.py").write_text(POOL)
    argv = ["--master", "--wsgi-file", "app.py", *(["--lazy-apps"] if lazy else [])]
    with Simulation(argv, app_dir=tmp_path, start="2026-01-01T00:00:40") as sim:
        sim.advance(7)
        # two pool threads, four 3 s jobs: 6 virtual seconds
        assert sim.get("/").text == "[0, 1, 4, 9] in 6 s"
        got = [line for line in sim.log if line.startswith("got")]
    # the queue's threads run in the master (or, --lazy-apps, in the worker) from 40 s
    assert got == ["got 0 at 42", "got 1 at 44", "got 2 at 46"]


NAMES = '''
import logging, sys, threading
log = logging.getLogger("app")  # (not the root logger: pytest's handlers are there)
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("%(threadName)s: %(message)s"))
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False
print("imported in", threading.current_thread().name)

def application(environ, start_response):
    log.info("a request")
    start_response("200 OK", [])
    return [("%s %d" % (threading.current_thread().name, len(threading.enumerate()))).encode()]
'''
#: what uWSGI 2.0.30 answered, 2 workers of 2 threads: each core's Python thread is
#: named after its worker and core (uwsgi_python_set_thread_name), both cores listed
NAMES_SEEN = {f"uWSGIWorker{w}Core{c} 2" for w in (1, 2) for c in (0, 1)}


def _names(get, log, requests: int = 40) -> tuple[set[str], list[str]]:
    seen = {get() for _ in range(requests)}
    return seen, sorted({line for line in log() if "a request" in line or "imported" in line})


def test_a_core_s_thread_has_uwsgi_s_name(tmp_path):
    """``threading.current_thread().name`` in a request (and ``%(threadName)s`` in a
    log record) is ``uWSGIWorker<wid>Core<N>``, ``MainThread`` in the master; only the
    process's own threads are listed (not the test runner's, nor the simulator's
    watchdog); the test process's main thread keeps its name."""
    (tmp_path / "app.py").write_text(NAMES)
    argv = ["--master", "--processes", "2", "--threads", "2", "--wsgi-file", "app.py"]
    with Simulation(argv, app_dir=tmp_path, seed=4) as sim:
        seen, lines = _names(lambda: sim.get("/").text, lambda: sim.log)
    assert seen == NAMES_SEEN
    assert lines == ["imported in MainThread"] + sorted(
        f"uWSGIWorker{w}Core{c}: a request" for w in (1, 2) for c in (0, 1))
    assert threading.current_thread().name == "MainThread"


SLOW_NAMES = '''
import threading, time

def application(environ, start_response):
    time.sleep(1)  # the other core takes the next request meanwhile
    start_response("200 OK", [])
    return [("%s %d" % (threading.current_thread().name, len(threading.enumerate()))).encode()]
'''


def test_a_worker_s_thread_name_in_fork_mode(tmp_path):
    """Fork mode's child runs its cores' requests in its one thread, named after the
    core it serves (only that thread is listed)."""
    (tmp_path / "app.py").write_text(SLOW_NAMES)
    argv = ["--master", "--processes", "2", "--threads", "2", "--wsgi-file", "app.py"]
    with Simulation(argv, app_dir=tmp_path, seed=4, mode="fork") as sim:
        requests = [sim.submit("GET", "/") for _ in range(8)]
        sim.wait(requests)
        seen = {r.response.text for r in requests}
    assert seen == {f"uWSGIWorker{w}Core{c} 1" for w in (1, 2) for c in (0, 1)}


@pytest.mark.real
@requires_real_uwsgi
def test_the_thread_names_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(NAMES)
    argv = ["--master", "--processes", "2", "--threads", "2", "--wsgi-file", "app.py"]
    with RealUwsgi(argv, app_dir=tmp_path) as real:
        seen, lines = _names(lambda: real.get("/", timeout=5).text, real.app_log, 80)
    assert seen == NAMES_SEEN
    assert lines[0] == "imported in MainThread"


PIDS = '''
import os, queue, threading

def application(environ, start_response):
    got = queue.Queue()
    thread = threading.Thread(target=lambda: got.put(os.getpid()))
    thread.start()
    thread.join()
    start_response("200 OK", [])
    return [("%d %d" % (os.getpid(), got.get())).encode()]
'''


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_a_thread_the_app_starts_has_its_process_s_pid(tmp_path, mode):
    """``os.getpid()`` in a thread the app started is its worker's virtual pid; in fork
    mode it was the child's real pid (a tracer recorded host pids)."""
    (tmp_path / "app.py").write_text(PIDS)
    argv = ["--master", "--processes", "2", "--enable-threads", "--wsgi-file", "app.py"]
    with Simulation(argv, app_dir=tmp_path, mode=mode, seed=3) as sim:
        pids = {sim.get("/").text for _ in range(8)}
        workers = {str(w.pid) for w in sim.inst.workers.values()}
    assert {tuple(p.split()) for p in pids} == {(pid, pid) for pid in workers}
