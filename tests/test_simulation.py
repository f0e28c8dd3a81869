"""A virtual instance: startup, requests, counters, lifecycle, virtual fork, errors."""

from __future__ import annotations

import os

import pytest

from simuwsgi import AppLoadError, DeadlockError, Simulation, SimulationError

INFO_APP = """
import json, os, time, uwsgi
hits = 0
def application(env, sr):
    global hits
    hits += 1
    path = env["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(env["QUERY_STRING"] or 1))
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/reload":
        uwsgi.reload()
    if path == "/stop":
        uwsgi.stop()
    sr("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"wid": uwsgi.worker_id(), "pid": os.getpid(), "hits": hits,
                        "rid": uwsgi.request_id(), "total": uwsgi.total_requests(),
                        "reload": uwsgi.is_a_reload, "started": uwsgi.started_on,
                        "t": time.time()}).encode()]
"""


@pytest.fixture
def app_dir(write_app):
    return write_app(INFO_APP).parent


def sim_for(app_dir, *extra, **kw):
    return Simulation(["--master", "--wsgi-file", "app.py", *extra], app_dir=app_dir, **kw)


def test_startup_spawns_master_then_workers_with_ids_and_distinct_pids(app_dir):
    with sim_for(app_dir, "--processes", "4") as sim:
        names = [p.name for p in sim.processes()]
        assert names == ["master", "worker1", "worker2", "worker3", "worker4"]
        pids = [p.pid for p in sim.processes()]
        assert len(set(pids)) == 5
        assert [r.process for r in sim.trace.select("spawn")] == names
        u = sim.uwsgi
        assert u.numproc == 4 and u.masterpid() == pids[0]
        assert u.ready() is True
        assert [w["id"] for w in u.workers()] == [1, 2, 3, 4]
        assert [w["pid"] for w in u.workers()] == pids[1:]


def test_request_counters_are_updated_at_the_end_of_each_request(app_dir):
    with sim_for(app_dir, "--processes", "1") as sim:
        bodies = [sim.get("/").json() for _ in range(3)]
        assert [b["rid"] for b in bodies] == [0, 1, 2]
        assert [b["total"] for b in bodies] == [0, 1, 2]
        assert sim.uwsgi.total_requests() == 3
        w = sim.uwsgi.workers()[0]
        assert (w["requests"], w["delta_requests"], w["status"]) == (3, 3, b"idle")
        assert w["apps"][0]["requests"] == 3


def test_busy_worker_is_not_interrupted_and_requests_queue(app_dir):
    with sim_for(app_dir, "--processes", "1") as sim:
        slow = sim.submit("GET", "/sleep?5")
        fast = sim.submit("GET", "/")
        sim.advance(1)
        assert not slow.done and not fast.done
        assert sim.uwsgi.workers()[0]["status"] == b"busy"
        sim.wait([slow, fast])
        assert slow.response.finished == 5.0
        assert fast.response.started == 5.0, "queued until the worker came back"


def test_idle_worker_choice_is_seeded_and_traced(app_dir):
    def workers_for(seed):
        with sim_for(app_dir, "--processes", "3", seed=seed) as sim:
            picks = [sim.get("/").worker for _ in range(12)]
            assert len(sim.trace.select("choice", what="accept")) == 12
            return picks

    assert workers_for(1) == workers_for(1)
    assert len(set(workers_for(1))) > 1


def test_the_choice_among_many_idle_workers_is_uniform_by_id_and_recorded_compactly(app_dir):
    import random

    with sim_for(app_dir, "--processes", "256", seed=5) as sim:
        picks = [sim.get("/").worker for _ in range(50)]
        records = sim.trace.select("choice", what="accept")
    rng = random.Random(5)  # every worker idle each time: ids 1..256, picked by index
    assert picks == [rng.randrange(256) + 1 for _ in range(50)]
    assert [(r["among"], r["picked"]) for r in records] == [(256, f"worker{w}") for w in picks]


def test_a_worker_that_stopped_accepting_is_never_picked(write_app):
    app_dir = write_app("""
        import uwsgi
        def application(env, sr):
            if env["PATH_INFO"] == "/refuse":
                uwsgi.accepting(False)
            sr("200 OK", [])
            return [b""]
    """).parent
    with sim_for(app_dir, "--processes", "3", seed=2) as sim:
        refusing = sim.get("/refuse").worker
        picked = {sim.get("/").worker for _ in range(30)}
        assert refusing not in picked and len(picked) == 2
        assert sim.inst.some_refuse


