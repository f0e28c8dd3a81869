"""The log master's encoders, filters, drains and routes (``logmaster.py``; 2.0.30's
``core/logging.c``), in sim and fork mode, and against the real uWSGI 2.0.30: the bytes
of the log files, compared with the real server's once times and pids are masked.

What was observed on the real server (pyuwsgi 2.0.30, PCRE and zlib built in): one
message per line (the log pipes are datagram sockets), its newline included, so
``prefix`` goes before the line and ``suffix`` after its newline; ``${msg}`` is the line
without its newline (the request line too); json escapes only tab, newline, CR, quote
and backslash; gzip/compress members are zlib's bytes for the message; a named logger
gets only routed lines; ``--log-req-route`` finds its logger among the ``--logger``
ones (a named ``--req-logger`` is never used); ``--logto`` gets nothing once a logger
takes the lines; ``[log-encoder] registered SPEC`` goes to the terminal, unencoded.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import struct
import time
import zlib
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi
from simuwsgi.server.logmaster import parse_encoder_vars

from _uwsgi_process import get, run_until_exit, running

APP = """\
import sys

def application(env, start_response):
    if env["PATH_INFO"] == "/err":
        print('ERROR "quoted" \\t tab \\u00e9 back\\\\slash', file=sys.stderr, flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""
PATHS = ["/", "/err", "/health"]
BASE = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
START = datetime.datetime(2026, 3, 4, 5, 6, 7, 250000, tzinfo=datetime.UTC)
UNIX = int(START.timestamp())
MODES = ["sim", "fork"]


def _simulate(tmp_path: Path, extra: list[str], mode: str = "sim",
              paths: list[str] = PATHS) -> list[str]:
    (tmp_path / "app.py").write_text(APP)
    argv = [*BASE, "--http-socket", "127.0.0.1:9090", *extra]
    with Simulation(argv, app_dir=tmp_path, mode=mode, start=START, tz="UTC") as sim:
        for path in paths:
            assert sim.get(path).status == 200
        return list(sim.log)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


@pytest.mark.parametrize("mode", MODES)
def test_prefix_suffix_and_nl_chain_in_order(tmp_path, mode):
    _simulate(tmp_path, ["--logger", "file:main.log", "--log-encoder", "prefix [myapp] ",
                         "--log-encoder", "suffix <END>", "--log-encoder", "nl"], mode)
    data = (tmp_path / "main.log").read_bytes()
    # suffix comes after the line's own newline; nl adds one more
    assert data.startswith(b"[myapp] *** Starting uWSGI 2.0.30 (64bit) on "
                           b"[Wed Mar  4 05:06:07 2026] ***\n<END>\n[myapp] compiled with")
    assert b"[myapp] spawned uWSGI worker 1 (pid: 1002, cores: 1)\n<END>\n" in data
    assert b'[myapp] ERROR "quoted" \t tab \xc3\xa9 back\\slash\n<END>\n' in data


@pytest.mark.parametrize("mode", MODES)
def test_format_and_json_take_the_virtual_clock(tmp_path, mode):
    _simulate(tmp_path, [
        "--logger", "file:main.log", "--log-encoder",
        'json {"unix":${unix},"micros":${micros},"millis":${millis},'
        '"t":"${strftime:%Y-%m-%d %H:%M:%S}","msg":"${msg}","nl":"${msgnl}"}',
        "--log-encoder", "nl"], mode)
    rows = [json.loads(line) for line in _lines(tmp_path / "main.log")]
    first = rows[0]
    assert first["unix"] == UNIX
    assert first["micros"] == UNIX * 1_000_000 + 250_000
    assert first["millis"] == UNIX * 1000 + 250
    assert first["t"] == "2026-03-04 05:06:07"
    assert first["msg"] == "*** Starting uWSGI 2.0.30 (64bit) on [Wed Mar  4 05:06:07 2026] ***"
    assert first["nl"] == first["msg"] + "\n"
    err = next(row for row in rows if row["msg"].startswith("ERROR"))
    assert err["msg"] == 'ERROR "quoted" \t tab \u00e9 back\\slash'
    raw = next(line for line in _lines(tmp_path / "main.log") if b'"msg":"ERROR' in line)
    assert b'"msg":"ERROR \\"quoted\\" \\t tab \xc3\xa9 back\\\\slash"' in raw
    request = next(row for row in rows if "GET /err" in row["msg"])
    assert request["msg"].startswith("[pid: 1002|app: 0|req: 2/2] 127.0.0.1 () {")


def test_format_vars_keep_uwsgis_quirks():
    # observed: 'format $a${msg}$b}c${msg}xy$' writes "$a" MSG "}c${" MSG "xy$"
    assert parse_encoder_vars(b"$a${msg}$b}c${msg}xy$") == [
        (False, b"$a"), (True, b"msg"), (False, b"}c${"), (True, b"msg"), (False, b"xy$")]
    # observed: '${strftime:%H}|${msg}|$x|${unknown}|${}|${msg' ends in "|${m"
    assert parse_encoder_vars(b"${strftime:%H}|${msg}|$x|${unknown}|${}|${msg")[-1] == \
        (False, b"|${m")


def test_a_dollar_between_two_variables_crashes_uwsgi(tmp_path):
    # observed: the master dies of a segmentation fault at its first line
    with pytest.raises(StartRefusedError, match="segmentation fault"):
        _simulate(tmp_path, ["--log-encoder", "format ${msg}$x${msg}"])


@pytest.mark.parametrize("mode", MODES)
def test_routes_drains_filters_and_encoders_bound_to_a_logger(tmp_path, mode):
    log = _simulate(tmp_path, [
        "--logger", "errs file:errs.log", "--logger", "file:main.log",
        "--log-route", "errs ERROR", "--log-drain", "^your ", "--log-filter", "u",
        "--log-encoder", "prefix ALL|", "--log-encoder", "prefix:errs E|"], mode)
    # the unbound encoder runs first (chain order), then the one bound to errs
    assert (tmp_path / "errs.log").read_bytes() == \
        'E|ALL|ERROR "quoted" \t tab \u00e9 back\\slash\n'.encode()
    main = (tmp_path / "main.log").read_text()
    assert "ERROR" not in main  # a routed line goes to its logger only
    assert "ALL|your " not in main  # drained
    assert "pcre jit disabled" not in main  # no 'u': filtered out
    assert "ALL|spawned uWSGI worker 1" in main
    assert "E|" not in main
    # Simulation.log: the lines as logged, before the log master
    assert 'ERROR "quoted" \t tab \u00e9 back\\slash' in log
    assert "pcre jit disabled" in log


@pytest.mark.parametrize("mode", MODES)
def test_request_lines_take_the_request_encoders_and_routes(tmp_path, mode):
    log = _simulate(tmp_path, [
        "--logger", "file:main.log", "--logger", "hl file:health.log",
        "--req-logger", "file:req.log", "--req-logger", "named file:never.log",
        "--log-req-route", "hl GET /health", "--log-req-route", "named GET /err",
        "--log-req-encoder", "format R[${msg}]", "--log-req-encoder", "prefix:hl H|",
        "--log-req-encoder", "nl", "--log-encoder", "prefix M|"], mode)
    req = _lines(tmp_path / "req.log")
    assert [line[:39] for line in req] == [b"R[[pid: 1002|app: 0|req: 1/1] 127.0.0.1",
                                           b"R[[pid: 1002|app: 0|req: 2/2] 127.0.0.1"]
    assert req[1].endswith(b"(1 switches on core 0)]\n")
    health = (tmp_path / "health.log").read_bytes()
    assert health.startswith(b"H|R[[pid: 1002|app: 0|req: 3/3]") and health.endswith(b"]\n")
    # --log-req-route names a main logger (2.0.30): a named request logger is never used
    assert not (tmp_path / "never.log").exists()
    main = (tmp_path / "main.log").read_text()
    assert "GET" not in main and main.startswith("M|*** Starting uWSGI")
    assert not [line for line in log if "GET /" in line]  # the request log's, not main's
    assert log[:4] == ["[log-encoder] registered prefix M|",
                       "[log-req-encoder] registered format R[${msg}]",
                       "[log-req-encoder] registered prefix:hl H|",
                       "[log-req-encoder] registered nl"]


def test_request_encoders_need_a_request_log(tmp_path):
    # observed: without --req-logger/--log-req-route request lines are main-log lines
    _simulate(tmp_path, ["--logto", "main.log", "--log-req-encoder", "prefix REQ|",
                         "--log-encoder", "prefix M|"])
    main = (tmp_path / "main.log").read_text()
    assert "M|[pid: 1002|app: 0|req: 1/1]" in main and "REQ|" not in main


def _members(data: bytes, wbits: int) -> list[tuple[bytes, bytes]]:
    """(member, message) for each zlib/gzip member of ``data``."""
    out = []
    while data:
        inflater = zlib.decompressobj(wbits)
        message = inflater.decompress(data)
        used = len(data) - len(inflater.unused_data)
        out.append((data[:used], message))
        data = data[used:]
    return out


def _gzip(message: bytes) -> bytes:
    z = zlib.compressobj(-1, zlib.DEFLATED, -15, 9)
    body = z.compress(message) + z.flush(zlib.Z_SYNC_FLUSH) + z.flush(zlib.Z_FINISH)
    return bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3)) + body + \
        struct.pack("<II", zlib.crc32(message), len(message))


