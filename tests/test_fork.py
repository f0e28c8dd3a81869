"""``fork`` mode (simuwsgi/modes/fork.py): same traces as ``sim`` mode, real per-process state,
crash and hang reports, no process left behind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simuwsgi import Simulation, SimulationError
from simuwsgi.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
#: Every bundled scenario (the quick start and the conformance suite), not their apps;
#: the chaos scenarios, whose buggy variants fail their check, are compared in
#: tests/test_chaos_scenarios.py.
SCENARIOS = sorted(p for p in (ROOT / "scenarios").rglob("*.py")
                   if "apps" not in p.parts and "chaos" not in p.relative_to(ROOT).parts
                   and not p.name.startswith("_")
                   and "\nNODES = " not in p.read_text())  # clusters: sim mode only


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def _gone(pid: int, patience: float = 3.0) -> bool:
    """True when no process (not even a zombie) has this pid, waiting a little for the
    kernel to finish reaping it (a loaded machine can take a moment)."""
    import time

    deadline = time.monotonic() + patience
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _normal_log(lines: list[str]) -> list[str]:
    """The log without the simulator's own traceback frames (they name other files)."""
    out = []
    skip = False
    for line in lines:
        if skip:
            skip = False
            if line.startswith("    "):
                continue
        if line.startswith('  File "') and "/simuwsgi/" in line:
            skip = True
            continue
        if line.strip() and set(line.strip()) <= {"^", "~"}:
            continue
        out.append(line)
    return out


def both(options: list[str], app_dir: Path, drive, **kwargs) -> dict[str, Simulation]:
    """Run ``drive(sim)`` in sim and in fork mode; returns the closed simulations."""
    sims = {}
    for mode in ("sim", "fork"):
        shutil.rmtree(app_dir / "spool", ignore_errors=True)  # a fresh spool directory
        sim = Simulation(options, app_dir=app_dir, mode=mode, **kwargs)
        with sim:
            drive(sim)
        sims[mode] = sim
    return sims


def assert_same(sims: dict[str, Simulation]) -> None:
    sim, fork = sims["sim"], sims["fork"]
    assert _normal_log(fork.log) == _normal_log(sim.log)
    assert fork.trace.rows() == sim.trace.rows()
    assert fork.trace.digest() == sim.trace.digest()


# -- same trace as sim mode -------------------------------------------------------------------
@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_bundled_scenarios_same_digest(path: Path) -> None:
    digests = {}
    for mode in ("sim", "fork"):
        scenario = load_scenario(path)
        sim = scenario.simulation(mode=mode)
        with sim:
            if scenario.timeline is not None:
                scenario.timeline(sim)
            else:
                sim.run_until(scenario.duration)
            if scenario.check is not None:
                scenario.check(sim)
        digests[mode] = sim.trace.digest()
    assert digests["fork"] == digests["sim"]


