"""WebSockets: ``uwsgi.websocket_*`` (``core/websockets.c``) and the test's client
(``sim.websocket``), in the simulation and against the real server.

The pyuwsgi wheel has no SSL, so its handshake only logs that it needs it (observed);
``ssl=True`` simulates uWSGI built from source, where WebSockets work.
"""

from __future__ import annotations

import base64
import socket
import textwrap

import pytest

from simuwsgi import Simulation
from simuwsgi.protocol._websocket import (NEED_MORE, FrameReader, WebSocketError,
                                          client_frame, server_frame)
from simuwsgi.server.websocket import accept_key
from simuwsgi.websocket import WebSocketClosed

ECHO = textwrap.dedent('''
    import uwsgi

    def application(env, start_response):
        if env["PATH_INFO"] == "/plain":
            start_response("200 OK", [])
            return [b"plain"]
        uwsgi.websocket_handshake()
        while True:
            try:
                msg = uwsgi.websocket_recv()
            except OSError as exc:
                uwsgi.log("recv failed: %s" % exc)
                return []
            if msg == b"bye":
                uwsgi.websocket_send(b"see you")
                return []
            uwsgi.websocket_send(b"echo:" + msg)
''')


def ssl_sim(tmp_path, app: str = ECHO, *options: str) -> Simulation:
    (tmp_path / "app.py").write_text(app)
    sim = Simulation(["--master", "--http-socket", ":9090", "--wsgi-file",
                      str(tmp_path / "app.py"), *options], ssl=True)
    sim.start()
    return sim


def test_the_accept_key_is_rfc_6455s():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_echo_over_a_websocket(tmp_path):
    with ssl_sim(tmp_path) as sim:
        ws = sim.websocket("/ws", origin="http://example.com")
        assert ws.status == 101
        assert ws.headers == [("Upgrade", "WebSocket"), ("Connection", "Upgrade"),
                              ("Sec-WebSocket-Origin", "http://example.com"),
                              ("Sec-WebSocket-Accept", accept_key(ws.key.encode()))]
        ws.send("hello")
        assert ws.recv() == b"echo:hello"
        ws.send(b"\x00\xff")
        assert ws.recv() == b"echo:\x00\xff"
        ws.send("bye")
        assert ws.recv() == b"see you"
        sim.advance(1)
        assert ws.response.status == 101
        assert ws.response.raw.startswith(b"HTTP/1.1 101 Web Socket Protocol Handshake\r\n")
        assert ws.response.raw.endswith(b"\x81\x0aecho:hello\x81\x07echo:\x00\xff\x81\x07see you")
        assert sim.log[-1].endswith("GET /ws => generated 30 bytes in 0 msecs (HTTP/1.1 101) "
                                    "4 headers in 181 bytes (0 switches on core 0)")


def test_pings_every_ping_freq_and_a_silent_client_is_dropped(tmp_path):
    with ssl_sim(tmp_path) as sim:
        ws = sim.websocket("/ws")
        sim.advance(95)  # a browser answers each ping, whatever the test does
        assert ws.pings == 3
        ws.send("still there")
        assert ws.recv() == b"echo:still there"
    with ssl_sim(tmp_path, ECHO, "--websockets-ping-freq", "10") as sim:
        ws = sim.websocket("/ws", auto_pong=False)
        sim.advance(100)
        # ping at 10 s; no pong: at 20 s the pong is 10 s overdue (> 3)
        assert ws.pings == 1
        assert ('[uwsgi-websocket] "GET /ws" (127.0.0.1) no PONG received in 3 seconds !!!'
                in sim.log)
        assert "recv failed: unable to receive websocket message" in sim.log
        assert ws.response.finished == 20


def test_close_ping_and_fragments_from_the_client(tmp_path):
    with ssl_sim(tmp_path) as sim:
        ws = sim.websocket("/ws")
        ws.ping(b"are you there")
        ws.send_frame(b"frag", 1, fin=False)   # uWSGI answers a part with a NUL
        assert ws.recv() == b"echo:\x00"
        ws.send_frame(b"ment", 0)
        assert ws.recv() == b"echo:fragment"
        assert b"\x8a\x00" in b"".join(ws.request.conn.wire)  # the pong
        ws.close()
        with pytest.raises(WebSocketClosed):
            ws.recv()
        assert ws.closed  # uWSGI answered the close with one
        assert "recv failed: unable to receive websocket message" in sim.log


