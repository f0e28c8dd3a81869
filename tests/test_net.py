"""simuwsgi.net: the trio server and client on loopback, the net subsystem, the commands.

A simulated node is served from a helper thread (``ServedSimulation``); the client
side is simuwsgi's own client, raw sockets (for the bad-input cases), another
simulation with ``network='real'``, and the ``simuwsgi`` command.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from _net_apps import NODE_APP

from simuwsgi import NotSimulatedError, Simulation
from simuwsgi.cli import main
from simuwsgi.net import NodeClient, UwsgiServer, exchange, listen
from simuwsgi.serve import ServedSimulation
from simuwsgi.net import Reply as NetReply
from simuwsgi.protocol import (
    CacheGet,
    CacheValue,
    HttpResponse,
    NoReply,
    Pong,
    Request,
    RpcHttpRequest,
    RpcRequest,
    RpcResponse,
    encode_packet,
    encode_vars,
)

if TYPE_CHECKING:
    from typing_extensions import Self


def options(tmp: Path, uport: int, hport: int, *extra: str) -> list[str]:
    return ["--master", "--processes", "2", "--socket", f"127.0.0.1:{uport}",
            "--http-socket", f"127.0.0.1:{hport}", "--cache2", "name=default,items=20",
            "--cache2", "name=other,items=5", "--spooler", str(tmp / "spool"),
            "--spooler-frequency", "1", "--socket-timeout", "1", "--wsgi-file", "app.py",
            *extra]


def events(tmp: Path) -> list[dict]:
    path = tmp / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def raw(port: int, data: bytes, *, chunks: int = 0, pause: float = 0.0,
        half_close: bool = False, timeout: float = 5.0) -> bytes:
    """Send ``data`` (optionally byte by byte) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if chunks:
            for i in range(0, len(data), chunks):
                s.sendall(data[i:i + chunks])
                time.sleep(pause)
        else:
            s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    return out
                out += got
        except ConnectionResetError:
            return out


def wsgi_packet(path: str = "/", *, protocol: bytes = b"HTTP/1.1", body: bytes = b"",
                extra: tuple = ()) -> bytes:
    pairs = [(b"REQUEST_METHOD", b"POST" if body else b"GET"), (b"REQUEST_URI", path.encode()),
             (b"PATH_INFO", path.encode()), (b"QUERY_STRING", b""),
             (b"SERVER_PROTOCOL", protocol), (b"HTTP_HOST", b"example.test"), *extra]
    if body:
        pairs.append((b"CONTENT_LENGTH", str(len(body)).encode()))
    return encode_packet(0, 0, encode_vars(pairs)) + body


