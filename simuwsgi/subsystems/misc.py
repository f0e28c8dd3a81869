"""The rest of the 2.0.30 ``uwsgi`` module: info, logging, request and socket helpers.

What it models (``plugins/python/uwsgi_pymodule.c``, ``wsgi_handlers.c``; ``shared/
spec/api.md`` §13-§16): the functions of the 2.0.30 name list that no other subsystem
provides, each with uWSGI's argument parsing and the result it gives in a process of
the simulated kind:

* ``mem()`` → ``(0, 0)`` (memory reporting is off in a simulation); ``logsize()`` → 0;
  ``listen_queue([n])`` → the backlog of socket ``n`` (``ValueError('unable to find
  socket N')``); ``set_warning_message`` → True (truncated to 80 chars with uWSGI's
  log line); ``alarm`` → None (recorded); ``log_this_request`` → None.
* per-request state: ``set_logvar``/``get_logvar``, ``add_var`` (``ValueError`` when the
  vars would overflow ``--buffer-size``), ``cl()`` (the body length),
  ``connection_fd()`` (a fixed fd number after the listen sockets).
* async helpers outside an async loop: ``async_sleep`` → ``b''``, ``suspend`` /
  ``green_schedule`` → True, ``wait_fd_read/write`` → ``OSError('unable to fd N to the
  event queue')``, ``ready_fd`` → -1.
* ``chunked_read([timeout])``/``chunked_read_nb()``: the chunks of a request sent with
  ``Transfer-Encoding: chunked``, parsed as ``core/chunked.c`` does, ``b""`` at the
  end; on a request that is not chunked, or a chunk that never completes, the
  blocking read fails after its timeout (``OSError('unable to receive chunked
  part')``) and the non-blocking one gives None; ``offload`` → ``b''`` (a stub in 2.0).
* the ``websocket_*`` functions on the request's connection (``simuwsgi.server.websocket``:
  the handshake needs a build with SSL; frames are written and read as uWSGI does);
  outside a request they fail with uWSGI's ``OSError`` messages.
* files: ``extract(path)`` reads a file (a missing file makes the calling process exit,
  as ``uwsgi_open_and_read`` does); ``parsefile(path)`` parses one uwsgi packet of
  modifier1 0 or 17 into a dict; ``embedded_data`` → ``ValueError('unable to find
  symbol NAME')``.

* the client connection (``simuwsgi.server.wire``): ``send([fd, ]data)`` writes raw bytes on
  the request's socket (``True``; ``fd`` 1/2 go to the log, the app's own fds are
  written), ``sendfile(file_or_name[, chunk, pos, filesize])`` streams a file into the
  response, ``disconnect()`` closes the connection, and ``start_response`` is the one
  ``uwsgi_spit`` also handed to the app. Outside a request: ``send(data)`` logs
  ``EBADF`` and returns None, ``disconnect()`` returns None, ``start_response`` and
  ``sendfile`` kill the process with SIGSEGV (observed on 2.0.30), as does ``send`` of
  anything that is not ``bytes``.

Names in ``NOT_SIMULATED`` exist (so ``hasattr`` is as in uWSGI) but raise
``simuwsgi.NotSimulatedError`` when called: they need real sockets, a real client
connection or uWSGI's routing engine.
"""

from __future__ import annotations

import errno
import operator
import os
from typing import TYPE_CHECKING, Any

from .._errors import NotSimulatedError
from ..server._pyarg import no_kwargs, parser
from ..server.config import socket_fds
from ..protocol._chunked import DEFAULT_LIMIT, NEED_MORE, ChunkedError, ChunkedReader
from ..protocol._websocket import server_frame
from ..server.websocket import ServerWebSocket
from ..server import wire as _wire
from ..server.wire import BuiltinFunction, segfault
from ..server.workers import _LogSink, content_length, packet_vars

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["NOT_SIMULATED", "Misc"]

#: Functions present in the simulated module that raise ``NotSimulatedError``.
NOT_SIMULATED: tuple[str, ...] = (
    "SymbolsImporter", "SymbolsZipImporter", "ZipImporter", "async_connect", "close",
    "connect", "is_connected", "recv", "route",
)

