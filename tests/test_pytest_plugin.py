"""The pytest plugin, exercised with pytester as a user's test suite would use it."""

from __future__ import annotations

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


def test_failure_report_shows_seed_and_replay_command(pytester):
    pytester.makefile(".py", app=APP)
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
    ])


def test_missing_options_is_a_usage_error(pytester):
    pytester.makepyfile(test_none="""
        def test_x(uwsgi_sim):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*uwsgi_sim needs uWSGI options*"])
