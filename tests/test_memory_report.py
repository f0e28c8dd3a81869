"""--memory-report: the worker publishes its memory at the end of each request
(``Instance.publish_request_memory``) and the request line starts with it, as
pyuwsgi 2.0.30 writes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _uwsgi_process import get, run_with

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"
PREFIX = re.compile(r"^\{address space usage: (\d+) bytes/(\d+)MB\} "
                    r"\{rss usage: (\d+) bytes/(\d+)MB\} \[pid: \d+\|app: 0\|req: 1/1\] ")
MB = 1024 * 1024


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def _request_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if "GET / =>" in line]


def test_the_request_line_reports_the_published_memory(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--memory-report"],
                    app_dir=app_dir) as sim:
        sim.set_rss("worker1", 50 * MB + 5, vsz=200 * MB)
        assert sim.uwsgi.workers()[0]["rss"] == 0  # not measured before a request ends
        sim.request("GET", "/")
        match = PREFIX.match(_request_lines(sim.log)[0])
        assert match is not None
        assert match.groups() == (str(200 * MB), "200", str(50 * MB + 5), "50")
        assert sim.uwsgi.workers()[0]["rss"] == 50 * MB + 5
        assert sim.stats()["workers"][0]["vsz"] == 200 * MB


def test_no_report_without_the_option(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=app_dir) as sim:
        sim.set_rss("worker1", 50 * MB)
        sim.request("GET", "/")
        assert _request_lines(sim.log)[0].startswith("[pid: ")
        assert sim.uwsgi.workers()[0]["rss"] == 0


@pytest.mark.real
def test_real_request_line(app_dir: Path) -> None:
    lines = run_with(["--master", "--wsgi-file", "app.py", "--memory-report"], app_dir,
                     lambda url: get(url))
    first = _request_lines(lines)[0]  # the readiness probe's
    match = PREFIX.match(first)
    assert match is not None
    vsz, vsz_mb, rss, rss_mb = map(int, match.groups())
    assert (vsz // MB, rss // MB) == (vsz_mb, rss_mb) and 0 < rss < vsz
