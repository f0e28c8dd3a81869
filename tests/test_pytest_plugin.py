"""The pytest plugin, exercised with pytester as a user's test suite would use it."""

from __future__ import annotations

from pathlib import Path

CHAOS = Path(__file__).resolve().parent.parent / "scenarios" / "chaos"

APP = """
import uwsgi
def application(env, sr):
    sr("200 OK", [])
    return [b"worker %d" % uwsgi.worker_id()]
"""


def test_fixture_marker_and_seed_option(pytester):
    pytester.makefile(".py", app=APP)
    pytester.makepyfile(test_user="""
        import pytest

        @pytest.mark.uwsgi("--master", "--processes", "2", "--wsgi-file", "app.py", seed=4)
        def test_request(uwsgi_sim):
            assert uwsgi_sim.get("/").body.startswith(b"worker ")
            assert uwsgi_sim.seed == 4

        def test_factory(uwsgi_simulation):
            a = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], seed=1)
            assert a.get("/").body == b"worker 1"
    """)
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest("-q", "--simuwsgi-seed", "9",
                                "-k", "request")
    result.assert_outcomes(failed=1)


def test_failure_report_shows_seed_replay_command_and_the_log_tail(pytester):
    pytester.makefile(".py", app=APP + "for i in range(40):\n    uwsgi.log('line %d' % i)\n")
    pytester.makepyfile(test_fail="""
        import pytest

        @pytest.mark.uwsgi("--master", "--wsgi-file", "app.py", seed=17)
        def test_broken(uwsgi_sim):
            uwsgi_sim.advance(3)
            assert uwsgi_sim.get("/").body == b"nope"
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*simuwsgi*",
        "seed 17, virtual time 3.000000 s, trace digest *",
        "replay: pytest 'test_fail.py::test_broken' --simuwsgi-seed=17",
        "last 30 of 67 lines of the uWSGI log:",  # 27 of uWSGI's own (startup, request)
        "  line 15",
    ])
    out = result.stdout.str().splitlines()
    first = out.index("  line 15")
    tail = out[first:first + 31]  # the app's last 25 lines, then the master's, the request
    assert tail[24:29] == ["  line 39", "  WSGI app 0 (mountpoint='') ready in 0 seconds on "
                           "interpreter 0x0 pid: 1001 (default app)",
                           "  *** uWSGI is running in multiple interpreter mode ***",
                           "  spawned uWSGI master process (pid: 1001)",
                           "  spawned uWSGI worker 1 (pid: 1002, cores: 1)"]
    assert "GET /" in tail[29] and not tail[30].startswith("  ")


def test_an_app_that_did_not_load_fails_the_test_unless_allowed(pytester):
    pytester.makefile(".py", app="raise ImportError('gone')\n")
    pytester.makepyfile(test_noapp="""
        import pytest

        @pytest.mark.uwsgi("--master", "--wsgi-file", "app.py")
        def test_loud(uwsgi_sim):
            pass

        @pytest.mark.uwsgi("--master", "--wsgi-file", "app.py", allow_no_app=True)
        def test_allowed(uwsgi_sim):
            assert uwsgi_sim.get("/").status == 500

        def test_factory(uwsgi_simulation):
            sim = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], allow_no_app=True)
            assert sim.get("/").status == 500
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*AppLoadError: the app app.py did not load: uWSGI runs on, answering every request "
        "with a 500: pass allow_no_app=True if that is what you want",
        "*ImportError: gone",
    ])


