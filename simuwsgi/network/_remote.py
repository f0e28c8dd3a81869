"""Remote calls between a cluster's nodes: uWSGI's client and server over virtual links.

The ``net`` subsystem of a cluster's node (:class:`VirtualNet`) is the real-socket one
(:class:`simuwsgi.net.Net`: the facade's ``remote_rpc``/``remote_cache``/
``remote_signal`` and their result mapping) with another transport: each call is one
:class:`Exchange` on the cluster's network, as uWSGI's clients make them (a new
connection per call, no retries):

* connect: the SYN crosses the link and the SYN-ACK comes back; a node that does not
  listen on the port, or has stopped, answers with a reset (refused, ``OSError``); an
  IP no node has, or a cut link, leaves the connect waiting until ``--socket-timeout``
  (4 s) passes (``TimeoutError``);
* the request's bytes (:mod:`simuwsgi.protocol`'s encoding) cross the link; the remote
  node decodes them with the server codec and answers as its plugins do
  (:class:`simuwsgi.net.Plugins`): a ping at once, a WSGI request (modifier1 0) and
  RPC/signal/cache/spool in one of its workers (queued like any request: a busy node answers late, a node calling itself
  with its only worker waits for its own timeout);
* the reply's bytes (none: the remote closed) come back; the client waits for them at
  most ``--socket-timeout``.

The calling virtual process is parked in virtual time meanwhile; everything else (the
remote node, the caller's other workers) goes on.

HTTP between nodes: an exchange whose request is raw bytes speaks HTTP (``cluster.
request`` to an ``--http-socket`` or an ``--http`` router port): the node parses the head
as ``--http-socket`` does (:func:`simuwsgi.protocol.parse_http_request`) and the reply
is read as an HTTP head and a body ending at close. A uwsgi packet sent to an HTTP port,
or HTTP sent to a uwsgi port, gets no answer (each parser waits for the rest of what it
expects), until the client's timeout. The router ports (``--fastrouter``, ``--http``)
are served by the node's ``routers`` subsystem (:mod:`simuwsgi.network._routers`).

A UNIX socket's path names a socket of the calling node (``network._network``).
Requests written a piece at a time, cut by the client's FIN or silence:
:mod:`simuwsgi.network._sockets`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..net._client import Reply, ReplyReader, request_bytes
from ..net._node import NO_REPLY, Plugins, _http_reply, worker_reply
from ..net._subsystem import Net
from ..net._wire import WireRequest
from ..protocol import (
    NEED_DATA,
    SERVER,
    Connection,
    ConnectionClosed,
    Data,
    EndOfMessage,
    HttpResponse,
    NoReply,
    Ping,
    RawResponse,
    RemoteProtocolError,
    Request,
    RequestEvent,
    encode_http_head,
    last_value,
    parse_http_request,
    response_protocol,
)
from ..protocol._http import read_http_head
from ._network import Endpoint, Network

if TYPE_CHECKING:
    from ..server.master import Instance

__all__ = ["Exchange", "VirtualNet", "http_bytes", "read_request", "serve", "serve_http"]

#: What a handshake segment (SYN, SYN-ACK, RST, FIN) weighs on a link.
_SEGMENT = 0
#: What the parser behind each kind of port reads: uwsgi packets or HTTP.
_SPEAKS = {"uwsgi": "uwsgi", "fastrouter": "uwsgi", "http": "http", "http-router": "http",
           "fastcgi": "fastcgi"}
_PORT_NAMES = {"uwsgi": "a --socket port", "fastrouter": "a --fastrouter port",
               "http": "an --http-socket port", "http-router": "an --http router port",
               "fastcgi": "a FastCGI responder's port (Cluster.add_fastcgi)"}


class Exchange:
    """One connection from node ``src`` to ``address``: connect, send ``request`` (a
    uwsgi packet's event, or the raw bytes of an HTTP request), read the reply;
    ``done(ok, reply_or_error)`` is called once."""

    def __init__(self, net: Network, src: str, address: str, request: RequestEvent | bytes,
                 body: bytes, timeout: float, done: Callable[[bool, Any], None]) -> None:
        self.net = net
        self.src = src
        self.address = address
        self.timeout = timeout
        self._done = done
        self.finished = False
        #: Set once the connection is established (a failure after is not a connect's).
        self.connected = False
        self.conn: Connection | None
        if isinstance(request, bytes):
            self.conn, self.out = None, request + body
        else:
            self.conn, self.out = request_bytes(request, body)
        self.dst: Endpoint | None = None
        kernel = net.kernel
        try:
            self.dst, port = net.resolve(src, address)
        except OSError as exc:  # a name no node has: fails at once
            kernel.call_soon(self._finish, False, exc)
            return
        self.port = port
        self._timer = kernel.schedule(timeout, self._timed_out, "connecting")
        if self.dst is not None:
            net.transmit(src, self.dst.name, _SEGMENT, self._syn)

    def _finish(self, ok: bool, value: Any) -> None:
        if not self.finished:
            self.finished = True
            self._done(ok, value)

    def _timed_out(self, what: str) -> None:
        self.net.record("net.timeout", src=self.src, address=self.address, during=what)
        self._finish(False, TimeoutError(f"{what} {self.address}: no answer in "
                                         f"{self.timeout:g} s (--socket-timeout)"))

    # -- on the remote node: the listening socket --------------------------------------
    def _syn(self) -> None:
        dst = self.dst
        assert dst is not None
        if self.port not in dst.ports or dst.inst.stopped or not dst.inst.ready:
            self.net.transmit(dst.name, self.src, _SEGMENT, self._refused)
            return
        self.net.transmit(dst.name, self.src, _SEGMENT, self._established)

    # -- back on the caller ---------------------------------------------------------------
    def _refused(self) -> None:
        if self._timer.active and not self.finished:
            self._timer.cancel()
            self.net.record("net.refused", src=self.src, address=self.address)
            self._finish(False, ConnectionRefusedError(f"connection to {self.address} "
                                                       f"refused"))

    def _established(self) -> None:
        if self.finished:
            return
        self._timer.cancel()
        self.connected = True
        dst = self.dst
        assert dst is not None
        self._timer = self.net.kernel.schedule(self.timeout, self._timed_out,
                                               "waiting for a reply from")
        protocol = dst.ports[self.port]
        if _SPEAKS[protocol] != ("uwsgi" if self.conn is not None else "http"):
            # each parser waits for the rest of what it expects: no answer
            self.net.record("net.unanswered", src=self.src, address=self.address,
                            why=_PORT_NAMES[protocol])
            return
        if protocol == "uwsgi":
            handler: Callable[..., None] = serve
        elif protocol == "http":
            handler = serve_http
        else:
            # a real node (simuwsgi.cluster_real) forwards to its real router
            handler = getattr(dst.inst, "forward", None) or dst.inst.subsystems["routers"].serve
        self.net.transmit(self.src, dst.name, len(self.out), handler, self.net, dst,
                          self.port, self.src, self.out, self._reply)

    def _reply(self, data: bytes) -> None:
        if self.finished:
            return  # the caller gave up: the bytes find a closed socket
        self._timer.cancel()
        conn = self.conn
        if conn is None:
            self._finish(True, _read_http_reply(data))
            return
        if data:
            conn.receive_data(data)
        conn.receive_data(b"")  # the server closes after its reply
        self._finish(True, ReplyReader(conn).next_reply())


def _read_http_reply(data: bytes) -> Reply:
    """An HTTP reply (head, then the body up to the close) as a client reads it."""
    if not data:
        return NO_REPLY
    try:
        parsed = read_http_head(data, True)
    except RemoteProtocolError:
        parsed = None
    if parsed is None:
        return Reply(head=RawResponse(), body=data)
    head, consumed = parsed
    return Reply(head=head, body=data[consumed:])


def http_bytes(result: Reply, protocol: bytes) -> bytes:
    """The bytes uWSGI writes for ``result`` on an HTTP connection."""
    head = result.head
    if isinstance(head, NoReply):
        return b""
    if isinstance(head, HttpResponse):
        return encode_http_head(head, protocol) + result.body
    return result.body


def serve(net: Network, node: Endpoint, port: int, peer: str, data: bytes,
          reply: Callable[[bytes], None], cut: str | None = None) -> None:
    """Node ``node`` got a connection's request bytes from ``peer`` on its uwsgi
    ``port``: answer them and send the reply's bytes (or just the close) back with
    ``reply``. ``cut``: the body ends early, the client having closed (``"closed"``)
    or gone silent (``"timeout"``; see ``network._sockets``)."""
    inst = node.inst
    forward = getattr(inst, "forward", None)
    if forward is not None:  # a real node (simuwsgi.cluster_real) answers by itself
        forward(net, node, port, peer, data, reply)
        return
    conn = Connection(SERVER, buffer_size=inst.buffer_size, max_vars=inst.max_vars)

    def answer(result: Reply) -> None:
        out = b"" if isinstance(result.head, NoReply) else conn.send_message(result.head,
                                                                            result.body)
        net.transmit(node.name, peer, len(out), reply, out)

    conn.receive_data(data)
    received = read_request(conn, partial=cut is not None)
    if received is None or inst.stopped or (cut and not isinstance(received[0], Request)):
        answer(NO_REPLY)  # what uWSGI refuses (see protocol), or a stopped node: close
        return
    request, body = received
    plugins = _plugins(inst)
    if isinstance(request, Ping):
        answer(plugins.ping())
        return
    if isinstance(request, Request):
        _serve_wsgi(net, node, peer, request, body, answer, cut)
        return
    action = plugins.action(request, body)
    if action is None:
        answer(plugins.refuse(request))
        return
    wire = WireRequest(control=action)
    req = _submit(net, node, peer, body, wire)
    req.on_done = lambda: answer(worker_reply(req, wire, action))


def serve_http(net: Network, node: Endpoint, port: int, peer: str, data: bytes,
               reply: Callable[[bytes], None], cut: str | None = None) -> None:
    """Node ``node`` got an HTTP request from ``peer`` on its ``--http-socket`` port
    (``cut``: as for :func:`serve`)."""
    inst = node.inst
    protocol = b"HTTP/1.0"

    def answer(result: Reply) -> None:
        out = http_bytes(result, protocol)
        net.transmit(node.name, peer, len(out), reply, out)

    try:
        head = parse_http_request(data, hostname=inst.hostname.encode(),
                                  server_port=str(port).encode(),
                                  remote_addr=net.nodes[peer].host.encode(),
                                  buffer_size=inst.buffer_size)
    except RemoteProtocolError as exc:
        inst.log(str(exc))
        head = None
    if head is None or inst.stopped:
        answer(NO_REPLY)
        return
    for line in head.warnings:
        inst.log(line)
    protocol = response_protocol(head.request.vars)
    _serve_wsgi(net, node, peer, head.request, data[head.consumed:], answer, cut)


def _submit(net: Network, node: Endpoint, peer: str, body: bytes, wire: WireRequest,
            method: str = "", path: str = "", cut: str | None = None) -> Any:
    # a cut body is shorter than its CONTENT_LENGTH, which wsgi.input reads up to
    length = last_value(wire.vars, b"CONTENT_LENGTH") if cut and wire.vars else None
    headers = [("Content-Length", length.decode("latin-1"))] if length is not None else None
    req = node.submit(method, path, body=body, headers=headers)
    req.net = wire
    req.remote_addr = net.nodes[peer].host
    req.body_end = cut
    return req


def _serve_wsgi(net: Network, node: Endpoint, peer: str, request: Request, body: bytes,
                answer: Callable[[Reply], None], cut: str | None = None) -> None:
    """A WSGI request for one of the node's workers; ``answer`` gets the reply."""
    plugins = _plugins(node.inst)
    refused = plugins.refuse_wsgi(request)
    if refused is not None:
        answer(refused)
        return
    req, wire = plugins.submit_wsgi(
        request, lambda wire, method, path: _submit(net, node, peer, body, wire, method, path, cut))
    req.on_done = lambda: answer(_http_reply(req.response, wire))


def read_request(conn: Connection, partial: bool = False
                 ) -> tuple[RequestEvent, bytes] | None:
    """The request and body a connection received whole (``partial``: or its head and
    the body so far), or None for what the server codec refuses (the node logs nothing
    more and closes)."""
    head: RequestEvent | None = None
    chunks: list[bytes] = []
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, Data):
                chunks.append(event.data)
            elif isinstance(event, EndOfMessage):
                return (head, b"".join(chunks)) if head is not None else None
            elif event is NEED_DATA or isinstance(event, ConnectionClosed):
                return (head, b"".join(chunks)) if partial and head is not None else None
            else:
                head = event  # type: ignore[assignment]
    except RemoteProtocolError:
        return None


def _plugins(inst: Instance) -> Plugins:
    plugins = getattr(inst, "plugins", None)
    if plugins is None:
        plugins = inst.plugins = Plugins(inst)  # type: ignore[attr-defined]
    return plugins


class VirtualNet(Net):
    """The ``net`` subsystem of a cluster's node: remote calls on the virtual network."""

    @classmethod
    def create(cls, inst: Instance) -> VirtualNet | None:
        return cls(inst) if getattr(inst, "network", None) == "virtual" else None

    def __init__(self, inst: Instance) -> None:
        super().__init__(inst)
        self.network: Network = inst.cluster_network  # type: ignore[attr-defined]

    def exchange(self, node: str, request: RequestEvent, body: bytes = b"") -> Reply:
        """One exchange for the calling virtual process, which is parked meanwhile."""
        kernel = self.inst.kernel
        proc = kernel.current

        def done(ok: bool, value: Any) -> None:
            kernel.wake(proc, (ok, value))

        Exchange(self.network, self.inst.node, node, request, body, self.timeout, done)
        ok, value = kernel.park(f"net {node}")
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]
