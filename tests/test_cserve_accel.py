"""The optional C accelerator of ``serve``'s accept loop (``net/_cserve.c``).

Random request sets sent to a served simulation, one connection after the other, must
get the same reply bytes (the app echoes its environ) and the same log lines with the C
functions (accept, first read, a plain request's vars, the wire environ) as with their
Python twins, where the sans-IO
codec reads every request (a subprocess with ``SIMUWSGI_PURE_PYTHON=1``): plain GETs
with random vars (duplicates, bytes above 127, empty values, ``HTTPS`` and
``UWSGI_SCHEME`` for the environ's scheme, ``CONTENT_LENGTH`` empty, ``0``, ``00`` or
with a body), modifier1 30 and 5, ping, empty and oversized packets,
malformed vars blocks (an empty key, a value past the end, stray bytes), var counts
around ``--max-vars``, a second request pipelined behind the first, clients that send
their request in pieces or close early, and HTTP requests on ``--http-socket`` (simple
heads, which the C taker builds the vars of, and the turns of uWSGI's parser it leaves
to the Python one).
"""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from simuwsgi.protocol import encode_packet, encode_vars

pytest.importorskip("simuwsgi.net._cserve")

APP = """
import uwsgi
uwsgi.set_warning_message("a warning for the pings")
def application(environ, start_response):
    keys = sorted(k for k, v in environ.items() if isinstance(v, str))
    text = "\\n".join("%s=%r" % (k, environ[k]) for k in keys)
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Keys", str(len(keys)))])
    return [text.encode("utf-8"), environ["wsgi.input"].read()]
"""

#: Sends each case (a list of byte pieces, sent with a pause between them; "close"
#: closes the writing side early) to the served simulation and prints the replies,
#: the log lines without their dates and times, and whether the C taker ran.
CLIENT = r"""
import json, re, socket, sys, time
from simuwsgi.serve import ServedSimulation
from simuwsgi.net import _server

app_dir, cases, ports = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
options = ["--master", "--processes", "1", "--wsgi-file", "app.py", "--socket",
           "127.0.0.1:" + ports[0], "--http-socket", "127.0.0.1:" + ports[1], "--max-vars", "6",
           "--buffer-size", "600", "--limit-post", "50"]
replies = []
with ServedSimulation(options, app_dir=app_dir) as served:
    for case in cases:
        port = served.address(case["protocol"]).rpartition(":")[2]
        with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as s:
            for i, piece in enumerate(case["pieces"]):
                if i:
                    time.sleep(0.02)
                s.sendall(bytes.fromhex(piece))
            if case.get("close"):
                s.shutdown(socket.SHUT_WR)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except ConnectionResetError:
                out += b"<reset>"
        replies.append(out.hex())
    lines = served.call(lambda: [line for _t, _p, line in served.sim.inst.log_lines])
log = [re.sub(r"\[(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [^]]*\]|in \d+ msecs", "", line)
       for line in lines]
print(json.dumps({"c": _server._cserve is not None, "replies": replies, "log": log}))
"""

_ALPHABET = b"ABCDEFGHIJ_xyz09/?=&% \x80\xe9\xff"


def _word(rng: random.Random, low: int = 1, high: int = 12) -> bytes:
    return bytes(rng.choice(_ALPHABET) for _ in range(rng.randint(low, high)))


