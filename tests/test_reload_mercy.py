"""--mule-reload-mercy, --reload-mercy, --touch-spoolers-reload and --touch-exec
(``Instance._no_mercy``, ``FileMonitors._exec``), with the lines observed on pyuwsgi
2.0.30."""

from __future__ import annotations

import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from _overlap import started_together
from _uwsgi_process import before_stop, get, run_with, undated

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"
# a mule that handles SIGHUP itself: the curse does not end it
MULE = ("import signal, time\n"
        "signal.signal(signal.SIGHUP, lambda *a: None)\n"
        "while True:\n    time.sleep(1)\n")
SLOW = ("import time\n"
        "def application(e, s):\n"
        "    for _ in range(20 if e['PATH_INFO'] == '/slow' else 0):\n        time.sleep(0.25)\n"
        "    s('200 OK', [])\n    return [b'slow']\n")


def _prepare(path: Path) -> Path:
    (path / "app.py").write_text(APP)
    (path / "m.py").write_text(MULE)
    (path / "slow.py").write_text(SLOW)
    (path / "t").write_text("")
    (path / "spool").mkdir()
    return path


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return _prepare(tmp_path)


def _from_touch(lines: list[str]) -> list[str]:
    """The lines from the touch to the stop, dates cut and pids masked, request lines
    left out."""
    # every pid, whatever its digits (a fresh container's are short)
    out = [re.sub(r"(pid:? |subprocess )\d+", r"\1P", undated(line))
           for line in before_stop(lines)]
    first = next(i for i, line in enumerate(out) if "has been touched" in line
                 or "touch-exec" in line)
    return [line for line in out[first:] if not line.startswith("[pid:")]


def _touch_later(app_dir: Path) -> Callable[[str], None]:
    """A scenario that touches ``t`` 2 s in: a later second than the master's first stat
    of it (uWSGI compares whole-second mtimes)."""
    def scenario(_url: str) -> None:
        time.sleep(2)
        (app_dir / "t").touch()
    return scenario


def _times(sim: Simulation, text: str) -> list[float]:
    return [t for t, _p, line in sim.inst.log_lines if text in line]


MULE_OPTIONS = ["--master", "--wsgi-file", "app.py", "--mule=m.py",
                "--touch-mules-reload", "t", "--mule-reload-mercy", "2"]
MULE_LINES = ["*** t has been touched... mules reload !!! ***",
              "mule 1 (pid: P) is taking too much time to die...NO MERCY !!!",
              "spawned uWSGI mule 1 (pid: P)"]


def test_mule_reload_mercy(app_dir: Path) -> None:
    with Simulation(MULE_OPTIONS, app_dir=app_dir) as sim:
        sim.advance(2.5)
        pid = sim.inst.mules[1].pid
        sim.touch("t")  # cursed at 3: killed at the first check after 3 + 2
        sim.advance(2.6)
        assert sim.inst.mules[1].pid == pid and sim.inst.mules[1].alive
        sim.advance(2)
        assert sim.inst.mules[1].pid != pid
        assert _times(sim, "NO MERCY") == [6.0]
        assert _from_touch(sim.log) == MULE_LINES


def test_a_mule_ended_by_the_curse_is_respawned_without_mercy(app_dir: Path) -> None:
    (app_dir / "m.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    with Simulation(MULE_OPTIONS, app_dir=app_dir) as sim:
        sim.advance(2.5)
        sim.touch("t")
        sim.advance(5)
        assert _from_touch(sim.log) == [MULE_LINES[0], MULE_LINES[2]]


def test_a_graceful_reload_waits_for_a_mule_until_its_mercy(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--mule=m.py",
                     "--touch-reload", "t", "--mule-reload-mercy", "3"], app_dir=app_dir) as sim:
        sim.advance(1.5)
        sim.touch("t")  # cursed at 2, killed at 6, then the master re-executes
        sim.advance(6)
        assert _times(sim, "NO MERCY") == [6.0]
        assert sim.inst.reloads == 1
        assert _times(sim, "binary reloading uWSGI") == [7.0]


@pytest.mark.real
@pytest.mark.parametrize("case", ["mule"])
def test_real_mule_reload_mercy(real_runs, case) -> None:
    assert _from_touch(real_runs[case].result()) == MULE_LINES


SPOOLER_OPTIONS = ["--master", "--wsgi-file", "app.py", "--spooler", "spool",
                   "--mules", "2", "--touch-spoolers-reload", "t"]
# the spooler ignores SIGHUP and its mercy is 0 s: killed at the next check, and said
# again at each check until the master reaps it; "spooler 3" is the mule count + 1
SPOOLER_LINES = ["*** t has been touched... spoolers reload !!! ***",
                 "spooler 3 (pid: P) is taking too much time to die...NO MERCY !!!",
                 "spooler 3 (pid: P) is taking too much time to die...NO MERCY !!!",
                 "OOOPS the spooler is no more...trying respawn...",
                 "spawned the uWSGI spooler on dir DIR with pid P"]


def _spooler_lines(lines: list[str], app_dir: Path) -> list[str]:
    return _from_touch([line.replace(str(app_dir / "spool"), "DIR") for line in lines])


def test_touch_spoolers_reload(app_dir: Path) -> None:
    with Simulation(SPOOLER_OPTIONS, app_dir=app_dir) as sim:
        sim.advance(2.5)
        pid = sim.inst.spoolers[1].pid
        sim.touch("t")
        sim.advance(4)
        assert sim.inst.spoolers[1].pid != pid and sim.inst.spoolers[1].respawn_count == 1
        assert _times(sim, "NO MERCY") == [4.0, 5.0]
        assert _spooler_lines(sim.log, app_dir) == SPOOLER_LINES


