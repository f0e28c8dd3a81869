"""Throughput of the uwsgi codec: parse + encode of a typical 20-variable request.

Run with ``python benchmarks/bench_codec.py`` (no pytest). One iteration is what a
simulated request costs the protocol layer on both ends:

* ``connection``: a client ``Connection`` encodes the request (``send_message``), a
  server ``Connection`` decodes it (``receive_data`` + ``next_event`` until
  ``EndOfMessage``);
* ``functions``: the codec's functions on a whole packet: ``encode_vars`` +
  ``encode_header``, then ``decode_header`` + ``decode_request_vars`` (with the C
  accelerator of ``_cvars.c`` when it is built).

Prints requests/second for each and the ratio to the 300,000/s target. Rates are
computed from CPU time (``time.process_time``), best of three rounds, so that other
processes on a shared machine do not distort them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simuwsgi.protocol import (
    CLIENT,
    SERVER,
    Connection,
    EndOfMessage,
    Request,
    decode_header,
    decode_request_vars,
    encode_header,
    encode_vars,
)

TARGET = 300_000

VARS = (
    (b"REQUEST_METHOD", b"GET"),
    (b"REQUEST_URI", b"/api/items?page=2"),
    (b"PATH_INFO", b"/api/items"),
    (b"QUERY_STRING", b"page=2"),
    (b"SERVER_PROTOCOL", b"HTTP/1.1"),
    (b"SERVER_NAME", b"example.com"),
    (b"SERVER_PORT", b"80"),
    (b"REMOTE_ADDR", b"10.0.0.7"),
    (b"REMOTE_PORT", b"51234"),
    (b"REQUEST_SCHEME", b"http"),
    (b"DOCUMENT_ROOT", b"/srv/www"),
    (b"CONTENT_TYPE", b""),
    (b"CONTENT_LENGTH", b""),
    (b"HTTP_HOST", b"example.com"),
    (b"HTTP_USER_AGENT", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"),
    (b"HTTP_ACCEPT", b"text/html,application/xhtml+xml"),
    (b"HTTP_ACCEPT_LANGUAGE", b"en-US,en;q=0.5"),
    (b"HTTP_ACCEPT_ENCODING", b"gzip, deflate"),
    (b"HTTP_CONNECTION", b"keep-alive"),
    (b"HTTP_COOKIE", b"session=4f2a9c; theme=dark"),
)
REQUEST = Request(vars=VARS)


def with_connections() -> tuple[object, object]:
    wire = Connection(CLIENT).send_message(REQUEST)
    server = Connection(SERVER)
    server.receive_data(wire)
    return server.next_event(), server.next_event()


def with_functions() -> object:
    """A whole request packet: header + vars block, encoded then parsed."""
    block = encode_vars(VARS)
    packet = encode_header(0, len(block), 0) + block
    header = decode_header(packet)
    return decode_request_vars(packet[4:4 + header.pktsize])


def check() -> None:
    """The timed functions really round-trip the request."""
    assert with_connections() == (REQUEST, EndOfMessage())
    assert with_functions() == VARS


def measure(fn: Callable[[], object], seconds: float = 1.5) -> float:
    clock = time.process_time
    best = 0.0
    for _ in range(3):
        n = 0
        start = clock()
        deadline = start + seconds / 3
        while True:
            for _ in range(500):
                fn()
            n += 500
            now = clock()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main() -> int:
    check()
    size = len(encode_vars(VARS)) + 4
    print(f"request: {len(VARS)} vars, {size} bytes on the wire (python {sys.version.split()[0]})")
    for name, fn in (("connection", with_connections), ("functions", with_functions)):
        rate = measure(fn)
        print(f"{name:>10}: {rate:>10,.0f} requests/s  ratio to target {rate / TARGET:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
