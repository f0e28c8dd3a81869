"""Several nodes in one simulation: one clock, one RNG, one trace; each node its own
host name, pids, skew, app modules, process table."""

from __future__ import annotations

import sys

import pytest

from simuwsgi import AppLoadError, Cluster, ConfigError, Simulation, SimulationError

APP = """
import os, time, uwsgi
import helper
hits = 0
def application(env, sr):
    global hits
    hits += 1
    helper.calls.append(uwsgi.hostname)
    if env["PATH_INFO"] == "/sleep":
        time.sleep(2)
    sr("200 OK", [])
    return [b"%s %d %d %d %d" % (uwsgi.hostname, os.getpid(), int(time.time()), hits,
                                 len(helper.calls))]
"""
HELPER = "calls = []\n"


@pytest.fixture
def app_dir(write_app):
    write_app(HELPER, "helper.py")
    return write_app(APP).parent


def options(processes: int = 1) -> list[str]:
    return ["--master", "--processes", str(processes), "--socket", ":3031",
            "--wsgi-file", "app.py"]


def two_nodes(app_dir, seed: int = 0) -> Cluster:
    cluster = Cluster(seed=seed)
    cluster.add("a", options(), app_dir=app_dir)
    cluster.add("b", options(), app_dir=app_dir, hostname="bee")
    return cluster


