"""Response bodies and the request log line (``simuwsgi/subsystems/wire.py``, ``workers.py``,
``reqlog.py``), in the simulation and against the real uWSGI 2.0.30: the bytes the client
gets and the log lines uWSGI writes, line for line after masking pids, dates, ports and
object addresses."""

from __future__ import annotations

import os
import re
import socket
import sys
import tempfile
from pathlib import Path

import pytest
from _waits import wait_for_lines

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = r'''
import uwsgi


class Obj:
    pass


class Closing:
    def __init__(self):
        self.items = [b"c1", b"c2"]

    def __iter__(self):
        return iter(self.items)

    def close(self):
        uwsgi.log("CLOSED")


def application(env, sr):
    p = env["PATH_INFO"]
    if p == "/bytes":
        sr("200 OK", [("Content-Type", "text/plain")])
        return b"hello"
    if p == "/bytes-nosr":
        return b"hello"
    if p == "/bytearray":
        sr("200 OK", [])
        return [bytearray(b"ba"), b"x"]
    if p == "/int":
        sr("200 OK", [])
        return [b"a", 5, b"b"]
    if p == "/str":
        sr("200 OK", [])
        return "strbody"
    if p == "/obj":
        sr("200 OK", [])
        return [b"a", Obj(), b"b"]
    if p == "/none":
        sr("200 OK", [])
        return None
    if p == "/nosr":
        return [b"body"]
    if p == "/sr-empty":
        sr("", [("X-A", "1")])
        return [b"body"]
    if p == "/sr-code":
        sr("404", [])
        return [b"nf"]
    if p == "/sr-code-unknown":
        sr("299 ", [])
        return [b"u"]
    if p == "/bighdr":
        sr("200 OK", [("X-Big%d" % i, "v" * 1000) for i in range(70)])
        return [b"big"]
    if p == "/exc":
        raise ValueError("boom")
    if p == "/close":
        sr("200 OK", [("A", "b")])
        return Closing()
    if p == "/file-wrapper":
        sr("200 OK", [])
        f = open(__file__, "rb")
        w = env["wsgi.file_wrapper"](f)
        uwsgi.log("FW %s %s %s" % (w is f, repr(type(env["wsgi.file_wrapper"])) ==
                                   "<class 'builtin_function_or_method'>",
                                   env["wsgi.file_wrapper"]))
        return w
    sr("200 OK", [])
    return [b"ok"]
'''

PATHS = ["/bytes", "/bytes-nosr", "/bytearray", "/int", "/str", "/obj", "/none", "/nosr",
         "/sr-empty", "/sr-code", "/sr-code-unknown", "/bighdr", "/exc", "/close",
         "/file-wrapper", "/ok"]
OPTIONS = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
_DROP = re.compile(r"^\*\*\*|^\[simuwsgi-harness\]|^running \"|^spawned|^WSGI app|"
                   r"uWSGI running as root|your |mapped |Python |python |detected |"
                   r"compiled |os: |nodename|machine|clock source|pcre|current working|"
                   r"lock engine|thunder lock|uwsgi socket|--- Python")


#: a request's time in the request line and in the logformat below: real's is the
#: machine's (tests of the simulated one: test_the_request_log_follows_the_virtual_clock)
_MSECS = re.compile(r"( in | ms=)\d+( msecs |\b)")