# -- the net subsystem, blocking mode (no other simulation may run meanwhile) --------------
class FakeNode:
    """A trio server with a tiny handler, in a helper thread."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0

    async def handle(self, request, body, peer):
        from simuwsgi.protocol import Ack, CacheMagicRequest, CacheMagicResponse, SignalRequest

        self.seen.append(type(request).__name__)
        if isinstance(request, RpcRequest) and request.function == b"hello":
            result = b"hi " + b",".join(request.args)
            return NetReply(head=RpcResponse(length=len(result)), body=result)
        if isinstance(request, SignalRequest):
            return NetReply(head=Ack(status=0 if request.signum == 9 else 1))
        if isinstance(request, CacheMagicRequest):
            if request.command == b"get" and request.key == b"k":
                return NetReply(head=CacheMagicResponse.ok(size=3), body=b"val")
            if request.command == b"set" and body == b"v" and request.cache == b"c":
                return NetReply(head=CacheMagicResponse.ok())
        return NetReply(head=NoReply())

    def __enter__(self) -> Self:
        import threading

        ready = threading.Event()

        async def main() -> None:
            listener = await listen("127.0.0.1:0")
            self.port = listener.socket.getsockname()[1]
            with trio.CancelScope() as self.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(lambda task_status: UwsgiServer(self.handle).serve(
                        listener, task_status=task_status))
                    self.token = trio.lowlevel.current_trio_token()
                    ready.set()

        self.thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        trio.from_thread.run_sync(self.scope.cancel, trio_token=self.token)
        self.thread.join(10)


def test_remote_api_from_a_plain_simulation(tmp_path) -> None:
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n")
    with FakeNode() as fake, Simulation(["--master", "--wsgi-file", "app.py"],
                                        app_dir=tmp_path, network="real") as sim:
        node = f"127.0.0.1:{fake.port}"
        u = sim.uwsgi
        assert u.rpc(node, b"hello", b"a", b"b") == b"hi a,b"
        assert u.rpc(node, b"nope") is None
        assert u.rpc("127.0.0.1:1", b"hello") is None  # connection refused: None
        assert u.cache_get("k", "@" + node) == b"val"
        assert u.cache_get("other", "@" + node) is None
        assert u.cache_set("k", "v", 0, "c@" + node) is True
        assert u.cache_set("k", "w", 0, "c@" + node) is None
        assert u.signal(17, node) is None
        with pytest.raises(ValueError, match=f"node {node} rejected signal 9"):
            u.signal(9, node)
        with pytest.raises(OSError, match="unable to deliver signal 17 to node 127.0.0.1:1"):
            u.signal(17, "127.0.0.1:1")
        assert not any("sending signal" in line for line in sim.log)  # UWSGI_DEBUG only
        assert sim.trace.count("net.call") == 10
    assert fake.seen.count("RpcRequest") == 2 and fake.seen.count("SignalRequest") == 2
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=tmp_path) as sim, \
            pytest.raises(NotSimulatedError):
        sim.uwsgi.rpc("127.0.0.1:1", b"x")
    with pytest.raises(ValueError, match="network must be"):
        Simulation(["--master"], network="virtual")



@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[tuple[ServedSimulation, Path, int, int]]:
    tmp = tmp_path_factory.mktemp("node")
    (tmp / "spool").mkdir()
    (tmp / "app.py").write_text(NODE_APP)
    with ServedSimulation(options(tmp, 0, 0), app_dir=tmp,  # port 0: no race for ports
                          hostname="testhost") as served:
        uport = int(served.address("uwsgi").rpartition(":")[2])
        hport = int(served.address("http").rpartition(":")[2])
        yield served, tmp, uport, hport
    assert served.error is None, served.error


# -- the client against a served simulation --------------------------------------------------
def test_ping_rpc_signal_and_spool(node) -> None:
    served, tmp, uport, _ = node
    client = NodeClient(f"127.0.0.1:{uport}")
    assert client.ping() == b""
    assert client.rpc(b"hello", b"a", b"b") == b"hello a|b"
    assert client.rpc(b"big") == b"x" * 70000  # modifier2 5 + CONTENT_LENGTH stream
    assert client.rpc(b"nope") is None and client.rpc(b"empty") is None
    assert client.rpc(b"retstr") is None  # a str result: no reply, as on Python 3
    assert client.signal(17) is True
    assert wait_for(lambda: {"signal": 17} in events(tmp))
    assert client.spool([(b"task", b"t1")]) is True
    assert wait_for(lambda: {"spooled": [["task", "t1"]]} in events(tmp), 5)
    served.call(served.sim.uwsgi.set_warning_message, "degraded")
    assert client.ping() == b"degraded"
    served.call(served.sim.uwsgi.set_warning_message, "")
    log = served.call(lambda: list(served.sim.log))
    assert "PING" in log


def test_rpc_modifiers_on_the_wire(node) -> None:
    _, _, uport, _ = node
    address = f"127.0.0.1:{uport}"

    def run(request, body=b""):
        return trio.run(lambda: exchange(address, request, body))

    framed = run(RpcRequest(function=b"hello", args=(b"x",)))
    assert framed.head == RpcResponse(length=7) and framed.body == b"hello x"
    rawr = run(RpcRequest(function=b"hello", args=(b"x",), modifier2=1))
    assert rawr.head == RpcResponse(length=None) and rawr.body == b"hello x"
    bridge = run(RpcHttpRequest(vars=((b"PATH_INFO", b"/hello/p/q"),
                                      (b"SERVER_PROTOCOL", b"HTTP/1.1"))))
    assert bridge.head.status == b"200 OK" and bridge.body == b"hello p|q"
    assert bridge.head.headers == ((b"Content-Length", b"9"),
                                   (b"Content-Type", b"application/binary"))
    missing = run(RpcHttpRequest(vars=((b"PATH_INFO", b"/nope"),)))
    assert missing.head.status == b"404 Not Found" and missing.head.protocol == b"HTTP/1.0"
    assert run(RpcHttpRequest(vars=((b"PATH_INFO", b"/"),))).head.status.startswith(b"500")


def test_cache_commands(node) -> None:
    _, _, uport, _ = node
    c = NodeClient(f"127.0.0.1:{uport}")
    assert c.cache_set(b"k1", b"v1") and not c.cache_set(b"k1", b"v2")
    assert c.cache_update(b"k1", b"v3") and c.cache_get(b"k1") == b"v3"
    assert c.cache_exists(b"k1") and c.cache_del(b"k1") and not c.cache_del(b"k1")
    assert c.cache_get(b"k1") is None and not c.cache_exists(b"k1")
    assert c.cache_set(b"o", b"1", cache=b"other") and c.cache_get(b"o", b"other") == b"1"
    assert c.cache_get(b"o") is None
    assert not c.cache_set(b"x", b"1", cache=b"nosuch")
    assert c.cache_clear(b"other") and c.cache_get(b"o", b"other") is None
    assert not c.cache_set(b"empty", b"")  # size 0 is refused
    c.cache_set(b"plain", b"value")
    got = c.exchange(CacheGet(key=b"plain"))  # modifier2 0: 4 garbage bytes, then the value
    assert isinstance(got.head, CacheValue) and got.body == b"value"
    assert c.exchange(CacheGet(key=b"absent")).no_reply


def test_wsgi_on_uwsgi_and_http_sockets(node) -> None:
    _, _, uport, hport = node
    expected = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"
                b"abcdef")
    assert raw(uport, wsgi_packet("/")) == expected
    assert raw(uport, wsgi_packet("/", protocol=b"")).startswith(b"HTTP/1.0 200 OK\r\n")
    assert raw(uport, wsgi_packet("/body", body=b"hello")) == (
        b"HTTP/1.1 201 Created\r\nX-Len: 5\r\n\r\nolleh")
    assert raw(uport, wsgi_packet("/raise")) == b""  # raised before start_response
    assert raw(hport, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n") == expected.replace(
        b"HTTP/1.1", b"HTTP/1.0")
    env = json.loads(raw(hport, b"GET /env?a=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
                     .split(b"\r\n\r\n", 1)[1])
    assert env["env"]["HTTP_X_A"] == "1, 2" and env["env"]["QUERY_STRING"] == "a=1"
    assert env["keys"][:8] == ["REQUEST_METHOD", "PATH_INFO", "REQUEST_URI", "QUERY_STRING",
                               "SERVER_PROTOCOL", "SCRIPT_NAME", "REMOTE_ADDR", "HTTP_HOST"]
    assert env["keys"][-9:] == ["wsgi.input", "wsgi.file_wrapper", "wsgi.version",
                                "wsgi.errors", "wsgi.run_once", "wsgi.multithread",
                                "wsgi.multiprocess", "wsgi.url_scheme", "uwsgi.version"]
    dup = wsgi_packet("/env", extra=((b"HTTP_X", b"first"), (b"HTTP_X", b"last")))
    body = json.loads(raw(uport, dup).split(b"\r\n\r\n", 1)[1])
    assert body["env"]["HTTP_X"] == "last"  # the last duplicate wins


def test_a_full_listen_queue_is_drained_without_waiting_for_the_pacing_loop(node) -> None:
    """A hundred whole requests queue up (the listen queue) while the serving thread is
    busy; once it is free they are answered back to back, the simulation run up to now
    for each, as a uWSGI worker accepts the next connection as soon as it is done: in a
    fraction of a second, where one pacing step each (up to MAX_IDLE, 0.25 s) would take
    25 s and a listen queue that overflows meanwhile would make its clients retransmit."""
    served, _, uport, _ = node
    clients: list[socket.socket] = []

    def queue_requests() -> None:  # in the serving thread: nothing is accepted meanwhile
        for _ in range(100):  # the default --listen
            s = socket.create_connection(("127.0.0.1", uport), timeout=5)
            s.sendall(wsgi_packet("/"))
            clients.append(s)

    try:
        served.call(queue_requests)
        began = time.monotonic()
        replies = []
        for s in clients:
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            replies.append(reply)
        took = time.monotonic() - began
    finally:
        for s in clients:
            s.close()
    assert all(r.startswith(b"HTTP/1.1 200 OK") for r in replies)
    assert took < 5.0, took


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input_is_closed_and_the_server_keeps_serving(node) -> None:
    served, _, uport, hport = node
    good = wsgi_packet("/")
    assert raw(uport, b"\xff" * 300) == b""                          # garbage: oversize
    assert raw(uport, encode_packet(255, 0, b"xyz")) == b""           # unknown modifier
    assert raw(uport, b"\x00\x10\x00\x00" + b"x" * 64) == b""          # pktsize 4096 + garbage vars
    assert raw(uport, b"\x00\xff\xff\x00" + b"x" * 100) == b""         # oversize header
    assert raw(uport, b"\x00\x00\x00\x00") == b""                      # empty python request
    assert raw(uport, good[:10], half_close=True) == b""             # disconnect mid-packet
    assert raw(uport, good, chunks=1, pause=0.001).startswith(b"HTTP/1.1 200 OK")  # slow client
    started = time.monotonic()
    assert raw(uport, good[:7]) == b""                                 # stalls: --socket-timeout 1
    assert 0.8 < time.monotonic() - started < 3.0
    assert raw(hport, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n") == b""  # invalid header
    assert raw(hport, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n") == b""  # head > buffer
    with socket.create_connection(("127.0.0.1", uport)) as s:        # many at once, one slow
        s.sendall(good[:3])
        assert raw(uport, good).startswith(b"HTTP/1.1 200 OK")
        assert NodeClient(f"127.0.0.1:{uport}").ping() == b""
    log = served.call(lambda: list(served.sim.log))
    assert "invalid request block size: 65535 (max 4096)...skip" in log
    assert "-- unavailable modifier requested: 255 --" in log
    assert "Empty python request. skip." in log
    assert raw(uport, good) == raw(uport, good)


def test_any_handler_on_a_unix_socket(tmp_path) -> None:
    seen = []

    async def handler(request, body, peer):
        seen.append((type(request).__name__, body, peer.addr))
        if isinstance(request, Request):
            return NetReply(head=HttpResponse(status=b"200 OK"), body=b"ok")
        return NetReply(head=Pong(message=b"hi")) if request.__class__.__name__ == "Ping" \
            else NetReply(head=NoReply())

    path = str(tmp_path / "s.sock")

    async def main() -> tuple:
        listener = await listen(path)
        server = UwsgiServer(handler)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: server.serve(listener, task_status=task_status))
            from simuwsgi.net import ping

            pong = await ping(path)
            wsgi = await exchange(path, Request(vars=((b"SERVER_PROTOCOL", b"HTTP/1.1"),
                                                      (b"CONTENT_LENGTH", b"2"))), b"xy")
            nursery.cancel_scope.cancel()
        return pong, wsgi

    pong, wsgi = trio.run(main)
    assert pong == b"hi" and wsgi.body == b"ok" and wsgi.head.protocol == b"HTTP/1.1"
    assert seen == [("Ping", b"", ""), ("Request", b"xy", "")]


def test_a_served_node_can_call_itself(node) -> None:
    """In serve mode only the calling virtual process waits for the network."""
    _, _, uport, hport = node
    reply = raw(hport, f"GET /remote?127.0.0.1:{uport} HTTP/1.1\r\n\r\n".encode())
    got = json.loads(reply.split(b"\r\n\r\n", 1)[1])
    assert got["rpc"] == "hello a|b" and got["get"] == "v3" and got["signal"] is None


# -- the commands ---------------------------------------------------------------------------
def test_client_commands(node, capsysbinary) -> None:
    _, _, uport, _ = node
    addr = f"127.0.0.1:{uport}"
    assert main(["ping", addr]) == 0
    assert re.fullmatch(rb"pong from 127\.0\.0\.1:\d+ in \d+\.\d\d ms\n",
                        capsysbinary.readouterr().out)
    assert main(["rpc", addr, "hello", "x", "y"]) == 0
    assert capsysbinary.readouterr().out == b"hello x|y\n"
    assert main(["rpc", addr, "nope"]) == 1
    assert capsysbinary.readouterr().err == (
        f"simuwsgi rpc: {addr} returned nothing for 'nope': it has no RPC function of that "
        f"name, or the function returned b''\n").encode()
    assert main(["signal", addr, "17"]) == 0
    assert main(["cache", addr, "set", "ck", "cv", "--expires", "100"]) == 0
    assert main(["cache", addr, "set", "ck", "cv"]) == 1
    assert main(["cache", addr, "get", "ck"]) == 0
    assert capsysbinary.readouterr().out == b"cv\n"
    assert main(["cache", addr, "exists", "ck"]) == 0
    assert main(["cache", addr, "del", "ck"]) == 0
    assert main(["cache", addr, "get", "ck"]) == 1
    assert capsysbinary.readouterr().err == (
        f"simuwsgi cache: {addr} has no key 'ck' in its default cache\n").encode()
    assert main(["cache", addr, "clear", "--cache", "other"]) == 0
    assert main(["cache", addr, "get"]) == 2
    assert main(["spool", addr, "a=b"]) == 0
    assert main(["spool", addr, "novalue"]) == 2
    assert main(["ping", "127.0.0.1:1", "--timeout", "1"]) == 3
    assert main(["signal", addr, "300"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["rpc"])
    assert exc.value.code == 2
    assert main(["serve"]) == 2  # no uWSGI options
    assert main(["serve", "--", "--bogus-option", "1"]) == 2
    assert main(["serve", "--", "--master", "--wsgi-file", "app.py"]) == 2  # no socket
