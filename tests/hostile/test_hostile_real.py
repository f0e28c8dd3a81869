"""The hostile apps on the real uWSGI 2.0.30 server and in the simulation: the same
deaths, the same master lines, the same atexit runs. The real runs that pause GAP seconds
between requests start together (``real_runs``, tests/_overlap.py)."""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from _hostile import GAP, atexit_lines, copy_app, stdin_from_a_pipe
from _overlap import started_together

from simuwsgi import Simulation, SimulationError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi, requires_real_uwsgi

pytestmark = pytest.mark.real

#: The master's words for a death or an exit, worker ids and pids blanked out.
_MASTER_LINES = re.compile(r"^(DAMN|OOOPS|\.\.\. monitored|Gracefully killing|worker \d+ "
                           r"total requests|SIGINT/SIGTERM|goodbye|\.\.\.gracefully)")


def master_lines(log: list[str]) -> list[str]:
    return [re.sub(r"\d+", "N", line) for line in log if _MASTER_LINES.match(line)]


#: The apps driven the same way on both sides, by case: app, options, request paths.
CASES = {
    "exits": ("exits.py", ["--master", "--wsgi-file", "exits.py", "--queue", "4"],
              ["/os_exit", "/sys_exit", "/c_exit_caught", "/os_exit_caught",
               "/keyboard_interrupt", "/base_exception", "/"]),
    # one worker: "other" is not needed, every signal goes to the worker itself or is
    # sent by it to itself
    "kills": ("kills.py", ["--master", "--wsgi-file", "kills.py"],
              ["/self/15", "/self/1", "/self/10", "/self/2", "/"]),
    "handlers": ("handlers.py", ["--master", "--wsgi-file", "handlers.py", "--mule"],
                 ["/signal/10", "/signal/11", "/signal/12", "/signal/13", "/signal/14"]),
    "raises": ("kills.py", ["--master", "--wsgi-file", "kills.py"],
               ["/raise/10", "/thread/10", "/raise/1", "/thread/15", "/"]),
    "python-handlers": ("kills.py", ["--master", "--wsgi-file", "kills.py"],
                        ["/getsignal", "/handler", "/getsignal"]),
    "commands": ("commands.py", ["--master", "--wsgi-file", "commands.py"],
                 ["/run", "/system", "/exec_missing", "/exec", "/"]),
}


def _real(case: str):
    """(statuses, master lines, atexit lines) of a case on the real server, a request
    every GAP seconds."""
    app, options, paths = CASES[case]
    with tempfile.TemporaryDirectory() as where:
        copy_app(Path(where), app)
        with RealUwsgi(options, app_dir=where) as real:
            statuses = []
            for path in paths:
                statuses.append(real.get(path, timeout=5).status)
                time.sleep(GAP)
            real.stop()
            log = real.app_log()
        return statuses, master_lines(log), atexit_lines(Path(where))


def _sim(where: Path, case: str):
    """The same from the simulation."""
    app, options, paths = CASES[case]
    copy_app(where, app)
    with Simulation(options, app_dir=where) as sim:
        statuses = []
        for path in paths:
            statuses.append(sim.get(path).status)
            sim.advance(GAP)
        sim.stop()
        log = list(sim.log)
    return statuses, master_lines(log), atexit_lines(where)


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[Any]]]:
    """The real runs of this module's selected tests, started together (each mostly
    waits out its GAPs)."""
    require_real_uwsgi()
    yield from started_together(request, _real)


@pytest.mark.parametrize("case", ["exits"])
def test_exits_in_requests_match_real_uwsgi(real_runs, case, tmp_path):
    real = real_runs[case].result()
    assert _sim(tmp_path, case) == real
    assert real[0] == [None, None, None, None, None, None, 200]


@pytest.mark.parametrize("case", ["kills"])
def test_os_kill_between_workers_matches_real_uwsgi(real_runs, case, tmp_path):
    assert _sim(tmp_path, case) == real_runs[case].result()


@pytest.mark.parametrize("case", ["raises"])
def test_raise_signal_and_pthread_kill_match_real_uwsgi(real_runs, case, tmp_path):
    """signal.raise_signal and signal.pthread_kill in a worker signal that worker, as
    os.kill of its own pid: SIGUSR1 logs its request count, SIGHUP ends it after its
    request, SIGTERM at once; the host process is never signalled."""
    real = real_runs[case].result()
    assert _sim(tmp_path, case) == real
    assert real[0][-1] == 200


@pytest.mark.parametrize("case", ["handlers"])
def test_signal_handler_and_mule_exits_match_real_uwsgi(real_runs, case, tmp_path):
    assert _sim(tmp_path, case) == real_runs[case].result()


