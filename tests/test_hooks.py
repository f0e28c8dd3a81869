"""uWSGI's hooks (``--hook-*``, ``core/hooks.c``) and the ``--exec-*`` commands of the
same phases: ``running "action:args" (PHASE)...`` where uWSGI 2.0.30 runs each phase,
the actions acting on the simulated process, uWSGI's lines for bad hooks and failed
actions, and ``unix_signal:15 gracefully_kill_them_all`` (SIGTERM then shuts the
instance down gracefully). The ``real`` tests ask uWSGI 2.0.30 the same
(``docs/deviations.md`` says where the simulation differs).
"""

from __future__ import annotations

import os
import re
import signal
import textwrap

import pytest

from simuwsgi import Simulation, StartRefusedError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

from _uwsgi_process import run_until_exit, running, undated

APP = """
import os
import signal

import uwsgi


def application(env, start_response):
    if env["PATH_INFO"] == "/term":
        os.kill(uwsgi.masterpid(), signal.SIGTERM)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s %s" % (os.getcwd(), os.environ.get("HOOKED"))).encode()]
"""
#: a print hook in each phase
PHASES = ["--hook-asap", "print:asap", "--hook-pre-jail", "print:pre-jail",
          "--hook-post-jail", "print:post-jail", "--hook-in-jail", "print:in-jail",
          "--hook-as-root", "print:as-root", "--hook-as-user", "print:as-user",
          "--hook-pre-app", "print:pre-app", "--hook-post-app", "print:post-app",
          "--hook-master-start", "print:master-start", "--hook-post-fork", "print:post-fork",
          "--hook-accepting", "print:accepting", "--hook-accepting-once", "print:once",
          "--hook-accepting1", "print:accepting1", "--hook-accepting1-once", "print:1-once",
          "--hook-as-user-atexit", "print:atexit"]
#: the landmarks of a start and stop, among which the hooks' lines fall
LANDMARKS = ("*** Starting uWSGI", "detected binary path", "*** Operational MODE",
             "WSGI app 0", "spawned uWSGI worker", "goodbye to uWSGI")


def _argv(*extra: str, processes: int = 2) -> list[str]:
    return ["--master", "--processes", str(processes), "--wsgi-file", "app.py", *extra]


def _sequence(log: list[str]) -> list[str]:
    """The hooks' and commands' lines among the landmarks (each as its start)."""
    out = []
    for line in log:
        line = undated(line)
        mark = next((m for m in LANDMARKS if line.startswith(m)), None)
        if mark is not None:
            out.append(mark)
        elif line.startswith(("running ", "FATAL hook", "unable to", "hook action",
                              "invalid ")) or re.fullmatch(r"[a-z0-9-]+", line):
            out.append(line)
    return out


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def _ran(phase: str, text: str | None = None) -> list[str]:
    return [f'running "print:{text or phase}" ({phase})...', text or phase]


#: uWSGI 2.0.30's order on a machine where it does not run as root (no as-root and
#: as-user phases); worker 1 then worker 2 start
NOT_ROOT = [*_ran("asap"), "*** Starting uWSGI", "detected binary path",
            *_ran("pre-jail"), *_ran("in-jail"), "*** Operational MODE",
            *_ran("pre app", "pre-app"), "WSGI app 0", *_ran("post app", "post-app"),
            "spawned uWSGI worker", "spawned uWSGI worker", *_ran("master-start"),
            *_ran("post-fork"), *_ran("accepting"), *_ran("accepting-once", "once"),
            *_ran("accepting1"), *_ran("accepting1-once", "1-once"),
            *_ran("post-fork"), *_ran("accepting"), *_ran("accepting-once", "once"),
            "goodbye to uWSGI", *_ran("atexit")]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_each_phase_runs_where_uwsgi_runs_it(app_dir, mode):
    with Simulation(_argv(*PHASES), app_dir=app_dir, mode=mode) as sim:
        assert sim.get("/").status == 200
        sim.stop()
        log = list(sim.log)
    assert _sequence(log) == NOT_ROOT
    assert not [line for line in log if "not simulated" in line]