def _vars(rng: random.Random) -> list[tuple[bytes, bytes]]:
    pairs = [(b"REQUEST_METHOD", rng.choice([b"GET", b"HEAD", b"DELETE"])),
             (b"REQUEST_URI", b"/" + _word(rng, 0, 8)), (b"PATH_INFO", b"/p")]
    for _ in range(rng.randint(0, 9)):  # often above --max-vars (12 pairs)
        key = rng.choice([b"HTTP_X_" + _word(rng, 1, 3), b"QUERY_STRING", b"SERVER_PROTOCOL",
                          b"HTTPS", b"UWSGI_SCHEME", b"wsgi.url_scheme"])
        value = _word(rng, 0, 10)
        if key == b"HTTPS" and rng.random() < 0.7:  # wsgi.url_scheme's turns
            value = rng.choice([b"on", b"ON", b"oN", b"o", b"1x", b"off", b"\xe9n"])
        pairs.append((key, value))
    if rng.random() < 0.3:
        pairs.append((b"CONTENT_LENGTH", rng.choice([b"", b"0", b"00", b"x1"])))
    rng.shuffle(pairs)
    return pairs


def _http_head(rng: random.Random) -> bytes:
    """A request head, often simple (the C path's), else with one of the turns the
    Python parser takes: escapes, dot segments, a name twice, a continuation line, a
    body, a missing space or CR, bytes after the head, a header too big for the
    buffer..."""
    uri = b"/" + rng.choice([b"", b"a/b", b"x?q=1&r", b"a%20b", b"a/../b", b"./c", b"d#f",
                             b"?", b"e//f", b"g.", b"h?%41", _word(rng, 0, 6).replace(b" ", b"")])
    if rng.random() < 0.05:
        uri = rng.choice([b"", b"*", b"rel"])
    line = rng.choice([b"GET", b"HEAD", b"", b"PO ST"]) + b" " + uri + b" " + rng.choice(
        [b"HTTP/1.0", b"HTTP/1.1", b"", b"HTTP/1.0 x"])
    headers = [b"Host: h"]
    for _ in range(rng.randint(0, 3)):  # at most 12 vars pass --max-vars 6
        headers.append(rng.choice([b"X-" + _word(rng, 1, 3).replace(b":", b""), b"Accept",
                                   b"content-type", b"Content_Type", b"x-a", b"X-A"])
                       + rng.choice([b": ", b":", b":  "]) + _word(rng, 0, 10).replace(
                           b"\xff", b""))
    extra, body = rng.choice([(b"", b"")] * 8 + [
        (b"Content-Length: 3\r\n", b"abc"), (b"Content-Length: 0\r\n", b""),
        (b"X-Long: " + b"l" * rng.choice([300, 420, 560]) + b"\r\n", b""),
        (b"X-Fold: a\r\n b\r\n", b""), (b"NoColon\r\n", b""), (b": v\r\n", b""),
        (b"X-Cr: a\rb\r\n", b""), (b"", b"after")])
    head = line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + extra + b"\r\n"
    return head + body


