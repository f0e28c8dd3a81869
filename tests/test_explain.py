"""``simuwsgi explain``: the narrated trace of the quickstart, of a cron/timer app with a
busy worker, and its filters and errors."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.cli import main as cli_main
from simuwsgi.explain import Clock, narrate, select

QUICKSTART = str(Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.py")


@pytest.fixture(scope="module")
def quickstart() -> list[str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["explain", QUICKSTART]) == 0
    return buf.getvalue().splitlines()


def test_quickstart_harakiri_says_which_worker_how_long_and_where(quickstart: list[str]) -> None:
    harakiri = [line for line in quickstart if "HARAKIRI" in line]
    assert harakiri == [
        "15:00:20.000 worker2   HARAKIRI: worker 2 exceeded 20 s on /report?45; the master "
        "sends it (pid 1003) SIGUSR2, then SIGKILL a second later, and respawns it",
        "19:00:20.000 worker3   HARAKIRI: worker 3 exceeded 20 s on /report?45; the master "
        "sends it (pid 1012) SIGUSR2, then SIGKILL a second later, and respawns it",
        "23:00:20.000 worker4   HARAKIRI: worker 4 exceeded 20 s on /report?45; the master "
        "sends it (pid 1013) SIGUSR2, then SIGKILL a second later, and respawns it",
    ]
    i = quickstart.index(harakiri[0])
    assert quickstart[i + 1] == ("15:00:21.000 worker2   worker 2 (pid 1003) died: the master "
                                 "killed it (harakiri); request 481 (/report?45) is lost")


def test_quickstart_requests_recycling_signals_and_reload(quickstart: list[str]) -> None:
    text = "\n".join(quickstart)
    assert ("06:00:00.000 master    uWSGI starts: --master --processes 4 --harakiri 20 "
            "--max-requests 40 --wsgi-file apps/shop.py") == quickstart[0]
    assert ("worker 4 took request 482 (GET /report?5): one of 4 idle workers blocked in "
            "accept(), the one the kernel woke") in text
    assert ("10:57:01.000 worker4   worker 4 (pid 1005) died: it served --max-requests 40 "
            "requests and exits by itself ('The work of process ... is done')") in text
    assert "request 487 (/crash) failed: the app raised an exception" in text
    assert ("17:00:00.000 worker4   worker 4 raised signal 30: it goes through the master's "
            "signal pipe") in text
    assert sum("ran the handler of signal 30" in line for line in quickstart) == 4
    assert ("18:00:00.000 master    reload begins (graceful: each worker finishes its "
            "request, then exits)") in text
    assert len(quickstart) == 2002  # one line per trace record


def test_at_process_and_kind_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["explain", QUICKSTART, "--at", "15:00", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "15:00:00.000 master    request 181 arrives: GET /order",
        "15:00:00.000 master    accept: worker3 is chosen among the 4 idle ones (the "
        "seeded RNG stands for the kernel's wake-up order)",
        "15:00:00.000 master    request 481 arrives: GET /report?45"]
    assert cli_main(["explain", QUICKSTART, "--process", "worker3", "--kind", "harakiri"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
    assert cli_main(["explain", QUICKSTART, "--kind", "request.*", "--at", "9h",
                     "--limit", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "15:00:00.000 master    request 181 arrives: GET /order",
        "15:00:00.000 master    request 481 arrives: GET /report?45"]


@pytest.mark.parametrize("argv, message", [
    (["no/such/file.py"], "no/such/file.py: no such scenario, report directory or trace file"),
    ([QUICKSTART, "--at", "10:xx"], "--at: '10:xx' is neither HH:MM[:SS] nor a duration"),
])
def test_bad_input_is_one_line(argv: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["explain", *argv]) == 2
    assert capsys.readouterr().err == f"simuwsgi explain: {message}\n"


APP = '''
import time
import uwsgi

def handler(num):
    pass

uwsgi.register_signal(17, "worker1", handler)
uwsgi.register_signal(41, "workers", handler)
uwsgi.add_timer(17, 2)
uwsgi.add_cron(41, -5, -1, -1, -1, -1)

def application(environ, start_response):
    time.sleep(3)
    start_response("200 OK", [])
    return [b"ok"]
'''


def test_cron_timer_and_a_signal_queued_behind_a_request(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    sim = Simulation(["--master", "--processes", "1", "--wsgi-file", "app.py"],
                     app_dir=tmp_path, start="2026-03-28T10:03:00", tz="Europe/Paris")
    with sim:
        sim.submit("GET", "/slow", at=1.5)
        sim.run_until(125)
        rows = [tuple(r) for r in sim.trace.rows()]
        clock = Clock.of(sim)
    lines = select(rows, narrate(rows, clock), clock)  # type: ignore[arg-type]
    assert "10:03:00.000 master    cron for signal 41 added: minute=-5" in lines
    assert "10:03:02.000 master    timer 17 fired (every 2 s)" in lines
    # the worker is in a 3 s request when the timer fires twice: both wait for its end
    assert lines[lines.index("10:03:04.500 worker1   request 1 (/slow) answered 200, 2 bytes "
                             "in 3.000 s") + 1:][:2] == [
        "10:03:04.500 worker1   signal 17 queued to worker 1: worker 1 was busy, delivered "
        "after the request (2.500 s later)",
        "10:03:04.500 worker1   signal 17 queued to worker 1: worker 1 was busy, delivered "
        "after the request (0.500 s later)"]
    assert ("10:05:00.000 master    cron 41 fired at 10:05:00: minute=-5 (every 5) matches 5"
            in lines)
