"""``--ignore-write-errors`` and ``--ignore-sigpipe`` (and ``--write-errors-exception-only``,
which sets both): the log lines uWSGI stops writing.

A write after ``uwsgi.disconnect()`` fails: uWSGI logs the failed call
(``uwsgi_req_error``, ``core/writer.c``) unless ``--ignore-write-errors``; the app still
gets its ``OSError: write error``. A worker's SIGPIPE is logged by ``warn_pipe`` unless
``--ignore-sigpipe``, which leaves it ignored (``core/uwsgi.c``). The real server is
asked the same in the ``real`` test.
"""

from __future__ import annotations

import os
import re
import signal
import time
import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import os, signal, uwsgi

def application(env, start_response):
    if env["PATH_INFO"] == "/sigpipe":
        os.kill(os.getpid(), signal.SIGPIPE)
        start_response("200 OK", [])
        return [b"alive"]
    start_response("200 OK", [])
    return disconnected() if env["PATH_INFO"] == "/disconnect" else [b"ok"]

def disconnected():
    yield b"before"
    uwsgi.disconnect()
    yield b"after"
"""

PATHS = ["/disconnect", "/sigpipe", "/"]
#: the lines each option set leaves in the log (request lines and dates aside)
EXPECTED = {
    "": ["uwsgi_response_write_body_do(): Bad file descriptor [core/writer.c line 429] "
         "during GET /disconnect (127.0.0.1)", "OSError: write error",
         "SIGPIPE: writing to a closed pipe/socket/fd (probably the client disconnected) "
         "on request /sigpipe (ip 127.0.0.1) !!!"],
    "--ignore-write-errors": ["OSError: write error",
                              "SIGPIPE: writing to a closed pipe/socket/fd (probably the "
                              "client disconnected) on request /sigpipe (ip 127.0.0.1) !!!"],
    "--ignore-sigpipe": ["uwsgi_response_write_body_do(): Bad file descriptor [core/writer.c "
                         "line 429] during GET /disconnect (127.0.0.1)",
                         "OSError: write error"],
    # both of the above; the write error is only set, and logged when the body ends
    "--write-errors-exception-only": ["OSError: write error"],
}


def _lines(log: list[str]) -> list[str]:
    """The lines of interest, without the date some of them start with."""
    lines = [re.sub(r"^\w{3} \w{3} [ \d]\d [\d:]{8} \d{4} - ", "", line) for line in log]
    return [line for line in lines
            if "core/writer.c" in line or line.startswith(("OSError", "SIGPIPE"))]


def _options(option: str) -> list[str]:
    return ["--master", "--wsgi-file", "app.py", *([option] if option else [])]


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize("option", list(EXPECTED))
def test_the_lines_each_option_leaves(tmp_path, option, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_options(option), app_dir=tmp_path, mode=mode) as sim:
        got = [sim.get(path) for path in PATHS]
        log = list(sim.log)
    assert [r.status for r in got] == [200, 200, 200]
    assert _lines(log) == EXPECTED[option]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("option", list(EXPECTED))
def test_the_same_lines_on_the_real_server(tmp_path, option):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_options(option), app_dir=tmp_path) as real:
        statuses = [real.get(path, timeout=5).status for path in PATHS]
        time.sleep(0.5)
        log = real.app_log()
    assert statuses == [200, 200, 200]
    assert _lines(log) == EXPECTED[option]
