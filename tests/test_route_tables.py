"""uWSGI's error, response and final routing tables (``--error-route``,
``--response-route``, ``--final-route`` & co., ``simuwsgi/server/routing.py``).

One configuration uses the three tables on an app answering 200, 404, 500 and 418: the
error table (applied as each status is prepared, whatever it is) redirects the 404,
serves a file for the 500, answers the 418 itself and drops one of the app's headers
from every 200; the response table (applied once as the headers go out) adds headers,
logs the status and size so far, and ends one request before any byte is sent; the
final table (after the response) logs the status and size. Every answer, the log lines
and the tables the master dumps are what uWSGI 2.0.30 gave (``EXPECTED``, ``LOG``,
asked again by the ``real`` test), in sim and fork mode, C and pure Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
def application(env, start_response):
    path = env["PATH_INFO"]
    status = {"/missing": "404 Not Found", "/boom": "500 Internal Server Error",
              "/teapot": "418 I'm a teapot"}.get(path, "200 OK")
    start_response(status, [("Content-Type", "text/plain"), ("X-App", "1")])
    return [b"app says " + path.encode()]
"""
PAGE = b"our own error page\n"
#: the file's modification time (its Last-Modified header), fixed
MTIME = 1_700_000_000
PATHS = ["/ok", "/missing", "/boom", "/teapot", "/cut"]


def _tables(page: str) -> list[str]:
    return [
        "--error-route-status", "404 redirect:/gone?from=${PATH_INFO}",
        "--error-route-status", f"500 static:{page}",
        "--error-route-if", "equal:${uwsgi[status]};418 return:403",
        "--error-route-status", "200 delheader:X-App",
        "--error-route-run", "log:ERR ${PATH_INFO} ${uwsgi[status]}",
        "--response-route-status", "302 addheader:X-Redirected: yes",
        "--response-route-if", "equal:${PATH_INFO};/cut break:",
        "--response-route-run", "addheader:X-Resp: ${uwsgi[status]}",
        "--response-route-run", "log:RESP ${PATH_INFO} ${uwsgi[status]} ${uwsgi[rsize]}",
        "--final-route-run", "log:FINAL ${PATH_INFO} ${uwsgi[status]} ${uwsgi[rsize]}",
    ]


