"""--reload-on-rss/as, --evil-reload-on-rss/as with ``sim.set_rss``, and
--max-requests-delta, with the lines observed on pyuwsgi 2.0.30."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from _overlap import started_together
from _uwsgi_process import (before_stop, let_new_processes_start, run_until_exit, run_with,
                            running, undated)

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"
MB = 1024 * 1024
NUM = re.compile(r"\d+")


def _prepare(path: Path) -> Path:
    (path / "app.py").write_text(APP)
    return path


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return _prepare(tmp_path)


def _after_spawn(lines: list[str]) -> list[str]:
    """The lines after worker 1's first spawn, numbers masked, dates cut, without the
    request and shutdown lines."""
    lines = before_stop(lines)
    start = next(i for i, line in enumerate(lines) if "spawned uWSGI worker 1" in line)
    out = [NUM.sub("N", undated(line)) for line in lines[start + 1:]]
    return [line for line in out if not line.startswith("[pid:")]


RELOAD_ON_RSS = ["...The work of process N is done. Seeya!",
                 "worker N killed successfully (pid: N)",
                 "Respawned uWSGI worker N (new pid: N)"]
EVIL = ["mem-collector thread started for worker N",
        "*** EVIL RELOAD ON WORKER N RSS: N (pid: N) ***",
        "DAMN ! worker N (pid: N) died, killed by signal N :( trying respawn ...",
        "Respawned uWSGI worker N (new pid: N)",
        "mem-collector thread started for worker N"]


def _sim_run(app_dir: Path, option: str) -> list[str]:
    with Simulation(["--master", "--wsgi-file", "app.py", "--min-worker-lifetime", "0",
                     option, "1"], app_dir=app_dir) as sim:
        sim.advance(1.5)
        pid = sim.inst.workers[1].pid
        sim.set_rss("worker1", 30 * MB)
        assert sim.request("GET", "/").body == b"ok"
        sim.advance(3)
        assert sim.inst.workers[1].pid != pid
        return sim.log


def test_reload_on_rss(app_dir: Path) -> None:
    assert _after_spawn(_sim_run(app_dir, "--reload-on-rss")) == RELOAD_ON_RSS


def test_evil_reload_on_rss(app_dir: Path) -> None:
    log = _sim_run(app_dir, "--evil-reload-on-rss")
    assert _after_spawn(log) == EVIL
    assert "*** EVIL RELOAD ON WORKER 1 RSS: 31457280 (pid: 1002) ***" in log


def test_under_the_limit_or_too_young_stays(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--reload-on-rss", "64",
                     "--reload-on-as", "512"], app_dir=app_dir) as sim:
        sim.set_rss("worker1", 63 * MB, vsz=511 * MB)
        sim.request("GET", "/")
        sim.set_rss("worker1", 65 * MB)
        sim.request("GET", "/")  # over, but younger than --min-worker-lifetime (10 s)
        assert sim.inst.workers[1].respawn_count == 0
        assert sim.inst.facade.workers()[0]["rss"] == 65 * MB
        sim.advance(10)
        sim.set_rss("worker1", 1, vsz=512 * MB)
        sim.request("GET", "/")
        sim.advance(1)  # reaped and respawned by the master's next iteration
        assert sim.inst.workers[1].respawn_count == 1


def test_evil_collector_publishes_without_requests(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--evil-reload-on-as", "100",
                     "--mem-collector-freq", "5"], app_dir=app_dir) as sim:
        sim.set_rss("worker1", 0, vsz=200 * MB)
        sim.advance(4.9)
        assert sim.inst.workers[1].respawn_count == 0
        sim.advance(2.2)  # published at 5 s, killed at the next iteration, then respawned
        assert sim.inst.workers[1].respawn_count == 1
        assert any(line.startswith("*** EVIL RELOAD ON WORKER 1 ADDRESS SPACE: 209715200")
                   for line in sim.log)


def test_max_requests_delta(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "def application(e, s):\n    s('200 OK', [])\n"
        "    return [str(uwsgi.worker_id()).encode()]\n")
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py",
                     "--max-requests", "1", "--max-requests-delta", "2",
                     "--min-worker-lifetime", "0"], app_dir=tmp_path) as sim:
        served = {1: 0, 2: 0}
        for _ in range(20):
            served[int(sim.request("GET", "/").body)] += 1
            sim.advance(1)
        assert served[1] and served[2] >= 3
        # worker 1 exits after each request, worker 2 after every third
        assert sim.inst.workers[1].respawn_count == served[1]
        assert sim.inst.workers[2].respawn_count == served[2] // 3


def _real_run(app_dir: Path, option: str, *waits: tuple[str, ...]) -> list[str]:
    """The real run's lines once each of ``waits`` (texts of lines, one after the other)
    has been written: the worker replaced, not a fixed time (a loaded machine is slower,
    and a longer run sees the collector kill the new worker too)."""
    with running(["--master", "--wsgi-file", "app.py", "--min-worker-lifetime", "0",
                  option, "1"], app_dir) as uwsgi:
        for texts in waits:
            uwsgi.wait_for(*texts)
        let_new_processes_start()
    return uwsgi.lines


@pytest.mark.real
@pytest.mark.parametrize("case", ["rss"])
def test_real_reload_on_rss(real_runs, case) -> None:
    assert _after_spawn(real_runs[case].result()) == RELOAD_ON_RSS


@pytest.mark.real
@pytest.mark.parametrize("case", ["evil"])
def test_real_evil_reload_on_rss(real_runs, case) -> None:
    # the respawned worker's first line and the master's "Respawned" line come from two
    # processes: real writes them in either order
    got = _after_spawn(real_runs[case].result())
    assert got[:3] == EVIL[:3] and sorted(got[3:]) == sorted(EVIL[3:]), got


# -- --max-worker-lifetime ----------------------------------------------------------------
LIFETIME = ["--master", "--processes", "2", "--wsgi-file", "app.py",
            "--max-worker-lifetime", "2", "--min-worker-lifetime", "1",
            "--max-worker-lifetime-delta", "1"]


def test_max_worker_lifetime(app_dir: Path) -> None:
    with Simulation(LIFETIME, app_dir=app_dir) as sim:
        sim.advance(5.5)
        lines = [line for line in sim.log if "lifetime reached" in line or "Respawned" in line]
        assert lines[:4] == [
            "worker 1 lifetime reached, it was running for 3 second(s)",
            "Respawned uWSGI worker 1 (new pid: 1004)",
            "worker 2 lifetime reached, it was running for 4 second(s)",
            "Respawned uWSGI worker 2 (new pid: 1005)"]
        assert sim.request("GET", "/").body == b"ok"


def test_max_worker_lifetime_not_above_min_refused(app_dir: Path) -> None:
    from simuwsgi._errors import StartRefusedError

    sim = Simulation(["--master", "--wsgi-file", "app.py", "--max-worker-lifetime", "2"],
                     app_dir=app_dir)
    with pytest.raises(StartRefusedError) as info:
        sim.start()
    assert str(info.value) == ("invalid min-worker-lifetime value (10), must be lower "
                               "than max-worker-lifetime (2)")


@pytest.mark.real
@pytest.mark.parametrize("case", ["lifetime"])
def test_real_max_worker_lifetime(real_runs, case, app_dir: Path) -> None:
    """The same lines (real timing: the master's iterations drift, so worker 2 may be
    seen a second late, or in the iteration that sees worker 1, before its respawn: a
    loaded host made both orders), and the refusal."""
    out = real_runs[case].result()
    lines = [NUM.sub("N", line) for line in out
             if "lifetime reached" in line or "Respawned" in line]
    assert lines[0] == "worker N lifetime reached, it was running for N second(s)"
    assert sorted(lines[:4]) == ["Respawned uWSGI worker N (new pid: N)"] * 2 + [
        "worker N lifetime reached, it was running for N second(s)"] * 2
    code, refused = run_until_exit(["--http-socket", "127.0.0.1:0", "--master", "--wsgi-file",
                                    "app.py", "--max-worker-lifetime", "2"], app_dir)
    assert code == 1
    assert refused[-1] == (
        "invalid min-worker-lifetime value (10), must be lower than max-worker-lifetime (2)")


#: The real runs by case, each given a directory of its own with APP: its lines.
REAL_CASES = {
    "rss": lambda d: _real_run(d, "--reload-on-rss", ("Respawned uWSGI worker",)),
    "evil": lambda d: _real_run(d, "--evil-reload-on-rss",
                                ("EVIL RELOAD", "Respawned uWSGI worker"),
                                ("EVIL RELOAD", "mem-collector thread started")),
    "lifetime": lambda d: run_with(LIFETIME, d, until=["lifetime reached", "Respawned"] * 2),
}


def _real(case: str) -> list[str]:
    with tempfile.TemporaryDirectory() as path:
        return REAL_CASES[case](_prepare(Path(path)))


@pytest.fixture(scope="module")
def real_runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[list[str]]]]:
    """The real runs of this module's selected tests, started together (each waits for
    the master's checks)."""
    yield from started_together(request, _real)
