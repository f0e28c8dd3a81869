"""1.4's generic uwsgi client functions on the virtual network (``legacy=True`` only).

``uwsgi.send_message``, ``send_multi_message`` and ``send_multicast_message`` as the
1.4 Python plugin had them (``git show uwsgi-1.4:plugins/python/uwsgi_pymodule.c``,
``core/protocol.c``), run by a ``legacy=True`` node; the other node answers with its
own codec and workers, as for ``uwsgi.rpc`` (``simuwsgi.network._remote``). 1.4's
Python 3 build reads ``PyString`` as ``bytes``, so:

* ``send_message(dest, m1, m2, obj[, timeout, fd, cl])``: ``dest`` is ``b"ip:port"``
  (an ``int`` fd is not simulated; a ``str`` is neither, so the answer is None, with a
  simuwsgi warning); ``obj``: a dict becomes uwsgi vars (only its ``bytes`` keys and
  values: the others are skipped, and a dict left empty logs ``empty python
  dictionary`` and sends nothing), ``bytes`` go as they are, anything else as
  ``marshal.dumps(obj, 1)``; the payload size is a 16-bit field (a longer one is cut).
  The host must be an IP (1.4 uses ``inet_addr``). A failed connect (refused, no
  answer within ``timeout``, default ``--socket-timeout``) gives None; otherwise a
  ``uwsgi._Iter`` over the reply: for a raw HTTP reply (``b"HTTP"``) those 4 bytes then
  the rest in reads of up to 4096 bytes; for a uwsgi packet the payload (without its
  header), in reads of up to 4096 bytes. No reply within ``timeout``: nothing. Unlike
  1.4, where the reply is read as the iterator is consumed, the whole exchange happens
  in the call (virtual time passes there).
* ``send_multi_message(((b"ip", port, obj), ...), m1, m2, timeout)``: only
  modifier1 33 (marshal) sends anything (1.4 leaves the descriptors of the others
  uninitialised: ``NotSimulatedError``). 1.4's reply loop is commented out (``TODO
  fix``): when a node answers or closes within ``timeout`` the caller polls forever
  (the worker hangs until harakiri); when none does it logs ``timeout on multiple send
  !`` and returns None; a failed connect returns None; an empty tuple returns ``()``.
* ``send_multicast_message(group, bytes)``: packet 74 to the ``--cluster`` group (its
  masters ignore it, as 1.4's did); True once sent, None for a UNIX path (no such
  socket).
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import NotSimulatedError, SimulationError
from ..protocol import UnknownRequest, decode_header, encode_packet, encode_vars
from ..server._pyarg import no_kwargs, parser
from ._legacy import send_datagram
from ._network import _is_ip

if TYPE_CHECKING:
    from ..server.interface import Instance
    from ._network import Network
    from ._raw import RawExchange

__all__ = ["LegacyNet"]

#: 1.4's ``UWSGI_MODIFIER_MULTICAST`` and ``UWSGI_MODIFIER_MESSAGE_MARSHAL``.
MULTICAST = 74
MESSAGE_MARSHAL = 33
#: What one ``read()`` of the reply gives at most (1.4's buffer).
READ_SIZE = 4096


class _Iter:
    """1.4's ``uwsgi._Iter``: the chunks of a reply, in the reads 1.4 made."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)

    def __iter__(self) -> _Iter:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)


_Iter.__module__ = "uwsgi"


def reply_chunks(data: bytes) -> list[bytes]:
    """The items ``uwsgi._Iter`` yields for a reply's bytes (``uwsgi_Iter_next``)."""
    if len(data) < 4:
        return []
    header = decode_header(data)
    if header.modifier1 == ord("H"):
        rest = data[4:]
        return [data[:4]] + [rest[i:i + READ_SIZE] for i in range(0, len(rest), READ_SIZE)]
    body = data[4:4 + header.pktsize]
    return [body[i:i + READ_SIZE] for i in range(0, len(body), READ_SIZE)]