@pytest.mark.parametrize("mode", MODES)
def test_gzip_and_compress_write_one_member_per_line(tmp_path, mode):
    log = _simulate(tmp_path, ["--logger", "file:main.log", "--log-encoder", "gzip",
                               "--req-logger", "file:req.log", "--log-req-encoder",
                               "compress"], mode)
    main = _members((tmp_path / "main.log").read_bytes(), 31)
    assert main[0][1].startswith(b"*** Starting uWSGI 2.0.30")
    assert all(member == _gzip(message) for member, message in main)
    assert [m.decode().rstrip("\n") for _b, m in main] == \
        [line for line in log if not line.startswith("[log-")]
    req = _members((tmp_path / "req.log").read_bytes(), 15)
    assert len(req) == 3 and all(member == zlib.compress(m) for member, m in req)
    assert req[2][1].endswith(b"(1 switches on core 0)\n")


def test_logto_gets_only_what_no_logger_takes(tmp_path):
    _simulate(tmp_path, ["--logto", "lt.log", "--logger", "file:x.log"])
    assert (tmp_path / "lt.log").read_bytes() == b""
    assert (tmp_path / "x.log").read_text().startswith("*** Starting uWSGI")
    _simulate(tmp_path, ["--logto", "lt2.log", "--log-encoder", "prefix X|"])
    assert (tmp_path / "lt2.log").read_text().startswith("X|*** Starting uWSGI")


