"""A virtual FastCGI responder on the cluster's network, for 1.4's ``uwsgi.fcgi()``.

Simulation-only: ``cluster.add_fastcgi(name, app, address=..., port=9000)`` puts a
minimal FastCGI server at ``address:port`` (no uWSGI in it). It reads the records a
client writes (BEGIN_REQUEST, PARAMS up to the empty one, STDIN up to the empty one),
calls ``app(params, stdin)`` (``params`` a dict of bytes, ``stdin`` bytes) and answers
what it returns (bytes: a CGI response, ``Status:``/headers, a blank line, the body) as
STDOUT records of up to 65535 bytes, the empty STDOUT record and END_REQUEST (status
0), then closes. An exception in ``app`` becomes a STDERR record with its text and
END_REQUEST status 1.

1.4's client (``py_uwsgi_fcgi``, ``core/protocol.c`` ``fcgi_send_record``/
``fcgi_send_param``/``fcgi_get_record``): ``fcgi(b"ip:port"... )`` — see
``simuwsgi.network._messages`` — connects with ``--socket-timeout`` (None when it fails),
sends request id 1, one PARAMS record per ``bytes`` pair of the dict (others skipped),
and returns a ``uwsgi._Iter`` whose items are the STDOUT records' contents, each read
when asked for (waiting without limit); it stops at the first other record (or an
empty STDOUT one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._network import Network

__all__ = ["FastCgiHost", "begin_request", "fcgi_param", "fcgi_record", "read_records"]

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
#: 1.4's ``FCGI_BEGIN_REQUEST`` body: role 1 (responder), flags 0 (close after).
BEGIN_BODY = b"\x00\x01\x00\x00\x00\x00\x00\x00"


def fcgi_record(kind: int, content: bytes, request_id: int = 1) -> bytes:
    """``fcgi_send_record``: version 1, no padding."""
    size = len(content) & 0xFFFF
    return bytes([1, kind, request_id >> 8, request_id & 0xFF, size >> 8, size & 0xFF,
                  0, 0]) + content[:size]


def _length(n: int) -> bytes:
    return bytes([n]) if n <= 127 else (n | 0x80000000).to_bytes(4, "big")


def fcgi_param(key: bytes, value: bytes) -> bytes:
    """``fcgi_send_param``: one PARAMS record holding one name-value pair."""
    return fcgi_record(PARAMS, _length(len(key)) + _length(len(value)) + key + value)


def begin_request() -> bytes:
    return fcgi_record(BEGIN_REQUEST, BEGIN_BODY)


def read_records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The whole records in ``data``: (type, content), padding skipped."""
    pos = 0
    while pos + 8 <= len(data):
        size = data[pos + 4] << 8 | data[pos + 5]
        end = pos + 8 + size + data[pos + 6]
        if end > len(data):
            return
        yield data[pos + 1], data[pos + 8:pos + 8 + size]
        pos = end


def _params(block: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    pos = 0

    def length() -> int:
        nonlocal pos
        if block[pos] & 0x80:
            n = int.from_bytes(block[pos:pos + 4], "big") & 0x7FFFFFFF
            pos += 4
        else:
            n = block[pos]
            pos += 1
        return n

    while pos < len(block):
        klen = length()
        vlen = length()
        out[block[pos:pos + klen]] = block[pos + klen:pos + klen + vlen]
        pos += klen + vlen
    return out


class _Options:
    """What the network reads of a host's options: it declares no uWSGI socket."""

    @staticmethod
    def strings(_name: str) -> list[str]:
        return []


class FastCgiHost:
    """The host of a virtual FastCGI responder (what ``Network.attach`` keeps as the
    node's instance)."""

    opts = _Options()
    stopped = False
    ready = True

    def __init__(self, name: str, app: Callable[[dict[bytes, bytes], bytes], bytes]) -> None:
        if not callable(app):
            raise TypeError(f"a FastCGI app is a callable app(params, stdin) -> bytes, "
                            f"not {app!r}")
        self.hostname = name
        self.app = app
        self.requests = 0

    def respond(self, data: bytes) -> bytes | None:
        """The reply's bytes once ``data`` holds a whole request (None before)."""
        params = bytearray()
        stdin = bytearray()
        for kind, content in read_records(data):
            if kind == PARAMS:
                params += content
            elif kind == STDIN:
                if not content:
                    return self._answer(_params(bytes(params)), bytes(stdin))
                stdin += content
        return None

    def _answer(self, params: dict[bytes, bytes], stdin: bytes) -> bytes:
        self.requests += 1
        try:
            out = self.app(params, stdin)
            if not isinstance(out, (bytes, bytearray)):
                raise TypeError(f"the FastCGI app returned {type(out).__name__}, not bytes")
        except Exception as exc:  # the app's error: on STDERR, as a responder reports it
            return (fcgi_record(STDERR, f"{type(exc).__name__}: {exc}".encode())
                    + fcgi_record(END_REQUEST, b"\x00\x00\x00\x01\x00\x00\x00\x00"))
        chunks = [bytes(out[i:i + 0xFFFF]) for i in range(0, len(out), 0xFFFF)]
        return (b"".join(fcgi_record(STDOUT, c) for c in chunks) + fcgi_record(STDOUT, b"")
                + fcgi_record(END_REQUEST, bytes(8)))


def add_fastcgi(net: Network, name: str, app: Any, address: str, port: int) -> FastCgiHost:
    """Attach a FastCGI responder ``name`` at ``address:port``."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, not {port!r}")
    host = FastCgiHost(name, app)
    endpoint = net.attach(name, address, host, None)  # type: ignore[arg-type]
    endpoint.ports[port] = "fastcgi"
    net.record("net.add_fastcgi", name=name, address=f"{address}:{port}")
    return host