def test_a_client_that_goes_away(tmp_path):
    app = ECHO.replace('uwsgi.websocket_send(b"echo:" + msg)',
                       'uwsgi.websocket_send(b"echo:" + msg)\n'
                       '        if msg == b"late":\n'
                       '            import time; time.sleep(1)\n'
                       '            try:\n'
                       '                uwsgi.websocket_send(b"too late")\n'
                       '            except OSError as exc:\n'
                       '                uwsgi.log("send failed: %s" % exc)\n'
                       '                return []')
    with ssl_sim(tmp_path, app) as sim:
        ws = sim.websocket("/ws")
        ws.send("late")
        assert ws.recv() == b"echo:late"
        ws.disconnect()
        sim.advance(2)
        assert "send failed: unable to send websocket message" in sim.log
        assert any("uwsgi_response_write_body_do(): Broken pipe [core/writer.c line 429] "
                   "during GET /ws (127.0.0.1)" in line for line in sim.log)


def test_a_message_over_max_size_fails_the_read(tmp_path):
    with ssl_sim(tmp_path, ECHO, "--websockets-max-size", "1") as sim:
        ws = sim.websocket("/ws")
        ws.send(b"x" * 2000)
        with pytest.raises(WebSocketClosed):
            ws.recv()
        assert ('[uwsgi-websocket] "GET /ws" (127.0.0.1) invalid packet size received: '
                "2000, max allowed: 1024") in sim.log


def test_without_ssl_the_handshake_says_so_as_the_pyuwsgi_wheel(tmp_path):
    (tmp_path / "app.py").write_text(ECHO)
    with Simulation(["--master", "--http-socket", ":9090", "--wsgi-file",
                     str(tmp_path / "app.py")]) as sim:
        ws = sim.websocket("/ws")
        assert ws.status is None
        assert ("you need to build uWSGI with SSL support to use the websocket handshake "
                "api function !!!") in sim.log
        assert "OSError: unable to complete websocket handshake" in sim.log
        assert sim.websocket("/plain").status == 200


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    def run() -> bytes:
        with ssl_sim(tmp_path) as sim:
            ws = sim.websocket("/ws")
            ws.send("a")
            ws.recv()
            ws.close()
            sim.advance(1)
            return ws.key.encode() + ws.response.raw + sim.trace.digest().encode()
    assert run() == run()


def test_frames_as_uwsgi_reads_them():
    assert server_frame(b"x" * 200, 0x82)[:4] == b"\x82\x7e\x00\xc8"
    assert server_frame(b"x" * 70000, 0x81)[:10] == b"\x81\x7f" + (70000).to_bytes(8, "big")
    cont: list[bytearray] = []
    reader = FrameReader(1024, cont)
    frame = client_frame(b"hello", 1, b"\x01\x02\x03\x04")
    reader.feed(frame[:4])
    assert reader.read() is NEED_MORE
    reader.feed(frame[4:] + client_frame(b"", 0xA, b"abcd"))
    assert reader.read().data == b"hello"
    assert reader.read().kind == "pong"
    reader.feed(client_frame(b"z", 0, b"abcd"))
    with pytest.raises(WebSocketError) as err:
        reader.read()
    assert err.value.log == "Error continuation with empty previous buffer"


# -- against the real server -------------------------------------------------------------
PLAIN = textwrap.dedent('''
    import uwsgi

    def application(env, start_response):
        out = []
        for name, call in [("send", lambda: uwsgi.websocket_send(b"x")),
                           ("recv_nb", uwsgi.websocket_recv_nb),
                           ("send_binary", lambda: uwsgi.websocket_send_binary(b"y")),
                           ("handshake", uwsgi.websocket_handshake)]:
            try:
                out.append("%s=%r" % (name, call()))
            except Exception as e:
                out.append("%s EXC %r" % (name, e))
        start_response("200 OK", [])
        return [("\\n".join(out)).encode()]
''')


def _raw_get(port: int) -> bytes:
    key = base64.b64encode(b"0123456789abcdef")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
                  b"\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.real
def test_websocket_calls_without_ssl_match_the_pyuwsgi_wheel(tmp_path):
    """The frames go out raw on a plain request, the non-blocking read finds nothing
    and pings, and the handshake needs SSL."""
    from simuwsgi.modes.real import RealUwsgi

    (tmp_path / "app.py").write_text(PLAIN)
    with RealUwsgi(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as real:
        got = _raw_get(real.port)
        real_log = real.log
    with Simulation(["--master", "--http-socket", ":9090", "--wsgi-file",
                     str(tmp_path / "app.py")]) as sim:
        r = sim.request("GET", "/", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                             "Sec-WebSocket-Key": "MDEyMzQ1Njc4OWFiY2RlZg=="})
    assert got == r.raw == (b"\x81\x01x\x89\x00\x82\x01ysend=None\nrecv_nb=b''\n"
                            b"send_binary=None\nhandshake EXC OSError('unable to complete "
                            b"websocket handshake')")
    need = "you need to build uWSGI with SSL support to use the websocket handshake api"
    assert any(need in line for line in sim.log)
    assert any(need in line for line in real_log)