def test_as_root_the_privilege_phases_run_at_each_of_uwsgis_four_checks(app_dir):
    if os.getuid() != 0:
        pytest.skip("the host machine's identity is root's only when run as root")
    argv = _argv("--hook-as-root", "print:as-root", "--exec-as-root", "echo root-cmd",
                 "--hook-as-user", "print:as-user", "--exec-as-user", "echo user-cmd")
    with Simulation(argv, app_dir=app_dir, machine="host") as sim:
        log = list(sim.log)
    check = ["uWSGI running as root, you can use --uid/--gid/--chroot options",
             'running "print:as-root" (as root)...', "as-root",
             'running "echo root-cmd" (as root)...',
             "*** WARNING: you are running uWSGI as root !!! (use the --uid flag) *** ",
             'running "print:as-user" (as user)...', "as-user",
             'running "echo user-cmd" (as uid: 0 gid: 0) ...']
    starts = [i for i, line in enumerate(log) if line == check[0]]
    assert len(starts) == 4
    assert all(log[i:i + len(check)] == check for i in starts)


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_actions_act_on_the_process_and_the_files(app_dir, mode, monkeypatch):
    monkeypatch.delenv("HOOKED", raising=False)
    (app_dir / "old.txt").write_text("x")
    argv = _argv("--hook-asap", "putenv:HOOKED=yes", "--hook-asap", "mkdir:made",
                 "--hook-pre-app", "write:made/w.txt one two",
                 "--hook-post-app", "writen:made/n.txt line",
                 "--hook-master-start", "append:made/w.txt  three",
                 "--hook-master-start", "appendn:made/n.txt",
                 "--hook-master-start", "create:made/empty",
                 "--hook-master-start", "unlink:old.txt",
                 "--hook-post-fork", f"chdir:{app_dir / 'made'}",
                 processes=1)
    with Simulation(argv, app_dir=app_dir, mode=mode) as sim:
        body = sim.get("/").body.decode()
    assert body == f"{app_dir / 'made'} yes"  # the worker's cwd, the environ
    assert (app_dir / "made" / "w.txt").read_text() == "one two three"
    assert (app_dir / "made" / "n.txt").read_text() == "line\n\n"
    assert (app_dir / "made" / "empty").read_bytes() == b""
    assert not (app_dir / "old.txt").exists()
    assert "HOOKED" not in os.environ  # put back as the simulation closes


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_unix_signal_15_gracefully_kill_them_all_makes_sigterm_a_graceful_shutdown(
        app_dir, mode):
    argv = _argv("--hook-master-start", "unix_signal:15 gracefully_kill_them_all")
    with Simulation(argv, app_dir=app_dir, mode=mode) as sim:
        assert sim.get("/term").status == 200
        sim.advance(3)
        assert sim.inst.stopped
        log = [undated(line) for line in sim.log]
    end = log[log.index('running "unix_signal:15 gracefully_kill_them_all" '
                        "(master-start)...") + 1:]
    assert [line for line in end if not line.startswith("[pid:")] == [
        "graceful shutdown triggered...", "Gracefully killing worker 1 (pid: 1002)...",
        "Gracefully killing worker 2 (pid: 1003)...", "goodbye to uWSGI."]


def test_without_the_hook_sigterm_is_uwsgis_brutal_reload(app_dir):
    with Simulation(_argv(), app_dir=app_dir) as sim:
        sim.get("/term")
        sim.advance(3)
        assert not sim.inst.stopped
        assert "...brutally killing workers..." in sim.log


def _refused(app_dir, *hook: str) -> tuple[int, list[str]]:
    sim = Simulation(_argv(*hook), app_dir=app_dir)
    with pytest.raises(StartRefusedError) as refused:
        sim.start()
    log = list(sim.log)
    sim.close()
    return refused.value.status, [undated(line) for line in log]


#: hook -> uWSGI's exit status and lines (observed on 2.0.30)
REFUSALS = {
    "nocolon": (1, ["invalid hook syntax, must be hook:args"]),
    "nosuch:arg": (1, ["hook action not found: nosuch"]),
    "mkdir:/nonexistent/dir": (1, ['running "mkdir:/nonexistent/dir" (asap)...',
                                   "uwsgi_hook_mkdir(): No such file or directory "
                                   "[core/hooks.c line 73]",
                                   "FATAL hook failed, destroying instance"]),
    "call:nosuchfunc": (1, ['running "call:nosuchfunc" (asap)...',
                            'unable to call function "nosuchfunc"',
                            "FATAL hook failed, destroying instance"]),
    "callint:nosuch 5": (1, ['running "callint:nosuch 5" (asap)...',
                             'unable to call function "nosuch(5)"',
                             "FATAL hook failed, destroying instance"]),
    "unix_signal:15 nosuchfn": (1, ['running "unix_signal:15 nosuchfn" (asap)...',
                                    'unable to find function "nosuchfn"',
                                    "FATAL hook failed, destroying instance"]),
    "write:nospace": (1, ['running "write:nospace" (asap)...',
                          "invalid hook write syntax, must be: <file> <string>",
                          "FATAL hook failed, destroying instance"]),
    "exit:37": (37, ['running "exit:37" (asap)...']),
    "exit:3": (0, ['running "exit:3" (asap)...']),  # uWSGI reads one digit as 0
}