def test_the_registered_lines_go_to_the_terminal_unencoded(tmp_path):
    log = _simulate(tmp_path, ["--logto", "lt.log", "--log-date", "--log-encoder",
                               "prefix X|"])
    assert log[0] == "Wed Mar  4 05:06:07 2026 - [log-encoder] registered prefix X|"
    assert log[1].endswith("- *** Starting uWSGI 2.0.30 (64bit) on [Wed Mar  4 05:06:07 "
                           "2026] ***")
    assert "[log-encoder]" not in (tmp_path / "lt.log").read_text()


def test_bufsize_cuts_long_lines(tmp_path):
    # observed: --log-master-bufsize 30 cuts each line at 30 bytes, its newline too
    _simulate(tmp_path, ["--log-master-bufsize", "30", "--logger", "file:m.log"])
    assert (tmp_path / "m.log").read_bytes().startswith(
        b"*** Starting uWSGI 2.0.30 (64bcompiled with version: 14.2.1 ")


def test_log_truncate_empties_the_logto_file(tmp_path):
    (tmp_path / "lt.log").write_text("old line\n")
    _simulate(tmp_path, ["--logto", "lt.log", "--log-truncate"])
    assert (tmp_path / "lt.log").read_text().startswith("*** Starting uWSGI")


@pytest.mark.parametrize("extra, message", [
    (["--log-encoder", "bogus x"], 'log encoder "bogus" not found'),
    (["--log-req-encoder", "gzip2"], 'log encoder "gzip2" not found'),
    (["--log-route", "noregexp"], "invalid custom regexp syntax: must be <custom> <regexp>"),
    (["--log-drain", "("], "pcre error: "),
])
def test_refusals_in_uwsgis_words(tmp_path, extra, message):
    with pytest.raises(StartRefusedError, match=re.escape(message)):
        _simulate(tmp_path, extra)