def test_missing_options_is_a_usage_error(pytester):
    pytester.makepyfile(test_none="""
        def test_x(uwsgi_sim):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*uwsgi_sim needs uWSGI options*"])


MODES_APP = """\
import uwsgi

def application(environ, start_response):
    start_response("200 OK", [])
    return [b"%d workers" % uwsgi.numproc]
"""


def test_mode_parameter_runs_the_same_test_in_sim_and_real(pytester):
    pytester.makefile(".py", app=MODES_APP)
    pytester.makepyfile(test_user="""
        import pytest

        @pytest.mark.parametrize("mode", ["sim", "real"])
        def test_factory(uwsgi_simulation, mode):
            run = uwsgi_simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                                   mode=mode)
            assert run.mode == mode
            assert run.get("/").body == b"2 workers"
            run.advance(0.2)
            assert run.trace.count("request.end", status=200) == 1

        @pytest.mark.parametrize("mode", ["sim", "real"])
        def test_marker(request, mode):
            request.applymarker(pytest.mark.uwsgi("--master", "--wsgi-file", "app.py", mode=mode))
            run = request.getfixturevalue("uwsgi_sim")
            assert run.get("/").body == b"1 workers"

        PIDS = []

        @pytest.mark.parametrize("n", [1, 2])
        @pytest.mark.uwsgi("--master", "--wsgi-file", "app.py", mode="real", reuse=True)
        def test_reuse(uwsgi_sim, n):
            PIDS.append(uwsgi_sim.server.pid)
            assert uwsgi_sim.now < 1.0
            assert uwsgi_sim.get("/").status == 200
            assert uwsgi_sim.trace.count("request.start") == 1
            assert len(set(PIDS)) == 1
    """)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_factory_simulations_leave_the_real_clock_to_the_next_test(pytester):
    """Today the factory closes in creation order and leaves ``time.time()`` frozen."""
    pytester.makefile(".py", app=APP)
    pytester.makepyfile(test_clock_after="""
        import datetime, time
        from simuwsgi import real_time

        def test_two(uwsgi_simulation):
            a = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], start="2001-01-01")
            b = uwsgi_simulation(["--master", "--wsgi-file", "app.py"], start="2002-01-01")
            assert a.get("/").status == b.get("/").status == 200

        def test_after():
            assert abs(time.time() - real_time.time()) < 5
            assert abs(datetime.datetime.now().timestamp() - real_time.time()) < 5
    """)
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_cluster_fixture(pytester):
    pytester.makefile(".py", app=APP + "uwsgi.register_rpc('who', lambda: uwsgi.hostname)\n")
    pytester.makepyfile(test_nodes="""
        import pytest

        OPTS = ["--master", "--socket", ":3031", "--wsgi-file", "app.py"]

        @pytest.mark.uwsgi_cluster(seed=5)
        def test_two_nodes(uwsgi_cluster):
            uwsgi_cluster.add("a", OPTS)
            uwsgi_cluster.add("b", OPTS)
            assert uwsgi_cluster["a"].get("/").body == b"worker 1"
            assert uwsgi_cluster["b"].uwsgi.hostname == b"b"
            assert uwsgi_cluster.seed == 5
            assert uwsgi_cluster.ping("b:3031") == b""
            assert uwsgi_cluster.now == 0.5
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*assert 4e-05 == 0.5*",
        "seed 5, virtual time 0.000040 s, trace digest *",
        "replay: pytest 'test_nodes.py::test_two_nodes' --simuwsgi-seed=5",
    ])


EXPLORED_TESTS = """
    import os
    import pytest

    @pytest.mark.explore_seeds({scenario!r}, seeds=6, faults="kill")
    def test_seed(explored):
        with open(os.environ["DIGESTS"], "a") as f:
            f.write(f"{{explored.seed}} {{explored.digest}} {{os.getpid()}}\\n")
        assert explored.failure is None, explored.detail
"""


def _digests(path):
    rows = [line.split() for line in path.read_text().splitlines()]
    path.unlink()
    return sorted((int(seed), digest) for seed, digest, _pid in rows), {r[2] for r in rows}


def test_explore_seeds_shard_over_xdist_workers_with_the_same_results(pytester, monkeypatch):
    pytester.makepyfile(test_user=EXPLORED_TESTS.format(
        scenario=str(CHAOS / "spool_twice_fixed.py")))
    digests = pytester.path / "digests"
    monkeypatch.setenv("DIGESTS", str(digests))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=6)
    alone, pids = _digests(digests)
    assert [seed for seed, _ in alone] == list(range(6)) and len(pids) == 1
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2").assert_outcomes(
        passed=6)
    sharded, pids = _digests(digests)
    assert sharded == alone and len(pids) == 2  # two workers, the same six runs


def test_a_failing_seed_reports_its_minimal_plan_and_replay(pytester, monkeypatch):
    pytester.makepyfile(test_user=EXPLORED_TESTS.format(
        scenario=str(CHAOS / "spool_twice.py")).replace("seeds=6", "first_seed=2, seeds=1"))
    monkeypatch.setenv("DIGESTS", str(pytester.path / "digests"))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "test_seed[seed2]" in out
    assert "minimal plan (" in out and "Kill('spooler1', when=DuringSpoolTask(" in out
    assert "replay: simuwsgi run " in out and "spool_twice.py --seed 2 --faults" in out


def test_explore_seeds_refuses_a_missing_scenario_or_an_unknown_fault(pytester):
    pytester.makepyfile(test_user="""
        import pytest

        @pytest.mark.explore_seeds("nowhere.py", seeds=1)
        def test_missing(explored):
            pass

        @pytest.mark.explore_seeds(__file__, seeds=1, faults="meteor")
        def test_fault(explored):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "explore_seeds: no scenario file" in out and "nowhere.py" in out
    assert "explore_seeds: --faults: unknown fault kind 'meteor'" in out
