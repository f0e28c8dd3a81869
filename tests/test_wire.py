"""The client connection: ``Response.raw``, ``uwsgi.send``, ``sendfile``, ``disconnect``
and the module-level ``uwsgi.start_response`` (``simuwsgi/subsystems/wire.py``), in the simulation
and against the real uWSGI 2.0.30 (same app, same options, same requests)."""

from __future__ import annotations

import re

import pytest
from _waits import wait_for_lines

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = r'''
import os
import sys
import uwsgi

FILES = []
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "data.txt"), "wb") as f:
    f.write(b"0123456789abcdefghij")


def attempt(call):
    try:
        return repr(call())
    except Exception as e:
        return "%s: %s" % (type(e).__name__, e)


def handler17(num):
    for name, call in [("send", lambda: uwsgi.send(b"x")), ("disconnect", uwsgi.disconnect),
                       ("sendfile", lambda: uwsgi.sendfile("data.txt"))]:
        uwsgi.log("SIG %s %s" % (name, attempt(call)))


def handler18(num):
    uwsgi.log("SIG sr " + attempt(lambda: uwsgi.start_response("200 OK", [])))


uwsgi.register_signal(17, "worker", handler17)
uwsgi.register_signal(18, "worker", handler18)


def gen_send_after(sr):
    sr("200 OK", [("X-A", "1")])
    yield b"first"
    yield repr(uwsgi.send(b"RAW")).encode()


def gen_disconnect(sr):
    sr("200 OK", [("X-D", "1")])
    yield b"before"
    uwsgi.disconnect()
    yield b"after"


def gen_sr_after_body(sr):
    sr("200 OK", [])
    yield b"x"
    yield attempt(lambda: sr("500 Bad", [])).encode()


def sendfile_app(p, sr):
    if p == "/sendfile":
        sr("200 OK", [("Content-Type", "text/plain")])
        return [b"|" + repr(uwsgi.sendfile("data.txt")).encode()]
    if p == "/sendfile-nosr":
        return [repr(uwsgi.sendfile("data.txt")).encode()]
    if p == "/sendfile-nosr-then-sr":
        r = uwsgi.sendfile("data.txt")
        return [repr(r).encode(), attempt(lambda: sr("200 OK", [])).encode()]
    sr("200 OK", [])
    if p == "/sendfile-pos":
        return [b"|" + repr(uwsgi.sendfile("data.txt", 4, 3, 5)).encode()]
    if p == "/sendfile-short":
        return [b"|" + attempt(lambda: uwsgi.sendfile("data.txt", 4, 3)).encode()]
    if p == "/sendfile-pastend":
        return [b"|" + repr(uwsgi.sendfile("data.txt", 0, 25)).encode()]
    if p == "/sendfile-fobj":
        # uWSGI closes the descriptor under the file object (the simulation does not):
        # the object is kept alive and never closed so both agree.
        FILES.append(open(os.path.join(HERE, "data.txt"), "rb"))
        r = uwsgi.sendfile(FILES[-1], 0, 2, 6)
        return [b"|" + repr(r).encode()]
    if p == "/sendfile-missing":
        return [b"|" + repr(uwsgi.sendfile("nope.txt")).encode()]
    if p == "/sendfile-bytes":
        return [b"|" + repr(uwsgi.sendfile(b"data.txt", 0, 18)).encode()]
    if p == "/sendfile-badfd":
        return [b"|" + attempt(lambda: uwsgi.sendfile(12345)).encode()]
    if p == "/sendfile-float":
        return [b"|" + attempt(lambda: uwsgi.sendfile(1.5)).encode()]
    if p == "/sendfile-twice":
        uwsgi.sendfile("data.txt", 0, 0, 3)
        uwsgi.sendfile("data.txt", 0, 10, 2)
        return [b"|"]


def application(env, sr):
    p = env["PATH_INFO"]
    if p.startswith("/sendfile"):
        return sendfile_app(p, sr)
    if p == "/plain":
        sr("200 OK", [("Content-Type", "text/plain"), ("X-A", "b")])
        return [b"hello", b" world"]
    if p == "/empty":
        sr("204 No Content", [])
        return []
    if p == "/send-before":
        r = uwsgi.send(b"RAW")
        sr("200 OK", [("X-R", repr(r))])
        return [b"body"]
    if p == "/send-after":
        return gen_send_after(sr)
    if p == "/send-fd":
        r = uwsgi.send(uwsgi.connection_fd(), b"FD")
        sr("200 OK", [])
        return [repr(r).encode()]
    if p == "/send-only":
        uwsgi.send(b"HTTP/1.0 299 Raw\r\nX-Raw: 1\r\n\r\nrawbody")
        return []
    if p == "/send-errors":
        out = [attempt(lambda: uwsgi.send()), attempt(lambda: uwsgi.send(data=b"x"))]
        sr("200 OK", [])
        return ["|".join(out).encode()]
    if p == "/send-str":
        sr("200 OK", [])
        uwsgi.send("not bytes")
        return [b"unreachable"]
    if p == "/disconnect":
        return gen_disconnect(sr)
    if p == "/disconnect-first":
        r = uwsgi.disconnect()
        sr("200 OK", [])
        return [b"after" + repr(r).encode()]
    if p == "/disconnect-send":
        sr("200 OK", [])
        uwsgi.disconnect()
        uwsgi.log("DISC-SEND %s %s" % (attempt(lambda: uwsgi.send(b"zz")),
                                        attempt(lambda: uwsgi.sendfile("data.txt"))))
        return [b"x"]
    if p == "/modsr":
        w = uwsgi.start_response("201 Created", [("X-M", "1")])
        w(b"written;")
        return [b"body;", repr(uwsgi.start_response is sr).encode(), repr(w).encode(),
                repr(uwsgi.start_response).encode()]
    if p == "/modsr-twice":
        uwsgi.start_response("201 Created", [("X-M", "1")])
        uwsgi.start_response("202 Accepted", [("X-N", "2")])
        return [b"twice"]
    if p == "/sr-after-body":
        return gen_sr_after_body(sr)
    if p == "/sr-errors":
        out = [attempt(lambda: uwsgi.start_response(b"200 OK", [])),
               attempt(lambda: uwsgi.start_response(status="200 OK", headers=[])),
               attempt(lambda: uwsgi.start_response("200 OK")),
               attempt(lambda: uwsgi.start_response("200 OK", [("A", 1)]))]
        sr("200 OK", [])
        return ["|".join(out).encode()]
    if p in ("/sr-exc-info", "/sr-exc-info-raise"):
        try:
            raise ValueError("E")
        except ValueError:
            info = sys.exc_info()
        if p == "/sr-exc-info-raise":
            sr("500 Oops", [("X", "1")], info)  # raises SystemError from the ValueError
        out = attempt(lambda: sr("500 Oops", [("X", "1")], info))
        return [out.encode(), repr(attempt(lambda: sr("200 OK", [], None))).encode()]
    if p == "/sig17":
        uwsgi.signal(17)
    if p == "/sig18":
        uwsgi.signal(18)
    sr("200 OK", [])
    return [b"ok"]
'''

