"""uWSGI socket addresses: ``host:port`` (TCP), ``/path`` (UNIX), ``@name`` (abstract).

Models ``uwsgi_connect`` / ``bind_to_tcp`` / ``bind_to_unix`` (``core/socket.c``): an
address with a ``:`` whose tail is a port is TCP (an empty host means every interface
when binding and the loopback when connecting), anything else is a UNIX socket path, and
a leading ``@`` names a Linux abstract socket.

Left out: ``=N`` inherited file descriptors, ``--ipv6`` brackets and ``--shared-socket``.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

import trio

__all__ = ["Address", "connect", "listen", "parse_address"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Address:
    """A parsed address: ``host``/``port`` for TCP, ``path`` for UNIX sockets."""

    text: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def is_tcp(self) -> bool:
        return not self.path

    def __str__(self) -> str:
        return self.text


def parse_address(text: str) -> Address:
    """Parse a uWSGI address; raises ValueError for an empty one."""
    if not text:
        raise ValueError("an empty socket address: give host:port, a path or @name")
    if text.startswith("@"):
        return Address(text=text, path="\0" + text[1:])
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and "/" not in host:
        return Address(text=text, host=host, port=int(port))
    return Address(text=text, path=text)


async def connect(address: Address | str) -> trio.SocketStream:
    """Open a stream to ``address`` (raises OSError like ``connect(2)``)."""
    addr = parse_address(address) if isinstance(address, str) else address
    if addr.path:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = addr.path
    else:
        host = addr.host or "127.0.0.1"
        try:
            socket.inet_aton(host)
        except OSError:
            return await trio.open_tcp_stream(host, addr.port)
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, addr.port)
    try:
        await sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def listen(address: Address | str, *, backlog: int = 100,
                 defer_accept: int = 0) -> trio.SocketListener:
    """Bind and listen on ``address``: ``host:0`` picks a free port (see
    ``listener.socket.getsockname()``); a stale UNIX socket file is replaced.

    ``defer_accept`` (seconds) sets ``TCP_DEFER_ACCEPT`` on a TCP socket, as uWSGI does
    with ``--socket-timeout`` unless ``--no-defer-accept``: a connection is handed to
    ``accept`` only once its first bytes have arrived.
    """
    addr = parse_address(address) if isinstance(address, str) else address
    if addr.path:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if not addr.path.startswith("\0"):
            try:
                os.unlink(addr.path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    sock.close()
                    raise
        target: object = addr.path
    else:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if defer_accept and hasattr(socket, "TCP_DEFER_ACCEPT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)
        target = (addr.host or "0.0.0.0", addr.port)
    try:
        await sock.bind(target)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)