def test_virtual_fork_gives_each_worker_its_own_globals(app_dir):
    with sim_for(app_dir, "--processes", "2", seed=3) as sim:
        seen = {}
        for _ in range(10):
            body = sim.get("/").json()
            seen.setdefault(body["wid"], []).append(body["hits"])
        for hits in seen.values():
            assert hits == list(range(1, len(hits) + 1))
        assert sim.globals("master")["uwsgi_file_app"]["hits"] == 0
        total = sum(sim.globals(f"worker{w}")["uwsgi_file_app"]["hits"] for w in (1, 2))
        assert total == 10


def test_vfork_off_shares_globals(app_dir):
    with sim_for(app_dir, "--processes", "2", seed=3, vfork=False) as sim:
        hits = [sim.get("/").json()["hits"] for _ in range(6)]
    assert hits == [1, 2, 3, 4, 5, 6]


def test_app_exception_closes_without_response_and_is_counted(app_dir):
    with sim_for(app_dir) as sim:
        resp = sim.get("/boom")
        assert resp.status is None and "raised before start_response" in resp.reason
        assert sim.uwsgi.workers()[0]["exceptions"] == 1
        assert any("RuntimeError: boom" in line for line in sim.log)
        assert sim.get("/").status == 200


def test_harakiri_kills_and_respawns_the_worker_keeping_its_counters(app_dir):
    with sim_for(app_dir, "--harakiri", "2") as sim:
        first = sim.get("/").json()
        resp = sim.get("/sleep?10")
        assert resp.status is None and "harakiri" in resp.reason
        assert resp.finished == 2.0
        assert any("HARAKIRI ON WORKER 1" in line for line in sim.log)
        after = sim.get("/").json()
        assert after["wid"] == 1 and after["pid"] != first["pid"]
        assert after["hits"] == 1, "a respawned worker starts from the master's globals"
        w = sim.uwsgi.workers()[0]
        assert w["respawn_count"] == 1
        assert w["requests"] == 2, "requests that completed are kept across the respawn"


def test_user_harakiri(write_app):
    write_app("""
import time, uwsgi
def application(env, sr):
    uwsgi.set_user_harakiri(3)
    time.sleep(5)
    sr("200 OK", [])
    return [b"late"]
""")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent) as sim:
        resp = sim.get("/")
    assert resp.status is None and resp.finished == 3.0


def test_max_requests_recycles_after_min_worker_lifetime(app_dir):
    with sim_for(app_dir, "--max-requests", "2") as sim:
        pids = [sim.get("/").json()["pid"] for _ in range(3)]
        assert len(set(pids)) == 1, "min-worker-lifetime (10 s) not reached yet"
        sim.advance(10)
        pids += [sim.get("/").json()["pid"] for _ in range(2)]
        assert pids[3] == pids[0] and pids[4] != pids[0]
        assert any("The work of process" in line for line in sim.log)
        assert sim.uwsgi.workers()[0]["delta_requests"] == 1, "counted since the respawn"


def test_reload_reimports_with_same_master_pid(app_dir):
    with sim_for(app_dir, "--processes", "2") as sim:
        master_pid = sim.uwsgi.masterpid()
        before = sim.get("/").json()
        sim.advance(5)
        sim.get("/reload")
        sim.advance(1)
        after = sim.get("/").json()
        assert after["reload"] is True and before["reload"] is False
        # the reload completes at the master's next tick, a second later
        assert after["started"] == before["started"] + 6
        assert sim.uwsgi.masterpid() == master_pid
        assert after["pid"] not in (p.pid for p in [])
        assert after["total"] == 0, "shared memory starts empty after a binary reload"
        assert sim.trace.count("reload.begin") == 1


def test_stop_shuts_down_and_refuses_new_requests(app_dir):
    with sim_for(app_dir) as sim:
        assert sim.get("/stop").status == 200, "the calling request completes"
        sim.advance(1)
        resp = sim.get("/")
        assert resp.status is None and "stopped" in resp.reason


def test_lazy_apps_import_in_each_worker(write_app):
    write_app("""
import uwsgi
IMPORTED_IN = uwsgi.worker_id()
def application(env, sr):
    sr("200 OK", [])
    return [b"%d" % IMPORTED_IN]
""")
    with Simulation(["--master", "--lazy-apps", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=write_app("", "x.py").parent, seed=5) as sim:
        bodies = {}
        for _ in range(8):
            r = sim.get("/")
            bodies[r.worker] = r.body
    assert bodies == {1: b"1", 2: b"2"}


def test_import_error_leaves_no_app_and_requests_get_500(write_app):
    write_app("raise ImportError('nope')\n")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent,
                    allow_no_app=True) as sim:
        assert "*** no app loaded. going in full dynamic mode ***" in sim.log
        assert sim.get("/").status == 500


def test_need_app_makes_a_failed_import_fatal(write_app):
    write_app("raise ImportError('nope')\n")
    with pytest.raises(SimulationError, match="need-app"):
        Simulation(["--master", "--need-app", "--wsgi-file", "app.py"],
                   app_dir=write_app("", "x.py").parent).start()