SUBSYSTEMS_APP = '''
    import os, time, uwsgi

    hits = 0
    seen = []

    def on_tick(num):
        uwsgi.log("tick %d in %s %d at %d" % (num, uwsgi.worker_id() or "mule",
                                               uwsgi.mule_id(), time.time()))

    def on_broadcast(num):
        global hits
        hits += 1
        uwsgi.cache_inc("broadcasts")
        uwsgi.log("broadcast in worker %d pid %d hits %d" % (uwsgi.worker_id(), os.getpid(), hits))

    def on_mule_signal(num):
        uwsgi.log("mule %d got signal %d" % (uwsgi.mule_id(), num))

    def on_cron(num):
        uwsgi.log("cron %d at %s" % (num, time.strftime("%H:%M")))

    def hook(msg):
        uwsgi.log("mule %d message %r" % (uwsgi.mule_id(), msg))
        uwsgi.cache_set(b"last", msg)

    def spooler(env):
        uwsgi.log("spooled %r in spooler pid %d" % (sorted(env.items()), os.getpid()))
        time.sleep(1)
        return uwsgi.SPOOL_OK

    def echo(*args):
        return b"|".join(args) + b"@%d" % uwsgi.worker_id()

    def postfork():
        uwsgi.log("postfork pid %d worker %d mule %d" % (os.getpid(), uwsgi.worker_id(),
                                                         uwsgi.mule_id()))

    uwsgi.register_signal(10, "worker", on_tick)
    uwsgi.register_signal(11, "workers", on_broadcast)
    uwsgi.register_signal(12, "mule1", on_mule_signal)
    uwsgi.register_signal(13, "worker", on_cron)
    uwsgi.add_timer(10, 7)
    uwsgi.add_rb_timer(12, 11, 3)
    uwsgi.add_cron(13, -1, -1, -1, -1, -1)
    uwsgi.register_rpc("echo", echo)
    if uwsgi.worker_id() == 0:  # in the master (not in --lazy-apps workers)
        uwsgi.mule_msg_hook = hook
        uwsgi.spooler = spooler
        uwsgi.post_fork_hook = postfork
    uwsgi.cache_set("broadcasts", b"0" * 8)

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        out = b""
        if path == "/spool":
            out = uwsgi.spool({b"job": b"1", b"body": b"payload"})
        elif path == "/mule":
            uwsgi.mule_msg(b"hello", 1)
        elif path == "/farm":
            uwsgi.farm_msg("pair", b"to the farm")
        elif path == "/broadcast":
            uwsgi.signal(11)
        elif path == "/rpc":
            out = uwsgi.rpc(b"", b"echo", b"a", b"b") or b"none"
        elif path == "/lock":
            uwsgi.lock()
            time.sleep(2)
            uwsgi.unlock()
        elif path == "/wait":
            uwsgi.signal_wait(11)
            out = b"%d" % uwsgi.signal_received()
        elif path == "/slow":
            time.sleep(30)
        elif path == "/exit":
            raise SystemExit(0)
        elif path == "/boom":
            raise ValueError("boom")
        elif path == "/reload":
            uwsgi.reload()
        body = b"%s %d %d %r %s" % (path.encode(), uwsgi.worker_id(), hits, out,
                                     uwsgi.cache_get("broadcasts"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
'''

SUBSYSTEM_OPTIONS = ["--master", "--processes", "3", "--mules", "2", "--farm", "pair:1,2",
                     "--cache2", "name=default,items=20", "--harakiri", "20",
                     "--wsgi-file", "app.py"]


def _drive_subsystems(sim: Simulation) -> None:
    reqs = [sim.submit("GET", path, at=at) for at, path in [
        (1, "/"), (2, "/spool"), (3, "/mule"), (4, "/farm"), (5, "/broadcast"),
        (6, "/rpc"), (7, "/lock"), (7.5, "/lock"), (8, "/wait"), (9, "/broadcast"),
        (12, "/slow"), (40, "/exit"), (45, "/boom"), (50, "/")]]
    sim.run_until(70)
    sim.kill("worker2")
    sim.kill("mule1")
    sim.signal(11)
    sim.advance(100)
    assert all(r.done for r in reqs)
    sim.get("/reload")
    sim.advance(30)
    sim.get("/")
    sim.get("/broadcast")


def test_subsystems_same_trace(tmp_path: Path) -> None:
    write(tmp_path, "app.py", SUBSYSTEMS_APP)
    options = SUBSYSTEM_OPTIONS + ["--spooler", str(tmp_path / "spool")]
    sims = both(options, tmp_path, _drive_subsystems, seed=5)
    assert_same(sims)
    fork = sims["fork"]
    kinds = fork.trace.kinds()
    for kind in ("signal.handler", "mule.msg", "spool.end", "harakiri", "reload.begin",
                 "rpc.call", "postfork"):
        assert kinds.get(kind), kind
    assert any("ValueError: boom" in line for line in fork.log)


def test_lazy_apps_and_seeds_same_trace(tmp_path: Path) -> None:
    write(tmp_path, "app.py", SUBSYSTEMS_APP)
    options = SUBSYSTEM_OPTIONS + ["--lazy-apps"]
    for seed in (1, 2):
        assert_same(both(options, tmp_path, _drive_subsystems, seed=seed))