@pytest.mark.parametrize("hook", list(REFUSALS))
def test_a_bad_or_failed_asap_hook_ends_the_start_as_uwsgi(app_dir, hook):
    status, log = _refused(app_dir, "--hook-asap", hook)
    assert (status, log) == REFUSALS[hook]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_a_failed_hook_in_a_worker_sigints_the_master(app_dir, mode):
    argv = _argv("--hook-accepting1", "chdir:/nonexistent", "--hook-accepting1",
                 "print:never")
    with Simulation(argv, app_dir=app_dir, mode=mode) as sim:
        sim.advance(3)
        assert sim.inst.stopped
        log = [undated(line) for line in sim.log]
    at = log.index('running "chdir:/nonexistent" (accepting1)...')
    assert log[at + 1:at + 4] == [
        "uwsgi_hook_chdir(): No such file or directory [core/hooks.c line 65]",
        "FATAL hook failed, destroying instance",
        "SIGINT/SIGTERM received...killing workers..."]
    assert "never" not in log


def test_a_private_hook_hides_its_arguments(app_dir):
    with Simulation(_argv("--hook-asap", "!print:secret"), app_dir=app_dir) as sim:
        assert sim.log[:2] == ["running --- PRIVATE HOOK --- (asap)...", "secret"]


def test_exec_hooks_follow_the_commands_policy(app_dir):
    argv = _argv("--hook-asap", "exec:touch ran.txt", "--hook-asap", "safeexec:exit 4",
                 "--hook-asap", "print:after")
    with Simulation(argv, app_dir=app_dir) as sim:
        assert [r.fields["command"] for r in sim.trace.select("exec")] == \
            ["touch ran.txt", "exit 4"]
    assert not (app_dir / "ran.txt").exists()
    with Simulation(argv, app_dir=app_dir, cron_commands=True) as sim:
        log = list(sim.log)
    assert (app_dir / "ran.txt").exists()
    assert log[1:4] == ['running "safeexec:exit 4" (asap)...',
                        'command "exit 4" exited with non-zero code: 4',
                        'running "print:after" (asap)...']


def test_hook_touch_runs_its_hook_when_the_file_is_touched(app_dir):
    (app_dir / "flag").write_text("")
    with Simulation(_argv("--hook-touch", "flag print:touched"), app_dir=app_dir) as sim:
        sim.advance(2)
        assert "touched" not in sim.log
        sim.touch("flag")
        sim.advance(2)
        log = list(sim.log)
    assert log[-2:] == ['running "print:touched" (touch)...', "touched"]


def test_the_atexit_hooks_run_before_a_binary_reload_and_the_asap_ones_again(app_dir):
    argv = _argv("--hook-asap", "print:asap", "--hook-as-user-atexit", "print:atexit")
    with Simulation(argv, app_dir=app_dir) as sim:
        sim.reload()
        sim.advance(3)
        log = list(sim.log)
    at = log.index("binary reloading uWSGI...")
    assert log[at - 2:at] == ['running "print:atexit" (atexit)...', "atexit"]
    assert log.count("asap") == 2


def test_a_not_simulated_action_says_so(app_dir):
    with Simulation(_argv("--hook-asap", "hostname:other"), app_dir=app_dir) as sim:
        assert sim.log[:2] == [
            'running "hostname:other" (asap)...',
            '[simuwsgi] hook action "hostname" is not simulated: taken as successful']


# -- the real server ---------------------------------------------------------------------
def _split(seq: list[str]) -> tuple[list[str], list[str]]:
    """The master's part (up to the fork) and the rest (workers race: as a multiset)."""
    cut = seq.index("*** Operational MODE")
    return seq[:cut], sorted(seq[cut:])


@pytest.mark.real
@requires_real_uwsgi
def test_the_phases_on_the_real_server(app_dir):
    with running(_argv(*PHASES), app_dir) as real:  # SIGINTed as the block ends
        real.wait_for("1-once")
        real.wait_for("once", "once")
    real_seq = _sequence(real.lines)
    # (as root, as the real one here when the tests run as root, with the same phases)
    with Simulation(_argv(*PHASES), app_dir=app_dir, machine="host") as sim:
        sim.advance(1)
        sim.stop()
        sim_seq = _sequence(list(sim.log))
    assert real_seq[-3:] == sim_seq[-3:] == ["goodbye to uWSGI", *_ran("atexit")]
    assert _split(real_seq) == _split(sim_seq)


