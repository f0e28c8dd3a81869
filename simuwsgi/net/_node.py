"""A simulated uWSGI instance on real sockets, paced by the real clock.

:class:`SimulatedNode` is the handler :class:`~simuwsgi.net.UwsgiServer` calls for a
``Simulation``: it answers each packet the way the request plugins of the pyuwsgi
wheel do (protocol.md §4-5):

* modifier1 0/30 (WSGI): submitted to the simulation (``Simulation.submit``), run by a
  worker with the environ built from the wire vars; every byte the simulated worker
  writes on the request's connection (status line with the request's
  ``SERVER_PROTOCOL`` or ``HTTP/1.0``, headers, body, ``uwsgi.send``...;
  ``proto/base.c``, ``core/writer.c``) goes to the client as it is written, the worker
  waiting while the client's socket is full (``_wire.StreamedWire``); a request uWSGI
  drops (harakiri, no ``start_response``...) closes without a byte, or after what was
  written;
* 100 (ping): ``[100, len, 1]`` + the warning message, answered at once and not
  counted as a request (``do_not_account``), with the log line ``PING``;
* 173 (RPC, framed / raw / HTTP bridge), 110 (signal), 111 (cache), 17 (remote spool):
  the plugin's action runs in a worker (counted as a request), on the simulated
  node's subsystems: ``rpc.call_local``, ``signals.raise_signal``, the caches,
  ``spooler.spool_request``;
* any other modifier1: ``-- unavailable modifier requested: N --`` and close.

The pacing loop (:meth:`SimulatedNode.run`) advances the simulation's kernel to track
real elapsed time (``RealClock``, the only reader of real time): between requests it
sleeps until the next virtual event is due or a request arrives.

Remote calls made by the app (``uwsgi.rpc('host:port', ...)`` and friends) park the
calling virtual process while a trio task does the real I/O, so the node keeps serving
(an app may even call its own node).

Left out: the cache dump image of modifier2 6 (only its ``{items, blocksize}`` dict is
sent), the per-worker queueing of pings (answered even when every worker is busy). A
streamed response still costs its size in memory while the request runs: the simulated
worker gathers the body for ``Response.body`` and the request log's byte count.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import trio

from .._core.clock import RealClock
from ..protocol import (
    Ack,
    CacheDelete,
    CacheDictGet,
    CacheDump,
    CacheDumpResponse,
    CacheGet,
    CacheGetStream,
    CacheMagicRequest,
    CacheMagicResponse,
    CacheSet,
    CacheValue,
    HttpResponse,
    NoReply,
    Ping,
    Pong,
    RawResponse,
    Request,
    RequestEvent,
    RpcHttpRequest,
    RpcRequest,
    RpcResponse,
    SignalRequest,
    SpoolRequest,
    UnknownRequest,
    content_length,
    internal_error_response,
    last_value,
    not_found_response,
    rpc_http_call,
    rpc_http_response,
)
from ._client import Reply, run_blocking
from ._server import Body, Peer
from ._wire import StreamedWire, WireRequest

if TYPE_CHECKING:
    from ..server.master import Instance
    from ..simulation import Simulation

__all__ = ["NO_REPLY", "Plugins", "SimulatedNode", "worker_reply"]

#: The low bytes of a heap address that uWSGI 2.0.30 writes instead of a header for
#: cache modifier2 0/5 (vector ``cache_m2_0_get_garbage_header``).
CACHE_GARBAGE_PREFIX = b"\x00\xd0\x4d\x2e"
#: Longest sleep of the pacing loop when nothing is scheduled (seconds).
MAX_IDLE = 0.25
NO_REPLY = Reply(head=NoReply())
_UPDATE = 1  # cache.py's UWSGI_CACHE_FLAG_UPDATE


def _page(page: tuple[HttpResponse, bytes]) -> Reply:
    return Reply(head=page[0], body=page[1])


class Plugins:
    """The answers of the request plugins other than WSGI (ping, RPC, signal, cache,
    remote spool) on one instance's subsystems: shared by :class:`SimulatedNode` (real
    sockets) and the virtual network between a cluster's nodes (``simuwsgi.network``)."""

    def __init__(self, inst: Instance) -> None:
        self.inst = inst

    def action(self, request: RequestEvent, body: bytes) -> Callable[[], Reply] | None:
        """What a worker runs for a plugin's request (None: not a plugin's)."""
        if isinstance(request, (RpcRequest, RpcHttpRequest)):
            return lambda: self._rpc(request)
        if isinstance(request, SignalRequest):
            return lambda: self._signal(request.signum)
        if isinstance(request, SpoolRequest):
            return lambda: self._spool(request)
        if isinstance(request, (CacheGet, CacheSet, CacheDelete, CacheDictGet, CacheGetStream,
                                CacheDump, CacheMagicRequest)):
            return lambda: self._cache(request, body)
        return None

    def refuse_wsgi(self, request: Request) -> Reply | None:
        """The reply to a vars-framed request no app serves (a modifier1 other than the
        WSGI ones 0/30, which the pyuwsgi wheel has no plugin for), or None."""
        if request.modifier1 == 18:  # symcall without --symcall: no app for it
            return _page(not_found_response())
        if request.modifier1 not in (0, 30):
            self.inst.log(f"-- unavailable modifier requested: {request.modifier1} --")
            return NO_REPLY
        return None

    def submit_wsgi(self, request: Request, submit: Callable[..., Any], *args: Any
                    ) -> tuple[Any, WireRequest]:
        """A WSGI request: ``submit(wire, method, path, *args)`` makes it a request of
        the instance; returns it and its wire state (``_http_reply`` makes the reply)."""
        wire = WireRequest(vars=request.vars)
        text = wire.text_vars()  # decoded once: the environ is built from it too
        req = submit(wire, text.get("REQUEST_METHOD", ""),
                     text.get("REQUEST_URI") or text.get("PATH_INFO") or "", *args)
        # the status line's protocol: SERVER_PROTOCOL, or HTTP/1.0 (proto/base.c)
        req.protocol = text.get("SERVER_PROTOCOL") or "HTTP/1.0"
        # the client's address as uWSGI knows it: the REMOTE_ADDR var (on --socket the
        # frontend sends it, or nobody does)
        req.remote_addr = text.get("REMOTE_ADDR", "")
        return req, wire

    def refuse(self, request: RequestEvent) -> Reply:
        """A request no plugin serves: logged as uWSGI does, closed without a reply."""
        if isinstance(request, UnknownRequest) and request.modifier1 == 111:
            return NO_REPLY  # the cache plugin ignores unknown commands
        modifier1 = getattr(request, "modifier1", 101)  # Echo: not in the wheel
        self.inst.log(f"-- unavailable modifier requested: {modifier1} --")
        return NO_REPLY

    def ping(self) -> Reply:
        self.inst.log("PING")
        misc = self.inst.subsystems.get("misc")
        message = getattr(misc, "warning_message", b"") or b""
        return Reply(head=Pong(message=bytes(message[:80])))

    def _rpc(self, request: RpcRequest | RpcHttpRequest) -> Reply:
        rpc = self.inst.subsystems.get("rpc")
        if isinstance(request, RpcHttpRequest):
            call = rpc_http_call(request)
            if call is None:
                return _page(internal_error_response())
            result = rpc.call_local(call[0], list(call[1])) if rpc is not None else None
            if not result:
                return _page(not_found_response())
            head = rpc_http_response(result, http_accept=request.get(b"HTTP_ACCEPT"))
            return Reply(head=head, body=result)
        result = rpc.call_local(request.function, list(request.args)) if rpc else None
        if not result:
            return NO_REPLY
        return Reply(head=RpcResponse(length=len(result)), body=result)

    def _signal(self, num: int) -> Reply:
        signals = self.inst.subsystems.get("signals")
        if signals is not None:
            signals.raise_signal(num)
        return Reply(head=Ack(status=1))

    def _spool(self, request: SpoolRequest) -> Reply:
        spooler = self.inst.subsystems.get("spooler")
        if spooler is None:
            self.inst.log("the spooler is inactive !!!...skip")
            return Reply(head=Ack(status=0))
        path = spooler.spool_request(request.payload, b"")
        return Reply(head=Ack(status=1 if path else 0))

    def _cache(self, request: RequestEvent, body: bytes) -> Reply:
        caches = self.inst.subsystems.get("cache")
        default = caches.local(None) if caches is not None else None
        if isinstance(request, CacheMagicRequest):
            return self._magic(caches, request, body)
        if isinstance(request, CacheDump):
            uc = caches.local(request.cache.decode("latin-1")) if caches is not None else None
            if uc is None:
                return NO_REPLY
            return Reply(head=CacheDumpResponse.of(uc.max_items, uc.blocksize))
        if default is None:
            return NO_REPLY
        if isinstance(request, (CacheGet, CacheGetStream)):
            value = default.get(request.key)
            if value is None:
                if isinstance(request, CacheGetStream):
                    return Reply(head=CacheValue(prefix=CACHE_GARBAGE_PREFIX))
                return NO_REPLY
            return Reply(head=CacheValue(prefix=CACHE_GARBAGE_PREFIX), body=value)
        if isinstance(request, CacheSet):
            default.set(request.key, request.value, 0, 0)
            return NO_REPLY
        if isinstance(request, CacheDelete):
            default.delete(request.key)
            return NO_REPLY
        if isinstance(request, CacheDictGet):
            # a shadowed length makes every lookup use an empty key: never found
            if any(k == b"get" and v for k, v in request.pairs):
                return _page(not_found_response())
            return NO_REPLY
        return NO_REPLY

    def _magic(self, caches: Any, request: CacheMagicRequest, body: bytes) -> Reply:
        if caches is None:
            return NO_REPLY
        uc = caches.local(request.cache.decode("latin-1") if request.cache else None)
        if uc is None:
            return NO_REPLY
        cmd = request.command
        key = request.key
        ok = Reply(head=CacheMagicResponse.ok())
        if cmd == b"get":
            value = uc.get(key)
            if value is None:
                return NO_REPLY
            head = CacheMagicResponse.ok(size=len(value), expires=uc.expires.get(key, 0))
            return Reply(head=head, body=value)
        if cmd == b"exists":
            return ok if uc.lookup(key) else NO_REPLY
        if cmd == b"del":
            return ok if uc.delete(key) else NO_REPLY
        if cmd == b"clear":
            uc.clear()
            return ok
        if cmd in (b"set", b"update"):
            size = request.size
            if size == 0 or size > uc.max_item_size or len(body) != size:
                return NO_REPLY
            flags = _UPDATE if cmd == b"update" else 0
            return ok if uc.set(key, body, request.expires, flags) else NO_REPLY
        return NO_REPLY


