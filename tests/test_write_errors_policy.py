"""What the app sees after a failed write, under the options that change it.

uWSGI's Python plugin checks a request's write errors after each write of the response
(``uwsgi_py_check_write_errors``, ``plugins/python/uwsgi_python.h``):

* by default the first failed write ends the response: ``OSError('write error')`` is
  printed and counted as the request's exception, and the write callable and
  ``uwsgi.sendfile`` raise;
* ``--disable-write-exception``: the response still ends and the exception still counts,
  but nothing is raised or printed;
* ``--write-errors-tolerance N``: nothing happens until more than N writes failed (a
  write after the first failure is not tried, so it is not counted again; a failed
  ``sendfile`` counts twice, once for its headers);
* ``--write-errors-exception-only`` (with ``--ignore-sigpipe`` and
  ``--ignore-write-errors``): the error is only *set* and the response goes on with it
  pending. A generator resumed then fails at its first C call with CPython's
  ``SystemError``, caused by the write error.

Every path below writes after ``uwsgi.disconnect()``; ``/state`` tells what the app saw
and the worker's exception count. ``EXPECTED`` is what uWSGI 2.0.30 answered (the
``real`` test asks it again).
"""

from __future__ import annotations

import json
import re
import textwrap
import time

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import json, uwsgi

SEEN = []

def gen():
    try:
        SEEN.append("y1")
        yield b"before"
        uwsgi.disconnect()
        SEEN.append("y2")
        yield b"after"
        SEEN.append("y3")
        yield b"third"
        SEEN.append("end")
    except BaseException as exc:
        SEEN.append("gen:" + type(exc).__name__ + ":" + str(exc))
        raise
    finally:
        SEEN.append("finally")

class Body:
    def __init__(self, it):
        self.it = it
    def __iter__(self):
        return self.it
    def close(self):
        SEEN.append("close")

def application(env, start_response):
    path = env["PATH_INFO"]
    if path == "/state":
        start_response("200 OK", [])
        out = {"seen": SEEN[:], "exc": uwsgi.workers()[0]["exceptions"]}
        SEEN.clear()
        return [json.dumps(out).encode()]
    if path == "/gen":
        start_response("200 OK", [])
        return Body(gen())
    if path == "/write":
        write = start_response("200 OK", [])
        write(b"first")
        uwsgi.disconnect()
        for _ in range(2):
            try:
                write(b"x")
                SEEN.append("write ok")
            except BaseException as exc:
                SEEN.append("write:" + type(exc).__name__ + ":" + str(exc))
        return [b"y"]
    start_response("200 OK", [])
    uwsgi.disconnect()
    if path == "/bytes":
        return b"bytes"
    if path == "/list":
        return Body(iter([b"a", b"b"]))
    if path == "/file":
        return env["wsgi.file_wrapper"](open(__file__, "rb"))
    try:
        SEEN.append("sendfile:" + repr(uwsgi.sendfile(__file__)))
    except BaseException as exc:
        SEEN.append("sendfile:" + type(exc).__name__ + ":" + str(exc))
    return [b"z"]
"""

PATHS = ["/gen", "/write", "/bytes", "/list", "/file", "/sendfile"]
_GEN_CLOSED = ["y1", "y2", "close", "gen:GeneratorExit:", "finally"]
_GEN_WHOLE = ["y1", "y2", "y3", "end", "finally", "close"]
_WRITES_RAISE = ["write:OSError:write error"] * 2
_NULL = ["sendfile:SystemError:<built-in function sendfile> returned NULL without setting an "
         "exception"]
_QUIET = [(_GEN_WHOLE, 0), (["write ok"] * 2, 0), ([], 0), (["close"], 0), ([], 0),
          (["sendfile:True"], 0)]
#: per option set, per path: what the app saw, and how many exceptions the request counted
EXPECTED: dict[str, list[tuple[list[str], int]]] = {
    "": [(_GEN_CLOSED, 1), (_WRITES_RAISE, 1), ([], 1), (["close"], 1), ([], 1), (_NULL, 2)],
    "--disable-write-exception": [(_GEN_CLOSED, 1), (["write ok"] * 2, 1), ([], 1),
                                  (["close"], 1), ([], 1), (_NULL, 2)],
    "--write-errors-tolerance 1": [(_GEN_WHOLE, 0), (["write ok"] * 2, 0), ([], 0),
                                   (["close"], 0), ([], 1), (_NULL, 2)],
    "--write-errors-tolerance 5": _QUIET,
    "--write-errors-exception-only": [
        (["y1", "y2", "y3", "gen:SystemError:<method 'append' of 'list' objects> returned a "
          "result with an exception set", "finally", "close"], 1),
        (_WRITES_RAISE, 1), ([], 0), (["close"], 1), ([], 1),
        (["sendfile:SystemError:<built-in function sendfile> returned a result with an "
          "exception set"], 1)],
    "--write-errors-exception-only --disable-write-exception": _QUIET,
}
_SYSTEM_ERROR = ["OSError: write error", "",
                 "The above exception was the direct cause of the following exception:", "",
                 "Traceback (most recent call last):", '  File "app.py", line 13, in gen',
                 '    SEEN.append("y3")',
                 "SystemError: <method 'append' of 'list' objects> returned a result with an "
                 "exception set"]
#: the log's lines about the failed writes, after the requests of PATHS
LOG_LINES = {
    "--disable-write-exception": [],
    "--write-errors-tolerance 1": ["OSError: write error"] * 3,
    "--write-errors-tolerance 5": [],
    "--write-errors-exception-only": [*_SYSTEM_ERROR, *["OSError: write error"] * 4],
    "--write-errors-exception-only --disable-write-exception": [],
}


def _interesting(log: list[str]) -> list[str]:
    """The log's lines about failed writes, without their date (the request lines and
    uwsgi_req_error's, which --ignore-write-errors is about, left aside)."""
    start = next(i for i, line in enumerate(log) if line.startswith("spawned uWSGI worker"))
    lines = [re.sub(r"^\w{3} \w{3} [ \d]\d [\d:]{8} \d{4} - ", "", line)
             for line in log[start + 1:]]
    return [line for line in lines  # (the interpreter's caret lines vary by version)
            if (not line or line.strip(" ~^")) and not line.startswith(("[pid:", "*** simuwsgi", "uwsgi_response_"))
            and "core/writer.c" not in line and not line.startswith(("SIGINT", "goodbye",
                                                                      "...", "worker 1"))]


def _argv(options: str) -> list[str]:
    return ["--master", "--processes", "1", "--wsgi-file", "app.py", *options.split()]


def _observed(get) -> list[tuple[list[str], int]]:
    seen, before = [], 0
    for path in PATHS:
        get(path)
        state = json.loads(get("/state").body)
        seen.append((state["seen"], state["exc"] - before))
        before = state["exc"]
    return seen


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize("options", list(EXPECTED))
def test_what_the_app_sees_after_a_failed_write(tmp_path, options, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_argv(options), app_dir=tmp_path, mode=mode) as sim:
        got = _observed(sim.get)
        log = list(sim.log)
    assert got == EXPECTED[options]
    assert not [line for line in log if "not simulated" in line]
    if options in LOG_LINES:
        assert _interesting(log) == LOG_LINES[options]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("options", list(EXPECTED))
def test_the_same_on_the_real_server(tmp_path, options):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_argv(options), app_dir=tmp_path) as real:
        got = _observed(lambda path: real.get(path, timeout=5))
        time.sleep(0.5)
        log = real.app_log()
    assert got == EXPECTED[options]
    if options in LOG_LINES:
        assert _interesting(log) == LOG_LINES[options]
