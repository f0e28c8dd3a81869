"""``--add-header``: lines added to every response's headers (``core/writer.c``
``uwsgi_response_write_headers_do0``: each line as given, after the app's headers, as
the headers go out). The request line counts them, with their bytes. A response
without ``start_response`` has no headers, so none is added. The ``real`` test asks
uWSGI 2.0.30 the same.
"""

from __future__ import annotations

import re
import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
def application(env, start_response):
    if env["PATH_INFO"] == "/raw":
        return [b"no start_response"]
    if env["PATH_INFO"] == "/none":
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")])
    return [b"ok"]
"""
OPTIONS = ["--add-header", "X-Frame-Options: DENY", "--add-header", "X-Compact:yes",
           "--add-header", "Cache-Control: no-store, private"]
#: per path: the headers the client got, and the request line's "N headers in M bytes"
EXPECTED = {
    "/": ([("Content-Type", "text/plain"), ("X-App", "1"), ("X-Frame-Options", "DENY"),
           ("X-Compact", "yes"), ("Cache-Control", "no-store, private")],
          "5 headers in 127 bytes"),
    "/none": ([("X-Frame-Options", "DENY"), ("X-Compact", "yes"),
               ("Cache-Control", "no-store, private")], "3 headers in 99 bytes"),
    "/raw": ([], "0 headers in 0 bytes"),
}


def _argv(extra: list[str]) -> list[str]:
    return ["--master", "--processes", "1", "--wsgi-file", "app.py", *extra]


def _header_counts(log: list[str]) -> list[str]:
    return [m.group(1) for line in log if (m := re.search(r"\) (\d+ headers in \d+ bytes)",
                                                            line))]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_lines_are_added_to_every_response(tmp_path, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_argv(OPTIONS), app_dir=tmp_path, mode=mode) as sim:
        got = {path: sim.get(path) for path in EXPECTED}
        log = list(sim.log)
    assert {path: list(r.headers) for path, r in got.items()} == \
        {path: headers for path, (headers, _) in EXPECTED.items()}
    assert _header_counts(log) == [count for _, count in EXPECTED.values()]
    assert not [line for line in log if "not simulated" in line]


def test_a_line_goes_out_as_written(tmp_path):
    """No space after the colon: the bytes are the option's (one fewer than with it)."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_argv(["--add-header", "X-Compact:yes"]), app_dir=tmp_path) as sim:
        reply = sim.get("/")
        assert b"\r\nX-Compact:yes\r\n" in reply.raw
        assert ("X-Compact", "yes") in reply.headers
        assert _header_counts(sim.log) == ["3 headers in 70 bytes"]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_argv(OPTIONS), app_dir=tmp_path) as real:
        got = {path: real.get(path, timeout=5) for path in EXPECTED}
        time.sleep(0.5)
        log = real.app_log()
    assert {path: list(r.headers) for path, r in got.items()} == \
        {path: headers for path, (headers, _) in EXPECTED.items()}
    assert _header_counts(log) == [count for _, count in EXPECTED.values()]