@requires_real_uwsgi
def test_sys_exit_at_import_matches_real_uwsgi(tmp_path):
    copy_app(tmp_path, "import_exit.py")
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(["--master", "--wsgi-file", "import_exit.py"], app_dir=tmp_path,
                  startup_timeout=5).start()
    assert real.value.returncode == 7
    assert atexit_lines(tmp_path) == ["import"]
    with pytest.raises(SimulationError, match="status 7"):
        Simulation(["--master", "--wsgi-file", "import_exit.py"], app_dir=tmp_path).start()
    assert atexit_lines(tmp_path) == ["import", "import"]


@pytest.mark.parametrize("case", ["python-handlers"])
def test_python_signal_handlers_of_the_app_match_real_uwsgi(real_runs, case, tmp_path):
    assert _sim(tmp_path, case) == real_runs[case].result()


@requires_real_uwsgi
def test_os_kill_sighup_to_the_master_reloads_like_real_uwsgi(tmp_path):
    copy_app(tmp_path, "kills.py")
    options = ["--master", "--wsgi-file", "kills.py"]
    with RealUwsgi(options, app_dir=tmp_path) as real:
        mark = real.mark()
        assert real.get("/master/1").status == 200
        real.wait_reloaded(since=mark)
        real_log = real.app_log()
        assert real.get("/").status == 200
    with Simulation(options, app_dir=tmp_path) as sim:
        assert sim.get("/master/1").status == 200
        sim.advance(GAP)
        assert sim.get("/").status == 200
        sim_log = list(sim.log)
    for line in ("...gracefully killing workers...", "binary reloading uWSGI..."):
        assert line in real_log and line in sim_log


@requires_real_uwsgi
def test_os_exit_while_a_lazy_worker_loads_the_app_matches_real_uwsgi(tmp_path):
    copy_app(tmp_path, "import_os_exit.py")
    options = ["--master", "--lazy-apps", "--wsgi-file", "import_os_exit.py"]
    with pytest.raises(RealUwsgiError) as err:  # never ready: the worker keeps dying
        RealUwsgi(options, app_dir=tmp_path, startup_timeout=4).start()
    real_lines = master_lines(list(err.value.log))
    with Simulation(options, app_dir=tmp_path, allow_no_app=True) as sim:
        sim.advance(4)
        sim_lines = master_lines(list(sim.log))
    assert real_lines[:2] == sim_lines[:2] == [
        "... monitored exception detected, respawning worker N (pid: N)..."] * 2


@pytest.mark.parametrize("case", ["commands"])
def test_commands_and_exec_match_real_uwsgi(real_runs, case, tmp_path):
    real = real_runs[case].result()
    assert _sim(tmp_path, case) == real
    assert real[0] == [200, 200, 200, None, 200]


def _on_both(tmp_path: Path, app: str, options: list[str], paths: list[str], *,
             gap: float = 0.0) -> list[tuple[list[Any], list[str]]]:
    """The responses and the log of ``paths`` requested in turn (``gap`` seconds apart:
    real ones there, virtual ones here) from the real server, then from a simulation."""
    out = []
    for side in ("real", "sim"):
        where = tmp_path / side
        where.mkdir()
        copy_app(where, app)
        got = []
        if side == "real":
            with RealUwsgi(options, app_dir=where) as real:
                for path in paths:
                    got.append(real.get(path, timeout=8))
                    time.sleep(gap)
                log = real.app_log()
        else:
            with Simulation(options, app_dir=where) as sim:
                for path in paths:
                    got.append(sim.get(path))
                    sim.advance(gap)
                log = list(sim.log)
        out.append((got, log))
    return out


@requires_real_uwsgi
def test_a_handler_signalled_by_another_process_runs_in_its_own_like_real_uwsgi(tmp_path):
    # the worker's handler runs in the worker, with its globals and pid, in the request
    # it was running; what the handler raises comes out in that request
    paths = ["/record", "/signal", "/", "/explode", "/signal", "/"]
    out = [([(r.status, r.body) for r in got], "RuntimeError: handler of signal 10" in log)
           for got, log in _on_both(tmp_path, "crosskill.py",
                                    ["--master", "--wsgi-file", "crosskill.py", "--mule"],
                                    paths)]
    assert out[0] == out[1]
    seen = (200, b"10:1:True:True")
    assert out[0] == ([(200, b""), seen, seen, seen, (None, b""), seen], True)