_WHY = {
    "async_connect": "it opens a real non-blocking socket",
    "connect": "it opens a real socket",
    "close": "it closes a real file descriptor",
    "is_connected": "it inspects a real socket",
    "recv": "it reads from a real socket",
    "route": "uWSGI's internal routing engine is not part of the simulator",
    "SymbolsImporter": "it imports modules from symbols linked into the uWSGI binary",
    "ZipImporter": "it imports from zip files embedded in the uWSGI binary",
    "SymbolsZipImporter": "it imports from zip files embedded in the uWSGI binary",
}


def _not_simulated(name: str) -> Any:
    def fn(*_args: Any, **kw: Any) -> Any:
        no_kwargs(name, kw)  # uWSGI refuses keywords before doing anything
        raise NotSimulatedError(f"uwsgi.{name}() is not simulated: {_WHY[name]}")

    fn.__name__ = name
    return fn


def _importer(name: str) -> type:
    def __init__(self: Any, *_args: Any, **_kw: Any) -> None:
        raise NotSimulatedError(f"uwsgi.{name} is not simulated: {_WHY[name]}")

    return type(name, (), {"__init__": __init__, "__module__": "uwsgi"})


class _RequestState:
    """Per-request C state the helpers read and write (logvars, added vars)."""

    __slots__ = ("log_forced", "logvars", "vars_size")

    def __init__(self) -> None:
        self.logvars: dict[bytes, bytes] = {}
        self.vars_size = 0
        self.log_forced = False


