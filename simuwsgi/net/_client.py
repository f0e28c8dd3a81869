"""A trio client for any uWSGI node: ping, RPC, signals, the cache and remote spool.

Every call is one exchange on a new connection, as uWSGI's own clients do
(``core/rpc.c`` ``uwsgi_do_rpc``, ``core/signal.c`` ``uwsgi_remote_signal_send``,
``core/cache.c`` ``cache_magic_send_and_manage``, ``plugins/ping``): connect, write the
whole request, read the reply the way the matching uWSGI client reads it, close. Each
wait (connect, every read) is bounded by ``timeout`` (uWSGI's ``--socket-timeout``,
4 s by default). The bytes come from, and the replies go through, the sans-IO codec
(:mod:`simuwsgi.protocol`); nothing is parsed here.

Results follow uWSGI's clients: ``None``/``False`` where the node closes without a
reply (its only "no"); :class:`OSError` (:class:`TimeoutError` for a timeout) where it
cannot be reached. The facade-level mapping (``uwsgi.rpc`` returning None on any error,
``uwsgi.signal`` raising ``OSError``) is the ``net`` subsystem's business.

:class:`NodeClient` offers the same calls as blocking methods (each runs its own trio
loop in a helper thread, so it works from inside a running trio loop or a simulation).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import trio

from ..protocol import (
    CLIENT,
    NEED_DATA,
    Ack,
    CacheMagicRequest,
    CacheMagicResponse,
    Connection,
    Data,
    EndOfMessage,
    NoReply,
    Ping,
    Pong,
    ReplyEvent,
    RequestEvent,
    RpcRequest,
    SignalRequest,
    SpoolRequest,
)
from ..server.containment import host_section
from ._address import Address, connect

__all__ = [
    "DEFAULT_TIMEOUT",
    "NodeClient",
    "Reply",
    "cache_clear",
    "cache_del",
    "cache_exists",
    "cache_get",
    "cache_set",
    "cache_update",
    "exchange",
    "ping",
    "rpc",
    "run_blocking",
    "signal",
    "spool",
]

DEFAULT_TIMEOUT = 4.0
"""uWSGI's default ``--socket-timeout``: the bound on each wait of a remote call."""

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """What the node answered: a reply head (or :class:`NoReply`) and the bytes that
    followed it (RPC result, cache value, HTTP body...)."""

    head: ReplyEvent | NoReply
    body: bytes = b""

    @property
    def no_reply(self) -> bool:
        return isinstance(self.head, NoReply)


async def _receive(stream: trio.abc.ReceiveStream, timeout: float) -> bytes:
    """One read; a reset connection reads as EOF (uWSGI's clients see a failed read)."""
    with trio.move_on_after(timeout):
        try:
            return await stream.receive_some(65536)
        except trio.BrokenResourceError:
            return b""
    raise TimeoutError(f"no data from the node for {timeout} s (--socket-timeout)")


def request_bytes(request: RequestEvent, body: bytes = b"") -> tuple[Connection, bytes]:
    """A client connection and the bytes it writes for ``request`` (and its body)."""
    conn = Connection(CLIENT)
    return conn, conn.send_message(request, body)


class ReplyReader:
    """Collects what a client connection reads into a :class:`Reply` (sans-IO: the
    caller feeds what the socket gave, ``b""`` at EOF)."""

    __slots__ = ("chunks", "conn", "head")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.head: ReplyEvent | NoReply | None = None
        self.chunks: list[bytes] = []

    def next_reply(self) -> Reply | None:
        """The reply, once complete; None while more bytes are needed."""
        conn = self.conn
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                return None
            if isinstance(event, NoReply):
                return Reply(head=event)
            if isinstance(event, Data):
                self.chunks.append(event.data)
            elif isinstance(event, EndOfMessage):
                assert self.head is not None
                return Reply(head=self.head, body=b"".join(self.chunks))
            else:
                self.head = event  # type: ignore[assignment]