class LegacyNet:
    """The uwsgi client functions of a ``legacy=True`` node (see the module doc)."""

    @classmethod
    def create(cls, inst: Instance) -> LegacyNet | None:
        return cls(inst) if getattr(inst, "legacy", False) else None

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.network: Network | None = getattr(inst, "cluster_network", None)

    def facade_functions(self) -> dict[str, Any]:
        return {}  # installed with the other legacy names (simuwsgi.subsystems.legacy)

    # -- helpers ---------------------------------------------------------------------------
    def _timeout(self) -> int:
        """``uwsgi.shared->options[UWSGI_OPTION_SOCKET_TIMEOUT]`` (``set_option(2, n)``)."""
        table = getattr(self.inst, "legacy_options", None)
        return table[2] if table else self.inst.opts.int("socket-timeout", 4)

    def _encode(self, obj: Any) -> bytes | None:
        """dict -> vars (bytes pairs only), bytes -> as is, other -> marshal v1; None
        (logged) for a dict with nothing to send or what marshal refuses."""
        if isinstance(obj, dict):
            payload = encode_vars([(k, v) for k, v in obj.items()
                                   if type(k) is bytes and type(v) is bytes])
            if len(payload) <= 4:
                self.inst.log("empty python dictionary")
                return None
            return payload
        if isinstance(obj, bytes):
            return obj
        try:
            return marshal.dumps(obj, 1)
        except ValueError as exc:  # PyErr_Print()
            self.inst.log(f"{type(exc).__name__}: {exc}")
            return None

    def _exchanges(self, packets: list[tuple[str, bytes]], modifier1: int, modifier2: int,
                   timeout: float, reason: str) -> list[RawExchange]:
        """One connection per ``(address, payload)`` from the calling virtual process,
        all at once; the process is parked until every one has ended."""
        if self.network is None:
            raise NotSimulatedError(
                f"uwsgi.{reason}() needs another node: run this node in a "
                f"simuwsgi.Cluster (a lone Simulation has no network)")
        kernel = self.inst.kernel
        proc = kernel.current
        if proc is None:
            raise SimulationError(f"uwsgi.{reason}() must be called from the app (a "
                                  f"virtual process), not from the test")
        pending = [len(packets)]

        def done(_ok: bool, _value: Any) -> None:
            pending[0] -= 1
            if not pending[0]:
                kernel.wake(proc, None)

        # a cluster imported it before the clock patch (it imports trio): see Cluster
        from ._raw import RawExchange

        src = getattr(self.inst, "node", "")
        exchanges = [RawExchange(self.network, src, address,
                                 UnknownRequest(modifier1=modifier1 & 0xFF,
                                                modifier2=modifier2 & 0xFF,
                                                payload=payload[:0xFFFF]),
                                 b"", timeout, done)
                     for address, payload in packets]
        kernel.park(f"{reason} {', '.join(a for a, _p in packets)}")
        return exchanges

    # -- the functions ----------------------------------------------------------------------
    def legacy_functions(self) -> dict[str, Callable[..., Any]]:
        p_send = parser("OiiO|iii:send_message")
        p_multicast = parser("ss#:send_multicast_message")
        inst = self.inst

        def send_message(*args: Any, **kw: Any) -> Any:
            no_kwargs("send_message", kw)
            values = p_send(args)
            dest, modifier1, modifier2, obj = values[:4]
            timeout = values[4] if len(values) > 4 else self._timeout()
            fd = values[5] if len(values) > 5 else -1
            if isinstance(dest, int) or fd >= 0:
                raise NotSimulatedError(
                    "uwsgi.send_message() on a file descriptor (an int destination, or "
                    "fd passing) is not simulated: give the destination as b'ip:port'")
            if not isinstance(dest, bytes):
                inst.log(f"*** simuwsgi WARNING: uwsgi.send_message(): the destination "
                         f"{dest!r} is not bytes: 1.4 on Python 3 reads it as neither an "
                         f"fd nor an address and returns None ***")
                return None
            address = dest.decode("utf-8", "replace")
            host = address.rpartition(":")[0]
            if host and not _is_ip(host):
                return None  # inet_addr() cannot read it: the connect fails
            payload = self._encode(obj)
            if payload is None:  # 1.4 connected, sent nothing: no reply will come
                return None if not isinstance(obj, dict) else _Iter([])
            (exchange,) = self._exchanges([(address, payload)], modifier1, modifier2,
                                          timeout or self._timeout(), "send_message")
            if not exchange.connected:
                return None
            return _Iter(reply_chunks(exchange.reply or b""))

        def send_multicast_message(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("send_multicast_message", kw)
            group, message = p_multicast(args)
            if ":" not in group:
                return None  # a UNIX datagram path: no such socket here
            send_datagram(inst, group, MULTICAST, message)
            return True

        def send_multi_message(*args: Any, **kw: Any) -> Any:
            no_kwargs("send_multi_message", kw)
            if len(args) < 4:
                raise TypeError(f"send_multi_message() takes 4 arguments ({len(args)} "
                                f"given)")
            nodes, modifier1, modifier2, timeout = args[:4]
            if not isinstance(nodes, tuple) or not all(
                    isinstance(x, int) for x in (modifier1, modifier2, timeout)):
                return None
            return self._multi(nodes, modifier1, modifier2, timeout)

        return {"send_message": send_message, "send_multi_message": send_multi_message,
                "send_multicast_message": send_multicast_message,
                **self._fd_functions()}

    def _process(self, reason: str) -> Any:
        """The calling virtual process, on a node with a network (or a clear error)."""
        if self.network is None:
            raise NotSimulatedError(
                f"uwsgi.{reason}() needs another node: run this node in a "
                f"simuwsgi.Cluster (a lone Simulation has no network)")
        proc = self.inst.kernel.current
        if proc is None:
            raise SimulationError(f"uwsgi.{reason}() must be called from the app (a "
                                  f"virtual process), not from the test")
        return proc

    def _fd_functions(self) -> dict[str, Callable[..., Any]]:
        """``connect``/``close``/``recv`` and the 1.4 functions on their descriptors
        (``simuwsgi.network._sockets``)."""
        inst = self.inst
        kernel = inst.kernel
        streams: dict[int, Any] = {}
        p_connect = parser("s|i:connect")
        p_fd = parser("i:close")
        p_recv = parser("i|i:recv")
        p_async = parser("iiiO:async_send_message")
        p_block = parser("ii|i:recv_block")

        def connect(*args: Any, **kw: Any) -> int:
            no_kwargs("connect", kw)
            values = p_connect(args)
            proc = self._process("connect")
            address = values[0]
            host, sep, _port = address.rpartition(":")
            if not sep or (host and not _is_ip(host)):
                return -1  # a UNIX path, or a name inet_addr() cannot read
            from ._sockets import FIRST_FD, Stream

            box: list[bool] = []

            def done(ok: bool, _value: Any) -> None:
                box.append(ok)
                kernel.wake(proc, None)

            stream = Stream(self.network, getattr(inst, "node", ""), address,  # type: ignore[arg-type]
                            (values[1] if len(values) > 1 else 0) or self._timeout(), done)
            kernel.park(f"connect {address}")
            if not box[0]:
                return -1
            fd = max(streams, default=FIRST_FD - 1) + 1
            streams[fd] = stream
            return fd

        def close(*args: Any, **kw: Any) -> None:
            no_kwargs("close", kw)
            (fd,) = p_fd(args)
            streams.pop(fd, None)

        def recv(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("recv", kw)
            values = p_recv(args)
            stream = streams.get(values[0])
            if stream is None:
                return None
            stream.wait_readable(kernel, None, f"recv({values[0]})")
            data = stream.read(min(values[1] if len(values) > 1 else 4096, 4096))
            return data or None

        def async_send_message(*args: Any, **kw: Any) -> None:
            no_kwargs("async_send_message", kw)
            fd, modifier1, modifier2, obj = p_async(args)
            if fd < 0:
                return None
            payload = self._encode(obj)
            if payload is None:
                return None
            stream = streams.get(fd)
            if stream is None:
                inst.log("write(): Bad file descriptor")
                return None
            size = len(payload) & 0xFFFF
            stream.write(encode_packet(modifier1 & 0xFF, modifier2 & 0xFF, payload[:size]))
            return None

        def recv_block(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("recv_block", kw)
            values = p_block(args)
            fd, size = values[0], min(values[1], 4096)
            timeout = values[2] if len(values) > 2 else -1
            stream = streams.get(fd)
            if fd < 0:
                return None
            got = bytearray()
            remains = size
            while remains > 0:
                inst.log(f"{remains} {size} {timeout}")
                if stream is None or not stream.wait_readable(
                        kernel, None if timeout < 0 else timeout, f"recv_block({fd})"):
                    inst.log("error waiting for block data")
                    break
                data = stream.read(min(remains, size))
                if not data:
                    break
                got += data
                remains -= len(data)
            return bytes(got) if len(got) == size else None

        def recv_frame(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("recv_frame", kw)
            if len(args) != 3 or not isinstance(args[0], int) or not all(
                    isinstance(c, bytes) and len(c) == 1 for c in args[1:]):
                raise TypeError("recv_frame() takes an int and two bytes of length 1")
            from ._sockets import FrameState, read_frame

            stream = streams.get(args[0])
            if stream is None:
                return None
            state = getattr(stream, "frame_state", None)
            if state is None:
                state = stream.frame_state = FrameState(inst.buffer_size)
            frame = read_frame(stream, state, inst.log, lambda: stream.wait_readable(
                kernel, None, f"recv_frame({args[0]})"))
            if frame is None:
                kernel.park("recv_frame: EOF in a frame, 1.4 reads 0 bytes for ever")
            return frame

        return {"connect": connect, "close": close, "recv": recv,
                "async_send_message": async_send_message, "recv_block": recv_block,
                "recv_frame": recv_frame}

    def _multi(self, nodes: tuple[Any, ...], modifier1: int, modifier2: int,
               timeout: int) -> Any:
        """``py_uwsgi_send_multi_message`` (see the module doc)."""
        if not nodes:
            return ()
        if modifier1 != MESSAGE_MARSHAL:
            raise NotSimulatedError(
                f"uwsgi.send_multi_message() with modifier1 {modifier1}: 1.4 sends only "
                f"modifier1 {MESSAGE_MARSHAL} (marshal) and polls uninitialised "
                f"descriptors for any other (undefined behaviour)")
        sent = []
        for node in nodes:
            if not (isinstance(node, tuple) and len(node) >= 3 and type(node[0]) is bytes
                    and isinstance(node[1], int)):
                return None
            try:
                payload = marshal.dumps(node[2], 1)
            except ValueError as exc:  # PyErr_Print()
                self.inst.log(f"{type(exc).__name__}: {exc}")
                return None
            if len(payload) > 0xFFFF:
                self.inst.log("invalid object (marshalled) size")
                return None
            sent.append((f"{node[0].decode('utf-8', 'replace')}:{node[1]}", payload))
        exchanges = self._exchanges(sent, modifier1, modifier2, timeout or 1,
                                    "send_multi_message")
        if not all(e.connected for e in exchanges):
            return None
        if any(e.reply is not None for e in exchanges):
            self.inst.record("legacy.multi_message_spins", None, nodes=len(nodes))
            self.inst.kernel.park("send_multi_message: polling forever (1.4's reply loop "
                                  "is commented out)")
        self.inst.log("timeout on multiple send !")
        return None