def test_the_options_are_simulated(tmp_path):
    log = _simulate(tmp_path, ["--logger", "file:m.log", "--log-encoder", "nl",
                               "--log-drain", "x", "--log-filter", "y", "--log-route",
                               "a b", "--req-logger", "file:r.log", "--log-req-route", "a b",
                               "--log-req-encoder", "nl", "--log-master-bufsize", "9000",
                               "--log-truncate"])
    assert not [line for line in log if "not simulated" in line]


def test_serve_prints_the_encoded_terminal_output(tmp_path):
    from simuwsgi.serve import ServedSimulation

    from simuwsgi.modes.real import free_port

    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    out = io.StringIO()
    argv = [*BASE, "--http-socket", f"127.0.0.1:{port}", "--log-encoder",
            'json {"msg":"${msg}"}', "--log-encoder", "nl"]
    with ServedSimulation(argv, app_dir=tmp_path, log=out, start=START, tz="UTC"):
        assert get(f"http://127.0.0.1:{port}/err", wait=10) == b"hello"
        time.sleep(0.3)
    lines = out.getvalue().splitlines()
    assert lines[:3] == ['[log-encoder] registered json {"msg":"${msg}"}',
                         "[log-encoder] registered nl",
                         '{"msg":"*** Starting uWSGI 2.0.30 (64bit) on [Wed Mar  4 05:06:07 '
                         '2026] ***"}']
    assert '{"msg":"ERROR \\"quoted\\" \\t tab \u00e9 back\\\\slash"}' in lines


# -- against the real uWSGI 2.0.30 --------------------------------------------------------

_MASKS = [(re.compile(rb"pid: \d+"), b"pid: P"),
          (re.compile(rb"\{\d+ vars in \d+ bytes\}"), b"{V}"),
          (re.compile(rb"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}"), b"DATE"),
          (re.compile(rb"in \d+ msecs"), b"in T msecs"),
          (re.compile(rb'"unix":\d+'), b'"unix":U')]


def _masked(data: bytes) -> bytes:
    for pattern, text in _MASKS:
        data = pattern.sub(text, data)
    return data


def _real(tmp_path: Path, extra: list[str]) -> Path:
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    (real_dir / "app.py").write_text(APP)
    with running([*BASE, *extra], real_dir) as uwsgi:
        for path in PATHS:
            get(uwsgi.url + path)
        time.sleep(0.5)  # the master writes what it has read
    return real_dir


def _both(tmp_path: Path, extra: list[str]) -> tuple[Path, Path]:
    real_dir = _real(tmp_path, extra)
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    _simulate(sim_dir, extra, paths=["/", *PATHS])  # running() asked for / first
    return real_dir, sim_dir


MAIN_CASE = [
    "--logger", "errs file:errs.log", "--logger", "file:main.log",
    "--log-route", "errs ERROR", "--log-filter", r"^(spawned uWSGI worker|ERROR|\[pid)",
    "--log-drain", "GET /health",
    "--log-encoder", 'json {"unix":${unix},"msg":"${msg}","nl":"${msgnl}"}',
    "--log-encoder", "prefix:errs E|", "--log-encoder", "suffix ;", "--log-encoder", "nl"]