@requires_real_uwsgi
def test_a_wakeup_descriptor_of_the_app_works_as_on_the_real_server(tmp_path):
    """``signal.set_wakeup_fd`` in a worker: the same checks, the same byte written, the
    same report of a failed write in the log (and ``siginterrupt``'s check)."""
    paths = ["/wakeup", "/wakeup_closed", "/wakeup", "/siginterrupt"]
    out = [([(r.status, r.body) for r in got],
            [line for line in log if "wakeup fd" in line or line.startswith("OSError")])
           for got, log in _on_both(tmp_path, "kills.py",
                                    ["--master", "--wsgi-file", "kills.py"], paths)]
    assert out[0] == out[1]
    assert out[0][0][0] == (200, b"[-1, [10], True, 'the fd N must be in non-blocking mode']")
    assert out[0][0][3] == (200, b"signal number out of range")
    assert out[0][1] == ["Exception ignored when trying to write to the signal wakeup fd:",
                         "OSError: [Errno 9] Bad file descriptor"]


@requires_real_uwsgi
def test_faulthandler_in_a_worker_matches_real_uwsgi(tmp_path):
    """The same answers, the same dumps in the log (a dump, a timeout that ends the
    worker, a registered signal, os.abort with the handler on) and the same deaths.
    Left aside on the real side: the frame of pyuwsgi's entry script (the ``uwsgi``
    Python script that starts the server, under every stack of the wheel) and the list
    of extension modules after a fatal error (the simulation's would be the test
    process's)."""
    from test_hostile import FAULT_PATHS, fault_lines

    out = [([(r.status, r.body) for r in got],
            [line for line in fault_lines(log) if not re.search(r'/uwsgi", line \d+ in ', line)],
            master_lines(log))
           for got, log in _on_both(tmp_path, "faults.py",
                                    ["--master", "--wsgi-file", "faults.py"], FAULT_PATHS,
                                    gap=GAP)]
    assert out[0] == out[1]
    assert "Fatal Python error: Aborted" in out[0][1]
    assert out[0][2] == ["DAMN ! worker N (pid: N) died :( trying respawn ...",
                         "DAMN ! worker N (pid: N) died, killed by signal N :( trying respawn ..."]


@requires_real_uwsgi
@pytest.mark.parametrize("option", ["", "--skip-atexit-teardown", "--skip-atexit"])
def test_uwsgi_atexit_and_the_skip_options_match_real_uwsgi(tmp_path, option):
    from test_hostile import ATEXITS, exits_of_the_other_worker

    real_dir, sim_dir = tmp_path / "real", tmp_path / "sim"
    real_dir.mkdir()
    sim_dir.mkdir()
    copy_app(real_dir, "atexits.py")
    options = ["--master", "--processes", "2", "--wsgi-file", "atexits.py",
               *([option] if option else [])]
    with RealUwsgi(options, app_dir=real_dir) as real:
        assert real.get("/other", timeout=5).status == 200
        time.sleep(GAP)
        log = real_dir / "exits.log"
        seen = log.read_text().split() if log.exists() else []
    assert seen == exits_of_the_other_worker(sim_dir, option) == ATEXITS[option]


def _real_stdin_reads(where: Path, honour: bool) -> bytes:
    """What ``stdin.py`` answers on the real server started with an open pipe on its
    stdin (with ``--honour-stdin``: a line written to it, then closed)."""
    binary = require_real_uwsgi()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ["--master", "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", "stdin.py"]
    server = subprocess.Popen([binary, *options, *(["--honour-stdin"] if honour else [])],
                              cwd=where, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        if honour:
            server.stdin.write(b"typed\n")
            server.stdin.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    reply = b"".join(iter(lambda: conn.recv(65536), b""))
                return reply.partition(b"\r\n\r\n")[2]
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        server.kill()
        server.wait()


@requires_real_uwsgi
@pytest.mark.parametrize("honour", [False, True])
def test_stdin_reads_as_on_the_real_server(tmp_path, honour):
    """uWSGI remaps fd 0 to /dev/null unless --honour-stdin: an app reading stdin gets
    EOF at once, on the real server and in the simulation."""
    copy_app(tmp_path, "stdin.py")
    real = _real_stdin_reads(tmp_path, honour)
    with stdin_from_a_pipe() as send:
        send(b"typed\n" if honour else b"")
        options = ["--master", "--wsgi-file", "stdin.py", *(["--honour-stdin"] if honour
                                                             else [])]
        with Simulation(options, app_dir=tmp_path) as sim:
            simulated = sim.get("/").body
    assert real == simulated == (b"('typed\\n', 'EOFError')" if honour
                                 else b"('', 'EOFError')")
