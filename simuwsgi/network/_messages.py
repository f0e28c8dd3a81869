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
* ``connect``/``close``/``recv``, ``async_send_message``, ``recv_block``,
  ``recv_frame`` on virtual stream descriptors (``simuwsgi.network._sockets``);
  ``fcgi`` against ``Cluster.add_fastcgi`` responders (``_fastcgi``); the ``erlang_*``
  functions against ``Cluster.add_erlang`` nodes (``_erlang``).
* ``add_probe(signal, "connect", "ip:port"[, timeout, freq])``: 1.4's probeconnect
  plugin (``plugins/probeconnect``), run by the master on its once-a-second timeout
  event: every ``freq`` cycles a non-blocking connect; refused, or not connected
  within ``timeout`` cycles, is bad; the signal is routed on the first bad result and
  on the first good one after it. Other probes (``pg``): ``unable to find probe``,
  ``ValueError``. 1.4 also counted a cycle per master event, not only per second.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .._errors import NotSimulatedError, SimulationError
from ..protocol import UnknownRequest, decode_header, encode_packet, encode_vars
from ..server._pyarg import no_kwargs, parser
from ..server.interface import AFTER_REAP
from ._erlang import erlang_functions
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


#: 1.4's ``MAX_PROBES``.
MAX_PROBES = 64
#: The probes the simulated 1.4 build registered: ``connect`` (the probeconnect
#: plugin); ``pg`` (probepg) needs PostgreSQL, so it is absent, as without the plugin.
PROBES = frozenset({"connect"})


class Probe:
    """One entry of 1.4's probe table (``struct uwsgi_signal_probe``)."""

    def __init__(self, sig: int, args: str, timeout: int, freq: int) -> None:
        self.sig = sig
        self.args = args
        self.timeout = timeout
        self.freq = freq
        self.cycles = 0
        self.bad = False
        self.stream: Any = None  # the connection being tried (up->fd)

    def reset(self) -> None:
        """Close the probe's connection: ``cycles = 0; close(fd); fd = -1``."""
        self.cycles = 0
        if self.stream is not None:
            self.stream.abandon()
        self.stream = None