def _real_refusal(app_dir, *hook: str) -> tuple[int, list[str]]:
    status, lines = run_until_exit(_argv(*hook), app_dir)
    return status, [undated(line) for line in lines
                    if not line.startswith(("[uWSGI]", "*** Starting uWSGI"))]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("hook", list(REFUSALS))
def test_the_real_server_refuses_the_same_hooks(app_dir, hook):
    status, lines = _real_refusal(app_dir, "--hook-asap", hook)
    assert (status, lines[:len(REFUSALS[hook][1])]) == REFUSALS[hook]


@pytest.mark.real
@requires_real_uwsgi
def test_sigterm_after_the_unix_signal_hook_on_the_real_server(app_dir):
    argv = _argv("--hook-master-start", "unix_signal:15 gracefully_kill_them_all")
    with running(argv, app_dir) as real:
        real.wait_for("(master-start)...")
        master = next(int(m.group(1)) for line in real.lines
                      if (m := re.match(r"spawned uWSGI master process \(pid: (\d+)\)", line)))
        os.kill(master, signal.SIGTERM)
        real.wait_for("goodbye to uWSGI.")
        real_end = _shutdown([undated(line) for line in real.lines])
    with Simulation(argv, app_dir=app_dir) as sim:
        sim.get("/term")
        sim.advance(3)
        sim_end = _shutdown([undated(line) for line in sim.log])
    assert real_end == sim_end == [
        "graceful shutdown triggered...", "Gracefully killing worker 1 (pid: P)...",
        "Gracefully killing worker 2 (pid: P)...", "goodbye to uWSGI."]


def _shutdown(lines: list[str]) -> list[str]:
    """What follows the unix_signal hook (the workers' lines sorted: they race)."""
    end = lines[lines.index('running "unix_signal:15 gracefully_kill_them_all" '
                            "(master-start)...") + 1:]
    end = [re.sub(r"pid: \d+", "pid: P", line) for line in end if not line.startswith("[pid:")]
    return end[:1] + sorted(end[1:-1]) + end[-1:]


#: actions on files, relative to the directory uWSGI starts in
FILE_ACTIONS = ["--hook-asap", "mkdir:made", "--hook-pre-app", "write:made/w.txt one two",
                "--hook-post-app", "writen:made/n.txt line",
                "--hook-master-start", "append:made/w.txt  three",
                "--hook-master-start", "appendn:made/n.txt",
                "--hook-master-start", "create:made/empty", "--hook-master-start",
                "unlink:old.txt", "--hook-master-start", "chmod:made/empty 0600"]


def _files(root) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "app.py"}


@pytest.mark.real
@requires_real_uwsgi
def test_the_file_actions_do_what_the_real_servers_do(app_dir, tmp_path_factory):
    (app_dir / "old.txt").write_text("x")
    with running(_argv(*FILE_ACTIONS), app_dir) as real:
        real.wait_for('(master-start)...')
    sim_dir = tmp_path_factory.mktemp("sim")
    (sim_dir / "app.py").write_text(textwrap.dedent(APP))
    (sim_dir / "old.txt").write_text("x")
    with Simulation(_argv(*FILE_ACTIONS), app_dir=sim_dir):
        pass
    assert _files(app_dir) == _files(sim_dir)
    assert _files(sim_dir)["made/empty"] == (b"", 0o600)


@pytest.mark.real
@requires_real_uwsgi
def test_a_failed_hook_in_a_real_worker_sigints_the_master(app_dir):
    from simuwsgi.modes.real import free_port

    argv = _argv("--hook-accepting1", "chdir:/nonexistent", "--hook-accepting1",
                 "print:never", "--http-socket", f"127.0.0.1:{free_port()}")
    with running(argv, app_dir, http=False) as real:
        real.wait_for("SIGINT/SIGTERM received")
        master = next(int(m.group(1)) for line in real.lines
                      if (m := re.match(r"spawned uWSGI master process \(pid: (\d+)\)", line)))
        os.killpg(master, signal.SIGKILL)  # (2.0.30 does not exit after its goodbye)
    log = [undated(line) for line in real.lines]
    at = log.index('running "chdir:/nonexistent" (accepting1)...')
    assert log[at + 1:at + 4] == [
        "uwsgi_hook_chdir(): No such file or directory [core/hooks.c line 65]",
        "FATAL hook failed, destroying instance",
        "SIGINT/SIGTERM received...killing workers..."]
    assert "never" not in log