REQUEST_CASE = [
    "--logger", "file:main.log", "--logger", "hl file:health.log",
    "--req-logger", "file:req.log", "--req-logger", "named file:never.log",
    "--log-req-route", "hl GET /health", "--log-req-route", "named GET /err",
    "--log-req-encoder", "format <${msg}>${msgnl}$x", "--log-req-encoder", "prefix:hl H|",
    "--log-req-encoder", "suffix END"]


@pytest.mark.real
@requires_real_uwsgi
def test_main_log_routes_filters_and_encoders_match_real_uwsgi(tmp_path):
    real_dir, sim_dir = _both(tmp_path, MAIN_CASE)
    for name in ("main.log", "errs.log"):
        assert _masked((sim_dir / name).read_bytes()) == _masked((real_dir / name).read_bytes())


@pytest.mark.real
@requires_real_uwsgi
def test_request_log_routes_and_encoders_match_real_uwsgi(tmp_path):
    real_dir, sim_dir = _both(tmp_path, REQUEST_CASE)
    for name in ("req.log", "health.log"):
        assert _masked((sim_dir / name).read_bytes()) == _masked((real_dir / name).read_bytes())
    assert not (real_dir / "never.log").exists() and not (sim_dir / "never.log").exists()


@pytest.mark.real
@requires_real_uwsgi
def test_gzip_and_compress_bytes_match_real_uwsgi(tmp_path):
    real_dir, sim_dir = _both(tmp_path, ["--req-logger", "file:req.log",
                                         "--log-req-encoder", "gzip",
                                         "--log-req-encoder", "compress"])
    real = _members((real_dir / "req.log").read_bytes(), 15)
    sim = _members((sim_dir / "req.log").read_bytes(), 15)
    # each member is the compressed gzip member of one request line: the same bytes for
    # the same line (only the line's pid, time and vars differ between the servers)
    for (real_member, real_gz), (sim_member, sim_gz) in zip(real, sim, strict=True):
        assert real_member == zlib.compress(real_gz) and sim_member == zlib.compress(sim_gz)
        real_line, sim_line = (_members(gz, 31)[0][1] for gz in (real_gz, sim_gz))
        assert real_gz == _gzip(real_line) and sim_gz == _gzip(sim_line)
        assert _masked(sim_line) == _masked(real_line)


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("extra, message", [
    (["--log-encoder", "bogus x"], 'log encoder "bogus" not found'),
    (["--log-route", "noregexp"], "invalid custom regexp syntax: must be <custom> <regexp>"),
])
def test_refusals_match_real_uwsgi(tmp_path, extra, message):
    (tmp_path / "app.py").write_text(APP)
    status, lines = run_until_exit([*BASE, *extra], tmp_path)
    assert status == 1 and message in lines
    with pytest.raises(StartRefusedError, match=re.escape(message)):
        _simulate(tmp_path, extra)


@pytest.mark.real
@requires_real_uwsgi
def test_registered_lines_match_real_uwsgi(tmp_path):
    extra = ["--log-encoder", "prefix X|", "--log-encoder", "json:errs {}",
             "--log-req-encoder", "nl", "--logger", "file:m.log"]
    (tmp_path / "app.py").write_text(APP)
    with running([*BASE, *extra], tmp_path) as uwsgi:
        get(uwsgi.url + "/")
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    log = _simulate(sim_dir, extra)
    assert uwsgi.lines[:3] == log[:3]


