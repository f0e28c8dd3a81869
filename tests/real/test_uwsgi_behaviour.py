"""Pinned observations of real uWSGI 2.0.30 (pyuwsgi) behaviour that the simulator must
reproduce.  Each test documents one behaviour; they run through the harness."""

from __future__ import annotations

import json
import re
import textwrap
import time

import pytest

from simuwsgi.modes.real import HARNESS_MARK
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

OBS_APP = textwrap.dedent(
    """
    import json, os, sys, time
    import uwsgi

    def application(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/raise-before":
            raise ValueError("boom before start_response")
        if path == "/raise-iter":
            start_response("200 OK", [("Content-Type", "text/plain")])
            def gen():
                yield b"first-chunk;"
                raise RuntimeError("boom while iterating")
            return gen()
        if path == "/raise-after-sr":
            start_response("200 OK", [("Content-Type", "text/plain")])
            raise RuntimeError("boom after start_response")
        if path == "/environ":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({k: [type(v).__name__, repr(v)] for k, v in environ.items()}).encode()]
        if path == "/info":
            start_response("200 OK", [("Content-Type", "application/json")])
            w = uwsgi.workers()
            return [json.dumps({
                "workers_type": type(w).__name__,
                "worker_keys": [[k, type(v).__name__] for k, v in w[0].items()],
                "app_keys": [[k, type(v).__name__] for k, v in w[0]["apps"][0].items()],
                "requests": [x["requests"] for x in w],
                "statuses": [x["status"].decode() for x in w],
                "opt": {k: repr(v) for k, v in uwsgi.opt.items()},
                "magic_table": {k.decode("latin-1"): v.decode("latin-1") for k, v in uwsgi.magic_table.items()},
                "version_info": repr(uwsgi.version_info),
                "version": repr(uwsgi.version),
                "started_on": uwsgi.started_on, "now": time.time(),
                "hostname": repr(uwsgi.hostname), "is_a_reload": uwsgi.is_a_reload,
                "pid": os.getpid(), "worker_id": uwsgi.worker_id(),
            }).encode()]
        if path == "/nocl":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"abc", b"def"]
        if path == "/reload":
            uwsgi.reload()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"reloading"]
        if path == "/stop":
            uwsgi.stop()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"stopping"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %d" % (os.getpid(), uwsgi.worker_id())]
    """
)

SHARED_OPTS = [
    "--master", "--processes", "2",
    "--set", "a=1", "--set", "a=2", "--cache2", "name=c,items=10",
    "--wsgi-file", "app.py",
]  # fmt: skip

# "[pid: 123|app: 0|req: 1/1] 127.0.0.1 () {22 vars in 246 bytes} [Wed Nov 25 16:45:25 2026]
#  GET /raise-before => generated 0 bytes in 0 msecs (HTTP/1.1 500) 0 headers in 0 bytes
#  (0 switches on core 0)"
REQ_LOG = (
    r"^\[pid: \d+\|app: 0\|req: \d+/\d+\] 127\.0\.0\.1 \(\) \{{\d+ vars in \d+ bytes\}} \[[^]]+\] "
    r"{method} {path} => generated {gen} bytes in \d+ msecs \({proto} {status}\) "
    r"{nh} headers in {hb} bytes \({sw} switches on core 0\)$"
)


@pytest.fixture
def shared(real_uwsgi_pool):
    return real_uwsgi_pool.get(SHARED_OPTS, app=OBS_APP)


def new_lines(u, start, path=None):
    """The lines since ``start``; with ``path``, once the log line of its request is there
    (uWSGI writes it after the response: the client may read it first)."""
    if path is not None:
        u.wait_for_log(rf" {re.escape(path)} => generated ", start=start)
    return [ln for ln in u.log[start:] if HARNESS_MARK not in ln]


# (a) exceptions -------------------------------------------------------------------------
@requires_real_uwsgi
def test_exception_before_start_response_closes_without_reply(shared):
    start = len(shared.log)
    r = shared.get("/raise-before")
    assert r.status is None and r.raw == b"" and r.reason == "closed"
    lines = new_lines(shared, start, "/raise-before")
    assert lines[:4] == [
        "Traceback (most recent call last):",
        '  File "app.py", line 8, in application',
        '    raise ValueError("boom before start_response")',
        "ValueError: boom before start_response",
    ]
    assert re.match(
        REQ_LOG.format(
            method="GET",
            path="/raise-before",
            gen=0,
            proto="HTTP/1.1",
            status=500,
            nh=0,
            hb=0,
            sw=0,
        ),
        lines[4],
    ), lines[4]