@pytest.mark.real
@pytest.mark.parametrize("case", ["spoolers"])
def test_real_touch_spoolers_reload(real_runs, case) -> None:
    lines = _from_touch(real_runs[case].result())
    # whether the master's waitpid() sees the SIGKILLed spooler dead in the check that
    # killed it or at the next one is a race (the simulation: the next one): one or
    # two NO MERCY lines
    assert lines in (SPOOLER_LINES, SPOOLER_LINES[:2] + SPOOLER_LINES[3:])


EXEC_OPTIONS = ["--master", "--wsgi-file", "app.py",
                "--touch-exec", "t echo hello-from-touch", "--touch-exec", "t echo two"]
# one entry per check: the second command a check later; each command reaped at the
# check after it ran (after that check's touches)
EXEC_LINES = ["[uwsgi-touch-exec] running echo hello-from-touch",
              "[uwsgi-touch-exec] running echo two",
              "subprocess P exited with code 0",
              "subprocess P exited with code 0"]


def test_touch_exec_is_recorded_not_run_by_default(app_dir: Path) -> None:
    with Simulation(EXEC_OPTIONS, app_dir=app_dir) as sim:
        sim.advance(2.5)
        sim.touch("t")
        sim.advance(3)
        assert _times(sim, "[uwsgi-touch-exec] running") == [3.0, 4.0]
        assert [r["command"] for r in sim.trace.select("touch.exec")] == \
            ["echo hello-from-touch", "echo two"]
        assert not any("hello-from-touch" == line for line in sim.log)


def test_touch_exec_runs_with_cron_commands(app_dir: Path) -> None:
    with Simulation(EXEC_OPTIONS, app_dir=app_dir, cron_commands=True) as sim:
        sim.advance(2.5)
        sim.touch("t")
        sim.advance(3)
        lines = _from_touch(sim.log)
        assert [line for line in lines if line not in ("hello-from-touch", "two")] == \
            EXEC_LINES
        assert {"hello-from-touch", "two"} <= set(lines)
        assert _times(sim, "subprocess") == [4.0, 5.0]


@pytest.mark.real
@pytest.mark.parametrize("case", ["exec"])
def test_real_touch_exec(real_runs, case) -> None:
    lines = _from_touch(real_runs[case].result())
    assert [line for line in lines if line not in ("hello-from-touch", "two")] == EXEC_LINES
    assert {"hello-from-touch", "two"} <= set(lines)


RELOAD_MERCY = ["--master", "--wsgi-file", "slow.py", "--touch-workers-reload", "t",
                "--reload-mercy", "1"]


def test_reload_mercy_does_not_shorten_a_worker_reload(app_dir: Path) -> None:
    # 2.0.30 reads --reload-mercy only when it waits for an Emperor or attached daemons
    with Simulation(RELOAD_MERCY, app_dir=app_dir) as sim:
        sim.advance(0.5)
        handle = sim.submit("GET", "/slow")
        sim.advance(1)
        sim.touch("t")
        sim.advance(5)
        assert handle.response.body == b"slow"
        assert not any("NO MERCY" in line for line in sim.log)


def _touch_during_a_slow_request(app_dir: Path) -> Callable[[str], None]:
    def scenario(url: str) -> None:
        host, port = url.rsplit("/", 1)[-1].split(":")
        with socket.create_connection((host, int(port)), timeout=15) as conn:
            conn.sendall(b"GET /slow HTTP/1.0\r\n\r\n")
            time.sleep(1)
            (app_dir / "t").touch()
            assert conn.recv(1000).endswith(b"slow")
        # answered by the new worker: not stopped while it starts (a slow stop)
        assert get(url, wait=15) == b"slow"
    return scenario


@pytest.mark.real
@pytest.mark.parametrize("case", ["reload-mercy"])
def test_real_reload_mercy_does_not_shorten_a_worker_reload(real_runs, case) -> None:
    lines = before_stop(real_runs[case].result())
    assert any("workers reload" in line for line in lines)
    assert not any("NO MERCY" in line for line in lines)


#: The real runs by case: options, the scenario for the run's directory, lines waited for.
REAL_CASES = {
    "mule": (MULE_OPTIONS, _touch_later, ["has been touched", "spawned uWSGI mule 1"]),
    "spoolers": (SPOOLER_OPTIONS, _touch_later,
                 ["has been touched", "spawned the uWSGI spooler"]),
    "exec": (EXEC_OPTIONS, _touch_later, ["running echo hello", "subprocess", "subprocess"]),
    "reload-mercy": (RELOAD_MERCY, _touch_during_a_slow_request, []),
}


def _real(case: str) -> list[str]:
    """A case's lines from real uWSGI, in a directory of its own (the spool dir: DIR)."""
    options, scenario, until = REAL_CASES[case]
    with tempfile.TemporaryDirectory() as path:
        app_dir = _prepare(Path(path))
        lines = run_with(options, app_dir, scenario(app_dir), until=until)
        return [line.replace(str(app_dir / "spool"), "DIR") for line in lines]


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[list[str]]]]:
    """The real runs of this module's selected tests, started together (each mostly
    waits: for its touch, a mercy, a slow request)."""
    yield from started_together(request, _real)
