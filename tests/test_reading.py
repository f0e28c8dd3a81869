"""Request limits and slow clients on the simulated request path (``simuwsgi/server/reading.py``),
and a differential test of --mount, --manage-script-name, static files and the limits
against the real uWSGI 2.0.30."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.conform import mask_line
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

READER = ("def application(e, s):\n    data = e['wsgi.input'].read()\n"
          "    s('200 OK', [])\n    return [b'n=%d' % len(data)]\n")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(READER)
    return tmp_path


def _requests(sim: Simulation) -> list[str]:
    return [line for line in sim.log if line.startswith("[pid:")]


def test_a_head_beyond_buffer_size_is_closed_uncounted(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "app.py", "--buffer-size", "1024"], app_dir=app_dir) as sim:
        r = sim.get("/", headers={"X-Big": "a" * 1100})
        assert r.status is None and "--buffer-size" in r.reason
        assert "invalid HTTP request size (max 1024)...skip" in sim.log
        assert _requests(sim) == []
        assert sim.get("/").status == 200
        assert "|req: 1/1]" in _requests(sim)[0]


def test_a_header_that_does_not_fit_the_vars_closes_the_request(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "app.py", "--buffer-size", "1024"], app_dir=app_dir) as sim:
        r = sim.get("/", headers=[("X-A", "a" * 600), ("X-B", "b" * 350)])
        assert r.status is None and _requests(sim) == []


def test_limit_post_and_max_vars_are_500s_without_a_byte(app_dir: Path) -> None:
    opts = ["--wsgi-file", "app.py", "--limit-post", "100", "--max-vars", "10"]
    with Simulation(opts, app_dir=app_dir) as sim:
        big = sim.request("POST", "/", body=b"x" * 101)
        assert big.status is None and big.raw == b""
        assert sim.request("POST", "/", body=b"x" * 100).body == b"n=100"
        many = sim.get("/", headers={f"X-{i}": "v" for i in range(12)})
        assert many.status is None
        lines = _requests(sim)
        assert "Invalid (too big) CONTENT_LENGTH. skip." in sim.log
        assert "max vec size reached. skip this var." in sim.log
        # the var count stops where the parse stopped: 9 vars before CONTENT_LENGTH;
        # 4 x --max-vars slots
        assert "|app: -1|req: -1/1] 127.0.0.1 () {18 vars in " in lines[0]
        assert "(HTTP/1.1 500) 0 headers in 0 bytes (0 switches on core 0)" in lines[0]
        assert "{40 vars in " in lines[2] and "|app: -1|req: -1/3]" in lines[2]


def test_a_slow_client_within_and_beyond_socket_timeout(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "app.py", "--socket-timeout", "3"], app_dir=app_dir) as sim:
        ok = sim.request("POST", "/", body_chunks=[b"ab", b"cd", b"ef"], pace=2)
        assert ok.body == b"n=6" and ok.finished - ok.started == 4
        assert "(3 switches on core 0)" in _requests(sim)[-1]
        slow = sim.request("POST", "/", body_chunks=[b"ab", b"cd"], pace=5)
        assert slow.status is None and slow.finished - slow.started == 3
        assert "[uwsgi-body-read] Timeout reading 2 bytes. Content-Length: 4 consumed: 2 " \
               "left: 2" in sim.log


def test_post_buffering_reads_the_body_before_the_app(app_dir: Path) -> None:
    (app_dir / "app.py").write_text(
        "import uwsgi\n"
        "def application(e, s):\n    uwsgi.log('APP AT %s' % uwsgi.micros())\n"
        "    s('200 OK', [])\n    return [e['wsgi.input'].read()]\n")
    opts = ["--wsgi-file", "app.py", "--post-buffering", "4096", "--socket-timeout", "3"]
    with Simulation(opts, app_dir=app_dir) as sim:
        assert sim.request("POST", "/", body_chunks=[b"a", b"b"], pace=2).body == b"ab"
        assert any(re.fullmatch(r"APP AT \d+", line) for line in sim.log)
        slow = sim.request("POST", "/", body_chunks=[b"a", b"b"], pace=4)
        assert slow.status is None
        assert "[uwsgi-body-read] Timeout reading 1 bytes. Content-Length: 2 consumed: 0 " \
               "left: 2" in sim.log
        assert "|app: -1|" in _requests(sim)[-1] and "(HTTP/1.1 500)" in _requests(sim)[-1]
        assert sum(line.startswith("APP AT") for line in sim.log) == 1


def test_submit_refuses_body_and_chunks_together(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "app.py"], app_dir=app_dir) as sim:
        with pytest.raises(ValueError, match="not both"):
            sim.submit("POST", "/", body=b"x", body_chunks=[b"y"])
        with pytest.raises(ValueError, match="pace must be >= 0"):
            sim.submit("POST", "/", body_chunks=[b"y"], pace=-1)


# -- against the real server ------------------------------------------------------------
ECHO = ("def application(e, s):\n    s('200 OK', [])\n"
        "    return [('{name} %s|%s' % (e['SCRIPT_NAME'], e['PATH_INFO'])).encode()]\n")
DIFF_OPTS = ["--master", "--processes", "1", "--mount", "/foo=one.py", "--mount",
             "/=two.py", "--manage-script-name", "--static-map", "/static=files",
             "--static-index", "index.html", "--limit-post", "1000", "--max-vars", "20",
             "--honour-range", "--static-gzip-ext", ".css", "--static-skip-ext", ".py",
             "--static-expires-type-mtime", "text/css=3600"]
DIFF_REQUESTS: list[tuple[str, str, list[tuple[str, str]], bytes]] = [
    ("GET", "/foo/bar", [], b""), ("GET", "/foo", [], b""), ("GET", "/foobar", [], b""),
    ("GET", "/static/a.txt", [], b""), ("GET", "/static/missing", [], b""),
    ("GET", "/static/sub/", [], b""), ("GET", "/static/sub", [], b""),
    ("HEAD", "/static/a.txt", [], b""), ("POST", "/static/a.txt", [], b"x"),
    ("POST", "/static/sub/", [], b"x"),  # the index's PATH_INFO reaches the app
    ("GET", "/static/a.txt", [("If-Modified-Since", "Fri, 04 Dec 2037 00:00:00 GMT")], b""),
    ("GET", "/static/a.txt", [("Range", "bytes=1-3")], b""),
    ("GET", "/static/a.txt", [("Range", "bytes=-2")], b""),
    ("GET", "/static/a.txt", [("Range", "bytes=9-12")], b""),
    ("GET", "/static/a.txt", [("Range", "pages=1-2")], b""),
    ("GET", "/static/s.css", [("Accept-Encoding", "gzip")], b""),
    ("GET", "/static/s.css", [], b""),
    ("GET", "/static/x.py", [], b""),
    ("POST", "/foo/x", [], b"y" * 1001),
    ("GET", "/foo/y", [(f"X-H{i}", "v") for i in range(40)], b""),
]


def _diff_dir(base: Path) -> Path:
    base.mkdir()
    for name in ("one", "two"):
        (base / f"{name}.py").write_text(ECHO.format(name=name))
    (base / "files" / "sub").mkdir(parents=True)
    for name, text in (("a.txt", "hello\n"), ("sub/index.html", "<h1>x</h1>\n"),
                       ("s.css", "css\n"), ("s.css.gz", "GZ"), ("x.py", "code")):
        (base / "files" / name).write_text(text)
        os.utime(base / "files" / name, (1_700_000_000, 1_700_000_000))
    return base


def _view(lines: list[str]) -> list[str]:
    keep = re.compile(r"^\[pid: |^mounting |^WSGI app |^\[uwsgi-static\]|^building mime|"
                      r"^Invalid \(too big\)|^max vec size")
    return [mask_line(line) for line in lines if keep.search(line)]


@pytest.mark.real
@requires_real_uwsgi
def test_mount_static_and_limits_match_real_uwsgi(tmp_path: Path) -> None:
    with RealUwsgi(DIFF_OPTS, app_dir=_diff_dir(tmp_path / "real")) as real:
        port = real.port
        got = [real.request(m, p, headers=h, body=b) for m, p, h, b in DIFF_REQUESTS]
        real.wait_for_log(r"GET /foo/y => generated")
        real_log = list(real.log)
    headers = [("Host", f"127.0.0.1:{port}"), ("Connection", "close")]
    with Simulation(DIFF_OPTS + ["--http-socket", f"127.0.0.1:{port}"],
                    app_dir=_diff_dir(tmp_path / "sim"), hostname=socket.gethostname()) as sim:
        want = [sim.request(m, p, headers=headers + h, body=b) for m, p, h, b in DIFF_REQUESTS]
        sim_log = list(sim.log)
    for (method, path, _h, _b), r, s in zip(DIFF_REQUESTS, got, want):
        assert (s.status, s.headers, s.body) == (r.status, r.headers, r.body), (method, path)
    assert _view(sim_log) == _view(real_log)
    # the var counts too (the Host header the harness sends is not the simulated one's)
    counts = [re.findall(r"\{(\d+) vars in", line) for line in sim_log if "[pid:" in line]
    assert counts == [re.findall(r"\{(\d+) vars in", line)
                      for line in real_log if "[pid:" in line]


def test_uwsgi_framing_refuses_a_packet_beyond_buffer_size(app_dir: Path) -> None:
    opts = ["--socket", "127.0.0.1:3031", "--wsgi-file", "app.py", "--buffer-size", "1024"]
    with Simulation(opts, app_dir=app_dir) as sim:
        r = sim.get("/", headers={"X-Big": "a" * 1000})
        assert r.status is None and _requests(sim) == []
        assert any(re.fullmatch(r"invalid request block size: \d+ \(max 1024\)\.\.\.skip", line)
                   for line in sim.log)
        assert sim.get("/", headers={"X-Big": "a" * 800}).status == 200


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("buffering", [[], ["--post-buffering", "4096"]])
def test_a_client_that_stops_sending_matches_real_uwsgi(tmp_path: Path, buffering) -> None:
    """The client announces 10 bytes and sends 4: after --socket-timeout uWSGI logs the
    timeout; with --post-buffering before the app runs (a 500 of app -1)."""
    opts = ["--master", "--wsgi-file", "app.py", "--socket-timeout", "1", *buffering]
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "app.py").write_text(READER)
    with RealUwsgi(opts, app_dir=tmp_path / "real") as real:
        port = real.port
        real.request_raw(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 10"
                         "\r\n\r\nabcd".encode(), timeout=4)
        real.wait_for_log(r"POST / => generated")
        real_log = list(real.log)
    (tmp_path / "sim").mkdir()
    (tmp_path / "sim" / "app.py").write_text(READER)
    with Simulation(opts + ["--http-socket", f"127.0.0.1:{port}"], app_dir=tmp_path / "sim",
                    hostname=socket.gethostname()) as sim:
        sim.request("POST", "/", headers=[("Host", f"127.0.0.1:{port}"),
                                          ("Content-Length", "10")], body=b"abcd")
        sim_log = list(sim.log)

    def view(lines: list[str]) -> list[str]:
        keep = re.compile(r"^\[pid: |^\[uwsgi-body-read\]|^OSError")
        return [mask_line(line) for line in lines if keep.search(line)]

    assert view(sim_log) == view(real_log)


READLINES = """
def application(e, s):
    inp, out = e['wsgi.input'], []
    try:
        while True:
            line = inp.readline()
            out.append(line)
            if not line:
                break
    except Exception as exc:
        out.append(repr(exc).encode())
    s('200 OK', [])
    return [repr(out).encode()]
