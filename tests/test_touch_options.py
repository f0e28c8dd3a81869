"""--touch-workers-reload, --touch-mules-reload, --touch-signal (``simuwsgi.subsystems.filemon``),
with the lines and respawns observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from _overlap import started_together
from _uwsgi_process import before_stop, get, run_with, running, undated

from simuwsgi import Simulation
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

APP = ("import uwsgi\n"
       "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
OPTIONS = ["--master", "--processes", "2", "--mules", "1", "--wsgi-file", "app.py",
           "--touch-workers-reload", "tw", "--touch-mules-reload", "tm",
           "--touch-signal", "tsig 5"]
PID = re.compile(r"\d+")


def _prepare(path: Path) -> Path:
    (path / "app.py").write_text(APP)
    for name in ("tw", "tm", "tsig"):
        (path / name).write_text("")
    return path


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return _prepare(tmp_path)


def _masked(lines: list[str], racing_tail: bool = True) -> list[str]:
    """Lines from the first touch on, pids masked, uwsgi_log_verbose's date cut; the
    last two sorted (the worker's error line races with the master's)."""
    out = [PID.sub("P", undated(line)) for line in before_stop(lines)]
    first = next(i for i, line in enumerate(out) if "has been touched" in line)
    kept = [line for line in out[first:] if not line.startswith(("mule P (pid", "[pid:"))]
    return kept[:-2] + sorted(kept[-2:]) if racing_tail else kept


EXPECTED = [
    "*** tw has been touched... workers reload !!! ***",
    "Gracefully killing worker P (pid: P)...",
    "Gracefully killing worker P (pid: P)...",
    "worker P killed successfully (pid: P)",
    "Respawned uWSGI worker P (new pid: P)",
    "worker P killed successfully (pid: P)",
    "Respawned uWSGI worker P (new pid: P)",
    "*** tm has been touched... mules reload !!! ***",
    "spawned uWSGI mule P (pid: P)",
    "[uwsgi-touch-signal] raising P",
    "error managing signal P on worker P",
]


def test_touch_options(app_dir: Path) -> None:
    with Simulation(OPTIONS, app_dir=app_dir) as sim:
        sim.advance(2)
        pids = {w.id: w.pid for w in sim.inst.workers.values()}
        mule_pid = sim.inst.mules[1].pid
        sim.touch("tw")
        sim.advance(2)
        assert all(sim.inst.workers[i].pid != pid for i, pid in pids.items())
        assert sim.request("GET", "/").body == b"ok"
        sim.touch("tm")
        sim.advance(2)
        assert sim.inst.mules[1].pid != mule_pid
        sim.touch("tsig")
        sim.advance(2)
        assert _masked(sim.log) == EXPECTED


def test_a_busy_worker_finishes_its_request_first(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import time\n"
        "def application(e, s):\n    time.sleep(3)\n    s('200 OK', [])\n    return [b'slow']\n")
    (tmp_path / "tw").write_text("")
    with Simulation(["--master", "--wsgi-file", "app.py", "--touch-workers-reload", "tw"],
                    app_dir=tmp_path) as sim:
        handle = sim.submit("GET", "/")
        sim.advance(1)
        sim.touch("tw")
        sim.advance(5)
        assert handle.done and handle.response.body == b"slow"
        assert sim.inst.workers[1].respawn_count == 1


def _real_touches(app_dir: Path) -> list[str]:
    with running(OPTIONS, app_dir) as uwsgi:
        time.sleep(2.5)  # a later second than the master's first stat of the files
        # each touch once the one before has had its effect
        (app_dir / "tw").touch()
        uwsgi.wait_for("tw has been touched", "Respawned uWSGI worker", "Respawned uWSGI worker")
        (app_dir / "tm").touch()
        uwsgi.wait_for("tm has been touched", "spawned uWSGI mule")
        (app_dir / "tsig").touch()
        uwsgi.wait_for("[uwsgi-touch-signal] raising")
        uwsgi.wait_for("error managing signal")
    return uwsgi.lines


@pytest.mark.real
@pytest.mark.parametrize("case", ["touches"])
def test_real_touch_options(real_runs, case) -> None:
    assert _masked(real_runs[case].result()) == EXPECTED


def test_exit_on_reload(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--touch-reload", "tw",
                     "--exit-on-reload"], app_dir=app_dir) as sim:
        sim.touch("tw")
        sim.advance(3)
        assert sim.inst.stopped and sim.inst.reloads == 0
        assert sim.log[-1] == "uWSGI: GAME OVER (insert coin)"
        assert "binary reloading uWSGI..." not in sim.log
        assert sim.request("GET", "/").status is None


@pytest.mark.real
def test_real_exit_on_reload(app_dir: Path) -> None:
    proc = subprocess.Popen([require_real_uwsgi(), "--http-socket", "127.0.0.1:0", "--master",
                             "--wsgi-file", "app.py", "--touch-reload", "tw",
                             "--exit-on-reload"], cwd=app_dir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        started = []  # up to the master's loop, which stats the file first
        for line in proc.stdout:
            started.append(line.rstrip("\n"))
            if "spawned uWSGI worker 1" in line:
                break
        time.sleep(1)  # the master's first stat, and a later second for the touch
        (app_dir / "tw").touch()
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = started + out.splitlines()
    assert lines[-1] == "uWSGI: GAME OVER (insert coin)"
    assert "binary reloading uWSGI..." not in lines


SLOW = ("import time\n"
        "def application(e, s):\n    time.sleep(6 if e['PATH_INFO'] == '/slow' else 0)\n"
        "    s('200 OK', [])\n    return [b'slow']\n")
MERCY = ["--master", "--wsgi-file", "slow.py", "--touch-workers-reload", "tw",
         "--worker-reload-mercy", "2"]
MERCY_LINES = ["*** tw has been touched... workers reload !!! ***",
               "Gracefully killing worker P (pid: P)...",
               "worker P (pid: P) is taking too much time to die...NO MERCY !!!",
               "worker P killed successfully (pid: P)",
               "Respawned uWSGI worker P (new pid: P)"]


def test_worker_reload_mercy(app_dir: Path) -> None:
    (app_dir / "slow.py").write_text(SLOW)
    with Simulation(MERCY, app_dir=app_dir) as sim:
        sim.advance(1.5)
        handle = sim.submit("GET", "/slow")
        sim.advance(1)
        sim.touch("tw")  # at 2.5 s, seen at 3: cursed at 3, killed at the first iteration > 5
        sim.advance(3)
        assert not handle.done
        sim.advance(1)
        assert handle.done and handle.response.status is None
        sim.advance(1)
        assert _masked(sim.log, racing_tail=False) == MERCY_LINES


def _real_worker_reload_mercy(app_dir: Path) -> list[str]:
    (app_dir / "slow.py").write_text(SLOW)

    def scenario(url: str) -> None:
        host, port = url.rsplit("/", 1)[-1].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(b"GET /slow HTTP/1.0\r\n\r\n")
            time.sleep(1)
            (app_dir / "tw").touch()
            assert conn.recv(100) == b""  # closed without a response
        # answered once the new worker serves: not stopped while it starts (that is
        # NO MERCY again)
        assert get(url, wait=15) == b"slow"

    return run_with(MERCY, app_dir, scenario)


@pytest.mark.real
@pytest.mark.parametrize("case", ["mercy"])
def test_real_worker_reload_mercy(real_runs, case) -> None:
    assert _masked(real_runs[case].result(), racing_tail=False) == MERCY_LINES


CHAIN = ["--master", "--processes", "2", "--wsgi-file", "app.py",
         "--touch-chain-reload", "tc"]
CHAIN_LINES = [
    "*** tc has been touched... chain reload !!! ***",
    "chain next victim is worker 1", "Gracefully killing worker 1 (pid: P)...",
    "worker 1 killed successfully (pid: P)", "Respawned uWSGI worker 1 (new pid: P)",
    "chain is still waiting for worker 1...",
    "chain next victim is worker 2", "Gracefully killing worker 2 (pid: P)...",
    "worker 2 killed successfully (pid: P)", "Respawned uWSGI worker 2 (new pid: P)",
    "chain is still waiting for worker 2...",
    "chain reloading complete",
]


def _chain_lines(lines: list[str]) -> list[str]:
    out = [re.sub(r"pid: \d+", "pid: P", undated(line)) for line in lines]
    first = next(i for i, line in enumerate(out) if "has been touched" in line)
    return [line for line in out[first:] if "chain" in line or "worker" in line][:12]


def test_chain_reload(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "tc").write_text("")
    with Simulation(CHAIN, app_dir=tmp_path) as sim:
        sim.advance(1.5)
        pids = [w.pid for w in sim.inst.workers.values()]
        sim.touch("tc")
        sim.advance(1)
        assert sim.inst.workers[2].pid == pids[1]  # one at a time
        sim.advance(8)
        assert _chain_lines(sim.log) == CHAIN_LINES
        assert not {w.pid for w in sim.inst.workers.values()} & set(pids)
        sim.touch("tc")  # a new chain
        sim.advance(8)
        assert sum("chain reloading complete" in line for line in sim.log) == 2


def _real_chain_reload(app_dir: Path) -> list[str]:
    (app_dir / "tc").write_text("")

    def scenario(_url: str) -> None:
        time.sleep(2.5)
        (app_dir / "tc").touch()

    return run_with(CHAIN, app_dir, scenario, until=["chain reloading complete"])


@pytest.mark.real
@pytest.mark.parametrize("case", ["chain"])
def test_real_chain_reload(real_runs, case) -> None:
    assert _chain_lines(real_runs[case].result()) == CHAIN_LINES


#: The real runs by case, each given a directory of its own (``_prepare``d): its lines.
REAL_CASES = {"touches": _real_touches, "mercy": _real_worker_reload_mercy,
              "chain": _real_chain_reload}


def _real(case: str) -> list[str]:
    with tempfile.TemporaryDirectory() as path:
        return REAL_CASES[case](_prepare(Path(path)))


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[list[str]]]]:
    """The real runs of this module's selected tests, started together (each mostly
    waits: for the master's next second, a mercy, a chain of reloads)."""
    yield from started_together(request, _real)
