"""Half-closed connections, real against simulated: the same bytes written to a real
uWSGI's ``--socket`` and ``--http-socket`` on loopback and to a simulated cluster node,
then the client's FIN (``shutdown(SHUT_WR)``) or its silence; the reply read to the
server's close and the lines each server logs must be the same."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from _waits import wait_until

from simuwsgi import Cluster
from simuwsgi.modes.real import free_port
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

APP = '''
def application(env, start_response):
    try:
        out = b"got:" + env["wsgi.input"].read()
    except OSError as exc:
        out = b"exc:" + repr(exc).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [out]
'''


def _packet(vars: list[tuple[bytes, bytes]]) -> bytes:
    data = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                    for k, v in vars)
    return struct.pack("<BHB", 0, len(data), 0) + data


FULL = _packet([(b"REQUEST_METHOD", b"POST"), (b"PATH_INFO", b"/"),
                (b"CONTENT_LENGTH", b"10"), (b"SERVER_PROTOCOL", b"HTTP/1.1")])
HTTP_CUT = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"

#: (name, port kind, bytes written, FIN after them)
CASES = [
    ("header cut", "uwsgi", FULL[:2], True),
    ("vars cut", "uwsgi", FULL[:20], True),
    ("nothing", "uwsgi", b"", True),
    ("body cut", "uwsgi", FULL + b"abcd", True),
    ("whole, then FIN", "uwsgi", FULL + b"0123456789", True),
    ("http head cut", "http", b"GET / HTTP/1.1\r\nHo", True),
    ("http body cut", "http", HTTP_CUT, True),
    ("body stalls", "uwsgi", FULL + b"ab", False),
    ("packet stalls", "uwsgi", FULL[:10], False),
]


def _lines(log: list[str]) -> list[str]:
    """The lines a case makes: uWSGI's errors and the app's outcome (request log lines
    carry times and pids)."""
    return [line for line in log if line.startswith(("uwsgi_proto", "[uwsgi-body-read]"))]


def _real_case(ports: dict[str, int], kind: str, data: bytes, fin: bool) -> bytes:
    sock = socket.create_connection(("127.0.0.1", ports[kind]))
    sock.sendall(data)
    if fin:
        sock.shutdown(socket.SHUT_WR)
    sock.settimeout(6)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    sock.close()
    return out


def _sim_case(cluster: Cluster, kind: str, data: bytes, fin: bool) -> bytes:
    sock = cluster.connect(f"web:{3031 if kind == 'uwsgi' else 8080}", timeout=6)
    sock.sendall(data)
    if fin:
        sock.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    sock.close()
    return out


@requires_real_uwsgi
def test_half_closed_connections_match_real_uwsgi(tmp_path, real_uwsgi_factory):
    (tmp_path / "app.py").write_text(APP)
    ports = {"uwsgi": free_port(), "http": free_port()}
    options = ["--master", "--processes", "1", "--wsgi-file", "app.py",
               "--socket-timeout", "2"]
    real = real_uwsgi_factory(options + ["--socket", f"127.0.0.1:{ports['uwsgi']}",
                                         "--http-socket", f"127.0.0.1:{ports['http']}"],
                              app_dir=tmp_path)
    cluster = Cluster(app_dir=tmp_path)
    web = cluster.add("web", options + ["--socket", ":3031", "--http-socket", ":8080"])
    with cluster:
        sim_out = []
        for _name, kind, data, fin in CASES:
            before = len(web.log)
            reply = _sim_case(cluster, kind, data, fin)
            cluster.advance(0.3)
            sim_out.append((reply, _lines(list(web.log)[before:])))
    real_out = []
    for (_name, kind, data, fin), (_reply, sim_lines) in zip(CASES, sim_out):
        before = len(real.log)
        reply = _real_case(ports, kind, data, fin)
        # real uWSGI logs after its reply: 0.3 s for a line the simulation did not
        # write to show, longer while one it wrote is missing
        time.sleep(0.3)
        wait_until(lambda: len(_lines(real.log[before:])) >= len(sim_lines))  # noqa: B023
        real_out.append((reply, _lines(real.log[before:])))
    for (name, *_rest), got, want in zip(CASES, sim_out, real_out):
        assert got == want, name
    # what real uWSGI does: a FIN in the packet is logged with the errno of the read
    # before (EAGAIN), the app's body read fails, the reply still reaches the client
    assert real_out[0] == (b"", ["uwsgi_proto_uwsgi_parser(): Resource temporarily "
                                 "unavailable [proto/uwsgi.c line 40]"])
    assert real_out[3][0].endswith(b"exc:OSError('error during read(0) on wsgi.input')")
    assert real_out[7][0].endswith(b"exc:OSError('timeout during read(0) on wsgi.input')")
    assert real_out[8] == (b"", [])  # closed after --socket-timeout, nothing logged