class SimulatedNode(Plugins):
    """Serve a started :class:`~simuwsgi.Simulation` (see the module doc).

    Use inside a trio nursery: ``nursery.start(node.run)`` then give ``node.handle``
    (and ``answer_now=node.answer_now``) to :class:`~simuwsgi.net.UwsgiServer`.
    """

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim.inst)
        self.sim = sim
        self.kernel = sim.kernel
        self._waiters: list[tuple[Any, trio.Event]] = []
        self._io: list[tuple[Any, Callable[..., Awaitable[Any]], tuple[Any, ...]]] = []
        self._kick = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._base_real = 0.0
        self._base_virtual = 0.0
        #: the virtual time at which the pacing loop wakes up on its own
        self._wake_at = 0.0
        #: streamed replies holding bytes to send when the step ends
        self.unsent: list[StreamedWire] = []
        #: called after every pacing step (e.g. to print new log lines)
        self.on_progress: Callable[[], None] | None = None
        self.inst.net_host = self  # type: ignore[attr-defined]

    # -- pacing ------------------------------------------------------------------------
    def kick(self) -> None:
        """Wake the pacing loop (something was submitted)."""
        self._kick.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Advance the simulation with the real clock until the instance stops."""
        kernel = self.kernel
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._base_real = RealClock.monotonic()
            self._base_virtual = kernel.now
            task_status.started()
            try:
                while not self.inst.stopped:
                    target = self.step()
                    if self._kick.is_set():
                        self._kick = trio.Event()
                        await trio.lowlevel.checkpoint()
                        continue
                    nxt = kernel.peek()
                    delay = MAX_IDLE if nxt is None else min(MAX_IDLE, nxt - target)
                    self._wake_at = target + delay
                    if delay > 0:
                        with trio.move_on_after(delay):
                            await self._kick.wait()
                    else:
                        await trio.lowlevel.checkpoint()
            finally:
                self._nursery = None
                for _req, event in self._waiters:
                    event.set()
                nursery.cancel_scope.cancel()

    def step(self) -> float:
        """Run the simulation up to the real time elapsed; returns that virtual time.

        Called by the pacing loop and, to answer a request at once, by the server
        between two of its iterations (the loop is kicked if it would now wake too
        late for the next event).
        """
        kernel = self.kernel
        target = max(self._base_virtual + (RealClock.monotonic() - self._base_real),
                     kernel.now)
        self.sim.run_to(target)
        assert self._nursery is not None
        self._after_run(self._nursery)
        nxt = kernel.peek()
        if nxt is not None and nxt < self._wake_at:
            self.kick()
        return target

    def _after_run(self, nursery: trio.Nursery) -> None:
        if self.unsent:
            self.unsent = [streamed for streamed in self.unsent if streamed.flush()]
        if self.on_progress is not None:
            self.on_progress()
        if self._waiters:
            still = []
            for req, event in self._waiters:
                if req.done:
                    event.set()
                else:
                    still.append((req, event))
            self._waiters = still
        while self._io:
            proc, fn, args = self._io.pop(0)
            nursery.start_soon(self._do_io, proc, fn, args)

    async def _do_io(self, proc: Any, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        try:
            outcome: tuple[bool, Any] = (True, await fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the parked process
            outcome = (False, exc)
        self.kernel.wake(proc, outcome)
        self.kick()

    def call_blocking(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Run ``await fn(*args)`` for the running virtual process: park it while a trio
        task does the I/O (outside a process, or before ``run``, block the thread)."""
        proc = self.kernel.current
        if proc is None or self._nursery is None:
            return run_blocking(fn, *args)
        self._io.append((proc, fn, args))
        self.kick()
        ok, value = self.kernel.park("net")
        if not ok:
            raise value
        return value

    async def _until_done(self, req: Any) -> None:
        if req.done:
            return
        event = trio.Event()
        self._waiters.append((req, event))
        self.kick()
        await event.wait()

    # -- the handler ---------------------------------------------------------------------
    def answer_now(self, request: RequestEvent, body: Body,
                   peer: Peer) -> Reply | Awaitable[Reply] | None:
        """The answer to a request, without a trio task where possible: a ping at once;
        a WSGI request is submitted and the simulation run up to now, which often
        completes it (else the awaitable that waits for it). None: call :meth:`handle`.
        """
        if self.inst.stopped:
            return NO_REPLY
        if isinstance(request, Ping):
            return self.ping()
        if (isinstance(request, Request) and request.modifier1 in (0, 30)
                and self._nursery is not None):
            req, wire = self.submit_wsgi(request, self._submit_streamed, body, peer)
            self.step()
            if req.done:
                return _http_reply(req.response, wire)
            return self._reply_when_done(req, wire)
        return None

    async def handle(self, request: RequestEvent, body: Body, peer: Peer) -> Reply:
        """Answer one request (see the module doc)."""
        if self.inst.stopped:
            return NO_REPLY
        if isinstance(request, Request):
            return await self._wsgi(request, body, peer)
        if not isinstance(body, bytes):  # a plugin's payload (cache value): in memory
            body = body.read()
        if isinstance(request, Ping):
            return self.ping()
        action = self.action(request, body)
        if action is not None:
            return await self._in_worker(action, peer)
        return self.refuse(request)

    def _submit(self, wire: WireRequest, body: Body, peer: Peer, method: str = "",
                path: str = "") -> Any:
        if not isinstance(body, bytes) and self.sim.mode == "fork":
            body = body.read()  # the forked worker gets the request's bytes, not our file
        if isinstance(body, bytes):
            req = self.sim.submit(method, path, body=body)
        else:  # the app reads it from the file (see _wire), never all in memory
            req = self.sim.submit(method, path)
            wire.body = body
            cl = last_value(wire.vars, b"CONTENT_LENGTH")
            req.body_length = content_length(cl) if cl is not None else 0
        req.net = wire
        if peer.addr:
            req.remote_addr = peer.addr
        return req

    def _submit_streamed(self, wire: WireRequest, method: str, path: str, body: Body,
                         peer: Peer) -> Any:
        """``submit_wsgi``'s ``submit`` for a client's request: the worker writes the
        reply to the client's connection as it goes."""
        wire.stream = peer.stream
        return self._submit(wire, body, peer, method, path)

    async def _reply_when_done(self, req: Any, wire: WireRequest) -> Reply:
        await self._until_done(req)
        return _http_reply(req.response, wire)

    async def _wsgi(self, request: Request, body: Body, peer: Peer) -> Reply:
        refused = self.refuse_wsgi(request)
        if refused is not None:
            return refused
        req, wire = self.submit_wsgi(request, self._submit_streamed, body, peer)
        self.kick()
        return await self._reply_when_done(req, wire)

    async def _in_worker(self, action: Callable[[], Reply], peer: Peer) -> Reply:
        wire = WireRequest(control=action)
        req = self._submit(wire, b"", peer)
        self.kick()
        await self._until_done(req)
        return worker_reply(req, wire, action)


