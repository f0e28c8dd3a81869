"""What uWSGI does with an exception in a request under ``--catch-exceptions``,
``--reload-on-exception`` and its ``-type``/``-value``/``-repr`` lists, what
``--harakiri-verbose`` adds to a harakiri, and ``--exception-handler``
(``simuwsgi/server/exceptions.py``; ``core/exceptions.c`` in uWSGI 2.0.30).

The expected answers and lines are what pyuwsgi 2.0.30 gave (the ``real`` tests ask it
again): the catcher's 500 and its report, the partial answer of an iterator that
raises after its first chunk, ``close()`` never caught; the worker's exit (status 5)
after the catcher, without a request line, and its respawn; the three lists compared
with the exception's *message*. Each runs in sim and fork mode, and the pure Python
twin (a subprocess with ``SIMUWSGI_PURE_PYTHON=1``) gives the same.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError
from simuwsgi.conform import mask_line
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = '''
import time


class Boom(Exception):
    pass


class Closing:
    def __iter__(self):
        return iter([b"body"])

    def close(self):
        raise ValueError("in close")


def parts():
    yield b"part1"
    raise ValueError("from iter")


def first():
    raise ValueError("first")
    yield b""


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/value":
        raise ValueError("bad value")
    if path == "/custom":
        raise Boom("custom msg")
    if path == "/iter":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return parts()
    if path == "/first":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return first()
    if path == "/after":
        start_response("200 OK", [("X-App", "1")])
        raise ValueError("after start_response")
    if path == "/close":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing()
    if path == "/sleep":
        time.sleep(5)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
'''
PORT = 9090
HEADERS = [("Host", "x")]
#: short request lines: method, URI, status, size, headers count/size
LOGFORMAT = ["--logformat", "%(method) %(uri) %(status) %(size) %(headers)/%(hsize)"]


def _argv(tmp_path: Path, *extra: str) -> list[str]:
    (tmp_path / "app.py").write_text(APP)
    return ["--master", "--processes", "1", "--http-socket", f"127.0.0.1:{PORT}",
            "--wsgi-file", "app.py", *extra]


def _line(text: str) -> int:
    """The line of APP where ``text`` is."""
    return next(n for n, line in enumerate(APP.splitlines(), 1) if text in line)


def _vars(uri: str) -> str:
    path, _, query = uri.partition("?")
    first = (f"PATH_INFO = {path}\nREQUEST_URI = {uri}\n" if query else
             f"REQUEST_URI = {uri}\nPATH_INFO = {path}\n")
    return (f"REQUEST_METHOD = GET\n{first}QUERY_STRING = {query}\n"
            f"SERVER_PROTOCOL = HTTP/1.1\nSCRIPT_NAME = \nSERVER_NAME = simuwsgi\n"
            f"SERVER_PORT = {PORT}\nREMOTE_ADDR = 127.0.0.1\nHTTP_HOST = x\n")


def report(uri: str, cls: str, msg: str, function: str, code: str) -> bytes:
    """The body of uWSGI's exceptions catcher for one frame's exception."""
    return (f'uWSGI exceptions catcher for "GET {uri}" (request plugin: "python", '
            f'modifier1: 0)\n\nException: {cls}: {msg}\n\nException class: {cls}\n\n'
            f'Exception message: {msg}\n\nBacktrace:\nfilename: "app.py" line: '
            f'{_line(code)} function: "{function}" text/code: "{code}" \n\n\n'
            + _vars(uri)).encode()


#: the catcher's answer, byte for byte as 2.0.30 wrote it (the vars are the request's)
VALUE_REPORT = (
    b'uWSGI exceptions catcher for "GET /value" (request plugin: "python", modifier1: 0)\n'
    b'\n'
    b'Exception: builtins.ValueError: bad value\n'
    b'\n'
    b'Exception class: builtins.ValueError\n'
    b'\n'
    b'Exception message: bad value\n'
    b'\n'
    b'Backtrace:\n'
    b'filename: "app.py" line: 30 function: "application" '
    b'text/code: "raise ValueError("bad value")" \n'
    b'\n'
    b'\n'
    b'REQUEST_METHOD = GET\n'
    b'REQUEST_URI = /value\n'
    b'PATH_INFO = /value\n'
    b'QUERY_STRING = \n'
    b'SERVER_PROTOCOL = HTTP/1.1\n'
    b'SCRIPT_NAME = \n'
    b'SERVER_NAME = simuwsgi\n'
    b'SERVER_PORT = 9090\n'
    b'REMOTE_ADDR = 127.0.0.1\n'
    b'HTTP_HOST = x\n')
TEXT = [("Content-Type", "text/plain")]
CAUGHT = [
    ("/value", 500, TEXT, VALUE_REPORT),
    ("/value?a=1", 500, TEXT, report("/value?a=1", "builtins.ValueError", "bad value",
                                     "application", 'raise ValueError("bad value")')),
    ("/custom", 500, TEXT, report("/custom", "uwsgi_file_app.Boom", "custom msg",
                                  "application", 'raise Boom("custom msg")')),
    ("/iter", 200, TEXT, b"part1"),  # the headers were out: nothing is added
    ("/first", 500, TEXT, report("/first", "builtins.ValueError", "first", "first",
                                 'raise ValueError("first")')),
    # start_response's status and headers were not sent yet: replaced
    ("/after", 500, TEXT, report("/after", "builtins.ValueError", "after start_response",
                                 "application", 'raise ValueError("after start_response")')),
    ("/close", 200, TEXT, b"body"),  # close() is never caught
    ("/", 200, TEXT, b"ok"),
]
#: (%(size) is the body's and the headers' bytes)
CAUGHT_LOG = [
    "GET /value 500 567 1/64", "GET /value?a=1 500 578 1/64", "GET /custom 500 567 1/64",
    "GET /iter 200 50 1/45", "GET /first 500 549 1/64", "GET /after 500 600 1/64",
    "GET /close 200 49 1/45", "GET / 200 47 1/45"]


def _tracebacks(log: list[str]) -> list[str]:
    """The last line of each traceback logged: the exception."""
    return [line for line in log if re.match(r"^\w[\w.]*(Error|Boom): ", line)]


def _after_spawn(log: list[str]) -> list[str]:
    start = next(i for i, line in enumerate(log) if line.startswith("spawned uWSGI worker"))
    return log[start + 1:]


def _ask(sim: Any, paths: list[str]) -> list[tuple[str, Any, list[Any], bytes]]:
    out = []
    for path in paths:
        r = sim.get(path, headers=HEADERS)
        out.append((path, r.status, [tuple(h) for h in r.headers], r.body))
    return out


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_catch_exceptions_answers_with_uwsgis_report(tmp_path: Path, mode: str) -> None:
    with Simulation(_argv(tmp_path, "--catch-exceptions", *LOGFORMAT), app_dir=tmp_path,
                    mode=mode) as sim:
        answers = _ask(sim, [path for path, *_ in CAUGHT])
        log = list(sim.log)
    assert answers == CAUGHT
    assert [line for line in _after_spawn(log) if line.startswith("GET ")] == CAUGHT_LOG
    assert _tracebacks(log) == [
        "ValueError: bad value", "ValueError: bad value", "uwsgi_file_app.Boom: custom msg",
        "ValueError: from iter", "ValueError: first", "ValueError: after start_response",
        "ValueError: in close"]
    assert not [line for line in log if "not simulated" in line]
    # without it: nothing before start_response; after it, the app's headers (sent as
    # the request closes), no body
    with Simulation(_argv(tmp_path), app_dir=tmp_path, mode=mode) as sim:
        assert sim.get("/value", headers=HEADERS).status is None
        after = sim.get("/after", headers=HEADERS)
    assert (after.status, after.headers, after.body) == (200, [("X-App", "1")], b"")


#: the requests of the reload tests, and what each answered (None: the connection
#: closed with no byte)
RELOADS = ["/value", "/custom", "/close", "/iter", "/"]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_reload_on_exception_exits_the_worker_in_the_request(tmp_path: Path,
                                                             mode: str) -> None:
    with Simulation(_argv(tmp_path, "--reload-on-exception", *LOGFORMAT), app_dir=tmp_path,
                    mode=mode) as sim:
        answers = _ask(sim, RELOADS)
        log = _after_spawn(list(sim.log))
    # each exception ends the worker where it is: what was written reaches the client
    assert [(path, status, body) for path, status, _h, body in answers] == [
        ("/value", None, b""), ("/custom", None, b""), ("/close", 200, b"body"),
        ("/iter", 200, b"part1"), ("/", 200, b"ok")]
    deaths = [line for line in log if line.startswith(("...", "Respawned", "GET "))]
    assert deaths == [
        "... monitored exception detected, respawning worker 1 (pid: 1002)...",
        "Respawned uWSGI worker 1 (new pid: 1003)",
        "... monitored exception detected, respawning worker 1 (pid: 1003)...",
        "Respawned uWSGI worker 1 (new pid: 1004)",
        "... monitored exception detected, respawning worker 1 (pid: 1004)...",
        "Respawned uWSGI worker 1 (new pid: 1005)",
        "... monitored exception detected, respawning worker 1 (pid: 1005)...",
        "Respawned uWSGI worker 1 (new pid: 1006)",
        "GET / 200 47 1/45"]
    assert _tracebacks(log) == ["ValueError: bad value", "uwsgi_file_app.Boom: custom msg",
                                "ValueError: in close", "ValueError: from iter"]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_respawned_worker_goes_on_counting_its_apps_requests(tmp_path: Path,
                                                                 mode: str) -> None:
    """uwsgi_apps[0].requests is in the worker's slot of shared memory: after a
    harakiri the next request logs "req: 2/1" (observed); --lazy-apps starts again."""
    for lazy, counts in (([], "2/1"), (["--lazy-apps"], "1/1")):
        with Simulation(_argv(tmp_path, "--harakiri", "1", *lazy), app_dir=tmp_path,
                        mode=mode) as sim:
            assert sim.get("/sleep", headers=HEADERS).status is None
            sim.get("/", headers=HEADERS)
            lines = [line for line in sim.log if line.startswith("[pid: ")]
        assert len(lines) == 1 and lines[0].startswith(f"[pid: 1003|app: 0|req: {counts}] ")


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_three_lists_compare_the_exceptions_message(tmp_path: Path, mode: str) -> None:
    """2.0.30 matches -type, -value and -repr alike against str(exc): a type name or a
    repr never matches, a message given to any of them does."""
    argv = _argv(tmp_path, "--reload-on-exception-type", "ValueError",
                 "--reload-on-exception-repr", "builtins.ValueError: bad value",
                 "--reload-on-exception-value", "custom msg",
                 "--reload-on-exception-repr", "from iter", "--catch-exceptions", *LOGFORMAT)
    with Simulation(argv, app_dir=tmp_path, mode=mode) as sim:
        answers = _ask(sim, ["/value", "/custom", "/iter", "/"])
        log = _after_spawn(list(sim.log))
    assert [(path, status, body[:22]) for path, status, _h, body in answers] == [
        ("/value", 500, b"uWSGI exceptions catch"), ("/custom", 500, b"uWSGI exceptions catch"),
        ("/iter", 200, b"part1"), ("/", 200, b"ok")]
    assert [line for line in log if line.startswith(("...", "GET "))] == [
        "GET /value 500 567 1/64",
        "... monitored exception detected, respawning worker 1 (pid: 1002)...",
        "... monitored exception detected, respawning worker 1 (pid: 1003)...",
        "GET / 200 47 1/45"]


def test_the_counted_exceptions(tmp_path: Path) -> None:
    """--reload-on-exception skips the counters; the lists count before they match."""
    for option, counted in ((["--reload-on-exception"], 0),
                            (["--reload-on-exception-value", "bad value"], 1)):
        with Simulation(_argv(tmp_path, *option), app_dir=tmp_path) as sim:
            sim.get("/value", headers=HEADERS)
            sim.get("/", headers=HEADERS)
            assert sim.inst.workers[1].exceptions == counted


def test_a_write_error_reloads_too(tmp_path: Path) -> None:
    """uwsgi_py_write_exception goes through uwsgi_manage_exception: its OSError's
    message ("write error") can match a list."""
    (tmp_path / "w.py").write_text(textwrap.dedent("""
        import uwsgi
        def application(env, start_response):
            start_response("200 OK", [])
            uwsgi.disconnect()
            return [b"late"]
    """))
    argv = ["--master", "--http-socket", f":{PORT}", "--wsgi-file", "w.py",
            "--reload-on-exception-value", "write error"]
    with Simulation(argv, app_dir=tmp_path) as sim:
        sim.get("/")
        sim.advance(1)
        log = list(sim.log)
    assert "OSError: write error" in log
    assert "... monitored exception detected, respawning worker 1 (pid: 1002)..." in log


# -- the Python twin ------------------------------------------------------------------------
def _scenario(tmp: str) -> list[Any]:
    """The catch and reload scenarios' answers and lines (what the subprocess prints)."""
    tmp_path = Path(tmp)
    out: list[Any] = []
    for extra in (["--catch-exceptions"], ["--reload-on-exception", "--catch-exceptions"]):
        with Simulation(_argv(tmp_path, *extra, *LOGFORMAT), app_dir=tmp_path) as sim:
            answers = _ask(sim, [path for path, *_ in CAUGHT])
            out.append([[p, s, [list(h) for h in hs], b.decode()] for p, s, hs, b in answers])
            out.append(_after_spawn(list(sim.log)))
            out.append(sim.trace.digest())
    return out