class _Iter:
    """1.4's ``uwsgi._Iter``: the chunks of a reply, in the reads 1.4 made."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
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
        #: The descriptors ``uwsgi.connect``/``erlang_connect`` gave out (one table for
        #: the node: a virtual process does not inherit or close another's).
        self.fds: dict[int, Any] = {}
        #: ``ushared->probes``: shared by every process, run by the master.
        self.probes: list[Probe] = []
        self._loop_started = False
        self._ticking = False
        self._closed = False

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
        proc = self._process(reason)
        kernel = self.inst.kernel
        pending = [len(packets)]

        def done(_ok: bool, _value: Any) -> None:
            pending[0] -= 1
            if not pending[0]:
                kernel.wake(proc, None)

        # a cluster imported it before the clock patch (it imports trio): see Cluster
        from ._raw import RawExchange

        net = self.network
        assert net is not None  # _process checked it
        src = getattr(self.inst, "node", "")
        exchanges = [RawExchange(net, src, address,
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
        streams = self.fds
        p_connect = parser("s|i:connect")
        p_fd = parser("i:close")
        p_recv = parser("i|i:recv")
        p_async = parser("iiiO:async_send_message")
        p_block = parser("ii|i:recv_block")

        def stream_of(fd: int) -> Any:
            """The stream socket ``fd`` names (None: no descriptor, or an Erlang one)."""
            stream = streams.get(fd)
            return stream if hasattr(stream, "wait_readable") else None

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

            timeout = (values[1] if len(values) > 1 else 0) or self._timeout()
            stream = Stream(self.network, getattr(inst, "node", ""),  # type: ignore[arg-type]
                            address, timeout, done)
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
            stream = stream_of(values[0])
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
            stream = stream_of(fd)
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
            stream = stream_of(fd)
            if fd < 0:
                return None
            got = bytearray()
            remains = size
            while remains > 0:
                inst.log(f"{remains} {size} {timeout}")
                if stream is None:
                    break  # poll() says POLLNVAL, read() fails: no block
                if not stream.wait_readable(
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

            stream = stream_of(args[0])
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

        p_fcgi = parser("sO|ii:fcgi")

        def fcgi(*args: Any, **kw: Any) -> Any:
            no_kwargs("fcgi", kw)
            values = p_fcgi(args)
            fd = connect(values[0], self._timeout())
            if fd < 0:
                return None
            stream = streams.pop(fd)
            if not isinstance(values[1], dict):
                return None
            from ._fastcgi import STDIN, STDOUT, begin_request, fcgi_param, fcgi_record

            out = [begin_request()]
            out += [fcgi_param(k, v) for k, v in values[1].items()
                    if type(k) is bytes and type(v) is bytes]
            out.append(fcgi_record(4, b""))
            stdin_fd = values[2] if len(values) > 2 else -1
            stdin_size = values[3] if len(values) > 3 else 0
            if stdin_fd > -1 and stdin_size:
                source = stream_of(stdin_fd)
                if source is None:
                    raise NotSimulatedError(
                        "uwsgi.fcgi() reading its stdin from a descriptor other than a "
                        "uwsgi.connect() one is not simulated")
                while stdin_size > 0:
                    source.wait_readable(kernel, None, f"fcgi stdin {stdin_fd}")
                    chunk = source.read(min(0xFFFF, stdin_size))
                    if not chunk:
                        break  # 1.4 sends empty records for ever here; stop instead
                    out.append(fcgi_record(STDIN, chunk))
                    stdin_size -= len(chunk)
            out.append(fcgi_record(STDIN, b""))
            stream.write(b"".join(out))

            def read_exactly(n: int) -> bytes | None:
                got = b""
                while len(got) < n:
                    stream.wait_readable(kernel, None, "fcgi reply")
                    data = stream.read(n - len(got))
                    if not data:
                        return None
                    got += data
                return got

            def records() -> Iterator[bytes]:  # py_fcgi_iterator, one record a step
                while True:
                    head = read_exactly(8)
                    if head is None:
                        return
                    size = head[4] << 8 | head[5]
                    content = read_exactly(size + head[6]) if size + head[6] else b""
                    if content is None or head[1] != STDOUT or not size:
                        return
                    yield content[:size]

            return _Iter(records())

        p_probe = parser("Bss|ii:add_probe")

        def add_probe(*args: Any, **kw: Any) -> None:
            no_kwargs("add_probe", kw)
            values = p_probe(args)
            sig, kind, probe_args = values[:3]
            timeout = (values[3] if len(values) > 3 else 0) or self._timeout()
            freq = (values[4] if len(values) > 4 else 0) or 1
            if len(self.probes) >= MAX_PROBES:
                inst.log(f"you can register max {MAX_PROBES} probes !!!")
                raise ValueError("unable to add probe")
            if kind not in PROBES:
                inst.log(f'unable to find probe "{kind}" !!!')
                raise ValueError("unable to add probe")
            self._process("add_probe")
            self.probes.append(Probe(sig, probe_args[:1023], timeout, freq))
            inst.record("legacy.add_probe", None, sig=sig, probe=kind, args=probe_args)
            if self._loop_started and not self._ticking:
                self._schedule_probes()

        return {"connect": connect, "close": close, "recv": recv,
                "async_send_message": async_send_message, "recv_block": recv_block,
                "recv_frame": recv_frame, "fcgi": fcgi, "add_probe": add_probe,
                **erlang_functions(self)}

    # -- probes (the master's) ------------------------------------------------------------
    def master_loop_started(self) -> None:
        self._loop_started = True
        if self.probes:
            self._schedule_probes()

    def _schedule_probes(self) -> None:
        inst = self.inst
        self._ticking = True
        inst.kernel.at(inst.next_tick(inst.kernel.now), self._probe_cycle,
                       priority=AFTER_REAP)

    def _probe_cycle(self) -> None:
        """The master loop's timeout event: every probe's ``cycles`` grows and
        ``connect_prober_callback(-1, probe)`` runs."""
        inst = self.inst
        if inst.stopped or self._closed:
            return
        for probe in self.probes:
            probe.cycles += 1
            if probe.stream is not None:
                if probe.cycles > probe.timeout:
                    probe.reset()
                    self._bad(probe)
            elif probe.cycles % probe.freq == 0:
                self._probe_connect(probe)
        self._schedule_probes()

    def _probe_connect(self, probe: Probe) -> None:
        host, sep, _port = probe.args.rpartition(":")
        if self.network is None or not sep or (host and not _is_ip(host)):
            self._bad(probe)  # uwsgi_connect() fails at once
            return
        from ._sockets import Stream

        def done(ok: bool, _value: Any) -> None:  # the master's write event on its fd
            if probe.stream is not stream:
                return  # given up (timeout) meanwhile
            probe.reset()
            if not ok:
                self._bad(probe)
            elif probe.bad:
                probe.bad = False
                self._signal(probe)

        stream = Stream(self.network, getattr(self.inst, "node", ""), probe.args, 1e9, done)
        probe.stream = stream

    def _bad(self, probe: Probe) -> None:
        if not probe.bad:
            probe.bad = True
            self._signal(probe)

    def _signal(self, probe: Probe) -> None:
        """``uwsgi_route_signal``: the master delivers the probe's signal."""
        self.inst.record("legacy.probe", None, sig=probe.sig, args=probe.args, bad=probe.bad)
        signals = self.inst.subsystems.get("signals")
        if signals is not None:
            signals.route(probe.sig)

    def close(self) -> None:
        self._closed = True

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
