"""Chunked request bodies: ``uwsgi.chunked_read()``/``chunked_read_nb()`` (``core/
chunked.c``), in the simulation and against the real server.

Found with ``uwsgi-chunked`` (a WSGI wrapper that reads ``Transfer-Encoding: chunked``
bodies with ``chunked_read_nb`` and sleeps while it gives None): both functions were
stubs that never returned the body, so the app polled for ever in virtual time.
"""

from __future__ import annotations

import socket
import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.protocol._chunked import NEED_MORE, ChunkedError, ChunkedReader

APP = textwrap.dedent('''
    import time
    import uwsgi

    def application(env, start_response):
        out = [b"CL=%r TE=%r" % (env.get("CONTENT_LENGTH"), env.get("HTTP_TRANSFER_ENCODING"))]
        mode = env["PATH_INFO"]
        if mode == "/input":
            out.append(b"input=%r" % env["wsgi.input"].read())
        if mode == "/cl":
            out.append(b"cl=%d" % uwsgi.cl())
        try:
            while True:
                c = uwsgi.chunked_read_nb() if mode == "/nb" else uwsgi.chunked_read()
                out.append(repr(c).encode())
                if not c:
                    break
        except Exception as e:
            out.append(b"EXC %r" % e)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"\\n".join(out)]
''')

BODY = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
CHUNKED = {"Transfer-Encoding": "chunked"}

#: (path, chunked?, body) -> what the app answers; observed on pyuwsgi 2.0.30
#: (tests/real/OBSERVATIONS-style: the same app, raw requests on --http-socket).
CASES = [
    ("/", True, BODY, b"CL=None TE='chunked'\nb'hello'\nb' world'\nb''"),
    ("/nb", True, BODY, b"CL=None TE='chunked'\nb'hello'\nb' world'\nb''"),
    ("/input", True, BODY, b"CL=None TE='chunked'\ninput=b''\nb'hello'\nb' world'\nb''"),
    ("/cl", True, BODY, b"CL=None TE='chunked'\ncl=0\nb'hello'\nb' world'\nb''"),
    ("/", False, b"plain",
     b"CL='5' TE=None\nEXC OSError('unable to receive chunked part')"),
    ("/nb", False, b"plain", b"CL='5' TE=None\nNone"),
    ("/", True, b"zz\r\nbad", b"CL=None TE='chunked'\nb''"),  # strtoul("zz", 16) = 0
    ("/", True, b"5\rXhello", b"CL=None TE='chunked'\nEXC OSError('unable to receive "
                              b"chunked part')"),
]


def _sim_answer(tmp_path, path: str, chunked: bool, body: bytes) -> bytes:
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--http-socket", ":9090", "--wsgi-file",
                     str(tmp_path / "app.py")]) as sim:
        sim.start()
        r = sim.request("POST", path, headers=CHUNKED if chunked else None, body=body)
        assert r.status == 200
        return r.body


@pytest.mark.parametrize(("path", "chunked", "body", "answer"), CASES)
def test_chunked_reads_in_the_simulation(tmp_path, path, chunked, body, answer):
    assert _sim_answer(tmp_path, path, chunked, body) == answer


def test_a_blocking_read_of_a_chunk_that_never_comes_waits_its_timeout(tmp_path):
    """The client sent all it will: the read waits --socket-timeout virtual seconds
    (or its own timeout, or --chunked-input-timeout) before it fails."""
    (tmp_path / "app.py").write_text(textwrap.dedent('''
        import time, uwsgi
        def application(env, start_response):
            t = time.time()
            try:
                uwsgi.chunked_read(int(env["QUERY_STRING"] or 0))
            except OSError:
                pass
            start_response("200 OK", [])
            return [b"%g" % (time.time() - t)]
    '''))
    with Simulation(["--master", "--http-socket", ":9090", "--chunked-input-timeout", "7",
                     "--wsgi-file", str(tmp_path / "app.py")]) as sim:
        sim.start()
        assert sim.request("POST", "/", headers=CHUNKED, body=b"5\r\nhel").body == b"7"
        assert sim.request("POST", "/?2", headers=CHUNKED, body=b"5\r\nhel").body == b"2"


def test_a_chunk_over_the_limit_fails(tmp_path):
    body = b"%x\r\n" % 100 + b"x" * 100 + b"\r\n0\r\n\r\n"
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--http-socket", ":9090", "--chunked-input-limit", "64",
                     "--wsgi-file", str(tmp_path / "app.py")]) as sim:
        sim.start()
        r = sim.request("POST", "/", headers=CHUNKED, body=body)
        assert r.body.endswith(b"EXC OSError('unable to receive chunked part')")


def test_the_reader_parses_as_chunked_c():
    reader = ChunkedReader()
    reader.feed(b"a\r\n0123")
    assert reader.read() is NEED_MORE
    reader.feed(b"456789XY")  # the two bytes after a chunk are skipped unread
    assert reader.read() == b"0123456789"
    reader.feed(b"1\r")
    assert reader.read() is NEED_MORE  # \r at the end: the \n may follow
    reader.feed(b"\nZ\r\n0\r\n")
    assert reader.read() == b"Z"
    assert reader.read() == b""
    assert reader.read() == b""  # ended: every read after gives b""
    with pytest.raises(ChunkedError):
        bad = ChunkedReader()
        bad.feed(b"5;ext=1\r\n")  # chunk extensions: ';' is not a size byte
        bad.read()


def _raw_post(port: int, path: str, chunked: bool, body: bytes) -> bytes:
    head = (b"POST %s HTTP/1.1\r\nHost: x\r\n" % path.encode()
            + (b"Transfer-Encoding: chunked\r\n" if chunked
               else b"Content-Length: %d\r\n" % len(body)) + b"\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith((b"'", b")", b"None")):
            more = s.recv(65536)
            if not more:
                break
            data += more
    return data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.real
def test_chunked_reads_match_real_uwsgi(tmp_path):
    from simuwsgi.modes.real import RealUwsgi

    (tmp_path / "app.py").write_text(APP)
    with RealUwsgi(["--master", "--wsgi-file", "app.py", "--socket-timeout", "1"],
                   app_dir=tmp_path) as real:
        port = real.port
        for path, chunked, body, answer in CASES:
            assert _raw_post(port, path, chunked, body) == answer, (path, body)
