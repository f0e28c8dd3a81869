"""report.md tells the run's story; log.txt has uWSGI's timestamps; the progress bar."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.cli import main
from simuwsgi.report import notable_events, summarize, unanswered_requests, write_report

REPO = Path(__file__).resolve().parents[1]


def _report(sim: Simulation, tmp_path: Path) -> str:
    summary = summarize(sim, name="t", wall_seconds=1.0, checked=False)
    return (write_report(sim, summary, tmp_path / "rep") / "report.md").read_text()


def test_the_quickstart_report_tells_its_story_in_local_clock_time(tmp_path, capsys):
    assert main(["run", str(REPO / "scenarios" / "quickstart.py"), "--report",
                 str(tmp_path), "--quiet"]) == 0
    out = tmp_path / "quickstart-seed2026"
    report = (out / "report.md").read_text()
    happened = report[report.index("## What happened"):report.index("### Requests without")]
    for line in [
        "- 2026-03-28 10:57:01 CET (17821 s): worker4 (pid 1005) died: reached --max-requests "
        "and was recycled (respawned)",
        "- 2026-03-28 15:00:20 CET (32420 s): harakiri: worker2 (pid 1003) was stuck on "
        "GET /report?45",
        "- 2026-03-28 15:00:21 CET (32421 s): worker2 (pid 1003) died: killed by harakiri "
        "(signal 9), respawned",
        "- 2026-03-28 16:00:00 CET (36000 s): exception in worker1: RuntimeError: payment "
        "backend unavailable",
        "- 2026-03-28 18:00:00 CET (43200 s): reload (graceful): the master re-executes itself "
        "and respawns every process",
        "- 2026-03-29 03:21:01 CEST (73261 s): worker2 (pid 1011) died: reached --max-requests "
        "and was recycled (respawned)",  # after the switch to summer time
    ]:
        assert line in happened.splitlines(), line
    assert '      raise RuntimeError("payment backend unavailable")' in happened  # traceback
    assert "GET /order" not in happened  # routine requests are not the story
    assert happened.index("10:57:01") < happened.index("15:00:20") < happened.index("18:00:00")
    requests = report[report.index("### Requests without"):]
    assert "| 200 | 485 |" in requests and "| no response | 4 (see above) |" in requests
    assert ("- GET /crash sent 2026-03-28 16:00:00 CET (36000 s): the connection was closed "
            "without a response: the app raised before start_response") in requests
    assert ("- GET /report?45 sent 2026-03-28 15:00:00 CET (32400 s): worker2 died "
            "(harakiri) while serving it") in requests
    assert ("| 30 | uwsgi.signal() | 1 | refresh | worker1: 1, worker2: 1, worker3: 1, "
            "worker4: 1 |") in report
    assert "check: passed" in capsys.readouterr().out and "Check: **passed**." in report
    log = (out / "log.txt").read_text().splitlines()
    assert ("Sat Mar 28 06:00:00 2026 - WSGI app 0 (mountpoint='') ready in 0 "
            "seconds on interpreter 0x0 pid: 1001 (default app)") in log
    assert "Sat Mar 28 15:00:20 2026 - *** HARAKIRI ON WORKER 2 (pid: 1003, try: 1, " \
           "graceful: yes) ***" in log


def test_signals_from_timers_and_cron_are_summarised_per_signal(tmp_path, write_app):
    write_app("""
        import uwsgi
        uwsgi.register_signal(1, "workers", lambda n: None)
        def hourly(num):
            pass
        uwsgi.register_signal(2, "", hourly)
        uwsgi.add_timer(1, 10)
        uwsgi.add_cron(2, 0, -1, -1, -1, -1)
        def application(e, sr):
            return []
    """)
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, start="2026-01-01T00:00:30") as sim:
        sim.advance(3 * 3600)
        report = _report(sim, tmp_path)
    assert "| 1 | timer every 10 s | 1080 | <lambda> | worker1: 1080, worker2: 1080 |" in report
    assert "| 2 | cron `0 * * * *` | 4 | hourly | worker1: 1, worker2: 3 |" in report
    assert "Nothing notable" in report


def test_requests_without_a_response_say_why(tmp_path, write_app):
    write_app("""
        import time
        def application(e, sr):
            time.sleep(100)
            sr('200 OK', [])
            return [b'late']
    """)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        sim.submit("GET", "/a", at=10)
        sim.submit("GET", "/b", at=20)
        sim.run_until(50)
        whys = [(sub.get("path"), why) for sub, why in unanswered_requests(sim.trace)]
        summary = summarize(sim, name="t", wall_seconds=1.0, checked=False)
    assert whys == [("/a", "worker1 was still serving it when the run ended"),
                    ("/b", "still waiting for a worker when the run ended")]
    assert summary["requests_without_response"] == 2 and summary["check"] is None


def test_clock_steps_and_spool_retries_are_notable(tmp_path, write_app):
    (tmp_path / "spool").mkdir()
    write_app("""
        import uwsgi
        def task(args):
            return uwsgi.SPOOL_RETRY
        uwsgi.spooler = task
        def application(e, sr):
            uwsgi.spool({b"a": b"b"})
            sr('200 OK', [])
            return [b'x']
    """)
    with Simulation(["--master", "--spooler", "spool", "--spooler-frequency", "10",
                     "--wsgi-file", "app.py"], app_dir=tmp_path, tz="Europe/Paris",
                    start="2026-06-01T12:00:00") as sim:
        sim.get("/")
        sim.advance(35)
        sim.step_clock(-3600)
        sim.advance(10)
        events = [e.what for e in notable_events(sim.trace)]
        report = _report(sim, tmp_path)
    assert "the wall clock stepped by -3600 s" in events
    retry = next(e for e in events if e.startswith("spool task "))
    assert re.search(r"asked to be retried \(returned -1\) \d+ times, the last at \d+ s$", retry)
    assert "to 2026-06-01 11:00:45 CEST" in report  # the step put the clock back an hour


@pytest.mark.parametrize("tty", [True, False])
def test_a_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, capsys, tty):
    class Stderr(io.StringIO):
        def isatty(self) -> bool:
            return tty

    (tmp_path / "app.py").write_text("def application(e, sr):\n    return []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("simuwsgi.cli._CliDriver.AFTER", 0.0)
    monkeypatch.setattr("simuwsgi.cli._CliDriver.EVERY", 0.0)
    err = Stderr()
    monkeypatch.setattr("sys.stderr", err)
    assert main(["run", "--for", "1d", "--", "--master", "--wsgi-file", "app.py"]) == 0
    if not tty:
        assert err.getvalue() == ""
        return
    frames = err.getvalue().split("\r")[1:]
    assert len(frames) >= 51  # a frame a slice (50, more on a slow machine), and the last
    assert frames[0].startswith("  [")
    assert frames[-1].startswith(f"  [{'#' * 30}] 100% 2026-01-02 00:00:00 (86400/86400 "
                                 f"virtual s, ")
    assert frames[-1].endswith(" s)\n")