PROGRAMMED_MULE = '''
    import time, uwsgi
    uwsgi.log("mule %d starts" % uwsgi.mule_id())
    while True:
        msg = uwsgi.mule_get_msg(timeout=5)
        uwsgi.log("mule got %r at %d" % (msg, time.time()))
        if msg == b"stop":
            break
'''


@pytest.mark.parametrize("decorators", ["simuwsgi", "auto"])
def test_decorators_and_programmed_mules_same_trace(tmp_path: Path, decorators: str) -> None:
    write(tmp_path, "helper.py", '''
        n = 0
        def bump():
            global n
            n += 1
            return n
        def entry():
            import uwsgi
            uwsgi.log("entry point mule %d" % uwsgi.mule_id())
    ''')
    write(tmp_path, "mule.py", PROGRAMMED_MULE)
    write(tmp_path, "app.py", '''
        import uwsgi
        from uwsgidecorators import postfork, timer, rpc, mulefunc, spool, signal, lock

        @postfork
        def hello():
            uwsgi.log("postfork in worker %d" % uwsgi.worker_id())

        @timer(5)
        def every5(num):
            uwsgi.log("timer %d in worker %d" % (num, uwsgi.worker_id()))

        @rpc("twice")
        def twice(x):
            return x * 2

        @spool
        def job(args):
            uwsgi.log("job %r" % sorted(args.items()))

        @lock
        def locked():
            return uwsgi.is_locked()

        def application(environ, start_response):
            path = environ["PATH_INFO"]
            if path == "/job":
                job.spool(n="1")
            elif path == "/stop":
                uwsgi.mule_msg(b"stop", 1)
            elif path == "/msg":
                uwsgi.mule_msg(b"hi", 1)
            start_response("200 OK", [])
            return [b"%s %r %r" % (path.encode(), uwsgi.rpc(b"", b"twice", b"ab"), locked())]
    ''')
    options = ["--master", "--processes", "2", "--mule=mule.py", "--mule=helper:entry",
               "--spooler", str(tmp_path / "spool"), "--wsgi-file", "app.py"]

    def drive(sim: Simulation) -> None:
        sim.get("/job")
        sim.get("/msg")
        sim.advance(12)
        sim.get("/stop")
        sim.advance(20)

    sims = both(options, tmp_path, drive, decorators=decorators)
    assert_same(sims)
    assert any("entry point mule 2" in line for line in sims["fork"].log)
    assert any("mule got b'stop'" in line for line in sims["fork"].log)


# -- what only fork mode isolates ---------------------------------------------------------------
ISOLATION_APP = '''
    import json, os, random, sys
    sys.path.insert(0, LIB)
    import thirdparty
    import uwsgi

    class Registry:
        items = 0

    def count(num):
        Registry.items += 1
        thirdparty.calls += 1
        uwsgi.log("worker %d class %d lib %d" % (uwsgi.worker_id(), Registry.items,
                                                 thirdparty.calls))

    uwsgi.register_signal(20, "workers", count)
    thirdparty.calls = 100          # the master's value, inherited by every fork

    def application(environ, start_response):
        if environ["PATH_INFO"] == "/signal":
            uwsgi.signal(20)
        body = {"worker": uwsgi.worker_id(), "class": Registry.items,
                "lib": thirdparty.calls, "random": random.random(),
                "pid": os.getpid(), "os_pid": int(os.readlink("/proc/self"))}
        start_response("200 OK", [])
        return [json.dumps(body).encode()]
'''


def _isolation_app(tmp_path: Path) -> Path:
    app_dir = tmp_path / "app"
    lib = tmp_path / "lib"
    write(lib, "thirdparty.py", "calls = 0\n")
    write(app_dir, "app.py", ISOLATION_APP.replace("LIB", repr(str(lib))))
    return app_dir


def _handler_counts(sim: Simulation) -> list[str]:
    return [line for line in sim.log if line.startswith("worker ")]