def _case(rng: random.Random) -> dict:
    kind = rng.choice(["plain"] * 6 + ["m30", "m5", "ping", "empty", "big", "bad", "count",
                                       "pipelined", "pieces", "body", "short"] + ["http"] * 8)
    packet = encode_packet(30 if kind == "m30" else 5 if kind == "m5" else 0,
                           rng.randint(0, 255), encode_vars(_vars(rng)))
    pieces, close = [packet], False
    if kind == "ping":  # alone (the C taker answers it), or as the codec alone reads it
        pieces = [rng.choice([b"\x64\x00\x00\x00", b"\x64\x00\x00\x07",
                              b"\x64\x03\x00\x00abc", b"\x64\x00\x00\x00xy"])]
    elif kind == "empty":
        pieces = [b"\x00\x00\x00\x00"]
    elif kind == "big":
        pieces = [b"\x00" + (601).to_bytes(2, "little") + b"\x00" + b"a" * 601]
    elif kind == "bad":
        block = rng.choice([b"\x00\x00\x01\x00a", b"\x03\x00abc\x09\x00xy",
                            b"\x03\x00abc\x01\x00xz", b"\x01\x00"])
        pieces = [encode_packet(0, 0, block)]
    elif kind == "count":  # --max-vars 6: at most 12 pairs
        n = rng.choice([11, 12, 13])
        pieces = [encode_packet(0, 0, encode_vars([(b"K%d" % i, b"v") for i in range(n)]))]
    elif kind == "pipelined":
        pieces = [packet + packet]
    elif kind == "pieces":
        cut = rng.randint(1, len(packet) - 1)
        pieces = [packet[:cut], packet[cut:]]
    elif kind == "body":
        body = _word(rng, 1, 60)
        head = encode_vars([(b"REQUEST_METHOD", b"POST"),
                            (b"CONTENT_LENGTH", str(len(body)).encode())])
        pieces = [encode_packet(0, 0, head) + body]
    elif kind == "short":
        pieces, close = [packet[:rng.randint(1, len(packet) - 1)]], True
    elif kind == "http":
        pieces = [_http_head(rng)]
        if rng.random() < 0.15:  # in two pieces
            cut = rng.randint(1, len(pieces[0]) - 1)
            pieces = [pieces[0][:cut], pieces[0][cut:]]
    return {"protocol": "http" if kind == "http" else "uwsgi",
            "pieces": [p.hex() for p in pieces], "close": close}


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _serve(tmp_path: Path, cases: list[dict], pure: bool, ports: list[str]) -> dict:
    env = dict(os.environ)
    env.pop("SIMUWSGI_PURE_PYTHON", None)
    if pure:
        env["SIMUWSGI_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", CLIENT, str(tmp_path), json.dumps(cases), *ports],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_c_taker_answers_and_logs_as_the_python_path(tmp_path: Path, seed: int) -> None:
    (tmp_path / "app.py").write_text(APP)
    rng = random.Random(seed)
    cases = [_case(rng) for _ in range(100)]
    ports = [_free_port(), _free_port()]  # the same in both runs: SERVER_PORT is one
    with_c = _serve(tmp_path, cases, pure=False, ports=ports)
    python = _serve(tmp_path, cases, pure=True, ports=ports)
    assert with_c["c"] and not python["c"]
    assert with_c["replies"] == python["replies"]
    assert with_c["log"] == python["log"]
    served = [r for r in with_c["replies"] if bytes.fromhex(r).startswith(b"HTTP/1.0 200")]
    assert len(served) > 10  # the plain path was taken, not only refusals


@pytest.mark.parametrize("answer", ["now", "later", "handler", "none"])
def test_a_ping_goes_to_the_handler_when_it_is_not_answered_at_once(answer: str) -> None:
    """The C taker answers a lone ping with what ``answer_now`` gives at once (a Pong or
    no reply); an answer under way, or none (the handler's turn), takes the usual path."""
    import trio

    from simuwsgi.net import Reply, UwsgiServer, listen, ping
    from simuwsgi.protocol import NoReply, Pong

    seen = []

    async def later() -> Reply:
        await trio.sleep(0.01)
        return Reply(head=Pong(message=b"later"))

    def answer_now(request, body, peer):
        seen.append(("now", type(request).__name__, peer.addr))
        if answer == "now":
            return Reply(head=Pong(message=b"now"))
        if answer == "none":
            return Reply(head=NoReply())
        return later() if answer == "later" else None

    async def handler(request, body, peer):
        seen.append(("handler", type(request).__name__, peer.addr))
        return Reply(head=Pong(message=b"handler"))

    async def main() -> bytes | None:
        listener = await listen("127.0.0.1:0")
        address = "127.0.0.1:%d" % listener.socket.getsockname()[1]
        server = UwsgiServer(handler, answer_now=answer_now)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: server.serve(listener,
                                                                 task_status=task_status))
            try:
                return await ping(address)  # None: no pong
            finally:
                nursery.cancel_scope.cancel()

    got = trio.run(main)
    assert got == {"now": b"now", "later": b"later", "handler": b"handler"}.get(answer)
    assert seen[0] == ("now", "Ping", "127.0.0.1")
    assert seen[1:] == ([("handler", "Ping", "127.0.0.1")] if answer == "handler" else [])
