"""The hostile apps on the real uWSGI 2.0.30 server and in the simulation: the same
deaths, the same master lines, the same atexit runs."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from _hostile import GAP, atexit_lines, copy_app

from simuwsgi import Simulation, SimulationError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

#: The master's words for a death or an exit, worker ids and pids blanked out.
_MASTER_LINES = re.compile(r"^(DAMN|OOOPS|\.\.\. monitored|Gracefully killing|worker \d+ "
                           r"total requests|SIGINT/SIGTERM|goodbye|\.\.\.gracefully)")


def master_lines(log: list[str]) -> list[str]:
    return [re.sub(r"\d+", "N", line) for line in log if _MASTER_LINES.match(line)]


def both(tmp_path: Path, app: str, options: list[str], paths: list[str]):
    """(statuses, master lines, atexit lines) from the real server, then the simulation."""
    out = []
    for side in ("real", "sim"):
        where = tmp_path / side
        where.mkdir()
        copy_app(where, app)
        if side == "real":
            with RealUwsgi(options, app_dir=where) as real:
                statuses = []
                for path in paths:
                    statuses.append(real.get(path, timeout=5).status)
                    time.sleep(GAP)
                real.stop()
                log = real.app_log()
        else:
            with Simulation(options, app_dir=where) as sim:
                statuses = []
                for path in paths:
                    statuses.append(sim.get(path).status)
                    sim.advance(GAP)
                sim.stop()
                log = list(sim.log)
        out.append((statuses, master_lines(log), atexit_lines(where)))
    return out


@requires_real_uwsgi
def test_exits_in_requests_match_real_uwsgi(tmp_path):
    real, sim = both(tmp_path, "exits.py", ["--master", "--wsgi-file", "exits.py",
                                            "--queue", "4"],
                     ["/os_exit", "/sys_exit", "/c_exit_caught", "/os_exit_caught",
                      "/keyboard_interrupt", "/base_exception", "/"])
    assert sim == real
    assert real[0] == [None, None, None, None, None, None, 200]


@requires_real_uwsgi
def test_os_kill_between_workers_matches_real_uwsgi(tmp_path):
    # one worker: "other" is not needed, every signal goes to the worker itself or is
    # sent by it to itself
    real, sim = both(tmp_path, "kills.py", ["--master", "--wsgi-file", "kills.py"],
                     ["/self/15", "/self/1", "/self/10", "/self/2", "/"])
    assert sim == real


@requires_real_uwsgi
def test_signal_handler_and_mule_exits_match_real_uwsgi(tmp_path):
    real, sim = both(tmp_path, "handlers.py", ["--master", "--wsgi-file", "handlers.py",
                                               "--mule"],
                     ["/signal/10", "/signal/11", "/signal/12", "/signal/13", "/signal/14"])
    assert sim == real


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


@requires_real_uwsgi
def test_python_signal_handlers_of_the_app_match_real_uwsgi(tmp_path):
    real, sim = both(tmp_path, "kills.py", ["--master", "--wsgi-file", "kills.py"],
                     ["/getsignal", "/handler", "/getsignal"])
    assert sim == real


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


@requires_real_uwsgi
def test_commands_and_exec_match_real_uwsgi(tmp_path):
    real, sim = both(tmp_path, "commands.py", ["--master", "--wsgi-file", "commands.py"],
                     ["/run", "/system", "/exec_missing", "/exec", "/"])
    assert sim == real
    assert real[0] == [200, 200, 200, None, 200]


@requires_real_uwsgi
def test_a_handler_signalled_by_another_process_runs_in_its_own_like_real_uwsgi(tmp_path):
    # the worker's handler runs in the worker, with its globals and pid, in the request
    # it was running; what the handler raises comes out in that request
    paths = ["/record", "/signal", "/", "/explode", "/signal", "/"]
    out = []
    for side in ("real", "sim"):
        where = tmp_path / side
        where.mkdir()
        copy_app(where, "crosskill.py")
        options = ["--master", "--wsgi-file", "crosskill.py", "--mule"]
        if side == "real":
            with RealUwsgi(options, app_dir=where) as real:
                got = [real.get(path, timeout=5) for path in paths]
                log = real.app_log()
        else:
            with Simulation(options, app_dir=where) as sim:
                got = [sim.get(path) for path in paths]
                log = list(sim.log)
        out.append(([(r.status, r.body) for r in got],
                    "RuntimeError: handler of signal 10" in log))
    assert out[0] == out[1]
    seen = (200, b"10:1:True:True")
    assert out[0] == ([(200, b""), seen, seen, seen, (None, b""), seen], True)