def test_class_attributes_and_library_state_are_per_process(tmp_path: Path) -> None:
    app_dir = _isolation_app(tmp_path)
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py"]
    sims = both(options, app_dir, lambda sim: (sim.get("/signal"), sim.advance(1)))
    # sim mode copies the app's classes but not modules outside the app's directory
    seen = {mode: sorted(line.split(" ", 2)[2] for line in _handler_counts(sim))
            for mode, sim in sims.items()}
    assert seen["sim"] == ["class 1 lib 101", "class 1 lib 102"]
    assert seen["fork"] == ["class 1 lib 101", "class 1 lib 101"]


def test_random_is_reseeded_per_process_deterministically(tmp_path: Path) -> None:
    app_dir = _isolation_app(tmp_path)
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py"]

    def run(seed: int) -> list[dict]:
        with Simulation(options, app_dir=app_dir, mode="fork", seed=seed) as sim:
            bodies = [sim.get("/").json() for _ in range(6)]
            sim.kill("worker1")
            sim.advance(2)
            bodies += [sim.get("/").json() for _ in range(6)]
        return bodies

    first, again, other = run(1), run(1), run(2)
    assert [b["random"] for b in first] == [b["random"] for b in again]
    assert [b["random"] for b in first] != [b["random"] for b in other]
    by_pid: dict[int, list[float]] = {}
    for body in first:
        by_pid.setdefault(body["pid"], []).append(body["random"])
    assert len(by_pid) == 3  # two workers, and worker 1 respawned with a new pid
    streams = [values[0] for values in by_pid.values()]
    assert len(set(streams)) == 3  # each process has its own stream
    os_pids = {b["pid"]: b["os_pid"] for b in first}
    assert len(set(os_pids.values())) == 3 and os.getpid() not in os_pids.values()


def test_respawn_is_a_fork_of_the_master(tmp_path: Path) -> None:
    write(tmp_path, "app.py", '''
        import os, uwsgi
        import thirdlike
        state = {"n": 0}
        def application(environ, start_response):
            state["n"] += 1
            thirdlike.CACHE.append(os.getpid())
            start_response("200 OK", [])
            return [b"%d %d" % (state["n"], len(thirdlike.CACHE))]
    ''')
    lib = tmp_path / "site-packages"
    write(lib, "thirdlike.py", "CACHE = []\n")
    sys.path.insert(0, str(lib))
    try:
        with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                        mode="fork") as sim:
            assert [sim.get("/").body for _ in range(3)] == [b"1 1", b"2 2", b"3 3"]
            sim.kill("worker1")
            sim.advance(2)
            assert sim.get("/").body == b"1 1"
            assert sim.globals("worker1")["uwsgi_file_app"]["state"] == {"n": 1}
            assert sim.globals("master")["uwsgi_file_app"]["state"] == {"n": 0}
    finally:
        sys.path.remove(str(lib))
        sys.modules.pop("thirdlike", None)


def test_modules_imported_after_the_fork_are_per_process(tmp_path: Path) -> None:
    write(tmp_path, "helper.py", '''
        n = 0
        def entry():
            global n
            import uwsgi
            n += 1
            uwsgi.log("mule %d helper %d" % (uwsgi.mule_id(), n))
    ''')
    write(tmp_path, "app.py", "def application(e, s):\n    s('200 OK', [])\n    return []\n")
    options = ["--master", "--mule=helper:entry", "--mule=helper:entry", "--wsgi-file",
               "app.py"]
    sims = both(options, tmp_path, lambda sim: sim.advance(2.5))
    lines = {mode: [line for line in sim.log if "helper" in line] for mode, sim in sims.items()}
    # each mule runs entry() three times (respawned a second after it returns)
    assert len(lines["fork"]) == len(lines["sim"]) == 6
    # a fresh fork each time; in sim mode, each process imports its own helper
    assert all(line.endswith("helper 1") for line in lines["fork"] + lines["sim"])
    assert "helper" not in sys.modules