async def exchange(
    address: Address | str,
    request: RequestEvent,
    body: bytes = b"",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> Reply:
    """One request/reply exchange on a new connection."""
    conn, out = request_bytes(request, body)
    with trio.move_on_after(timeout) as scope:
        stream = await connect(address)
    if scope.cancelled_caught:
        raise TimeoutError(f"connecting to {address} took more than {timeout} s")
    async with stream:
        try:
            await stream.send_all(out)
        except trio.BrokenResourceError:
            pass  # the node closed early (e.g. an oversize packet): read what it said
        reader = ReplyReader(conn)
        while True:
            reply = reader.next_reply()
            if reply is not None:
                return reply
            conn.receive_data(await _receive(stream, timeout))


async def ping(address: Address | str, *, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
    """The node's warning message (``b""`` when healthy), or None for no pong."""
    return ping_result(await exchange(address, Ping(), timeout=timeout))


def ping_result(reply: Reply) -> bytes | None:
    """The pong's warning message (``b""`` when healthy), or None for no pong."""
    return reply.head.message if isinstance(reply.head, Pong) else None


async def rpc(
    address: Address | str, function: bytes, *args: bytes, timeout: float = DEFAULT_TIMEOUT
) -> bytes | None:
    """``uwsgi.rpc(node, function, *args)``: the result, or None (no reply, or empty)."""
    reply = await exchange(address, RpcRequest(function=function, args=args), timeout=timeout)
    return rpc_result(reply)


def rpc_result(reply: Reply) -> bytes | None:
    """What ``uwsgi.rpc`` gets from a reply: the bytes, None for nothing."""
    return reply.body or None


async def signal(address: Address | str, num: int, *, timeout: float = DEFAULT_TIMEOUT) -> bool | None:
    """Raise uWSGI signal ``num`` on the node: True if queued, False if rejected, None
    if the node closed without an ack."""
    reply = await exchange(address, SignalRequest(signum=num), timeout=timeout)
    return signal_result(reply)


def signal_result(reply: Reply) -> bool | None:
    """True if queued, False if rejected, None for no ack."""
    return reply.head.ok if isinstance(reply.head, Ack) else None


async def spool(
    address: Address | str,
    vars: Iterable[tuple[bytes, bytes]] | bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> bool | None:
    """Enqueue a spool task (modifier1 17): True if written, False if refused, None if no
    ack. ``vars`` may be pairs or a raw block (sent verbatim, as uWSGI stores it)."""
    reply = await exchange(address, spool_request(vars), timeout=timeout)
    return signal_result(reply)


def spool_request(vars: Iterable[tuple[bytes, bytes]] | bytes) -> SpoolRequest:
    if isinstance(vars, bytes):
        return SpoolRequest(vars=(), raw=vars)
    return SpoolRequest(vars=tuple(vars))


def cache_request(cmd: str, key: bytes = b"", value: bytes = b"", expires: int = 0,
                  cache: bytes = b"") -> CacheMagicRequest:
    """The magic request of a remote ``cache_<cmd>`` (``value`` goes as its body)."""
    if cmd == "set":
        return CacheMagicRequest.set(key, len(value), expires, cache)
    if cmd == "update":
        return CacheMagicRequest.update(key, len(value), expires, cache)
    if cmd == "get":
        return CacheMagicRequest.get(key, cache)
    if cmd == "exists":
        return CacheMagicRequest.exists(key, cache)
    if cmd == "del":
        return CacheMagicRequest.delete(key, cache)
    if cmd == "clear":
        return CacheMagicRequest.clear(cache)
    raise ValueError(f"unknown remote cache command {cmd!r}")


def cache_result(cmd: str, reply: Reply) -> Any:
    """``get``: the value or None; the other commands: True on ``status: ok``."""
    ok = isinstance(reply.head, CacheMagicResponse) and reply.head.status == b"ok"
    if cmd == "get":
        return reply.body if ok else None
    return ok


async def _cache(address: Address | str, cmd: str, key: bytes = b"", value: bytes = b"",
                 expires: int = 0, cache: bytes = b"", *,
                 timeout: float = DEFAULT_TIMEOUT) -> Any:
    request = cache_request(cmd, key, value, expires, cache)
    return cache_result(cmd, await exchange(address, request, value, timeout=timeout))


async def cache_get(
    address: Address | str, key: bytes, cache: bytes = b"", *, timeout: float = DEFAULT_TIMEOUT
) -> bytes | None:
    """``cache_get(key, 'cache@node')``: the value, or None."""
    return await _cache(address, "get", key, cache=cache, timeout=timeout)  # type: ignore[no-any-return]


async def cache_set(
    address: Address | str,
    key: bytes,
    value: bytes,
    expires: int = 0,
    cache: bytes = b"",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """``cache_set`` on the node (fails on an existing key): True on ``status: ok``."""
    return await _cache(address, "set", key, value, expires, cache, timeout=timeout)  # type: ignore[no-any-return]


async def cache_update(
    address: Address | str,
    key: bytes,
    value: bytes,
    expires: int = 0,
    cache: bytes = b"",
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> bool:
    """``cache_update`` on the node: True on ``status: ok``."""
    return await _cache(address, "update", key, value, expires, cache, timeout=timeout)  # type: ignore[no-any-return]


async def cache_del(
    address: Address | str, key: bytes, cache: bytes = b"", *, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    return await _cache(address, "del", key, cache=cache, timeout=timeout)  # type: ignore[no-any-return]


async def cache_exists(
    address: Address | str, key: bytes, cache: bytes = b"", *, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    return await _cache(address, "exists", key, cache=cache, timeout=timeout)  # type: ignore[no-any-return]


async def cache_clear(
    address: Address | str, cache: bytes = b"", *, timeout: float = DEFAULT_TIMEOUT
) -> bool:
    return await _cache(address, "clear", cache=cache, timeout=timeout)  # type: ignore[no-any-return]


def run_blocking(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    """Run ``await fn(*args)`` to completion in a fresh trio loop on a helper thread.

    Works from anywhere (a running trio loop, a simulation's virtual process): the
    caller's thread blocks until the call is done. Exceptions propagate.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = trio.run(fn, *args)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    with host_section():  # the caller waits for a host thread: host locks
        thread = threading.Thread(target=target, name="simuwsgi-net-client", daemon=True)
        thread.start()
        thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class NodeClient:
    """Blocking calls against one node: ``NodeClient('127.0.0.1:3031').rpc(b'hello')``."""

    def __init__(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout

    def _run(self, fn: Callable[..., Awaitable[_T]], *args: Any, **kw: Any) -> _T:
        async def call() -> _T:
            return await fn(self.address, *args, timeout=self.timeout, **kw)

        return run_blocking(call)

    def ping(self) -> bytes | None:
        return self._run(ping)

    def rpc(self, function: bytes, *args: bytes) -> bytes | None:
        return self._run(rpc, function, *args)

    def signal(self, num: int) -> bool | None:
        return self._run(signal, num)

    def spool(self, vars: Iterable[tuple[bytes, bytes]] | bytes) -> bool | None:
        return self._run(spool, vars)

    def cache_get(self, key: bytes, cache: bytes = b"") -> bytes | None:
        return self._run(cache_get, key, cache)

    def cache_set(self, key: bytes, value: bytes, expires: int = 0, cache: bytes = b"") -> bool:
        return self._run(cache_set, key, value, expires, cache)

    def cache_update(self, key: bytes, value: bytes, expires: int = 0, cache: bytes = b"") -> bool:
        return self._run(cache_update, key, value, expires, cache)

    def cache_del(self, key: bytes, cache: bytes = b"") -> bool:
        return self._run(cache_del, key, cache)

    def cache_exists(self, key: bytes, cache: bytes = b"") -> bool:
        return self._run(cache_exists, key, cache)

    def cache_clear(self, cache: bytes = b"") -> bool:
        return self._run(cache_clear, cache)

    def exchange(self, request: RequestEvent, body: bytes = b"") -> Reply:
        return self._run(exchange, request, body)

    def __repr__(self) -> str:
        return f"<NodeClient {self.address} timeout={self.timeout}>"