"""


def test_readline_waits_for_its_line(app_dir: Path) -> None:
    (app_dir / "app.py").write_text(READLINES)
    with Simulation(["--wsgi-file", "app.py", "--socket-timeout", "2"], app_dir=app_dir) as sim:
        ok = sim.request("POST", "/", body_chunks=[b"ab\nc", b"d\n"], pace=1)
        assert ok.body == b"[b'ab\\n', b'cd\\n', b'']" and ok.finished - ok.started == 1
        late = sim.request("POST", "/", body_chunks=[b"ab\nc", b"d\n"], pace=3)
        assert late.body == b"[b'ab\\n', b\"OSError('error during readline(0) on wsgi.input')\"]"
        assert late.finished - late.started == 2


@pytest.mark.real
@requires_real_uwsgi
def test_readline_timeout_matches_real_uwsgi(tmp_path: Path) -> None:
    opts = ["--master", "--wsgi-file", "app.py", "--socket-timeout", "1"]
    for side in ("real", "sim"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "app.py").write_text(READLINES)
    with RealUwsgi(opts, app_dir=tmp_path / "real") as real:
        port = real.port
        got = real.request_raw(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                               "Content-Length: 10\r\n\r\nab\ncd".encode(), timeout=4)
        real.wait_for_log(r"POST / => generated")
        real_log = list(real.log)
    with Simulation(opts + ["--http-socket", f"127.0.0.1:{port}"], app_dir=tmp_path / "sim",
                    hostname=socket.gethostname()) as sim:
        want = sim.request("POST", "/", headers=[("Host", f"127.0.0.1:{port}"),
                                                 ("Content-Length", "10")], body=b"ab\ncd")
        sim_log = list(sim.log)
    assert want.body == got.body

    def view(lines: list[str]) -> list[str]:
        keep = re.compile(r"^\[pid: |^\[uwsgi-body-read\]")
        return [mask_line(line) for line in lines if keep.search(line)]

    assert view(sim_log) == view(real_log)


# -- request shapes ------------------------------------------------------------------------
MUTATOR = ("def application(e, s):\n"
           "    seen = '%s %s %s %s' % (e['PATH_INFO'], e.get('CONTENT_LENGTH'),\n"
           "                            e.get('HTTP_X_A'), e['wsgi.input'].read())\n"
           "    e['PATH_INFO'] = '/changed'\n"
           "    e['HTTP_X_A'] = 'changed'\n"
           "    s('200 OK', [])\n"
           "    return [seen.encode()]\n")


def test_requests_of_one_shape_share_their_packet_vars_not_their_environ(tmp_path: Path) -> None:
    # the vars of a request shape are built once (a run repeats a few shapes); each
    # request still gets its own environ, so what an app writes there stays in it
    (tmp_path / "app.py").write_text(MUTATOR)
    with Simulation(["--wsgi-file", "app.py"], app_dir=tmp_path) as sim:
        reqs = [sim.submit("GET", "/a"), sim.submit("GET", "/a"),
                sim.submit("POST", "/a", body=b"xy"), sim.submit("POST", "/a", body=b"zw"),
                sim.submit("POST", "/a", body=b"xyz"),
                sim.submit("GET", "/a", headers=[("X-A", "1")]),
                sim.submit("GET", "/a", headers=[["X-A", "2"]])]
        sim.wait(reqs)
    assert [r.response.body for r in reqs] == [
        b"/a None None b''", b"/a None None b''", b"/a 2 None b'xy'", b"/a 2 None b'zw'",
        b"/a 3 None b'xyz'", b"/a None 1 b''", b"/a None 2 b''"]
    assert reqs[0].vars is reqs[1].vars and reqs[2].vars is reqs[3].vars
    assert reqs[0].vars["PATH_INFO"] == "/a" and "HTTP_X_A" not in reqs[0].vars
    assert len({id(r.vars) for r in reqs}) == 5