def test_shared_memory_views_cannot_cross_to_a_forked_process(tmp_path: Path) -> None:
    write(tmp_path, "app.py", '''
        import uwsgi
        def application(environ, start_response):
            try:
                uwsgi.sharedarea_memoryview(0)
                out = b"no error"
            except NotImplementedError as exc:  # simuwsgi.NotSimulatedError
                out = str(exc).encode()
            uwsgi.sharedarea_write(0, 0, b"ok")
            start_response("200 OK", [])
            return [out + b" " + uwsgi.sharedarea_read(0, 0, 2)]
    ''')
    with Simulation(["--master", "--sharedarea", "1", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, mode="fork") as sim:
        body = sim.get("/").text
    assert "sharedarea_memoryview() gives a value that cannot be sent" in body
    assert body.endswith(" ok")


# -- crashes, hangs, cleanup ----------------------------------------------------------------------
CRASH_APP = '''
    import ctypes, os, time, uwsgi

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/segv":
            ctypes.string_at(0)
        elif path == "/exit":
            os._exit(3)
        elif path == "/hang":
            while True:
                pass
        start_response("200 OK", [])
        return [b"%d" % os.getpid()]
'''


def _os_pids(sim: Simulation) -> set[int]:
    return set(sim.inst.forks.live_pids)


def test_segfault_is_reported_with_the_process_and_its_stack(tmp_path: Path) -> None:
    write(tmp_path, "app.py", CRASH_APP)
    sim = Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                     app_dir=tmp_path, mode="fork", start=0)
    with sim:
        sim.advance(5)
        pids = _os_pids(sim)
        with pytest.raises(SimulationError) as info:
            sim.get("/segv")
    text = str(info.value)
    assert re.search(r"worker\d \(pid 10\d\d, OS pid \d+\) at virtual time 5\.000000", text)
    assert "killed by signal 11 (SIGSEGV)" in text
    assert "Fatal Python error: Segmentation fault" in text and "app.py" in text
    assert all(_gone(pid) for pid in pids)


def test_os_exit_ends_the_virtual_worker_not_the_run(tmp_path: Path) -> None:
    write(tmp_path, "app.py", CRASH_APP)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    mode="fork") as sim:
        pids = _os_pids(sim)
        resp = sim.get("/exit")
        assert resp.status is None and "os._exit(3)" in resp.reason
        sim.advance(1.5)
        assert sim.get("/").status == 200  # respawned, as uWSGI does
    assert "DAMN ! worker 1 (pid: 1002) died :( trying respawn ..." in sim.log
    assert all(_gone(pid) for pid in pids)


def test_hang_is_reported_not_waited_for(tmp_path: Path) -> None:
    write(tmp_path, "app.py", CRASH_APP)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    mode="fork", fork_timeout=0.5) as sim:
        pids = _os_pids(sim)
        with pytest.raises(SimulationError) as info:
            sim.get("/hang")
    text = str(info.value)
    assert "worker1" in text and "sent nothing for 0.5 s" in text
    assert re.search(r'app.py", line 1[12] in application', text)  # the loop (faulthandler)
    assert all(_gone(pid) for pid in pids)


def test_crash_during_master_import(tmp_path: Path) -> None:
    write(tmp_path, "app.py", "import os\nos._exit(9)\n")
    sim = Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path, mode="fork")
    with pytest.raises(SimulationError, match=r"os\._exit\(9\) .*status 9"):
        sim.start()
    assert sim.closed and not sim.inst.forks.live_pids


