"""How a request that came from a real socket reaches the simulated app.

A wire request enters the simulation as an ordinary ``Simulation.submit`` request
(so it queues, takes a worker, counts, can be killed by harakiri...) carrying a
:class:`WireRequest` in its ``net`` attribute. The ``net`` subsystem wraps every app
callable the instance loads (:func:`install`); the wrapper, which runs in the worker:

* for a WSGI request, gets the environ uWSGI's Python plugin builds from the wire vars
  (``plugins/python/wsgi_subhandler.c``: every var decoded as latin-1, the last
  duplicate winning, then ``wsgi.input``, ``wsgi.file_wrapper``, ``wsgi.version``,
  ``wsgi.errors``, ``wsgi.run_once``, ``wsgi.multithread``, ``wsgi.multiprocess``,
  ``wsgi.url_scheme`` (``UWSGI_SCHEME``, else ``HTTPS`` on/1, else http),
  ``uwsgi.version``, ``uwsgi.node``: the worker's ``build_environ`` builds it from
  :meth:`WireRequest.text_vars` and :attr:`WireRequest.scheme`), and records the
  status string and header list exactly as the app gave them to ``start_response`` (the
  reply is built from them when the simulator does not record the connection's bytes
  itself, see ``_node._http_reply``);
* for a packet served by another plugin (RPC, cache, signal, spool), runs the
  plugin's action (``control``) in the worker instead of the app, as uWSGI's request
  plugins run in a worker.

Requests submitted by the test API carry no ``net`` attribute and reach the app
untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from ._server import TIMEOUT, _cserve

if TYPE_CHECKING:
    from ..server.master import Instance
    from ._server import ClientStream

__all__ = ["WireRequest", "install"]

#: A held header block and the first body write up to this size go in one send.
_COALESCE = 65536


class WireRequest:
    """What a wire request carries into the worker, and what the worker leaves."""

    __slots__ = ("_text", "body", "control", "headers", "ran", "result", "scheme", "status",
                 "stream", "streamed", "vars")

    def __init__(self, vars: tuple[tuple[bytes, bytes], ...] = (),
                 control: Callable[[], Any] | None = None) -> None:
        self.vars = vars
        #: a body too big for memory: the file ``wsgi.input`` reads (else None)
        self.body: BinaryIO | None = None
        #: the client's connection, written as the worker produces the reply (or None)
        self.stream: ClientStream | None = None
        #: the request's connection bytes, once the worker writes them to ``stream``
        self.streamed: StreamedWire | None = None
        self.control = control
        self.ran = False
        self.result: Any = None
        self.status: str | None = None
        self.headers: list[tuple[Any, Any]] = []
        self._text: dict[str, str] | None = None
        #: the environ's ``wsgi.url_scheme``, once ``text_vars`` made the vars
        self.scheme = "http"

    def text_vars(self) -> dict[str, str]:
        """The vars decoded as latin-1, the last duplicate winning (made once: the
        environ and the request's log line read them; not to be changed)."""
        text = self._text
        if text is None:
            text = self._text = _text_vars(self.vars)
            self.scheme = _scheme(text)
        return text


def _python_text_vars(vars: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """The Python twin of ``_cserve.text_vars``."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in vars}


_text_vars = _cserve.text_vars if _cserve is not None else _python_text_vars


class StreamedWire(list):  # type: ignore[type-arg]
    """``Connection.wire`` (:mod:`simuwsgi.server.wire`) of a request served on a real socket:
    every write goes to the client at once, and while the client's socket is full the
    worker waits (parked; the node goes on serving), so the reply is never gathered
    whole. The header block waits for the first body write and goes with it in one
    send, as uWSGI's ``writev`` sends them (or, if no write follows in this step of the
    simulation, when the step ends); what is left unsent when the request ends is the
    reply the server writes. Nothing else is kept: the response's ``raw`` is empty.
    """

    def __init__(self, inst: Instance, conn: Any, stream: ClientStream) -> None:
        super().__init__()
        self._node = inst.net_host  # type: ignore[attr-defined]
        self._conn = conn
        self._stream = stream
        self._held = b""
        self.written = 0

    def append(self, data: bytes) -> None:
        self.written += len(data)
        if not self._conn.headers_sent and not self._held:  # the header block
            self._held = data
            self._node.unsent.append(self)
            return
        if self._held:
            held, self._held = self._held, b""
            if len(held) + len(data) <= _COALESCE:
                data = held + data
            else:
                self._send(held)
        self._send(data)

    def _send(self, data: bytes) -> None:
        stream = self._stream
        failed_before = stream.error is not None
        view = memoryview(data)
        sent = stream.try_send(view)
        if sent < len(view):
            self._node.call_blocking(stream.send_all, view[sent:])
        if stream.error is not None and not failed_before:
            # the worker's next write fails (uWSGI then logs ``OSError: write error``)
            if stream.error == TIMEOUT:  # logged by the server
                self._conn.write_errors += 1
            else:  # uwsgi_req_error's line, as core/writer.c logs it
                self._conn._fail("uwsgi_response_write_body_do()", 429, stream.error)

    def flush(self) -> bool:
        """Send what is held if the socket takes it now (the simulation's step ended);
        True while bytes are still held."""
        if self._held and not self._conn.req.done:
            self._held = self._held[self._stream.try_send(self._held):]
        return bool(self._held)

    def rest(self) -> bytes:
        """The bytes still held, now the reply's end: the server writes them. The
        request's connection is let go (it refers to this wire: no cycle is left for
        the collector)."""
        held, self._held = self._held, b""
        self._conn = None
        return held

    def __bool__(self) -> bool:
        return self.written > 0


class _NotKept(list):  # type: ignore[type-arg]
    """``Connection.body`` of a streamed reply: the client has the bytes, nothing keeps
    them (the request log counts ``response_size``); the response's ``body`` is empty."""

    def append(self, data: bytes) -> None:
        pass


class FileInput:
    """``wsgi.input`` over a body kept in a file: uWSGI's ``uwsgi._Input`` methods."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(-1 if size is None else size)

    def readline(self, size: int = -1) -> bytes:
        return self._file.readline(-1 if size is None else size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._file.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._file)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._file.seek(pos, whence)

    def tell(self) -> int:
        return self._file.tell()

    def fileno(self) -> int:
        return 0  # as the in-memory ``wsgi.input`` (workers._Input)

    def close(self) -> None:
        pass  # the server closes the file once the reply is known


FileInput.__name__ = FileInput.__qualname__ = "_Input"
FileInput.__module__ = "uwsgi"


def _scheme(env: dict[str, str]) -> str:
    scheme = env.get("UWSGI_SCHEME")
    if scheme:
        return str(scheme)
    https = env.get("HTTPS")
    if https:
        return "https" if https[:2].lower() == "on" or https[0] == "1" else "http"
    return "http"


def wrap_app(inst: Instance, app: Any) -> Any:
    """The app as seen by workers of a networked instance (see the module doc)."""
    if getattr(app, "__simuwsgi_wire__", False):
        return app
    kernel = inst.kernel
    resolve = inst.app.resolve  # the running process's copy of the app (virtual fork)

    def app_on_the_wire(environ: dict[str, Any], start_response: Any) -> Any:
        request = getattr(kernel.current, "request", None)
        wire = getattr(request, "net", None)
        if wire is None:
            return resolve(app)(environ, start_response)
        if wire.control is not None:
            wire.ran = True
            wire.result = wire.control()
            return ()
        managed = request.env_vars
        if managed is not None and managed is not request.vars:  # --manage-script-name
            environ["SCRIPT_NAME"] = managed["SCRIPT_NAME"]
            environ["PATH_INFO"] = managed["PATH_INFO"]
        if wire.body is not None:
            environ["wsgi.input"] = FileInput(wire.body)
        if wire.stream is not None and request.conn is not None:
            request.conn.wire = wire.streamed = StreamedWire(inst, request.conn, wire.stream)
            request.conn.body = _NotKept()
            # the reply goes to the client as written: its status and headers with it
            return resolve(app)(environ, start_response)

        def recording_start_response(status: Any, headers: Any, exc_info: Any = None) -> Any:
            write = start_response(status, headers, exc_info)
            wire.status = status
            wire.headers = list(headers)
            return write

        return resolve(app)(environ, recording_start_response)

    app_on_the_wire.__simuwsgi_wire__ = True  # type: ignore[attr-defined]
    app_on_the_wire.__wrapped__ = app  # type: ignore[attr-defined]
    return app_on_the_wire


class _WireApps(dict):  # type: ignore[type-arg]
    """``AppLoader.apps`` whose values are wrapped as they are stored."""

    def __init__(self, inst: Instance, initial: dict[int, Any]) -> None:
        super().__init__()
        self._inst = inst
        for key, app in initial.items():
            self[key] = app

    def __setitem__(self, key: int, app: Any) -> None:
        super().__setitem__(key, wrap_app(self._inst, app))


def install(inst: Instance) -> None:
    """Wrap the apps this instance loads from now on (idempotent)."""
    loader = inst.app
    if not isinstance(loader.apps, _WireApps):
        loader.apps = _WireApps(inst, loader.apps)