@pytest.mark.parametrize(("options", "source", "cause"), [
    (["--wsgi-file", "nothere.py"], None, "failed to open python file nothere.py"),
    (["--wsgi-file", "app.py"], "raise ImportError('nope')\n", "ImportError: nope"),
    (["--wsgi-file", "app.py"], "x = 1\n", 'unable to find "application" callable'),
    ([], None, "*** no app loaded. going in full dynamic mode ***"),
])
def test_an_app_that_did_not_load_fails_start_with_the_log(tmp_path, options, source, cause):
    if source is not None:
        (tmp_path / "app.py").write_text(source)
    sim = Simulation(["--master", *options], app_dir=tmp_path)
    with pytest.raises(AppLoadError, match="allow_no_app=True") as exc:
        sim.start()
    assert sim.closed
    assert exc.value.exit_status is None
    assert any(cause in line for line in exc.value.cause)
    assert exc.value.cause[-1] == "*** no app loaded. going in full dynamic mode ***"
    assert cause in str(exc.value)
    assert "spawned uWSGI worker 1 (pid: 1002, cores: 1)" in exc.value.log  # it ran on


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_sys_exit_at_import_ends_the_instance_with_its_status(write_app, mode):
    app = write_app("import sys\nsys.exit(3)\n")
    with pytest.raises(AppLoadError, match=r"sys.exit\(3\).*status 3") as exc:
        Simulation(["--master", "--wsgi-file", "app.py"], app_dir=app.parent, mode=mode).start()
    assert exc.value.exit_status == 3


@pytest.mark.parametrize("lazy", [[], ["--lazy-apps"]])
def test_need_app_is_game_over_with_status_22(tmp_path, lazy):
    with pytest.raises(AppLoadError, match="--need-app") as exc:
        Simulation(["--master", *lazy, "--need-app"], app_dir=tmp_path).start()
    assert exc.value.exit_status == 22
    assert exc.value.log[-1] == "*** no app loaded. GAME OVER ***"
    assert "going in full dynamic mode" not in " ".join(exc.value.log)


def test_missing_app_file(tmp_path):
    with Simulation(["--master", "--wsgi-file", "nothere.py"], app_dir=tmp_path,
                    allow_no_app=True) as sim:
        assert "failed to open python file nothere.py" in sim.log
        assert sim.get("/").status == 500


def test_deadlocked_request_is_reported_not_hung(write_app):
    write_app("""
import uwsgi
def application(env, sr):
    uwsgi.signal_wait()
    sr("200 OK", [])
    return [b""]
""")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent) as sim:
        with pytest.raises(DeadlockError, match="worker1 .*signal_wait"):
            sim.get("/")


def test_same_seed_same_trace_digest(app_dir):
    def digest(seed):
        with sim_for(app_dir, "--processes", "3", "--harakiri", "3", seed=seed) as sim:
            reqs = [sim.submit("GET", p) for p in ["/", "/sleep?2", "/", "/sleep?9", "/boom", "/"]]
            sim.wait(reqs)
            sim.advance(30)
            sim.get("/reload")
            sim.advance(2)
            sim.get("/")
            return sim.trace.digest()

    assert digest(11) == digest(11)
    assert digest(11) != digest(12)


def test_uwsgi_module_only_exists_during_the_simulation(app_dir):
    import sys

    with sim_for(app_dir) as sim:
        assert sys.modules["uwsgi"] is sim.uwsgi
    assert "uwsgi" not in sys.modules
    with pytest.raises(ImportError):
        import uwsgi  # noqa: F401
    assert not any(name.startswith("uwsgi_file_") for name in sys.modules)


def test_wsgi_errors_go_to_the_log_and_file_wrapper_streams(write_app):
    write_app("""
import io
def application(env, sr):
    env["wsgi.errors"].write("something went wrong\\nsecond line\\n")
    sr("200 OK", [])
    return env["wsgi.file_wrapper"](io.BytesIO(b"x" * 20000), 8192)
""")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=write_app("", "x.py").parent) as sim:
        resp = sim.get("/")
        assert resp.body == b"x" * 20000
        assert "something went wrong" in sim.log and "second line" in sim.log


def test_respawn_happens_at_the_masters_next_tick(app_dir):
    with sim_for(app_dir, "--max-requests", "1", "--min-worker-lifetime", "0") as sim:
        sim.advance(0.5)
        first = sim.get("/")
        second = sim.get("/")
        assert first.finished == 0.5
        assert second.started == 1.0, "queued until the master respawned the worker"
        assert any(line.startswith("Respawned uWSGI worker 1 (new pid:") for line in sim.log)


