"""A worker's ``tx`` (``uwsgi.workers()``, the stats server's ``tx``, the
``worker.N.total_tx`` metric): ``uwsgi_close_request`` adds the bytes each response
wrote, headers and body. The simulation counted the body only, and ``simuwsgi serve``
nothing (its bodies are streamed to the client). Real uWSGI 2.0.30 gives the
numbers of the ``real`` test."""

from __future__ import annotations

import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import uwsgi

def chunks():
    yield b"01234"
    yield b"56789"

def application(environ, start_response):
    if environ["PATH_INFO"] == "/tx":
        start_response("200 OK", [])
        return [str(uwsgi.workers()[0]["tx"]).encode()]
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Size", "ten")])
    return chunks()
"""
ARGV = ["--master", "--processes", "1", "--wsgi-file", "app.py", "--http-socket",
        "127.0.0.1:0"]
#: after three answers of 10 body bytes: each "HTTP/1.1 200 OK" and two headers (58
#: bytes) and the body, as the real server counted them
EXPECTED = "204"


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_tx_counts_headers_and_body(tmp_path, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(ARGV, app_dir=tmp_path, mode=mode) as sim:
        for _ in range(3):
            assert sim.get("/").body == b"0123456789"
        assert sim.get("/tx").text == EXPECTED


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(ARGV[:-2], app_dir=tmp_path) as real:
        for _ in range(3):
            assert real.get("/", timeout=5).body == b"0123456789"
        assert real.get("/tx", timeout=5).text == EXPECTED