def test_after_a_reload_the_registered_lines_go_to_the_logto_file(tmp_path):
    # uwsgi_reload gives fds 1-2 back the --logto file before the exec (master_utils.c)
    (tmp_path / "app.py").write_text(APP)
    argv = [*BASE, "--http-socket", "127.0.0.1:9090", "--logto", "lt.log",
            "--log-encoder", "prefix X|"]
    with Simulation(argv, app_dir=tmp_path, start=START, tz="UTC") as sim:
        sim.reload()
        sim.advance(3)
        log = list(sim.log)
    assert log.count("[log-encoder] registered prefix X|") == 2
    lines = (tmp_path / "lt.log").read_text().splitlines()
    assert lines.count("[log-encoder] registered prefix X|") == 1
    assert lines[lines.index("[log-encoder] registered prefix X|") + 1].startswith(
        "X|*** Starting uWSGI")


def test_file_loggers_are_made_0640_and_logfile_chmod_is_logtos(tmp_path):
    # observed: --logger file:x.log --logfile-chmod 600 --logto lt.log: x.log 640, lt.log 600
    _simulate(tmp_path, ["--logger", "file:x.log", "--logfile-chmod", "600",
                         "--logto", "lt.log"])
    assert (tmp_path / "x.log").stat().st_mode & 0o777 == 0o640 & ~_umask()
    assert (tmp_path / "lt.log").stat().st_mode & 0o777 == 0o600


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("option", [["--req-logger", "file:r.log"],
                                    ["--log-req-route", "a b"]])
def test_a_request_log_option_turns_the_master_on(tmp_path, option):
    # core/config.c: UWSGI_OPT_REQ_LOG_MASTER sets master_process (observed with
    # --req-logger: "spawned uWSGI master process")
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--wsgi-file", "app.py", "--http-socket", "127.0.0.1:9090", *option],
                    app_dir=tmp_path) as sim:
        log = list(sim.log)
    assert "spawned uWSGI master process (pid: 1001)" in log
    assert not [line for line in log if "without its master" in line]


PARTS_APP = """\
import sys

def application(env, start_response):
    if env["PATH_INFO"] == "/exc":
        raise ValueError("boom")
    sys.stderr.write("part1 ")
    sys.stderr.flush()
    sys.stderr.write("part2\\nline2\\n")
    sys.stderr.flush()
    env["wsgi.errors"].write("werr1\\nwerr2\\n")
    env["wsgi.errors"].flush()
    start_response("200 OK", [])
    return [b"ok"]
"""
#: observed on 2.0.30 with --log-encoder 'prefix X|': a traceback is a message a line,
#: the app's writes one message each, whole lines or not
PARTS_LOG = """\
X|Traceback (most recent call last):
X|  File "app.py", line 5, in application
X|    raise ValueError("boom")
X|ValueError: boom
X|part1 X|part2
line2
X|werr1
werr2
"""


@pytest.mark.parametrize("mode", MODES)
def test_each_write_of_the_app_is_one_message(tmp_path, mode):
    (tmp_path / "app.py").write_text(PARTS_APP)
    argv = [*BASE, "--http-socket", "127.0.0.1:9090", "--log-encoder", "prefix X|",
            "--logger", "file:m.log", "--disable-logging"]
    with Simulation(argv, app_dir=tmp_path, mode=mode) as sim:
        sim.get("/exc")
        sim.get("/parts")
        log = list(sim.log)
    data = (tmp_path / "m.log").read_text()
    assert data[data.index("X|Traceback"):] == PARTS_LOG
    assert log[-4:] == ["part1 part2", "line2", "werr1", "werr2"]


@pytest.mark.real
@requires_real_uwsgi
def test_each_write_is_one_message_on_real_uwsgi(tmp_path):
    (tmp_path / "app.py").write_text(PARTS_APP)
    argv = [*BASE, "--log-encoder", "prefix X|", "--logger", "file:m.log",
            "--disable-logging"]
    with running(argv, tmp_path) as uwsgi:
        for path in ("/exc", "/parts"):
            try:
                get(uwsgi.url + path)
            except OSError:  # the 500 of /exc
                pass
        time.sleep(0.5)
    data = (tmp_path / "m.log").read_text()
    assert data[data.index("X|Traceback"):data.index("X|SIGINT")] == PARTS_LOG