def _mask(line: str) -> str:
    line = _MSECS.sub(r"\1T\2", line)
    line = re.sub(r"\[pid: \d+\|", "[pid: P|", line)
    line = re.sub(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", "DATE", line)
    line = re.sub(r"0x[0-9a-f]+", "0xADDR", line)
    return line


def _view(lines: list[str]) -> list[str]:
    return [_mask(line) for line in lines if line and not _DROP.search(line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _simulate(tmp_path, port: int, hostname: str = "simuwsgi"):
    (tmp_path / "app.py").write_text(APP)
    headers = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    with Simulation(OPTIONS + ["--http-socket", f"127.0.0.1:{port}"], app_dir=tmp_path,
                    hostname=hostname) as sim:
        responses = [sim.get(p, headers=headers) for p in PATHS]
        return responses, list(sim.log)


def test_response_bodies_in_the_simulation(tmp_path):
    responses, log = _simulate(tmp_path, 9090)
    raw = {p: r.raw for p, r in zip(PATHS, responses)}
    assert raw["/bytes"] == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"
    assert raw["/bytes-nosr"] == b"hello"  # no status: the body goes out alone
    assert raw["/bytearray"] == b"HTTP/1.1 200 OK\r\n\r\nx"
    assert raw["/str"] == b"HTTP/1.1 200 OK\r\n\r\n"
    assert raw["/sr-empty"] == b"body"
    assert raw["/sr-code"] == b"HTTP/1.1 404 Not Found\r\n\r\nnf"
    assert raw["/sr-code-unknown"] == b"HTTP/1.1 299 Unknown\r\n\r\nu"
    assert raw["/bighdr"] == b"" and raw["/exc"] == b""
    assert "[ERROR] Unhandled object from iterator: 5 (0x" in "\n".join(log)
    assert log.count("CLOSED") == 1
    assert "FW True True <built-in function uwsgi_sendfile>" in log
    assert responses[PATHS.index("/file-wrapper")].body.startswith(b"\nimport uwsgi")
    lines = [line for line in log if line.startswith("[pid:")]
    assert re.fullmatch(
        r"\[pid: \d+\|app: 0\|req: 1/1\] 127\.0\.0\.1 \(\) \{22 vars in 236 bytes\} "
        r"\[.{24}\] GET /bytes => generated 5 bytes in 0 msecs \(HTTP/1\.1 200\) "
        r"1 headers in 45 bytes \(0 switches on core 0\)", lines[0])
    assert "(HTTP/1.1 500) 0 headers in 0 bytes (0 switches on core 0)" in lines[12]
    assert "=> generated 0 bytes in 0 msecs (HTTP/1.1 200) 64 headers in 0 bytes" in lines[11]


def test_traceback_starts_at_the_apps_frame(tmp_path):
    _responses, log = _simulate(tmp_path, 9090)
    i = log.index("ValueError: boom")
    assert log[i - 3:i] == ["Traceback (most recent call last):",
                            '  File "app.py", line 57, in application',
                            '    raise ValueError("boom")']
    assert "TypeError: 'NoneType' object is not iterable" in log  # no frame at all
    assert not any("simuwsgi" in line for line in log if line.startswith("  File"))


def test_the_request_log_follows_the_virtual_clock(tmp_path):
    (tmp_path / "app.py").write_text(
        "import time\n"
        "def application(env, sr):\n"
        "    time.sleep(1.25)\n"
        "    sr('200 OK', [])\n"
        "    return [b'x']\n")
    with Simulation(OPTIONS + ["--log-micros"], app_dir=tmp_path) as sim:
        sim.get("/")
        line = [x for x in sim.log if x.startswith("[pid:")][0]
    assert "in 1250000 micros (HTTP/1.1 200)" in line


@pytest.mark.real
@requires_real_uwsgi
def test_bodies_and_log_lines_match_real_uwsgi(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "app.py").write_text(APP)
    with RealUwsgi(OPTIONS, app_dir=real_dir) as real:
        port = real.port
        real_responses = [real.get(p) for p in PATHS]
        real.wait_for_log(r"GET /ok => generated")
        real_log = list(real.log)
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    sim_responses, sim_log = _simulate(sim_dir, port, socket.gethostname())
    for path, sim, got in zip(PATHS, sim_responses, real_responses):
        assert sim.raw == got.raw, path
    # the app takes no time: none in the simulation, the machine's in real (0 ms, or a
    # few on a loaded one: _view masks them)
    assert all(" in 0 msecs " in x for x in sim_log if x.startswith("[pid: "))
    assert _view(sim_log) == _view(real_log)


# -- the logging options ------------------------------------------------------------------
LOG_APP = r'''
import uwsgi


def application(env, sr):
    p = env["PATH_INFO"]
    if p == "/logvar":
        uwsgi.set_logvar("foo", "bar")
    if p == "/forced":
        uwsgi.log_this_request()
    code = "404 Not Found" if p == "/missing" else "500 Oops" if p == "/fail" else "200 OK"
    sr(code, [("Content-Type", "text/plain")])
    return [b"x" * (100 if p == "/big" else 3)]
'''
LOG_PATHS = ["/a", "/missing", "/fail", "/big", "/forced", "/logvar"]
LOGFORMAT = ("LF %(addr) %(method) %(uri) %(proto) %(status) %(rsize) %(hsize) %(size) "
             "%(headers) %(switches) %(vars) %(pktsize) %(core) %(wid) %(host) %(uagent) "
             "%(referer) %(cl) %(werr) %(rerr) %(ioerr) %(modifier1) %(modifier2) ms=%(msecs) "
             "%(user) %(foo) %(var.REQUEST_METHOD) %(var.NOPE)")
LOG_OPTIONS = ["--disable-logging", "--log-4xx", "--log-5xx", "--log-big", "50",
               "--logformat", LOGFORMAT]


def _log_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("LF ")]


def _simulate_logging(tmp_path, port: int, hostname: str = "simuwsgi") -> list[str]:
    (tmp_path / "app.py").write_text(LOG_APP)
    headers = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    with Simulation(OPTIONS + LOG_OPTIONS + ["--http-socket", f"127.0.0.1:{port}"],
                    app_dir=tmp_path, hostname=hostname) as sim:
        for p in LOG_PATHS:
            sim.get(p, headers=headers)
        return list(sim.log)


def test_conditional_logging_and_logformat(tmp_path):
    lines = _log_lines(_simulate_logging(tmp_path, 9090))
    assert [line.split()[3] for line in lines] == ["/missing", "/fail", "/big", "/forced"]
    assert lines[0] == ("LF 127.0.0.1 GET /missing HTTP/1.1 404 3 52 55 1 1 22 240 0 1 "
                        "127.0.0.1:9090 - - 0 0 0 0 0 0 ms=0 - - GET -")


def test_log_slow_and_default_format_options(tmp_path):
    (tmp_path / "app.py").write_text(
        "import time\n"
        "def application(env, sr):\n"
        "    time.sleep(float(env['QUERY_STRING'] or 0))\n"
        "    sr('200 OK', [])\n"
        "    return [b'x']\n")
    with Simulation(OPTIONS + ["--disable-logging", "--log-slow", "500"],
                    app_dir=tmp_path) as sim:
        for q in ("0.1", "0.6", "0"):
            sim.get("/?" + q)
        lines = [x for x in sim.log if x.startswith("[pid:")]
    assert len(lines) == 1 and "GET /?0.6 => generated 1 bytes in 600 msecs" in lines[0]


@pytest.mark.real
@requires_real_uwsgi
def test_logging_options_match_real_uwsgi(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "app.py").write_text(LOG_APP)
    with RealUwsgi(OPTIONS + LOG_OPTIONS, app_dir=real_dir) as real:
        port = real.port
        for p in LOG_PATHS:
            real.get(p)
        real.wait_for_log(r"^LF .* /forced ")
        real_lines = _log_lines(real.log)
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    sim_lines = _log_lines(_simulate_logging(sim_dir, port, socket.gethostname()))
    # the app takes no time: none in the simulation, the machine's in real
    assert all(" ms=0 " in x for x in sim_lines)
    assert [_MSECS.sub(r"\1T\2", x) for x in sim_lines] == \
        [_MSECS.sub(r"\1T\2", x) for x in real_lines]


# -- the log diff ---------------------------------------------------------------------------
def test_log_diff_masks_what_differs_by_nature():
    from simuwsgi.conform import compare_logs

    real = ["[simuwsgi-harness] master-ready",
            "spawned uWSGI worker 1 (pid: 26707, cores: 1)",
            "[pid: 26708|app: 0|req: 1/1] 127.0.0.1 () {22 vars in 232 bytes} "
            "[Fri Dec  4 13:46:18 2026] GET /a => generated 2 bytes in 3 msecs "
            "(HTTP/1.1 200) 0 headers in 19 bytes (1 switches on core 0)",
            "[ERROR] Unhandled object from iterator: 5 (0x7fa143d4e928)"]
    sim = ["spawned uWSGI worker 1 (pid: 1002, cores: 1)",
           "[pid: 1002|app: 0|req: 1/1] 127.0.0.1 () {22 vars in 236 bytes} "
           "[Thu Jan  1 00:00:00 2026] GET /a => generated 2 bytes in 0 msecs "
           "(HTTP/1.1 200) 0 headers in 19 bytes (1 switches on core 0)",
           "[ERROR] Unhandled object from iterator: 6 (0x1)"]
    diff = compare_logs(sim, real)
    assert (diff.equal, diff.strict, len(diff.real), diff.fraction) == (2, 2, 3, 2 / 3)
    assert "-[ERROR] Unhandled object from iterator: 5 (0xADDR)" in diff.format()


def test_log_diff_compares_in_order_within_each_writer():
    from simuwsgi.conform import compare_logs

    request = "[pid: 1|app: 0|req: 1/1] 127.0.0.1 () {2 vars in 9 bytes} [X] GET /a => x"
    spooler = "[spooler /s pid: 2] managing request uwsgi_spoolfile_on_vm_1_2 ..."
    diff = compare_logs(["start", request, spooler], ["start", spooler, request])
    assert (diff.equal, diff.strict) == (3, 2)
    peers = ["Gracefully killing worker 1 (pid: 5)...", "Gracefully killing worker 2 (pid: 6)..."]
    diff = compare_logs(["a", *peers, "b"], ["a", *reversed(peers), "b"])
    assert (diff.equal, diff.strict) == (4, 3)
    chance = (["DATE - *** HARAKIRI ON WORKER 2 (pid: 7, try: 1, graceful: yes) ***"],
              ["DATE - *** HARAKIRI ON WORKER 1 (pid: 9, try: 1, graceful: yes) ***"])
    assert compare_logs(*chance).equal == 0  # which worker: exact identities differ
    assert compare_logs(*chance, identity="kind").equal == 1


# -- startup, cron, reload and stop lines --------------------------------------------------
def test_startup_lines_in_uwsgi_order(tmp_path):
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "uwsgi.register_signal(17, 'workers', print)\n"
        "uwsgi.register_signal(18, '', print)\n"
        "def application(env, sr):\n"
        "    sr('200 OK', [])\n"
        "    return [b'ok']\n")
    opts = ["--master", "--processes", "2", "--cache2", "name=c,items=10",
            "--cron", "-1 -1 -1 -1 -1 true", "--http-socket", "127.0.0.1:9090",
            "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        log = list(sim.log)

    def at(prefix: str) -> int:
        return next(i for i, line in enumerate(log) if line.startswith(prefix))

    order = ["*** Starting uWSGI 2.0.30 (64bit) on [", "compiled with version: ",
             "current working directory: ", "lock engine: pthread robust mutexes",
             "thunder lock: disabled", '*** Cache "c" initialized: 0MB (key: 2136 bytes',
             "uwsgi socket 0 bound to TCP address 127.0.0.1:9090 fd 3", "Python version: ",
             "your server socket listen backlog is limited to 100 connections",
             "your mercy for graceful operations on workers is 60 seconds",
             '[uwsgi-cron] command "true" registered as cron task',
             "mapped 218712 bytes (213 KB) for 2 cores", "*** Operational MODE: preforking ***",
             "[uwsgi-signal] signum 17 registered (wid: 0 modifier1: 0 target: workers)",
             "[uwsgi-signal] signum 18 registered (wid: 0 modifier1: 0 target: default, any "
             "worker)", "WSGI app 0 (mountpoint='') ready",
             "*** uWSGI is running in multiple interpreter mode ***",
             "spawned uWSGI master process (pid: ", "spawned uWSGI worker 1 (pid: ",
             "spawned uWSGI worker 2 (pid: ", "cache sweeper thread enabled"]
    positions = [at(prefix) for prefix in order]
    assert positions == sorted(positions)


def test_reload_and_stop_lines(tmp_path):
    (tmp_path / "app.py").write_text("def application(env, sr):\n    return []\n")
    (tmp_path / "spool").mkdir()
    opts = ["--master", "--processes", "2", "--mules", "1", "--spooler", "spool",
            "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        first = len(sim.log)
        sim.reload()
        sim.advance(3)
        reload_lines = sim.log[first:]
        pids = {name: sim.process(name).pid for name in ("spooler1", "mule1")}
        first = len(sim.log)
        sim.stop()
        stop_lines = sim.log[first:]
    masked = [re.sub(r"pid:? \d+", "pid P", line) for line in reload_lines[:11]]
    assert masked == [
        "killing the spooler with pid P", "...gracefully killing workers...",
        "Gracefully killing worker 1 (pid P)...", "Gracefully killing worker 2 (pid P)...",
        "spooler (pid P) annihilated", "worker 1 buried after 1 seconds",
        "worker 2 buried after 1 seconds", "mule 1 (pid P) annihilated",
        "binary reloading uWSGI...", f"chdir() to {tmp_path}",
        "closing all non-uwsgi socket fds > 2 (max_fd = 1024)..."]  # the virtual machine's
    assert reload_lines[11] == "running /usr/local/bin/uwsgi"
    assert reload_lines[12].startswith("*** Starting uWSGI 2.0.30")
    assert any(line.startswith("gracefully (RE)spawned uWSGI master process (pid: ")
               for line in reload_lines)
    assert stop_lines == [
        "SIGINT/SIGTERM received...killing workers...",
        f"killing the spooler with pid {pids['spooler1']}",
        f"spooler (pid: {pids['spooler1']}) annihilated", "worker 1 buried after 1 seconds",
        "worker 2 buried after 1 seconds", f"mule 1 (pid: {pids['mule1']}) annihilated",
        "goodbye to uWSGI."]


def test_cron_command_lines(tmp_path):
    (tmp_path / "app.py").write_text("def application(env, sr):\n    return []\n")
    opts = ["--master", "--cron", "-1 -1 -1 -1 -1 echo hi-from-cron", "--wsgi-file", "app.py"]
    with Simulation(opts, app_dir=tmp_path, cron_commands=True) as sim:
        sim.advance(61)
        log = [line for line in sim.log if "[uwsgi-cron]" in line or line == "hi-from-cron"]
    assert log[0] == '[uwsgi-cron] command "echo hi-from-cron" registered as cron task'
    assert re.fullmatch(r'.{24} - \[uwsgi-cron\] running "echo hi-from-cron" \(pid (\d+)\)',
                        log[1])
    pid = log[1].rsplit(" ", 1)[1].strip(")")
    assert log[3] == (f'[uwsgi-cron] command "echo hi-from-cron" running with pid {pid} '
                      "exited after 1 second(s)")


# -- remaining API differences (issue 13 §5) ------------------------------------------------
API_APP = r'''
import uwsgi

W1 = uwsgi.workers()
uwsgi.log("IMPORT same=%s ids=%r" % (W1 is uwsgi.workers(), [w["id"] for w in W1]))
uwsgi.log("IMPORT magic=%r" % sorted(k for k in uwsgi.magic_table))


def spooler(env):
    uwsgi.log("SPOOLED %r" % sorted(env))
    return uwsgi.SPOOL_OK


uwsgi.spooler = spooler


def handler(num):
    uwsgi.log("HANDLER %d" % num)


uwsgi.register_signal(20, "workers", handler)
uwsgi.register_signal(22, "mule", handler)


def spool_wrapper(*args, **kw):
    return uwsgi.spool(*args, **kw)


def application(env, sr):
    p = env["PATH_INFO"]
    out = []
    if p == "/spool":
        for call in (lambda: uwsgi.spool(**{}), spool_wrapper, uwsgi.spool):
            try:
                out.append(call().split(b"/")[-1][:19].decode())
            except Exception as e:
                out.append(repr(e))
    if p == "/workers":
        a = uwsgi.workers()
        out.append("same=%s type=%s ids=%r" % (a is uwsgi.workers(), type(a).__name__,
                                               [w["id"] for w in a]))
    if p == "/wait":
        uwsgi.signal(20)
        out.append("wait=%r received=%r" % (uwsgi.signal_wait(), uwsgi.signal_received()))
    if p == "/mule":
        uwsgi.signal(22)
    if p == "/fw":
        out.append(repr(env["wsgi.file_wrapper"]))
    sr("200 OK", [])
    return [" ".join(out).encode()]
'''
MULE = r'''
import uwsgi
while True:
    r = uwsgi.signal_wait()
    uwsgi.log("MULE wait=%r received=%r" % (r, uwsgi.signal_received()))
'''
API_PATHS = ["/spool", "/workers", "/wait", "/mule", "/fw"]
# (--spooler-frequency 1: a real spooler woken by the first of the two spool files may
# scan before the second is written, which then waits for the next scan - 30 s by default;
# CI saw it once under load)
API_OPTIONS = ["--master", "--processes", "1", "--spooler", "spool", "--mule=mule.py",
               "--spooler-frequency", "1", "--wsgi-file", "app.py"]
_API_LINES = re.compile(r"^(IMPORT|SPOOLED|HANDLER|MULE|error managing)")


def _api_dir(path):
    path.mkdir()
    (path / "spool").mkdir()
    (path / "app.py").write_text(API_APP)
    (path / "mule.py").write_text(MULE)
    return path


def _api_sim(path):
    with Simulation(API_OPTIONS, app_dir=_api_dir(path)) as sim:
        bodies = [sim.get(p).body for p in API_PATHS]
        sim.advance(1.5)
        return bodies, [line for line in sim.log if _API_LINES.search(line)]


def test_api_differences_in_the_simulation(tmp_path):
    bodies, lines = _api_sim(tmp_path / "sim")
    assert bodies[0] == (b"uwsgi_spoolfile_on_ uwsgi_spoolfile_on_ ValueError('The argument "
                         b"of spooler callable must be a dictionary')")
    assert bodies[1] == b"same=True type=tuple ids=[1]"
    assert bodies[2] == b"wait=b'' received=20"
    assert "IMPORT same=True ids=[0]" in lines
    assert "MULE wait=b'' received=22" in lines
    assert not any(line.startswith("error managing") for line in lines)


@pytest.mark.real
@requires_real_uwsgi
def test_api_differences_match_real_uwsgi(tmp_path):
    sim_bodies, sim_lines = _api_sim(tmp_path / "sim")
    with RealUwsgi(API_OPTIONS, app_dir=_api_dir(tmp_path / "real")) as real:
        real_bodies = [real.get(p).body for p in API_PATHS]
        wait_for_lines(real, _API_LINES.pattern, len(sim_lines))
        real_lines = [line for line in real.log if _API_LINES.search(line)]
    assert sim_bodies == real_bodies
    # the spooler, the mule and the worker write concurrently: compared as sets of lines
    masked = sorted(re.sub(r"'[hbp]'|'[0-9DPSIJijdNnOoCcEe]'", "'X'", x) for x in sim_lines)
    assert masked == sorted(re.sub(r"'[hbp]'|'[0-9DPSIJijdNnOoCcEe]'", "'X'", x)
                            for x in real_lines)


# -- where the log goes --------------------------------------------------------------------
LOGGED_APP = ("import uwsgi\n"
              "def application(env, sr):\n"
              "    if env['PATH_INFO'] == '/exc':\n"
              "        raise ValueError('boom')\n"
              "    uwsgi.log('APP LINE')\n"
              "    sr('200 OK', [])\n"
              "    return [b'ok']\n")


def _masked_requests(text: str) -> list[str]:
    return [_mask(re.sub(r"\{\d+ vars in \d+ bytes\}", "{VARS}", line))
            for line in text.splitlines()]


def test_req_logger_file_and_log_prefix(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    opts = ["--master", "--wsgi-file", "app.py", "--req-logger", "file:req.log",
            "--logfile-chmod", "640", "--log-prefix=PFX %Y"]
    with Simulation(opts, app_dir=tmp_path, start="2026-03-01T10:00:00") as sim:
        sim.get("/ok")
        sim.get("/exc")
        log = list(sim.log)
    year = "PFX 2026 - "
    assert log[0].startswith(year + "*** Starting uWSGI 2.0.30")
    assert year + "APP LINE" in log
    assert "ValueError: boom" in log  # Python's traceback: written to fd 2, no prefix
    assert not any("GET /ok" in line for line in log)  # request lines: the request logger
    requests = (tmp_path / "req.log").read_text().splitlines()
    assert [line.split(" => ")[0].rsplit(" ", 2)[1:] for line in requests] == [
        ["GET", "/ok"], ["GET", "/exc"]]
    assert oct((tmp_path / "req.log").stat().st_mode & 0o777) == "0o640"


def test_logto_and_log_date(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    opts = ["--master", "--wsgi-file", "app.py", "--logto", "main.log", "--log-date"]
    with Simulation(opts, app_dir=tmp_path, start="2026-03-01T10:00:00") as sim:
        sim.get("/ok")
        log = list(sim.log)
    assert (tmp_path / "main.log").read_text().splitlines() == log
    assert re.fullmatch(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d 2026 - APP LINE",
                        next(line for line in log if line.endswith("APP LINE")))
    assert any(line.startswith("[pid: ") for line in log)  # request lines: no date


def test_bad_logfile_chmod_is_refused(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    with pytest.raises(ValueError, match="invalid chmod value: 6400"):
        Simulation(["--wsgi-file", "app.py", "--logfile-chmod", "6400"],
                   app_dir=tmp_path).start()


@pytest.mark.real
@requires_real_uwsgi
def test_req_logger_matches_real_uwsgi(tmp_path):
    for side in ("real", "sim"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "app.py").write_text(LOGGED_APP)
    opts = ["--master", "--wsgi-file", "app.py", "--req-logger", "file:req.log"]
    with RealUwsgi(opts, app_dir=tmp_path / "real") as real:
        real.get("/ok")
        real.get("/exc")
        import time

        req_log = tmp_path / "real" / "req.log"  # opened by the first request's line
        deadline = time.monotonic() + 10
        while not req_log.exists() or req_log.read_text().count("\n") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        real_main = [line for line in real.log if "GET /" in line]
    with Simulation(opts, app_dir=tmp_path / "sim") as sim:
        sim.get("/ok")
        sim.get("/exc")
        sim_main = [line for line in sim.log if "GET /" in line]
    assert sim_main == real_main == []
    assert (_masked_requests((tmp_path / "sim" / "req.log").read_text())
            == _masked_requests((tmp_path / "real" / "req.log").read_text()))


@pytest.mark.real
@requires_real_uwsgi
def test_log_x_forwarded_for_matches_real_uwsgi(tmp_path):
    opts = OPTIONS + ["--log-x-forwarded-for"]
    headers = {"X-Forwarded-For": "10.1.2.3, 10.0.0.1"}
    (tmp_path / "app.py").write_text(LOGGED_APP)
    with RealUwsgi(opts, app_dir=tmp_path) as real:
        port = real.port
        real.get("/ok", headers=headers)
        real.wait_for_log(r"GET /ok =>")
        real_line = next(line for line in real.log if "GET /ok =>" in line)
    hdrs = [("Host", f"127.0.0.1:{port}"), *headers.items(), ("Connection", "close")]
    with Simulation(opts + ["--http-socket", f"127.0.0.1:{port}"], app_dir=tmp_path,
                    hostname=socket.gethostname()) as sim:
        sim.get("/ok", headers=hdrs)
        sim_line = next(line for line in sim.log if "GET /ok =>" in line)
    assert _mask(sim_line) == _mask(real_line)
    assert "] 10.1.2.3, 10.0.0.1 () {" in sim_line  # the whole header, as real


# -- the request body and its Content-Length -----------------------------------------------
BODY_APP = r'''
import uwsgi


def application(env, sr):
    try:
        r = "read=%r" % (env["wsgi.input"].read()[:20],)
    except Exception as e:
        r = "read-exc=%r" % (e,)
    sr("200 OK", [])
    return [("CL=%r cl()=%r %s" % (env.get("CONTENT_LENGTH"), uwsgi.cl(), r)).encode()]
'''
LENGTHS = ["18446744073709551617", "18446744073709551615", "99999999999999999999999", "5",
           "-1", "abc"]


def _post(cl: str) -> bytes:
    return (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {cl}\r\nConnection: close\r\n\r\n"
            "hello").encode()


def _body_sim(tmp_path, port: int = 9090, hostname: str = "simuwsgi"):
    (tmp_path / "app.py").write_text(BODY_APP)
    with Simulation(OPTIONS + ["--http-socket", f"127.0.0.1:{port}"], app_dir=tmp_path,
                    hostname=hostname) as sim:
        bodies = [sim.request("POST", "/", body=b"hello", headers=[
            ("Host", "x"), ("Content-Length", cl), ("Connection", "close")]).body
            for cl in LENGTHS]
        late = sim.request("POST", "/", body=b"hello", headers={"Content-Length": "99"})
        return bodies, late, list(sim.log)


def test_content_length_as_uwsgi_reads_it(tmp_path):
    bodies, late, log = _body_sim(tmp_path)
    assert bodies[0] == b"CL='18446744073709551617' cl()=1 read=b'h'"  # 2**64 + 1 wraps
    assert bodies[1].endswith(b"read-exc=OSError('error during read(0) on wsgi.input')")
    assert bodies[4] == b"CL='-1' cl()=0 read=b''"
    # the client announced more than it sent: uWSGI waits --socket-timeout, then fails
    assert late.finished - late.started == 4.0
    assert ("[uwsgi-body-read] Timeout reading 94 bytes. Content-Length: 99 consumed: 5 "
            "left: 94") in log
    assert sum("uwsgi_request_body_read()/malloc(): Cannot allocate memory "
               "[core/reader.c line 371] during POST / (127.0.0.1)" in line
               for line in log) == 2


@pytest.mark.real
@requires_real_uwsgi
def test_content_length_matches_real_uwsgi(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "app.py").write_text(BODY_APP)
    with RealUwsgi(OPTIONS, app_dir=tmp_path / "real") as real:
        port = real.port
        real_bodies = [real.request_raw(_post(cl)).body for cl in LENGTHS]
        real.wait_for_log(r"POST / => generated 24 bytes")
        real_log = list(real.log)
    (tmp_path / "sim").mkdir()
    sim_bodies, _late, sim_log = _body_sim(tmp_path / "sim", port, socket.gethostname())
    assert sim_bodies == real_bodies
    assert _view(sim_log)[:len(_view(real_log))] == _view(real_log)


# -- a spool file over 2 GB ------------------------------------------------------------------
def _big_task(spool_dir):
    """A task file whose body is one byte more than one read() returns (sparse)."""
    from simuwsgi.subsystems.spooler import MAX_RW_COUNT

    block = b"\x03\x00key\x05\x00value"
    path = spool_dir / "uwsgi_spoolfile_on_big_task"
    with open(path, "wb") as f:
        f.write(bytes([17]) + len(block).to_bytes(2, "little") + b"\x00" + block)
        f.truncate(4 + len(block) + MAX_RW_COUNT + 1)
    os.utime(path, (1, 1))  # not a task for later (the spooler runs past mtimes only)
    return path


SPOOL_APP = ("import uwsgi\n"
             "def spooler(env):\n"
             "    uwsgi.log('RAN %r' % sorted(env))\n"
             "    return uwsgi.SPOOL_OK\n"
             "uwsgi.spooler = spooler\n"
             "def application(env, sr):\n"
             "    sr('200 OK', [])\n"
             "    return [b'ok']\n")
_SPOOL_LINES = re.compile(r"spooler_manage_task|^RAN|managing request")


def test_a_spool_file_over_2_gb_is_a_read_error(tmp_path):
    (tmp_path / "spool").mkdir()
    (tmp_path / "app.py").write_text(SPOOL_APP)
    big = _big_task(tmp_path / "spool")
    with Simulation(["--master", "--spooler", "spool", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        sim.advance(2)
        lines = [line for line in sim.log if _SPOOL_LINES.search(line)]
    assert lines == ["spooler_manage_task()/read(): Success [core/spooler.c line 564]"]
    assert not big.exists()


@pytest.fixture
def fast_hole_dir(tmp_path):
    """A directory where a 2 GB hole of a sparse file reads fast: on a tmpfs (/dev/shm),
    whose holes read as the zero page, where the host has one; a disk's page cache
    first fills 2 GB with zeros (18 s on the CI host, against 0.3 s)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="simuwsgi-test-") as path:
        yield Path(path)


@pytest.mark.real
@requires_real_uwsgi
def test_a_spool_file_over_2_gb_matches_real_uwsgi(tmp_path, fast_hole_dir):
    spool = fast_hole_dir / "spool"
    spool.mkdir()
    (tmp_path / "app.py").write_text(SPOOL_APP)
    big = _big_task(spool)
    # the real spooler reads 2 GB (of a sparse file) before it sleeps: a slow start
    with RealUwsgi(["--master", "--spooler", str(spool), "--wsgi-file", "app.py"],
                   app_dir=tmp_path, startup_timeout=90) as real:
        real.wait_for_log(r"spooler_manage_task", timeout=30)
        real_lines = [line for line in real.log if _SPOOL_LINES.search(line)]
    assert real_lines == ["spooler_manage_task()/read(): Success [core/spooler.c line 564]"]
    assert not big.exists()


def test_a_body_over_one_write_is_not_spooled(tmp_path, monkeypatch):
    """The body goes out in one write(); Linux moves at most 0x7ffff000 bytes (the limit
    is lowered here so the test needs no 2 GB body)."""
    from simuwsgi.subsystems import spooler

    monkeypatch.setattr(spooler, "MAX_RW_COUNT", 10)
    (tmp_path / "spool").mkdir()
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "uwsgi.spooler = lambda env: uwsgi.SPOOL_OK\n"
        "def application(env, sr):\n"
        "    out = []\n"
        "    for body in (b'x' * 10, b'x' * 11):\n"
        "        try:\n"
        "            out.append(uwsgi.spool({b'a': b'1', b'body': body}).split(b'/')[-2])\n"
        "        except Exception as e:\n"
        "            out.append(repr(e).encode())\n"
        "    sr('200 OK', [])\n"
        "    return [b' '.join(out)]\n")
    with Simulation(["--master", "--spooler", "spool", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        body = sim.get("/").body
        log = list(sim.log)
    assert body == b"spool ValueError('unable to spool job')"
    i = next(i for i, line in enumerate(log) if line.startswith("[spooler] unable to write"))
    assert log[i + 1] == "uwsgi_spool_request()/write(): Success [core/spooler.c line 381]"
    assert len(os.listdir(tmp_path / "spool")) <= 1  # the failed file was removed


def test_logformat_metric_and_user_harakiri_lines(tmp_path):
    (tmp_path / "app.py").write_text(
        "import time, uwsgi\n"
        "def application(env, sr):\n"
        "    uwsgi.metric_set('hits', 7)\n"
        "    if env['PATH_INFO'] == '/slow':\n"
        "        uwsgi.set_user_harakiri(1)\n"
        "        time.sleep(5)\n"
        "    sr('200 OK', [])\n"
        "    return [b'ok']\n")
    opts = ["--master", "--wsgi-file", "app.py", "--enable-metrics", "--metric", "hits",
            "--logformat", "M %(metric.hits) %(metric.nope) %(uri)"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim.get("/")
        sim.get("/slow")
        sim.advance(2)
        log = list(sim.log)
    assert "M 7 0 /" in log
    dated = [line.split(" - ", 1)[1] for line in log if "HARAKIRI" in line]
    assert dated[1:] == ["HARAKIRI !!! worker 1 status !!!",
                         dated[2], "HARAKIRI !!! end of worker 1 status !!!",
                         "HARAKIRI (user) triggered by worker 1 core 0 !!!"]
    assert dated[2].startswith("HARAKIRI [core 0] 127.0.0.1 - GET /slow since ")


# -- signal registration lines -----------------------------------------------------------------
SIG_APP = r'''
import uwsgi


def attempt(f):
    try:
        return repr(f())
    except Exception as e:
        return repr(e)


uwsgi.log("IMPORT reg=%s" % attempt(lambda: uwsgi.register_signal(30, "", print)))
uwsgi.log("IMPORT rereg=%s" % attempt(lambda: uwsgi.register_signal(30, "", print)))


def application(env, sr):
    sr("200 OK", [])
    return [attempt(lambda: uwsgi.register_signal(31, "worker", print)).encode()]
'''
SIG_MULE = r'''
import time, uwsgi
try:
    uwsgi.register_signal(32, "", print)
except Exception as e:
    uwsgi.log("MULE %r" % e)
while True:
    time.sleep(1)
'''


def _signal_lines(lines: list[str]) -> list[str]:
    return [line for line in lines
            if "IMPORT" in line or "signal" in line.lower() or "MULE" in line]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("options", [["--master", "--mule=mule.py"], []])
def test_signal_registration_lines_match_real_uwsgi(tmp_path, options):
    (tmp_path / "app.py").write_text(SIG_APP)
    (tmp_path / "mule.py").write_text(SIG_MULE)
    opts = options + ["--wsgi-file", "app.py"]
    with RealUwsgi(opts, app_dir=tmp_path) as real:
        real_body = real.get("/").body
        if options:
            real.wait_for_log(r"^MULE ")
        real_lines = _signal_lines(real.log)
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim_body = sim.get("/").body
        sim.advance(0.5)
        sim_lines = _signal_lines(sim.log)
    assert (sim_body, sorted(sim_lines)) == (real_body, sorted(real_lines))
    assert sim_lines[:4] == real_lines[:4]  # the master's own lines, in order


def test_logformat_ftime(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    base = ["--wsgi-file", "app.py", "--logformat", "F %(ftime) %(ltime)"]
    for extra, expected in ([[], "F 01/Mar/2026:10:00:00 +0000 01/Mar/2026:10:00:00 +0000"],
                            [["--log-date=%Y", "--logformat-strftime"],
                             "F 2026 01/Mar/2026:10:00:00 +0000"]):
        with Simulation(base + extra, app_dir=tmp_path, start="2026-03-01T10:00:00",
                        tz="UTC") as sim:
            sim.get("/ok")
            assert expected in sim.log


@pytest.mark.real
@requires_real_uwsgi
def test_conform_log_option(tmp_path, capsys):
    from pathlib import Path

    from simuwsgi.cli import main

    scenario = (Path(__file__).resolve().parent.parent / "scenarios" / "conformance"
                / "c04_app_exceptions.py")
    assert main(["conform", str(scenario), "--log", "--report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^log: (\d+) masked-equal lines of \1 \(100\.0%", out, re.MULTILINE)


def test_log_prefix_in_fork_mode(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    opts = ["--master", "--wsgi-file", "app.py", "--log-prefix=PFX"]
    with Simulation(opts, app_dir=tmp_path, mode="fork") as sim:
        sim.get("/ok")
        sim.get("/exc")
        log = list(sim.log)
    assert "PFX - APP LINE" in log  # uwsgi.log in the worker's child
    assert "ValueError: boom" in log  # its traceback: fd 2, no prefix
    assert any(line.startswith("[pid: ") and "GET /exc" in line for line in log)


@pytest.mark.real
@requires_real_uwsgi
def test_cache_startup_lines_match_real_uwsgi(tmp_path):
    (tmp_path / "app.py").write_text(LOGGED_APP)
    opts = ["--master", "--wsgi-file", "app.py", "--cache2", "name=a,items=100",
            "--cache2", "name=b,items=10,bitmap=1,blocks=100,blocksize=65536,keysize=100",
            "--cache", "5"]
    with RealUwsgi(opts, app_dir=tmp_path) as real:
        real_lines = [line for line in real.log if "Cache" in line or "sweeper" in line]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim_lines = [line for line in sim.log if "Cache" in line or "sweeper" in line]
    assert sim_lines == real_lines


def test_logformat_logvar_and_request_var(tmp_path):
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "def application(env, sr):\n"
        "    uwsgi.set_logvar('foo', 'bar')\n"
        "    sr('200 OK', [])\n"
        "    return [b'ok']\n")
    opts = ["--wsgi-file", "app.py", "--logformat", "L %(foo) %(var.QUERY_STRING) %(nope)"]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim.get("/?q=1")
        assert "L bar q=1 -" in sim.log


# -- what the app prints, and the memory in the log format ---------------------------------
PRINT_APP = r'''
import sys

print("AT IMPORT")


def application(env, sr):
    print("IN APP", end="")
    print(" DONE")
    sys.stderr.write("TO STDERR\n")
    sr("200 OK", [])
    return [b"ok"]
'''
PRINT_LINES = ["AT IMPORT", "IN APP DONE", "TO STDERR"]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_print_goes_to_the_log(tmp_path, capsys, mode):
    (tmp_path / "app.py").write_text(PRINT_APP)
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path, mode=mode) as sim:
        sim.get("/")
        assert [line for line in sim.log if line in PRINT_LINES] == PRINT_LINES
        assert sim.log.index("TO STDERR") < len(sim.log) - 1  # before the request line
        print("the test's own output")
    out = capsys.readouterr()
    assert out.out == "the test's own output\n" and "TO STDERR" not in out.err


@pytest.mark.real
@requires_real_uwsgi
def test_print_goes_to_the_log_in_real_uwsgi(tmp_path):
    (tmp_path / "app.py").write_text(PRINT_APP)
    with RealUwsgi(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as real:
        real.get("/")
        real.wait_for_log(r"GET / => generated")
        assert [line for line in real.log if line in PRINT_LINES] == PRINT_LINES


def test_logformat_memory_is_what_uwsgi_last_read(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    fmt = ["--logformat", "MEM %(rss) %(vsz) %(rssM)"]
    with Simulation(["--wsgi-file", "app.py", *fmt], app_dir=tmp_path) as sim:
        sim.set_rss("worker1", 50 << 20, vsz=80 << 20)
        sim.get("/ok")
        assert sim.log[-1] == "MEM 0 0 0"  # nothing reads the memory
    opts = ["--wsgi-file", "app.py", "--reload-on-rss", "4000", *fmt]
    with Simulation(opts, app_dir=tmp_path) as sim:
        sim.set_rss("worker1", 50 << 20, vsz=80 << 20)
        sim.get("/ok")
        assert sim.log[-1] == f"MEM {50 << 20} {80 << 20} 50"


@pytest.mark.real
@requires_real_uwsgi
def test_logformat_memory_in_real_uwsgi(tmp_path):
    (tmp_path / "app.py").write_text(APP)
    fmt = ["--logformat", "MEM %(rss) %(vsz)"]
    for extra, measured in (([], False), (["--reload-on-rss", "4000"], True)):
        with RealUwsgi(["--master", "--wsgi-file", "app.py", *fmt, *extra],
                       app_dir=tmp_path) as real:
            real.get("/ok")
            real.wait_for_log(r"^MEM ")
            line = next(line for line in real.log if line.startswith("MEM "))
            assert (line != "MEM 0 0") is measured, line


def test_default_line_time_in_each_runs_zone(tmp_path):
    # the same instant in two zones, one run after the other: the request line's time
    # is each run's local time (the line's remembered text is the zone's own)
    (tmp_path / "app.py").write_text(LOGGED_APP)
    for tz, shown in (("UTC", "[Sun Mar  1 10:00:00 2026]"),
                      ("Asia/Tokyo", "[Sun Mar  1 19:00:00 2026]")):
        with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path,
                        start="2026-03-01T10:00:00Z", tz=tz) as sim:
            sim.get("/ok")
            assert [line for line in sim.log if "GET /ok" in line and shown in line], tz


DATED_APP = '''
import os, time

def application(environ, start_response):
    if environ["PATH_INFO"] == "/tokyo":  # the app moves the process to another zone
        os.environ["TZ"] = "Asia/Tokyo"
        time.tzset()
    start_response("200 OK", [])
    return [b"ok"]
'''


def test_request_log_lines_are_dated_in_local_time_across_dst_and_a_tzset(tmp_path):
    """Each line's date is ``asctime(localtime())`` of its second: through the repeated
    hour of a DST change, over midnight, and after the app changes the zone."""
    import time

    (tmp_path / "app.py").write_text(DATED_APP)
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path,
                    start="2026-10-25T00:00:00Z", tz="Europe/Paris") as sim:
        walls = []
        for step in [1800] * 4 + [7 * 3600 + 1] * 4:
            sim.advance(step)
            walls.append(int(sim.clock.wall_offset + sim.now))
            sim.get("/tokyo" if len(walls) == 6 else "/")
        dates = [m.group(1) for m in map(re.compile(r"\} \[(.+?)\] GET /").search,
                                         sim.log) if m]
    expected = []
    for i, wall in enumerate(walls):
        os.environ["TZ"] = "Asia/Tokyo" if i >= 5 else "Europe/Paris"  # from /tokyo on
        time.tzset()
        try:
            expected.append(time.asctime(time.localtime(wall)))
        finally:
            os.environ.pop("TZ", None)
            time.tzset()
    assert dates == expected
    assert dates[0] == dates[2] == "Sun Oct 25 02:30:00 2026"  # the repeated hour