def test_sigkill_harakiri_reload_and_close_kill_the_os_processes(tmp_path: Path) -> None:
    write(tmp_path, "app.py", '''
        import time, uwsgi
        def application(environ, start_response):
            if environ["PATH_INFO"] == "/slow":
                time.sleep(60)
            if environ["PATH_INFO"] == "/reload":
                uwsgi.reload()
            start_response("200 OK", [])
            return [b"ok"]
    ''')
    options = ["--master", "--processes", "2", "--mules", "1", "--harakiri", "5",
               "--spooler", str(tmp_path / "spool"), "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=tmp_path, mode="fork", seed=1) as sim:
        forks = sim.inst.forks
        first = _os_pids(sim)
        assert len(first) == 5  # master, 2 workers, a mule, a spooler
        mule = forks.children[sim.process("mule1")].ospid
        sim.kill("mule1")
        sim.advance(1)  # uWSGI reaps and respawns a killed mule on the master's next tick
        assert _gone(mule)
        slow = sim.submit("GET", "/slow")
        sim.advance(1)
        worker = forks.children[sim.process(f"worker{slow.worker}")].ospid
        sim.advance(10)
        assert slow.response.status is None and _gone(worker)
        before = _os_pids(sim)
        sim.get("/reload")
        sim.advance(5)
        after = _os_pids(sim)
        assert not before & after and all(_gone(pid) for pid in before)
        assert len(after) == 5
    assert all(_gone(pid) for pid in first | before | after)


def test_no_child_left_after_an_error_in_the_test(tmp_path: Path) -> None:
    write(tmp_path, "app.py", CRASH_APP)
    pids: set[int] = set()
    with pytest.raises(KeyError), Simulation(["--master", "--processes", "3", "--wsgi-file",
                                              "app.py"], app_dir=tmp_path, mode="fork") as sim:
        pids = _os_pids(sim)
        sim.process("worker9")
    assert len(pids) == 4 and all(_gone(pid) for pid in pids)


def test_cli_runs_a_scenario_in_fork_mode() -> None:
    out = subprocess.run([sys.executable, "-m", "simuwsgi.cli", "run",
                          str(ROOT / "scenarios" / "quickstart.py"), "--mode", "fork",
                          "--quiet"], check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    sim_out = subprocess.run([sys.executable, "-m", "simuwsgi.cli", "run",
                              str(ROOT / "scenarios" / "quickstart.py"), "--quiet"],
                             check=True, capture_output=True, text=True, timeout=120)
    digest = re.search(r"trace digest (\w+)", out.stdout)
    assert digest and digest.group(1) in sim_out.stdout


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_pytest_fixture_takes_the_mode(uwsgi_simulation, tmp_path: Path, mode: str) -> None:
    write(tmp_path, "app.py", '''
        import os, uwsgi
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"%d %d" % (uwsgi.worker_id(), os.getpid())]
    ''')
    sim = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], mode=mode, app_dir=tmp_path)
    assert sim.mode == mode and sim.get("/").body == b"1 1002"
    assert (sim.inst.forks is not None) == (mode == "fork")


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sim' or 'fork"):
        Simulation(["--master"], mode="threads")


FORK_ALONE = '''
import sys, threading
from simuwsgi import Simulation
from simuwsgi.server import containment

real_fork = containment.REAL.fork


def fork():
    print("threads at the fork:", sorted(t.name for t in threading.enumerate()), flush=True)
    return real_fork()


containment.REAL.fork = fork
with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=sys.argv[1],
                mode="fork") as sim:
    sim.get("/")
    sim.reload()  # a new master child, forked while the first one's watchdog ran
    print(sim.get("/").body, flush=True)
'''


def test_the_master_child_is_forked_without_threads(tmp_path: Path) -> None:
    """The test process has no thread of simuwsgi's when it forks the master child, at
    the start and again at a reload: a child would start with a copy of any lock one of
    them held, held for ever (Python 3.12's DeprecationWarning "This process ... is
    multi-threaded, use of fork() may lead to deadlocks in the child"). In a process of
    its own: the test process may have threads of other tests."""
    write(tmp_path, "app.py", """
        def application(environ, start_response):
            start_response("200 OK", [])
            return [b"ok"]
    """)
    write(tmp_path, "run.py", FORK_ALONE)
    out = subprocess.run([sys.executable, "-W", "always::DeprecationWarning", "run.py",
                          str(tmp_path)], cwd=tmp_path, check=False, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["threads at the fork: ['MainThread']"] * 2 + ["b'ok'"]
    assert "multi-threaded" not in out.stderr, out.stderr
