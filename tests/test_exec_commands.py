"""``--exec-asap``, ``--exec-pre-app`` and ``--exec-post-app``: uWSGI logs
``running "COMMAND" (PHASE)...``, runs the command with ``/bin/sh -c`` and waits; its
output lands in the log; a non-zero status logs ``command "COMMAND" exited with
non-zero code: N`` and ends the start with status 1. The commands run on the host only
with ``cron_commands=True`` (else they are recorded). The ``real`` tests ask uWSGI
2.0.30 the same.
"""

from __future__ import annotations

import textwrap

import pytest

from simuwsgi import Simulation, StartRefusedError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
def application(env, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""
COMMANDS = ["--exec-asap", "echo asap-out", "--exec-pre-app", "echo pre-out; echo pre-err >&2",
            "--exec-post-app", "echo post-out"]
#: the commands' lines among the landmarks of the start, in order
SEQUENCE = ['running "echo asap-out" (asap)...', "asap-out", "*** Starting uWSGI",
            "*** Operational MODE", 'running "echo pre-out; echo pre-err >&2" (pre app)...',
            "pre-out", "pre-err", "WSGI app 0", 'running "echo post-out" (post app)...',
            "post-out", "*** uWSGI is running"]
LANDMARKS = ('running "', "asap-out", "pre-out", "pre-err", "post-out", "*** Starting uWSGI",
             "*** Operational MODE", "WSGI app 0", "*** uWSGI is running")


def _argv(*extra: str) -> list[str]:
    return ["--master", "--processes", "2", "--wsgi-file", "app.py", *extra]


def _sequence(log: list[str]) -> list[str]:
    return [next((m for m in LANDMARKS[5:] if line.startswith(m)), line)
            for line in log if line.startswith(LANDMARKS)]


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_commands_run_around_the_start(app_dir, mode):
    with Simulation(_argv(*COMMANDS), app_dir=app_dir, mode=mode, cron_commands=True) as sim:
        assert sim.get("/").status == 200
        log = list(sim.log)
    assert _sequence(log) == SEQUENCE
    assert not [line for line in log if "not simulated" in line]


def test_by_default_they_are_only_recorded(app_dir):
    argv = _argv("--exec-pre-app", "touch ran.txt")
    with Simulation(argv, app_dir=app_dir) as sim:
        assert 'running "touch ran.txt" (pre app)...' in sim.log
        assert [(r.fields["phase"], r.fields["command"]) for r in sim.trace.select("exec")] == \
            [("pre app", "touch ran.txt")]
    assert not (app_dir / "ran.txt").exists()
    with Simulation(argv, app_dir=app_dir, cron_commands=True):
        pass
    assert (app_dir / "ran.txt").exists()


@pytest.mark.parametrize("option", ["--exec-asap", "--exec-pre-app", "--exec-post-app"])
def test_a_failed_command_ends_the_start(app_dir, option):
    with pytest.raises(StartRefusedError) as refused:
        Simulation(_argv(option, "echo failing; exit 3"), app_dir=app_dir,
                   cron_commands=True).start()
    assert str(refused.value) == 'command "echo failing; exit 3" exited with non-zero code: 3'
    assert refused.value.status == 1


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_lazy_apps_workers_run_the_app_commands_and_a_reload_runs_them_again(app_dir, mode):
    with Simulation(_argv("--lazy-apps", *COMMANDS), app_dir=app_dir, mode=mode,
                    cron_commands=True) as sim:
        sim.advance(1)
        first = [line for line in sim.log if line.startswith('running "')]
        sim.reload()
        sim.advance(5)
        again = [line for line in sim.log if line.startswith('running "')][len(first):]
    assert [line.split(" (")[-1] for line in first] == \
        ["asap)...", "pre app)...", "post app)...", "pre app)...", "post app)..."]
    assert again == first


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_order_on_the_real_server(app_dir):
    with RealUwsgi(_argv(*COMMANDS), app_dir=app_dir) as real:
        assert real.get("/", timeout=5).status == 200
        log = real.app_log()
    assert _sequence(log) == SEQUENCE


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("option", ["--exec-asap", "--exec-pre-app", "--exec-post-app"])
def test_a_failed_command_ends_the_real_start(app_dir, option):
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(_argv(option, "echo failing; exit 3"), app_dir=app_dir).start()
    assert real.value.returncode == 1
    assert 'command "echo failing; exit 3" exited with non-zero code: 3' in real.value.log
    assert "failing" in real.value.log


@pytest.mark.real
@requires_real_uwsgi
def test_lazy_apps_on_the_real_server(app_dir):
    import time

    with RealUwsgi(_argv("--lazy-apps", *COMMANDS), app_dir=app_dir) as real:
        time.sleep(1)
        lines = [line for line in real.app_log() if line.startswith('running "')]
    assert sorted(line.split(" (")[-1] for line in lines) == \
        sorted(["asap)...", "pre app)...", "post app)...", "pre app)...", "post app)..."])