PATHS = [
    "/plain", "/empty", "/send-before", "/send-after", "/send-fd", "/send-only",
    "/send-errors", "/sendfile", "/sendfile-nosr", "/sendfile-nosr-then-sr", "/sendfile-pos",
    "/sendfile-short", "/sendfile-pastend", "/sendfile-fobj", "/sendfile-missing",
    "/sendfile-bytes", "/sendfile-badfd", "/sendfile-float", "/sendfile-twice", "/disconnect",
    "/disconnect-first", "/disconnect-send", "/modsr", "/modsr-twice", "/sr-after-body",
    "/sr-errors", "/sr-exc-info", "/sr-exc-info-raise", "/send-str", "/plain", "/sig17", "/plain", "/sig18", "/plain",
]
OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
#: log lines the comparison keeps (uWSGI's write-error lines, the app's own lines, deaths)
_KEEP = re.compile(r"write\(\)|writer\.c|OSError: write error|^SIG |^DISC-SEND|"
                   r"Segmentation Fault|DAMN|open\(\"")


def _log_view(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if _KEEP.search(line):
            line = re.sub(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - ", "DATE - ", line)
            line = re.sub(r"\b\d{2,}\b", "N", line) if ("pid" in line or "process" in line) \
                else line
            out.append(line)
    return out


def _simulate(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    with Simulation(OPTIONS + ["--http-socket", "127.0.0.1:9090"], app_dir=tmp_path) as sim:
        responses = [sim.get(p) for p in PATHS]
        sim.advance(2)
        return responses, [line for line in sim.log]


# -- simulation only -------------------------------------------------------------------------
def test_raw_of_a_plain_response(tmp_path):
    responses, _log = _simulate(tmp_path)
    plain = responses[0]
    assert plain.raw == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-A: b\r\n\r\n"
                         b"hello world")
    assert (plain.status, plain.body) == (200, b"hello world")


def test_send_sendfile_disconnect_in_the_simulation(tmp_path):
    responses, log = _simulate(tmp_path)
    by_path = dict(zip(PATHS, responses))
    assert by_path["/send-before"].raw == b"RAWHTTP/1.1 200 OK\r\nX-R: True\r\n\r\nbody"
    assert by_path["/send-before"].status is None  # no client can parse that
    assert by_path["/send-only"].status == 299
    assert by_path["/send-after"].body == b"firstRAWTrue"
    assert by_path["/sendfile-pos"].body == b"34567|True"
    assert by_path["/sendfile-twice"].body == b"012ab|"
    assert by_path["/sendfile-nosr"].raw == b"0123456789abcdefghijTrue"
    assert by_path["/disconnect"].raw == b"HTTP/1.1 200 OK\r\nX-D: 1\r\n\r\nbefore"
    assert by_path["/disconnect-first"].raw == b""
    assert by_path["/modsr"].body == (b"written;body;True<built-in function uwsgi_write>"
                                      b"<built-in function uwsgi_spit>")
    assert by_path["/send-str"].status is None  # the worker died of SIGSEGV
    assert "OSError: write error" in log
    assert any("got Segmentation Fault" in line for line in log)
    assert "SIG send None" in log and "SIG disconnect None" in log


def test_segfault_is_not_catchable_and_the_worker_respawns(tmp_path):
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "def application(env, sr):\n"
        "    try:\n"
        "        uwsgi.send(bytearray(b'x'))\n"
        "    except BaseException:\n"
        "        uwsgi.log('CAUGHT')\n"
        "    sr('200 OK', [])\n"
        "    return [b'ok']\n")
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        first = sim.get("/")
        assert first.status is None and "died" in first.reason
        assert "CAUGHT" not in sim.log
        sim.advance(1)  # the master reaps the worker at its next tick
        assert any(line.startswith("DAMN ! worker 1") for line in sim.log)


# -- differential ----------------------------------------------------------------------------
@pytest.mark.real
@requires_real_uwsgi
def test_connection_functions_match_real_uwsgi(tmp_path):
    sim_dir = tmp_path / "sim"
    real_dir = tmp_path / "real"
    sim_dir.mkdir()
    real_dir.mkdir()
    sim_responses, sim_log = _simulate(sim_dir)
    (real_dir / "app.py").write_text(APP)
    with RealUwsgi(OPTIONS, app_dir=real_dir) as real:
        real_responses = [real.get(p) for p in PATHS]
        # the last worker death is logged by the master's next 1 s tick
        wait_for_lines(real, "^DAMN", sum(line.startswith("DAMN") for line in sim_log))
        real_log = list(real.log)
    for path, sim, got in zip(PATHS, sim_responses, real_responses):
        assert sim.raw == got.raw, path
        assert (sim.status, sim.headers, sim.body) == (got.status, got.headers, got.body), path
    assert _log_view(sim_log) == _log_view(real_log)


def test_raw_of_the_no_app_500(tmp_path):
    """OBSERVATIONS.md (b): the bytes uWSGI writes when no app could be loaded."""
    (tmp_path / "app.py").write_text("raise ImportError('boom')\n")
    with Simulation(OPTIONS, app_dir=tmp_path, allow_no_app=True) as sim:
        resp = sim.get("/x")
    assert resp.raw == (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n"
                        b"Content-Type: text/plain\r\n\r\nInternal Server Error")


def test_raise_after_start_response_sends_the_headers(tmp_path):
    """OBSERVATIONS.md (a): headers and the chunks yielded before the error."""
    (tmp_path / "app.py").write_text(
        "def gen():\n"
        "    yield b'first-chunk;'\n"
        "    raise ValueError('boom')\n"
        "def application(env, sr):\n"
        "    sr('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return gen()\n")
    with Simulation(OPTIONS, app_dir=tmp_path) as sim:
        resp = sim.get("/raise-iter")
    assert resp.raw == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst-chunk;"


HEADERS_APP = '''
class Str(str):
    pass

CASES = {
    "/ascii": [("X-A", "b")],
    "/latin1": [("X-A", "caf\\xe9")],
    "/subclass": [(Str("X-A"), Str("b"))],
    "/triple": [("X-A", "b", "ignored")],
    "/list": [["X-A", "b"]],
    "/single": [("X-A",)],
    "/key": [(1, "b")],
    "/value": [("X-A", 2)],
    "/euro": [("X-A", "\\u20ac")],
}

def application(environ, start_response):
    try:
        start_response("200 OK", CASES[environ["PATH_INFO"]])
    except TypeError as exc:
        start_response("500 Internal Server Error", [])
        return [str(exc).encode()]
    return [b"ok"]
'''


def test_start_response_checks_each_header_in_uwsgis_order(tmp_path):
    # py_uwsgi_spit: a tuple of two latin-1 strings (str subclasses too, extra items
    # ignored); plain ASCII pairs take a shorter path to the same result
    (tmp_path / "app.py").write_text(HEADERS_APP)
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        got = {path: sim.get(path) for path in ("/ascii", "/latin1", "/subclass", "/triple",
                                                "/list", "/single", "/key", "/value",
                                                "/euro")}
    for path in ("/ascii", "/subclass", "/triple"):
        assert got[path].raw.startswith(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n"), path
    assert got["/latin1"].raw.startswith(b"HTTP/1.1 200 OK\r\nX-A: caf\xe9\r\n\r\n")
    assert got["/latin1"].headers == [("X-A", "caf\xe9")]
    assert {path: got[path].body for path in ("/list", "/single", "/key", "/value", "/euro")} == {
        "/list": b"http header must be defined in a tuple",
        "/single": b"http header must be a 2-item tuple",
        "/key": b"http header key must be a string",
        "/value": b"http header value must be a string",
        "/euro": b"http header must be encodable in latin1",
    }