def test_the_master_notices_a_death_at_its_next_tick(app_dir):
    """uWSGI's master reaps children with one ``waitpid(WNOHANG)`` per loop iteration: a
    harakiri SIGKILLs the worker at once (its client sees the connection close), the
    death is logged with the respawn a tick later (real 2.0.30: ``HARAKIRI`` at 1.99 s,
    ``DAMN ! worker 2 ... died`` and ``Respawned`` at 2.99 s; conformance c27)."""
    with sim_for(app_dir, "--harakiri", "2") as sim:
        resp = sim.get("/sleep?10")
        assert resp.status is None and resp.finished == 2.0
        assert [r.time for r in sim.trace.select("harakiri")] == [2.0]
        assert sim.trace.count("death") == 0
        sim.advance(2)
        assert [r.time for r in sim.trace.select("death")] == [3.0]
        assert [r.time for r in sim.trace.select("spawn", "worker1")] == [0.0, 3.0]
        damn = [t for t, _p, line in sim.inst.log_lines if line.startswith("DAMN ! worker 1")]
        assert damn == [3.0]


def test_a_reload_reaps_the_dead_it_has_not_reaped_yet(app_dir):
    """A reload waits for every child: a worker killed just before is reaped by it (not
    at a tick after the new instance started) and respawned once, by the reload, which
    completes at the master's next tick (real 2.0.30: ``worker N buried after 1
    seconds``)."""
    with sim_for(app_dir, "--processes", "2", "--harakiri", "2") as sim:
        sim.submit("GET", "/sleep?10")
        sim.advance(2.3)
        assert sim.trace.count("death") == 0
        sim.get("/reload")
        sim.advance(5)
        deaths = [(r.time, r["reason"]) for r in sim.trace.select("death")]
        assert sorted(deaths) == [(2.3, "reload"), (3.0, "harakiri")]
        assert [r.time for r in sim.trace.select("spawn", "worker2")] == [0.0, 3.0]


def _layout(root):
    """An app in the current directory, another next to the ini, a third in sub/."""
    for where in (".", "deploy", "sub"):
        (root / where).mkdir(exist_ok=True)
        (root / where / "app.py").write_text(
            f"def application(e, sr):\n    sr('200 OK', [])\n    return [b'{where}']\n")
    (root / "deploy" / "uwsgi.ini").write_text("[uwsgi]\nmaster = true\nwsgi-file = app.py\n")
    (root / "deploy" / "chdir.ini").write_text("[uwsgi]\nchdir = sub\nwsgi-file = app.py\n")
    (root / "deploy" / "here.ini").write_text("[uwsgi]\nwsgi-file = %d/app.py\n")
    (root / "deploy" / "nested.ini").write_text("[uwsgi]\nini = deploy/uwsgi.ini\n")


@pytest.mark.parametrize(("ini", "served"), [
    ("deploy/uwsgi.ini", b"."),        # the README's example: paths from the current dir
    ("deploy/chdir.ini", b"sub"),      # ... or from --chdir
    ("deploy/here.ini", b"deploy"),    # %d: the ini's own directory
    ("deploy/nested.ini", b"."),       # an included ini: from the current dir too
])
def test_from_ini_resolves_relative_paths_from_the_current_directory(
        tmp_path, monkeypatch, ini, served):
    _layout(tmp_path)
    monkeypatch.chdir(tmp_path)
    with Simulation.from_ini(ini) as sim:
        assert sim.get("/").body == served
    monkeypatch.chdir(tmp_path / "sub")
    with Simulation.from_ini(ini, app_dir=tmp_path) as sim:  # app_dir: uWSGI's cwd
        assert sim.get("/").body == served


def test_the_startup_lines_describe_a_virtual_machine_unless_asked_for_the_host(tmp_path):
    """The log, like the trace, is the same on every machine: the startup lines print a
    fixed machine named after the simulation's hostname; machine="host" prints this
    machine's facts, as the real server would here."""
    (tmp_path / "app.py").write_text(INFO_APP)
    options = ["--master", "--wsgi-file", "app.py"]
    with Simulation(options, app_dir=tmp_path, hostname="web1") as sim:
        virtual = list(sim.log)
    assert "nodename: web1" in virtual and "detected number of CPU cores: 4" in virtual
    assert "detected binary path: /usr/local/bin/uwsgi" in virtual
    assert not any("running uWSGI as root" in line for line in virtual)
    with Simulation(options, app_dir=tmp_path, machine="host") as sim:
        host = list(sim.log)
    assert f"nodename: {os.uname().nodename}" in host
    assert f"detected number of CPU cores: {os.cpu_count()}" in host
    assert (os.getuid() == 0) == any("running uWSGI as root" in line for line in host)
    with pytest.raises(ValueError, match="machine must be one of virtual, host"):
        Simulation(options, app_dir=tmp_path, machine="laptop")