def _setup(tmp_path) -> list[str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    page = tmp_path / "error.html"
    page.write_bytes(PAGE)
    os.utime(page, (MTIME, MTIME))
    return ["--master", "--processes", "1", "--wsgi-file", "app.py",
            "--logformat", "%(method) %(uri) %(status) %(size) %(headers)/%(hsize)",
            *_tables(str(page))]


def _answers(get) -> list[tuple]:
    out = []
    for path in PATHS:
        reply = get(path)
        out.append((path, reply.status, list(reply.headers), reply.body))
    return out


def _log(log: list[str], page: str) -> list[str]:
    """The tables' dumps and what was logged after the workers started (the page's
    path as PAGE)."""
    dump = [line for line in log if line.startswith(("[rule:", "*** dumping", "*** end of"))]
    start = max(i for i, line in enumerate(log) if line.startswith("spawned uWSGI worker"))
    return [line.replace(page, "PAGE") for line in dump + log[start + 1:]]


#: what uWSGI 2.0.30 answered
EXPECTED: list[tuple] = [
    ('/ok', 200, [('Content-Type', 'text/plain'), ('X-Resp', '200')], b'app says /ok'),
    (   '/missing',
        302,
        [('Location', '/gone?from=/missing'), ('X-Redirected', 'yes'), ('X-Resp', '302')],
        b'Moved'),
    (   '/boom',
        200,
        [   ('Content-Length', '19'),
            ('Last-Modified', 'Tue, 14 Nov 2023 22:13:20 GMT'),
            ('X-Resp', '200')],
        b'our own error page\n'),
    (   '/teapot',
        403,
        [('Content-Type', 'text/plain'), ('Content-Length', '9'), ('X-Resp', '403')],
        b'Forbidden'),
    ('/cut', 200, [('Content-Type', 'text/plain')], b'')]
#: what it logged (the tables' dumps; then, per request, the routes' lines and the
#: request's: method, URI, status, size, headers count/size)
LOG = [
    '*** dumping internal error routing table ***',
    '[rule: 0] subject: 404 func: 404 action: redirect:/gone?from=${PATH_INFO}',
    '[rule: 1] subject: 500 func: 500 action: static:PAGE',
    '[rule: 2] subject: ${uwsgi[status]};418 func: equal action: return:403',
    '[rule: 3] subject: 200 func: 200 action: delheader:X-App',
    '[rule: 4] action: log:ERR ${PATH_INFO} ${uwsgi[status]}',
    '*** end of the internal error routing table ***',
    '*** dumping internal response routing table ***',
    '[rule: 0] subject: 302 func: 302 action: addheader:X-Redirected: yes',
    '[rule: 1] subject: ${PATH_INFO};/cut func: equal action: break:',
    '[rule: 2] action: addheader:X-Resp: ${uwsgi[status]}',
    '[rule: 3] action: log:RESP ${PATH_INFO} ${uwsgi[status]} ${uwsgi[rsize]}',
    '*** end of the internal response routing table ***',
    '*** dumping internal final routing table ***',
    '[rule: 0] action: log:FINAL ${PATH_INFO} ${uwsgi[status]} ${uwsgi[rsize]}',
    '*** end of the internal final routing table ***',
    'ERR /ok 200',
    'RESP /ok 200 0',
    'FINAL /ok 200 12',
    'GET /ok 200 70 2/58',
    'RESP /missing 302 0',
    'FINAL /missing 302 5',
    'GET /missing 302 90 3/85',
    'RESP /boom 200 0',
    'FINAL /boom 200 19',
    'GET /boom 200 117 3/98',
    'RESP /teapot 403 0',
    'FINAL /teapot 403 9',
    'GET /teapot 403 93 3/84',
    'ERR /cut 200',
    'FINAL /cut 200 0',
    'GET /cut 200 45 1/45']


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_three_tables_as_uwsgi_applies_them(tmp_path, mode):
    argv = _setup(tmp_path)
    with Simulation(argv, app_dir=tmp_path, mode=mode) as sim:
        answers = _answers(lambda path: sim.get(path))
        log = list(sim.log)
    assert answers == EXPECTED
    assert _log(log, str(tmp_path / "error.html")) == LOG
    assert not [line for line in log if "not simulated" in line]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    argv = _setup(tmp_path)
    with RealUwsgi(argv, app_dir=tmp_path) as real:
        answers = _answers(lambda path: real.get(path, timeout=5))
        time.sleep(0.5)
        log = real.app_log()
    assert answers == EXPECTED
    assert _log(log, str(tmp_path / "error.html")) == LOG


def test_the_pure_python_writer_gives_the_same(tmp_path):
    """The hooks of the C writer (``_cwsgi.c``) and of its Python twin, which a
    subprocess runs (the writer's base class is chosen at import)."""
    script = textwrap.dedent(f"""
        import json, pathlib, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import test_route_tables as t
        from simuwsgi import Simulation
        from simuwsgi.server import wire
        assert wire._c is None
        tmp = pathlib.Path({str(tmp_path)!r})
        with Simulation(t._setup(tmp), app_dir=tmp) as sim:
            answers = t._answers(lambda path: sim.get(path))
            log = t._log(list(sim.log), str(tmp / "error.html"))
        print(json.dumps([[[a[0], a[1], a[2], a[3].decode()] for a in answers], log]))
    """)
    env = {**os.environ, "SIMUWSGI_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True).stdout
    answers, log = json.loads(out)
    assert answers == [[p, s, [list(h) for h in hs], b.decode()] for p, s, hs, b in EXPECTED]
    assert log == LOG


def test_a_final_route_that_would_write_is_said_not_simulated(tmp_path):
    argv = [*_setup(tmp_path), "--final-route-status", "200 redirect:/elsewhere"]
    with Simulation(argv, app_dir=tmp_path) as sim:
        assert sim.get("/ok").status == 200
        warning = [line for line in sim.log if "not simulated" in line]
    assert warning and "final route action 'redirect'" in warning[0]