@requires_real_uwsgi
def test_exception_while_iterating_sends_partial_body(shared):
    start = len(shared.log)
    r = shared.get("/raise-iter")
    assert r.raw == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst-chunk;"
    assert r.closed_by_server
    lines = new_lines(shared, start, "/raise-iter")
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[3] == "RuntimeError: boom while iterating"
    assert re.match(
        REQ_LOG.format(
            method="GET",
            path="/raise-iter",
            gen=12,
            proto="HTTP/1.1",
            status=200,
            nh=1,
            hb=45,
            sw=1,
        ),
        lines[4],
    ), lines[4]


@requires_real_uwsgi
def test_exception_after_start_response_sends_headers_only(shared):
    start = len(shared.log)
    r = shared.get("/raise-after-sr")
    assert r.raw == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
    lines = new_lines(shared, start, "/raise-after-sr")
    assert lines[3] == "RuntimeError: boom after start_response"
    assert re.match(
        REQ_LOG.format(
            method="GET",
            path="/raise-after-sr",
            gen=0,
            proto="HTTP/1.1",
            status=200,
            nh=1,
            hb=45,
            sw=0,
        ),
        lines[4],
    ), lines[4]


# (d) uwsgi module -----------------------------------------------------------------------
@requires_real_uwsgi
def test_uwsgi_module_values(shared):
    t0 = time.time()
    info = json.loads(shared.get("/info").body)
    assert info["workers_type"] == "tuple"
    assert info["worker_keys"] == [
        ["id", "int"], ["pid", "int"], ["requests", "int"], ["delta_requests", "int"],
        ["signals", "int"], ["exceptions", "int"], ["status", "bytes"], ["rss", "int"],
        ["vsz", "int"], ["running_time", "int"], ["last_spawn", "int"],
        ["respawn_count", "int"], ["tx", "int"], ["avg_rt", "int"], ["apps", "tuple"],
    ]  # fmt: skip
    assert info["app_keys"] == [
        ["id", "int"], ["modifier1", "int"], ["mountpoint", "bytes"], ["startup_time", "int"],
        ["interpreter", "int"], ["callable", "int"], ["requests", "int"],
        ["exceptions", "int"], ["chdir", "bytes"],
    ]  # fmt: skip
    # the worker running the request reports b"busy"
    assert info["statuses"][info["worker_id"] - 1] == "busy"
    # Python 3: a repeated option keeps only its LAST value (no list), in first-seen order
    opt = info["opt"]
    assert list(opt)[:6] == ["master", "processes", "set", "a", "cache2", "wsgi-file"]
    assert opt["master"] == "True"
    assert opt["processes"] == "b'2'"
    assert opt["set"] == "b'a=2'" and opt["a"] == "b'2'"
    assert opt["cache2"] == "b'name=c,items=10'"
    added = set(opt) - {"master", "processes", "set", "a", "cache2", "wsgi-file"}
    assert added - {"binary-path"} == {  # what the harness adds (binary-path for pyuwsgi's
        "http-socket",                   # script: see reload_binary_path)
        "hook-master-start",
        "hook-accepting",
        "hook-as-mule",
    }
    assert info["version_info"] == "(2, 0, 30, 0, b'')"
    assert info["version"] == "b'2.0.30'"
    assert isinstance(info["started_on"], int) and info["started_on"] <= t0
    mt = info["magic_table"]
    assert mt["V"] == "2.0.30" and mt["%"] == "%" and mt["("] == "%(" and mt["["] == "\x1b"
    assert mt["t"] == str(info["started_on"])
    assert info["hostname"].startswith("b'") and info["is_a_reload"] is False