def test_each_node_has_its_own_host_name_pids_and_app_modules(app_dir):
    with two_nodes(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        assert a.get("/").body == b"a 1002 1767225600 1 1"
        assert a.get("/").body == b"a 1002 1767225600 2 2"
        # b imported the app and its helper afresh: nothing of a's is shared
        assert b.get("/").body == b"bee 1002 1767225600 1 1"
        assert a.globals("worker1")["uwsgi_file_app"]["hits"] == 2
        assert b.globals("worker1")["uwsgi_file_app"]["hits"] == 1
        assert [p.name for p in a.processes()] == ["master", "worker1"]
        assert a.uwsgi is not b.uwsgi and a.uwsgi.hostname == b"a"


def test_one_clock_every_node_runs_while_one_is_driven(app_dir):
    with two_nodes(app_dir) as cluster:
        a, b = cluster["a"], cluster["b"]
        slow = b.submit("GET", "/sleep")
        a.advance(3)
        assert slow.done and slow.response.finished == pytest.approx(2.0)
        assert cluster.now == a.now == b.now == 3.0


def test_skew_moves_one_nodes_wall_clock(app_dir):
    with two_nodes(app_dir) as cluster:
        cluster.skew("b", 30)
        assert cluster["a"].get("/").body.split()[2] == b"1767225600"
        assert cluster["b"].get("/").body.split()[2] == b"1767225630"
        assert cluster["b"].wall == pytest.approx(1767225630)
        cluster.skew("b", -5)  # an offset from the cluster's clock, not a step from the last
        assert cluster["b"].get("/").body.split()[2] == b"1767225595"
        assert cluster.trace.select("clock.skew")[-1].fields == {"name": "b", "seconds": -5}


def test_one_trace_with_the_node_of_each_record_and_one_digest(app_dir):
    def run(seed: int) -> tuple[str, list[str]]:
        with two_nodes(app_dir, seed) as cluster:
            cluster["a"].get("/")
            cluster["b"].get("/")
            nodes = [r.node for r in cluster.trace.select("request.end")]
            assert [r.node for r in cluster["b"].trace] == ["b"] * len(cluster["b"].trace)
            return cluster.digest(), nodes

    first, nodes = run(1)
    assert nodes == ["a", "b"]
    assert run(1)[0] == first


def test_node_handles_drive_signals_kill_reload_and_the_log(app_dir):
    with two_nodes(app_dir) as cluster:
        a = cluster["a"]
        old = a.process("worker1").pid
        a.kill("worker1")
        a.advance(1)
        assert a.process("worker1").pid != old
        assert cluster["b"].process("worker1").pid == 1002
        a.reload()
        a.advance(1)
        assert any("[a] " in line and "Respawned" in line for line in cluster.log)
        assert not any(line.startswith("Respawned") for line in cluster["b"].log)


def test_modules_and_uwsgi_are_restored_after_close(app_dir):
    before = set(sys.modules)
    with two_nodes(app_dir) as cluster:
        cluster["a"].get("/")
    assert "uwsgi" not in sys.modules
    assert not {"uwsgi_file_app", "helper"} & (set(sys.modules) - before)


def test_a_node_added_to_a_running_cluster_starts_at_once(app_dir):
    cluster = Cluster()
    cluster.add("a", options(), app_dir=app_dir)
    with cluster:
        cluster.advance(5)
        c = cluster.add("c", options(), app_dir=app_dir)
        assert c.started and c.get("/").body == b"c 1002 1767225605 1 1"


def test_bad_use_is_a_clear_error(app_dir):
    cluster = Cluster()
    with pytest.raises(SimulationError, match="needs a node"):
        cluster.start()
    cluster.add("a", options(), app_dir=app_dir)
    with pytest.raises(ValueError, match="already a node named 'a'"):
        cluster.add("a", options(), app_dir=app_dir)
    with pytest.raises(ValueError, match="without ':'"):
        cluster.add("b:1", options(), app_dir=app_dir)
    with pytest.raises(KeyError, match="no node named 'z'"):
        cluster["z"]
    cluster.close()
    with pytest.raises(SimulationError, match="closed"):
        cluster.add("c", options(), app_dir=app_dir)


def test_a_simulation_is_unchanged_by_a_cluster_before_it(app_dir):
    def digest() -> str:
        with Simulation(options(2), app_dir=app_dir, seed=3) as sim:
            for _ in range(4):
                sim.get("/")
            return sim.trace.digest()

    alone = digest()
    with two_nodes(app_dir) as cluster:
        cluster["a"].get("/")
    assert digest() == alone


def test_wire_requests_run_the_workers_copy_of_the_app(app_dir):
    """network='real' wraps the apps; the wrapper must still call the running process's
    copy (the virtual fork), not the master's."""
    with Simulation(options(), app_dir=app_dir, network="real") as sim:
        sim.get("/")
        assert sim.globals("worker1")["uwsgi_file_app"]["hits"] == 1
        assert sim.globals("master")["uwsgi_file_app"]["hits"] == 0


def test_a_scenario_file_with_nodes_runs_as_a_cluster(app_dir, capsys):
    from simuwsgi.cli import main
    from simuwsgi.scenario import load_scenario

    (app_dir / "s.py").write_text(
        "NODES = {'a': ['--master', '--wsgi-file', 'app.py'],\n"
        "         'b': {'options': ['--master', '--wsgi-file', 'app.py'], 'address': '10.1.1.1',"
        " 'hostname': 'bee'}}\n"
        "SEED = 5\n"
        "def timeline(cluster):\n    cluster['b'].get('/')\n    cluster.advance(10)\n"
        "def check(cluster):\n    assert cluster['b'].uwsgi.hostname == b'bee'\n"
        "    assert cluster.net.nodes['b'].host == '10.1.1.1'\n")
    assert main(["run", str(app_dir / "s.py"), "--report", str(app_dir / "rep")]) == 0
    out = capsys.readouterr().out
    assert "scenario s (seed 5): 10 virtual s" in out and "check: passed" in out
    report = (app_dir / "rep" / "s-seed5" / "report.md").read_text()
    assert "\na: --master --wsgi-file=app.py \nb: --master" in report
    scenario = load_scenario(app_dir / "s.py")
    with pytest.raises(ValueError, match="a cluster .NODES. runs in sim mode"):
        scenario.simulation(mode="fork")
    assert main(["run", str(app_dir / "s.py"), "--trace-kinds", "request.*"]) == 2
    assert "trace_kinds=['request.*'] is not available" in capsys.readouterr().err
    (app_dir / "bad.py").write_text("NODES = []\n")
    with pytest.raises(ValueError, match="NODES must be a non-empty dict"):
        load_scenario(app_dir / "bad.py")


def test_a_simulation_inside_a_cluster_and_a_node_that_fails_to_load(app_dir, write_app):
    write_app("raise RuntimeError('no db')\n", "broken.py")
    cluster = two_nodes(app_dir)
    cluster.add("c", ["--master", "--socket", ":3031", "--wsgi-file", "broken.py"],
                app_dir=app_dir, allow_no_app=True)
    with cluster:
        assert "*** no app loaded. going in full dynamic mode ***" in cluster["c"].log
        with Simulation(options(), app_dir=app_dir) as sim:
            assert sim.get("/").body.startswith(b"simuwsgi 1002")
        assert cluster["a"].get("/").body == b"a 1002 1767225600 1 1"
        assert cluster["c"].get("/").status == 500
        assert cluster["b"].get("/").body == b"bee 1002 1767225600 1 1"


def test_two_nodes_cannot_share_a_spool_directory(app_dir):
    cluster = Cluster()
    for name in ("a", "b"):
        cluster.add(name, [*options(), "--spooler", "spool"], app_dir=app_dir)
    with pytest.raises(ConfigError, match="node 'b': spooler directory .*/spool is also "
                                          "used by node 'a'"):
        cluster.start()
    assert cluster.closed and "uwsgi" not in sys.modules


def test_a_node_whose_app_fails_stops_the_start_unless_allowed(app_dir, write_app):
    write_app("raise RuntimeError('no db')\n", "broken.py")
    cluster = two_nodes(app_dir)
    cluster.add("c", ["--master", "--socket", ":3031", "--wsgi-file", "broken.py"],
                app_dir=app_dir)
    with pytest.raises(AppLoadError, match="no db"):
        cluster.start()
    assert cluster.closed and "uwsgi" not in sys.modules
