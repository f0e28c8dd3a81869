"""Fuzz entry point for :mod:`simuwsgi.protocol` (atheris-compatible, atheris optional).

The property: whatever bytes arrive, every decoder yields events, ``NEED_DATA`` or a
:class:`ProtocolError` - never another exception - and a connection never buffers
more than its limit plus a header.

Usage::

    python tests/protocol/fuzz_codec.py              # with atheris installed: fuzz forever
    python tests/protocol/fuzz_codec.py FILE...      # without: run the given inputs once

The hypothesis tests in ``test_protocol_fuzz.py`` call :func:`fuzz_one` too.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from simuwsgi.protocol import (
    CLIENT,
    NEED_DATA,
    SERVER,
    CacheDump,
    CacheGet,
    CacheMagicRequest,
    Connection,
    ConnectionClosed,
    Echo,
    EndOfMessage,
    LegionCipher,
    NoReply,
    Ping,
    ProtocolError,
    Request,
    RpcHttpRequest,
    RpcRequest,
    SignalRequest,
    SpoolRequest,
    decode_cache_udp_datagram,
    decode_legion_announce,
    decode_spool_file,
    decode_stats,
    decode_subscription,
)

HEAD_LIMIT = 4 + 0xFFFF  # the largest head any client-side reader buffers
SAMPLE_REQUESTS = (
    Request(vars=((b"PATH_INFO", b"/"),)),
    RpcRequest(function=b"f", args=(b"a",)),
    RpcRequest(function=b"f", modifier2=1),
    RpcHttpRequest(vars=((b"PATH_INFO", b"/f/a"),)),
    CacheGet(key=b"k"),
    CacheDump(),
    CacheMagicRequest.get(b"k", b""),
    CacheMagicRequest.delete(b"k"),
    Ping(),
    SignalRequest(signum=17),
    SpoolRequest(vars=((b"a", b"b"),)),
    Echo(payload=b"x"),
)
CIPHER = LegionCipher.from_option("aes-128-cbc", b"secret")


def drain(conn: Connection, limit: int) -> None:
    """Pull events until NEED_DATA; answer requests like a server driver would."""
    while True:
        event = conn.next_event()
        assert len(conn.trailing_data[0]) <= limit, (len(conn.trailing_data[0]), limit)
        if event is NEED_DATA or isinstance(event, ConnectionClosed):
            return
        if conn.role is SERVER and isinstance(event, EndOfMessage):
            conn.send(NoReply())
            if conn.persistent and conn.keep_alive:
                conn.start_next_cycle()
            else:
                return


def feed(conn: Connection, chunks: list[bytes], limit: int) -> None:
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            drain(conn, limit)
        conn.receive_data(b"")
        drain(conn, limit)
    except ProtocolError:
        pass


def split(data: bytes) -> list[bytes]:
    """Deterministic fragmentation driven by the first byte of the input."""
    if not data:
        return []
    step = data[0] % 7 + 1
    body = data[1:]
    return [body[i : i + step] for i in range(0, len(body), step)]


def fuzz_one(data: bytes) -> None:
    """Run one input through every decoder (both roles, datagrams, files)."""
    chunks = split(data)
    for options in ({}, {"buffer_size": 64, "max_vars": 4}, {"persistent": True}):
        server = Connection(SERVER, **options)  # type: ignore[arg-type]
        feed(server, chunks, int(options.get("buffer_size", 4096)) + 4)
    request = SAMPLE_REQUESTS[data[0] % len(SAMPLE_REQUESTS)] if data else Ping()
    client = Connection(CLIENT)
    client.send_message(request)
    feed(client, chunks, HEAD_LIMIT)
    for decoder in (
        decode_spool_file,
        decode_subscription,
        decode_cache_udp_datagram,
        decode_stats,
        lambda b: decode_legion_announce(b, CIPHER),
    ):
        with contextlib.suppress(ProtocolError):
            decoder(data)


def TestOneInput(data: bytes) -> None:  # atheris' naming
    fuzz_one(data)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        for name in argv[1:]:
            fuzz_one(Path(name).read_bytes())
        return 0
    try:
        import atheris  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        print("atheris is not installed; pass input files to replay them", file=sys.stderr)
        return 2
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