def worker_reply(req: Any, wire: WireRequest, action: Callable[[], Reply]) -> Reply:
    """The reply to a plugin's request a worker served (``req`` is done)."""
    if wire.ran:
        return wire.result if isinstance(wire.result, Reply) else NO_REPLY
    response = req.response
    if response is None or response.reason.startswith(("connection closed:",
                                                       "connection refused:")):
        return NO_REPLY
    return action()  # no app loaded: the plugin still answers (from the hub)


def _http_reply(response: Any, wire: WireRequest) -> Reply:
    """The raw HTTP reply uWSGI writes for a finished simulated request.

    When the simulator records every byte written on the request's connection
    (``Response.raw``: headers sent with the first body write, ``uwsgi.send``,
    ``sendfile``, ``disconnect``...), those bytes are the reply. Otherwise it is built
    from the status and headers the app gave ``start_response``.
    """
    streamed = wire.streamed
    rest = streamed.rest() if streamed is not None else b""
    if response is None:
        return NO_REPLY
    if streamed is not None:  # the worker wrote to the client: the rest, if any
        return Reply(head=RawResponse(), body=rest) if rest else NO_REPLY
    raw = getattr(response, "raw", None)
    if raw is not None:
        return Reply(head=RawResponse(), body=raw) if raw else NO_REPLY
    if response.reason.startswith(("connection closed:", "connection refused:")):
        return NO_REPLY  # harakiri, worker death, instance stopped: nothing was sent
    if wire.status is not None:
        head = HttpResponse(
            status=str(wire.status).encode("latin-1"),
            headers=tuple((str(k).encode("latin-1"), str(v).encode("latin-1"))
                          for k, v in wire.headers),
        )
        return Reply(head=head, body=response.body)
    if response.status is None:
        return NO_REPLY
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    head = HttpResponse(
        status=f"{response.status} {phrase}".encode("latin-1"),
        headers=tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers),
    )
    return Reply(head=head, body=response.body)