# (g) environ ----------------------------------------------------------------------------
@requires_real_uwsgi
def test_wsgi_environ(shared):
    r = shared.request_raw(
        b"GET /environ?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"
    )
    env = json.loads(r.body)
    assert sorted(env) == [
        "HTTP_CONNECTION", "HTTP_HOST", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR",
        "REQUEST_METHOD", "REQUEST_URI", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT",
        "SERVER_PROTOCOL", "uwsgi.node", "uwsgi.version", "wsgi.errors", "wsgi.file_wrapper",
        "wsgi.input", "wsgi.multiprocess", "wsgi.multithread", "wsgi.run_once",
        "wsgi.url_scheme", "wsgi.version",
    ]  # fmt: skip
    assert env["PATH_INFO"] == ["str", "'/environ'"]
    assert env["QUERY_STRING"] == ["str", "'q=1'"]
    assert env["REQUEST_URI"] == ["str", "'/environ?q=1'"]
    assert env["SCRIPT_NAME"] == ["str", "''"]
    assert env["HTTP_HOST"] == ["str", "'example.test'"]
    assert env["SERVER_PORT"] == ["str", repr(str(shared.port))]
    assert env["SERVER_PROTOCOL"] == ["str", "'HTTP/1.1'"]
    assert env["REMOTE_ADDR"] == ["str", "'127.0.0.1'"]
    assert env["SERVER_NAME"][1] == env["uwsgi.node"][1][1:]  # the hostname, not Host:
    assert env["uwsgi.version"] == ["bytes", "b'2.0.30'"]
    assert env["wsgi.version"] == ["tuple", "(1, 0)"]
    assert env["wsgi.multiprocess"] == ["bool", "True"]  # 2 processes
    assert env["wsgi.multithread"] == ["bool", "False"]
    assert env["wsgi.run_once"] == ["bool", "False"]
    assert env["wsgi.url_scheme"] == ["str", "'http'"]
    assert env["wsgi.input"][0] == "_Input"
    assert env["wsgi.errors"][0] == "TextIOWrapper" and "name=2" in env["wsgi.errors"][1]
    assert env["wsgi.file_wrapper"] == [
        "builtin_function_or_method",
        "<built-in function uwsgi_sendfile>",
    ]


# (h) no Content-Length / Connection / Transfer-Encoding added ------------------------------
@requires_real_uwsgi
@pytest.mark.parametrize("proto", ["HTTP/1.0", "HTTP/1.1"])
def test_response_headers_are_not_completed(shared, proto):
    r = shared.request_raw(f"GET /nocl {proto}\r\nHost: x\r\n\r\n".encode())
    # the status line echoes the request protocol; nothing is added; connection closed
    assert r.raw == f"{proto} 200 OK\r\nContent-Type: text/plain\r\n\r\nabcdef".encode()
    assert r.closed_by_server


# (e) max-requests -----------------------------------------------------------------------
@requires_real_uwsgi
def test_max_requests_recycles_after_n_requests(real_uwsgi_factory, tmp_path):
    (tmp_path / "app.py").write_text(OBS_APP)
    u = real_uwsgi_factory(
        ["--master", "--processes", "1", "--max-requests", "2", "--min-worker-lifetime", "0",
         "--wsgi-file", "app.py"],
        app_dir=tmp_path,
    )  # fmt: skip
    start = len(u.log)
    first = u.pids()[("worker", 1)]
    pids = [int(u.get("/").body.split()[0]) for _ in range(3)]
    assert pids[0] == pids[1] == first and pids[2] != first
    lines = new_lines(u, start)
    i = lines.index(f"...The work of process {first} is done. Seeya!")
    assert lines[i + 1] == f"worker 1 killed successfully (pid: {first})"
    assert lines[i + 2] == f"Respawned uWSGI worker 1 (new pid: {pids[2]})"


# (f) uwsgi.reload() / uwsgi.stop() from a request ----------------------------------------
@requires_real_uwsgi
def test_reload_and_stop_from_a_request(real_uwsgi_factory, tmp_path):
    (tmp_path / "app.py").write_text(OBS_APP)
    u = real_uwsgi_factory(
        ["--master", "--processes", "2", "--wsgi-file", "app.py"], app_dir=tmp_path
    )
    before = u.pids()
    mark = u.mark()
    r = u.get("/reload")
    assert r.status == 200 and r.body == b"reloading"  # the request completes normally
    u.wait_reloaded(since=mark)
    after = u.pids()
    assert after[("master", 0)] == before[("master", 0)]
    new_children = set(after.values()) - {after[("master", 0)]}
    assert new_children.isdisjoint(before.values())
    info = json.loads(u.get("/info").body)
    assert info["is_a_reload"] is True
    assert f"gracefully (RE)spawned uWSGI master process (pid: {u.pid})" in u.log

    # uwsgi.stop() = SIGQUIT to the master = brutal kill_them_all (SIGINT to the workers):
    # the stopping request itself races with its worker's death.  Observed: 200 in ~5/6
    # runs, connection closed without reply (and no request log line) otherwise.
    r = u.get("/stop")
    assert (r.status, r.body) == (200, b"stopping") or (r.status, r.reason) == (None, "closed")
    u.wait_for_log(r"^goodbye to uWSGI\.$", timeout=10)
    deadline = time.monotonic() + 5
    while u.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert u.returncode == 0
    assert "SIGINT/SIGTERM received...killing workers..." in u.log