def test_the_pure_python_twin_gives_the_same(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_exception_options as t
        from simuwsgi.server import workers, wire
        assert workers._c is None and wire._c is None
        print(json.dumps(t._scenario({str(tmp_path / "py")!r})))
    """)
    (tmp_path / "py").mkdir()
    (tmp_path / "c").mkdir()
    env = {**os.environ, "SIMUWSGI_PURE_PYTHON": "1"}
    pure = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, check=True).stdout
    accelerated = json.loads(json.dumps(_scenario(str(tmp_path / "c"))))
    assert json.loads(pure) == accelerated
    assert accelerated[0][0][1] == 500 and accelerated[3][0][1] == 500


# -- --harakiri-verbose -----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_harakiri_verbose_shows_what_the_worker_waits_in(tmp_path: Path, mode: str) -> None:
    with Simulation(_argv(tmp_path, "--harakiri", "2", "--harakiri-verbose"),
                    app_dir=tmp_path, mode=mode) as sim:
        assert sim.get("/sleep").status is None
        log = _after_spawn(list(sim.log))
    assert [line.split(" - ", 1)[-1] for line in log[:3]] == [
        "*** HARAKIRI ON WORKER 1 (pid: 1002, try: 1, graceful: yes) ***",
        "HARAKIRI: -- syscall> 230 0x1 0x1 0x0 0x0 0x0 0x0 0x0 0x0",
        "HARAKIRI: -- wchan> hrtimer_nanosleep"]
    assert log[3].endswith("HARAKIRI !!! worker 1 status !!!")
    with Simulation(_argv(tmp_path, "--harakiri", "2"), app_dir=tmp_path, mode=mode) as sim:
        sim.get("/sleep")
        assert not [line for line in sim.log if line.startswith("HARAKIRI: --")]


def test_harakiri_verbose_while_reading_the_body(tmp_path: Path) -> None:
    """uwsgi_wait_read_req's poll(), its timeout --socket-timeout in milliseconds."""
    (tmp_path / "reader.py").write_text(
        "def application(env, start_response):\n"
        "    env['wsgi.input'].read()\n"
        "    start_response('200 OK', [])\n"
        "    return [b'']\n")
    argv = ["--master", "--http-socket", f":{PORT}", "--wsgi-file", "reader.py",
            "--harakiri", "2", "--harakiri-verbose", "--socket-timeout", "10"]
    with Simulation(argv, app_dir=tmp_path) as sim:
        sim.submit("POST", "/", headers={"Content-Length": "100"}, body_chunks=[b"abc"])
        sim.advance(3)
        lines = [line for line in sim.log if line.startswith("HARAKIRI: --")]
    assert lines == ["HARAKIRI: -- syscall> 7 0x0 0x1 0x2710 0x0 0x0 0x0 0x0 0x0",
                     "HARAKIRI: -- wchan> poll_schedule_timeout.constprop.0"]


def test_harakiri_verbose_of_a_worker_running_python(tmp_path: Path) -> None:
    """A worker that never blocks (stopped by the stall watchdog until its harakiri; sim
    mode: a fork mode child that never yields is a StallError)."""
    (tmp_path / "spin.py").write_text("def application(env, start_response):\n"
                                      "    while True:\n"
                                      "        pass\n")
    argv = ["--master", "--http-socket", f":{PORT}", "--wsgi-file", "spin.py",
            "--harakiri", "1", "--harakiri-verbose"]
    with Simulation(argv, app_dir=tmp_path, stall_timeout=0.05) as sim:
        assert sim.get("/").status is None
        lines = [line for line in sim.log if line.startswith("HARAKIRI: --")]
    assert lines == ["HARAKIRI: -- syscall> running", "HARAKIRI: -- wchan> 0"]


# -- --exception-handler ----------------------------------------------------------------------
def test_an_exception_handler_is_refused_as_pyuwsgi_has_none(tmp_path: Path) -> None:
    with pytest.raises(StartRefusedError) as info, \
            Simulation(_argv(tmp_path, "--exception-handler", "log:/tmp/x"), app_dir=tmp_path):
        pass
    assert str(info.value) == "unable to find exception handler: log"
    assert info.value.status == 1


# -- against the real server -------------------------------------------------------------------
def _real_and_sim(tmp_path: Path, extra: list[str], paths: list[str], *,
                  until: str) -> tuple[list[Any], list[str], list[Any], list[str]]:
    """The same requests on pyuwsgi and on a simulation with its port and host name;
    answers and masked log lines after the worker's spawn, for each."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "app.py").write_text(APP)
    options = ["--master", "--processes", "1", "--wsgi-file", "app.py", *extra]
    with RealUwsgi(options, app_dir=tmp_path / "real") as real:
        port = real.port
        real_answers = []
        for path in paths:
            before = len(real.log)
            r = real.get(path, timeout=5)
            real_answers.append((path, r.status, r.headers, r.body))
            # its request line, or the worker's exit and respawn
            found = real.wait_for_log(r"^\[pid: |^Respawned uWSGI worker", start=before)
            if found.group(0).startswith("Respawned"):
                time.sleep(0.5)  # the new worker in its accept loop
        real.wait_for_log(until)
        time.sleep(0.3)
        real_log = real.app_log()
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "app.py").write_text(APP)
    headers = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    with Simulation([*options, "--http-socket", f"127.0.0.1:{port}"],
                    app_dir=tmp_path / "sim", hostname=socket.gethostname()) as sim:
        sim_answers = [(p, r.status, r.headers, r.body)
                       for p in paths for r in [sim.get(p, headers=headers)]]
        sim_log = list(sim.log)

    def view(lines: list[str]) -> list[str]:
        keep = re.compile(r"^\[pid: |^\.\.\. |^Respawned |^Traceback|^  |^\w[\w.]*: |"
                          r"HARAKIRI")
        kept = [line for line in _after_spawn(lines) if keep.search(line)]
        stop = next((i for i, line in enumerate(kept) if line.startswith("SIGINT")), None)
        # (the /proc lines have no pid nor date, and their hex numbers are compared)
        return [line if line.startswith("HARAKIRI: --") else mask_line(line)
                for line in kept[:stop]]

    return real_answers, view(real_log), sim_answers, view(sim_log)


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("extra", [
    ["--catch-exceptions"],
    ["--reload-on-exception", "--catch-exceptions"],
    ["--reload-on-exception-type", "ValueError", "--reload-on-exception-value", "custom msg",
     "--reload-on-exception-repr", "from iter"],
], ids=["catch", "reload", "lists"])
def test_exceptions_match_real_uwsgi(tmp_path: Path, extra: list[str]) -> None:
    paths = ["/value", "/value?a=1", "/custom", "/first", "/after", "/close", "/iter", "/"]
    real_answers, real_log, sim_answers, sim_log = _real_and_sim(
        tmp_path, extra, paths, until=r"GET / => generated")
    assert [(p, s, list(map(tuple, h)), b) for p, s, h, b in sim_answers] == \
        [(p, s, list(map(tuple, h)), b) for p, s, h, b in real_answers]
    assert sim_log == real_log


@pytest.mark.real
@requires_real_uwsgi
def test_harakiri_verbose_matches_real_uwsgi(tmp_path: Path) -> None:
    """The syscall's number and first arguments and the wchan, as this host's kernel
    gives them (addresses masked)."""
    _r, real_log, _s, sim_log = _real_and_sim(
        tmp_path, ["--harakiri", "2", "--harakiri-verbose"], ["/sleep"],
        until=r"^Respawned uWSGI worker")

    def proc(lines: list[str]) -> list[str]:
        return [" ".join(line.split()[:6]) for line in lines if "HARAKIRI: --" in line]

    assert proc(sim_log) == proc(real_log) == [
        "HARAKIRI: -- syscall> 230 0x1 0x1", "HARAKIRI: -- wchan> hrtimer_nanosleep"]


@pytest.mark.real
@requires_real_uwsgi
def test_exception_handler_refusal_matches_real_uwsgi(tmp_path: Path) -> None:
    from _uwsgi_process import run_until_exit

    (tmp_path / "app.py").write_text(APP)
    status, lines = run_until_exit(["--master", "--http-socket", "127.0.0.1:0",
                                    "--wsgi-file", "app.py", "--exception-handler", "log"],
                                   tmp_path)
    assert status == 1
    assert lines[-2:] == ["thunder lock: disabled (you can enable it with --thunder-lock)",
                          "unable to find exception handler: log"]
    with pytest.raises(StartRefusedError) as info, \
            Simulation(["--master", "--wsgi-file", "app.py", "--exception-handler", "log"],
                       app_dir=tmp_path):
        pass
    assert str(info.value) == lines[-1]