class Misc:
    """The helper functions no other subsystem owns."""

    @classmethod
    def create(cls, inst: Instance) -> Misc:
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.warning_message = b""
        self._states: dict[int, _RequestState] = {}
        self._stdout = _LogSink(inst)
        self.spit = self._make_spit()
        self.writeout = self._make_writeout()

    def _conn(self) -> Any:
        """The current request's ``wire.Connection`` (None outside a request)."""
        req = getattr(self.inst.kernel.current, "request", None)  # _request(), inlined
        if req is None:
            return None
        conn = getattr(req, "conn", None)
        if conn is None:  # mode='fork': the app runs in another OS process
            raise NotSimulatedError("the uwsgi connection functions (send, sendfile, "
                                    "disconnect, start_response) are not simulated in "
                                    "mode='fork'")
        return conn

    def _make_spit(self) -> Any:
        """``uwsgi.start_response``: the one ``uwsgi_spit`` function, also handed to the
        app; outside a request it dereferences NULL (observed: SIGSEGV)."""
        def uwsgi_spit(*args: Any, **kw: Any) -> Any:
            conn = self._conn()
            if conn is None:
                segfault(self.inst)
            return conn.spit(args, kw)

        if _wire._c is not None:  # the running request's spit without a Python frame
            return BuiltinFunction("uwsgi_spit", _wire._c.spitter(self.inst.kernel, uwsgi_spit))
        return BuiltinFunction("uwsgi_spit", uwsgi_spit)

    def _make_writeout(self) -> Any:
        """The write callable ``start_response`` returns: one global function acting on
        the current request, as uWSGI's ``up.wsgi_writeout``."""
        def uwsgi_write(*args: Any, **_kw: Any) -> None:
            conn = self._conn()
            if conn is not None:
                conn.uwsgi_write(*args)

        if _wire._c is not None:  # the running request's write without a Python frame
            return BuiltinFunction("uwsgi_write", _wire._c.writer(self.inst.kernel, uwsgi_write))
        return BuiltinFunction("uwsgi_write", uwsgi_write)

    def state(self) -> _RequestState:
        """The request structure of the current core (stale outside a request)."""
        proc = self.inst.kernel.current
        req = getattr(proc, "request", None)
        key = id(req) if req is not None else id(proc)
        st = self._states.get(key)
        if st is None:
            if len(self._states) > 1024:
                self._states.clear()
            st = self._states[key] = _RequestState()
        return st

    def request_state(self, req: Any) -> _RequestState | None:
        """The finished request's state (logvars, ``log_this_request``), forgotten."""
        return self._states.pop(id(req), None)

    def _request(self) -> Any:
        return getattr(self.inst.kernel.current, "request", None)

    def _websocket(self) -> ServerWebSocket | None:
        """The running request's WebSocket state, made on first use; None outside a
        request (uWSGI's stale request structure: every call fails)."""
        req = self._request()
        if req is None or req.conn is None:
            return None
        if req.websocket is None:
            proc = self.inst.kernel.current
            continuation = getattr(proc, "ws_continuation", None)
            if continuation is None:  # uWSGI's is one per process (a global)
                continuation = proc.ws_continuation = []  # type: ignore[union-attr]
            req.websocket = ServerWebSocket(self.inst, req, continuation)
        return req.websocket  # type: ignore[no-any-return]

    def _chunked_read(self, timeout: int, *, nonblocking: bool) -> bytes | None:
        """``uwsgi_chunked_read``: the next chunk of a chunked request body
        (``protocol/_chunked.py``). The simulated client has sent its whole body, so
        a chunk that is not all there never comes: the blocking read waits
        ``timeout`` (else ``--chunked-input-timeout``, else ``--socket-timeout``)
        virtual seconds and fails; the non-blocking one gives None (EAGAIN)."""
        req = self._request()
        if req is None:  # outside a request the stale fd fails
            raise OSError("unable to receive chunked part")
        reader = req.chunked_input
        if reader is None:
            opts = self.inst.opts
            reader = req.chunked_input = ChunkedReader(
                opts.int("chunked-input-limit", 0) or DEFAULT_LIMIT)
            if req.chunked:  # a body sent with a length is wsgi.input's: none here
                reader.feed(req.body)
        try:
            chunk = reader.read()
        except ChunkedError:
            raise OSError("unable to receive chunked part") from None
        if chunk is not NEED_MORE:
            return chunk
        if nonblocking:
            return None
        if timeout == 0:
            opts = self.inst.opts
            timeout = opts.int("chunked-input-timeout", 0) or opts.int("socket-timeout", 4)
        if timeout > 0:
            self.inst.kernel.sleep(timeout, "chunked_read")
        else:  # -1: until the client sends more, which it never does
            self.inst.kernel.park("chunked_read (no timeout)")
        raise OSError("unable to receive chunked part")

    def facade_functions(self) -> dict[str, Any]:
        inst = self.inst
        funcs: dict[str, Any] = {}
        for name in NOT_SIMULATED:
            if name.endswith("Importer"):
                funcs[name] = _importer(name)
            else:
                funcs[name] = _not_simulated(name)

        def mem(*_args: Any, **kw: Any) -> tuple[int, int]:
            no_kwargs("mem", kw)
            return (0, 0)

        def logsize(*_args: Any, **kw: Any) -> int:
            no_kwargs("logsize", kw)
            return 0

        p_lq = parser("|i:listen_queue")

        def listen_queue(*args: Any, **kw: Any) -> int:
            no_kwargs("listen_queue", kw)
            v = p_lq(args)
            num = v[0] if v else 0

            if num < 0 or num >= len(socket_fds(inst.opts)):
                raise ValueError(f"unable to find socket {num}")
            return len(inst.listen_queue) if num == 0 else 0

        p_warn = parser("s:set_warning_message")

        def set_warning_message(*args: Any, **kw: Any) -> bool:
            no_kwargs("set_warning_message", kw)
            (msg,) = p_warn(args)
            raw = msg.encode()
            if len(raw) > 80:
                inst.log("- warning message must be max 80 chars, it will be truncated -")
                raw = raw[:80]
            self.warning_message = raw
            return True

        p_alarm = parser("ss#:alarm")

        def alarm(*args: Any, **kw: Any) -> None:
            no_kwargs("alarm", kw)
            name, msg = p_alarm(args)
            inst.record("alarm", None, name=name, msg=msg.hex())

        def log_this_request(*_args: Any, **kw: Any) -> None:
            no_kwargs("log_this_request", kw)
            self.state().log_forced = True

        p_setlv = parser("s#s#:set_logvar")

        def set_logvar(*args: Any, **kw: Any) -> None:
            no_kwargs("set_logvar", kw)
            key, value = p_setlv(args)
            self.state().logvars[key] = value

        p_getlv = parser("s#:get_logvar")

        def get_logvar(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("get_logvar", kw)
            (key,) = p_getlv(args)
            return self.state().logvars.get(key)

        p_addvar = parser("s#s#:add_var")

        def add_var(*args: Any, **kw: Any) -> bool:
            no_kwargs("add_var", kw)
            key, value = p_addvar(args)
            st = self.state()
            req = self._request()
            base = _vars_size(req) if req is not None else 0
            need = 4 + len(key) + len(value)
            if base + st.vars_size + need > inst.buffer_size:
                raise ValueError("unable to add request var, check your buffer size")
            st.vars_size += need
            return True

        def cl(*_args: Any, **kw: Any) -> int:
            no_kwargs("cl", kw)
            req = self._request()
            if req is None:
                return 0
            # post_cl: the CONTENT_LENGTH var as uWSGI reads it (a served request's
            # body_length already is)
            value = packet_vars(self.inst, req).get("CONTENT_LENGTH")
            return content_length(value) if value is not None else req.body_length

        def connection_fd(*_args: Any, **kw: Any) -> int:
            no_kwargs("connection_fd", kw)

            if self._request() is None:
                return 0
            socks = socket_fds(inst.opts)
            return (socks[-1] if socks else 2) + 2

        p_sleep = parser("f:async_sleep")

        def async_sleep(*args: Any, **kw: Any) -> bytes:
            no_kwargs("async_sleep", kw)
            p_sleep(args)
            return b""

        def suspend(*_args: Any, **kw: Any) -> bool:
            no_kwargs("suspend", kw)
            return True

        def green_schedule(*_args: Any, **kw: Any) -> bool:
            no_kwargs("green_schedule", kw)
            return True

        def wait_fd(name: str) -> Any:
            p = parser("i|i")

            def fn(*args: Any, **kw: Any) -> bytes:
                no_kwargs(name, kw)
                v = p(args)
                raise OSError(f"unable to fd {v[0]} to the event queue")

            fn.__name__ = name
            return fn

        def ready_fd(*_args: Any, **kw: Any) -> int:
            no_kwargs("ready_fd", kw)
            return -1

        p_chunked = parser("|i:chunked_read")

        def chunked_read(*args: Any, **kw: Any) -> bytes:
            no_kwargs("chunked_read", kw)
            v = p_chunked(args)
            timeout = v[0] if v else 0
            return self._chunked_read(timeout, nonblocking=False)  # type: ignore[return-value]

        def chunked_read_nb(*_args: Any, **kw: Any) -> bytes | None:
            no_kwargs("chunked_read_nb", kw)
            return self._chunked_read(0, nonblocking=True)

        p_ws_hs = parser("|s#s#s#:websocket_handshake")

        def websocket_handshake(*args: Any, **kw: Any) -> None:
            no_kwargs("websocket_handshake", kw)
            v = p_ws_hs(args) + [b"", b"", b""]
            ws = self._websocket()
            if ws is None:
                if not getattr(inst, "ssl", False):  # the pyuwsgi wheel: no SSL
                    inst.log("you need to build uWSGI with SSL support to use the "
                             "websocket handshake api function !!!")
                raise OSError("unable to complete websocket handshake")
            if not ws.handshake(v[0], v[1], v[2]):
                raise OSError("unable to complete websocket handshake")

        p_ws_send = parser("s#:websocket_send")
        p_ws_sendb = parser("s#:websocket_send_binary")

        def websocket_send(*args: Any, **kw: Any) -> None:
            no_kwargs("websocket_send", kw)
            (message,) = p_ws_send(args)
            ws = self._websocket()
            if ws is None or not ws.send(server_frame(message, 0x81)):
                raise OSError("unable to send websocket message")

        def websocket_send_binary(*args: Any, **kw: Any) -> None:
            no_kwargs("websocket_send_binary", kw)
            (message,) = p_ws_sendb(args)
            ws = self._websocket()
            if ws is None or not ws.send(server_frame(message, 0x82)):
                raise OSError("unable to send websocket binary message")

        def websocket_recv(*_args: Any, **kw: Any) -> bytes:
            no_kwargs("websocket_recv", kw)
            ws = self._websocket()
            got = ws.recv(nonblocking=False) if ws is not None else None
            if got is None:
                raise OSError("unable to receive websocket message")
            return got

        def websocket_recv_nb(*_args: Any, **kw: Any) -> bytes:
            no_kwargs("websocket_recv_nb", kw)
            ws = self._websocket()
            got = ws.recv(nonblocking=True) if ws is not None else None
            if got is None:
                raise OSError("unable to receive websocket message")
            return got

        def offload(*_args: Any, **kw: Any) -> bytes:
            no_kwargs("offload", kw)
            return b""

        p_extract = parser("s:extract")

        def extract(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("extract", kw)
            (path,) = p_extract(args)
            target = inst.opts.path(path)
            try:
                data = target.read_bytes()
            except OSError as exc:
                from ..server.containment import c_exit

                inst.log(f'open("{path}"): {exc.strerror} [core/utils.c line 1906]')
                c_exit(inst, "exit(1) in uwsgi_open_and_read", 1)
            return data if data else None

        p_parse = parser("s:parsefile")

        def parsefile(*args: Any, **kw: Any) -> dict[bytes, bytes] | None:
            no_kwargs("parsefile", kw)
            (path,) = p_parse(args)
            try:
                raw = inst.opts.path(path).read_bytes()
            except OSError as exc:
                inst.log(f'open("{path}"): {exc.strerror} [plugins/python/'
                         'uwsgi_pymodule.c line 2451]')
                return None
            return _parse_packet(inst, raw)

        p_embedded = parser("s:embedded_data")

        def embedded_data(*args: Any, **kw: Any) -> bytes:
            no_kwargs("embedded_data", kw)
            (name,) = p_embedded(args)
            raise ValueError(f"unable to find symbol {name}")

        funcs.update(self._connection_functions())
        funcs.update({
            "mem": mem, "logsize": logsize, "listen_queue": listen_queue,
            "set_warning_message": set_warning_message, "alarm": alarm,
            "log_this_request": log_this_request, "set_logvar": set_logvar,
            "get_logvar": get_logvar, "add_var": add_var, "cl": cl,
            "connection_fd": connection_fd, "async_sleep": async_sleep,
            "suspend": suspend, "green_schedule": green_schedule,
            "wait_fd_read": wait_fd("wait_fd_read"),
            "wait_fd_write": wait_fd("wait_fd_write"), "ready_fd": ready_fd,
            "chunked_read": chunked_read, "chunked_read_nb": chunked_read_nb,
            "websocket_handshake": websocket_handshake, "websocket_send": websocket_send,
            "websocket_send_binary": websocket_send_binary,
            "websocket_recv": websocket_recv, "websocket_recv_nb": websocket_recv_nb,
            "offload": offload, "extract": extract, "parsefile": parsefile,
            "embedded_data": embedded_data,
        })
        return funcs


    # -- the client connection: send, sendfile, disconnect, start_response ---------------
    def _connection_functions(self) -> dict[str, Any]:
        inst = self.inst
        p_send = parser("O|O:send")
        p_sendfile = parser("O|iii:sendfile")

        def send(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("send", kw)
            values = p_send(args)
            conn = self._conn()
            if len(values) > 1:
                fd_obj, data = values
                if not isinstance(data, bytes):
                    segfault(inst)  # PyBytes_AsString(NULL) then write(): SIGSEGV
                try:
                    fd = operator.index(fd_obj)
                except TypeError as exc:
                    _log_write_error(inst, "EBADF")
                    raise SystemError("<built-in function send> returned a result with an "
                                      "exception set") from exc
                return self._send_fd(conn, fd, data)
            (data,) = values
            if not isinstance(data, bytes):
                segfault(inst)
            if conn is None:  # the stale request's fd: closed (observed EBADF)
                _log_write_error(inst, "EBADF")
                return None
            return True if conn.send_raw(data) else None

        def sendfile(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("sendfile", kw)
            values = p_sendfile(args)
            what = values[0]
            pos = values[2] if len(values) > 2 else 0
            length = values[3] if len(values) > 3 else 0
            conn = self._conn()
            if isinstance(what, (bytes, str)):
                if conn is None:
                    segfault(inst)
                return self._sendfile_path(conn, what, pos, length)
            try:
                fd = _as_file_descriptor(what)
            except (TypeError, ValueError) as exc:
                raise SystemError("<built-in function sendfile> returned a result with an "
                                  "exception set") from exc
            if conn is None:
                segfault(inst)
            return self._sendfile_fd(conn, fd, pos, length)

        def disconnect(*_args: Any, **kw: Any) -> None:
            no_kwargs("disconnect", kw)
            conn = self._conn()
            if conn is not None:
                conn.disconnect()

        return {"send": send, "sendfile": sendfile, "disconnect": disconnect,
                "start_response": self.spit}

    def _send_fd(self, conn: Any, fd: int, data: bytes) -> bool | None:
        """``send(fd, data)``: the request's socket, the log (stdout/stderr), or an fd the
        app opened itself; the virtual listen sockets and fd 0 are not open (EBADF)."""

        socks = socket_fds(self.inst.opts)
        if conn is not None and fd == (socks[-1] if socks else 2) + 2:
            return True if conn.send_raw(data) else None
        if fd in (1, 2):
            self._stdout.write(data)
            return True
        if fd <= 0 or fd in socks:
            _log_write_error(self.inst, "EBADF")
            return None
        try:
            os.write(fd, data)
        except OSError as exc:
            _log_write_error(self.inst, errno.errorcode.get(exc.errno or 0, "EBADF"))
            return None
        return True

    def _sendfile_path(self, conn: Any, what: bytes | str, pos: int, length: int) -> bool | None:
        """``sendfile(filename, ...)``: uWSGI opens it, streams it, closes it."""
        name = what if isinstance(what, str) else what.decode("utf-8", "surrogateescape")
        if isinstance(what, str):
            what.encode("latin-1")  # PyUnicode_AsLatin1String
        line = 800 if isinstance(what, str) else 789
        try:
            fd = os.open(self.inst.opts.path(name), os.O_RDONLY)
        except OSError as exc:
            self.inst.log(f'open("{name}"): {exc.strerror} '
                          f"[plugins/python/uwsgi_pymodule.c line {line}]")
            return None
        try:
            return self._sendfile_fd(conn, fd, pos, length)
        finally:
            os.close(fd)

    def _sendfile_fd(self, conn: Any, fd: int, pos: int, length: int) -> bool:
        if conn.sendfile(fd, pos, length):
            return True
        if conn.check_write_errors():  # uwsgi_py_write_exception printed and cleared it
            raise SystemError("<built-in function sendfile> returned NULL without setting "
                              "an exception")
        if conn.take_pending():  # True returned with the error set
            raise SystemError("<built-in function sendfile> returned a result with an "
                              "exception set") from OSError("write error")
        return True


def _log_write_error(inst: Instance, code: str) -> None:
    inst.log(f"write(): {os.strerror(getattr(errno, code))} "
             "[plugins/python/uwsgi_pymodule.c line 706]")


def _as_file_descriptor(obj: Any) -> int:
    """``PyObject_AsFileDescriptor``: an int, or the int its ``fileno()`` returns."""
    if isinstance(obj, int):
        fd = obj
    elif hasattr(obj, "fileno"):
        fd = obj.fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    else:
        raise TypeError("argument must be an int, or have a fileno() method.")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return int(fd)


def _vars_size(req: Any) -> int:
    """Bytes the request's vars take in the buffer (uwsgi packet encoding)."""
    size = 0
    for name, value in getattr(req, "headers", []):
        size += 4 + len("HTTP_" + name) + len(value)
    return size + 4 + 256  # the CGI vars uWSGI adds (an estimate)


def _parse_packet(inst: Instance, raw: bytes) -> dict[bytes, bytes] | None:
    """``py_uwsgi_parse_file``: a uwsgi header then vars, modifier1 0 or 17."""
    if len(raw) < 4:
        inst.log("read(): Success [plugins/python/uwsgi_pymodule.c line 2458]")
        return None
    modifier1 = raw[0]
    pktsize = int.from_bytes(raw[1:3], "little")
    body = raw[4:4 + pktsize]
    if len(body) != pktsize:
        inst.log("read(): Success [plugins/python/uwsgi_pymodule.c line 2471]")
        return None
    if modifier1 not in (0, 17):
        return None
    out: dict[bytes, bytes] = {}
    p, end = 0, len(body)
    while p < end:
        if p + 2 >= end:
            return None
        ksize = int.from_bytes(body[p:p + 2], "little")
        if not ksize:
            inst.log("uwsgi key cannot be null.")
            return None
        p += 2
        if p + ksize < end:
            key = body[p:p + ksize]
            p += ksize
            if p + 2 > end:
                return None
            vsize = int.from_bytes(body[p:p + 2], "little")
            p += 2
            if p + vsize > end:
                return None
            out[key] = body[p:p + vsize]
            p += vsize
    return out

