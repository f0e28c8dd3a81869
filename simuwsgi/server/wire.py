"""The client connection of a simulated request: the bytes uWSGI writes on it.

What it models (``core/writer.c`` ``uwsgi_response_prepare_headers``,
``uwsgi_response_write_headers_do``, ``uwsgi_response_write_body_do``,
``uwsgi_response_sendfile_do``; ``core/utils.c`` ``uwsgi_close_request``;
``plugins/python/wsgi_headers.c`` ``py_uwsgi_spit``; ``plugins/python/uwsgi_pymodule.c``
``py_uwsgi_send``, ``py_uwsgi_advanced_sendfile``, ``py_uwsgi_disconnect``), as observed on
2.0.30 with ``--http-socket`` (``tests/test_wire.py`` pins it against the real server):

* ``start_response`` (the app's and the module-level ``uwsgi.start_response``, one and
  the same function) prepares ``<protocol> <status>\\r\\n`` and the headers; it can be
  called again until the headers are on the wire, then raises
  ``OSError('headers already sent')``; a status shorter than 3 bytes is ignored (no
  headers at all), a 3-4 byte one gets uWSGI's reason phrase (``Unknown`` if none), and
  the header buffer stops at ``--response-headers-limit`` (64k: ``TypeError('unable to
  add header to the response')``, nothing sent);
* the headers go out with the first body write, or at the end of the request, or with
  ``sendfile``; a body written while no status is prepared goes out alone (no status
  line, observed), and the log shows the default status 500;
* ``uwsgi.send([fd, ]data)`` writes raw bytes on the connection at once, ahead of or
  between the response's own writes (``True``); ``uwsgi.sendfile`` streams a file (or an
  open file's descriptor) at ``pos`` for ``filesize`` bytes (the chunk argument is
  ignored, as in uWSGI), a file shorter than asked gives uWSGI's write error;
* ``uwsgi.disconnect()`` closes the connection: the client keeps what was sent; every
  later write logs uWSGI's ``Bad file descriptor`` line, then the response is abandoned
  with ``OSError: write error`` in the log (counted as an exception, as in uWSGI).

Outside a request these functions act on uWSGI's stale request structure:
``send(data)`` fails with ``EBADF`` (logged, ``None``), ``disconnect()`` returns
``None``, and ``start_response``/``sendfile`` dereference a NULL pointer — the process
dies of a segmentation fault (observed), which the simulation reproduces.

The connection's state and hot methods (``_ConnectionCore``) have a C twin, the base
of ``Connection`` when ``_cwsgi.c`` is built (``SIMUWSGI_PURE_PYTHON=1`` runs this code).

Left out: ``--http-socket`` keep-alive and chunked encoding (uWSGI adds neither by
default), offloading, transformations, and closing the descriptor of a
file object passed to ``sendfile`` (uWSGI closes it under the Python file object; the
simulation leaves it open so the test process's file objects stay sane).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Any, NoReturn

from .._core.accel import load
from .interface import HOOK_ERROR, HOOK_EXTRA, HOOK_FILTER, HOOK_RESPONSE, ProcessExit

if TYPE_CHECKING:
    from .interface import Instance
    from .workers import Request

__all__ = ["BuiltinFunction", "Connection", "segfault"]

#: the optional C accelerator: the connection's state and hot methods (see _cwsgi.c)
_c = load(f"{__package__}._cwsgi", "ConnectionCore", "Builtin", "app_caller", "spitter",
         "writer")

_EBADF = os.strerror(errno.EBADF)
#: ``Connection._routing``'s bits: ``wsgi_req->is_error_routing``,
#: ``is_response_routing``, ``response_routes_applied``
_ERROR_ROUTING, _RESPONSE_ROUTING, _RESPONSE_APPLIED = 1, 2, 4
_PAGE_SIZE = 4096

#: ``core/init.c`` ``hsc``: the reason phrases uWSGI adds to a bare 3-digit status
_PHRASES = {
    "200": "OK", "302": "Found", "404": "Not Found", "500": "Internal Server Error",
    "301": "Moved Permanently", "304": "Not Modified", "303": "See Other",
    "403": "Forbidden", "307": "Temporary Redirect", "401": "Unauthorized",
    "400": "Bad Request", "405": "Method Not Allowed", "408": "Request Timeout",
    "100": "Continue", "101": "Switching Protocols", "201": "Created", "202": "Accepted",
    "203": "Non-Authoritative Information", "204": "No Content", "205": "Reset Content",
    "206": "Partial Content", "300": "Multiple Choices", "305": "Use Proxy",
    "402": "Payment Required", "406": "Not Acceptable",
    "407": "Proxy Authentication Required", "409": "Conflict", "410": "Gone",
    "411": "Length Required", "412": "Precondition Failed",
    "413": "Request Entity Too Large", "414": "Request-URI Too Long",
    "415": "Unsupported Media Type", "416": "Requested Range Not Satisfiable",
    "417": "Expectation Failed", "418": "I'm a teapot", "422": "Unprocessable Entity",
    "425": "Too Early", "426": "Upgrade Required", "428": "Precondition Required",
    "429": "Too Many Requests", "431": "Request Header Fields Too Large",
    "451": "Unavailable For Legal Reasons", "501": "Not Implemented", "502": "Bad Gateway",
    "503": "Service Unavailable", "504": "Gateway Timeout",
    "505": "HTTP Version Not Supported", "509": "Bandwidth Limit Exceeded",
    "511": "Network Authentication Required",
}


def segfault(inst: Instance) -> NoReturn:
    """The calling process dies of SIGSEGV: uWSGI's handler logs its lines, no more of
    the process's code runs (``except BaseException`` cannot catch it), and the master
    sees a death (``DAMN ! worker N ...``) and respawns it."""
    proc = inst.kernel.current
    pid = getattr(proc, "pid", 0)
    inst.log(f"!!! uWSGI process {pid} got Segmentation Fault !!!")
    inst.log(f"*** backtrace of {pid} ***")
    inst.log("*** end of backtrace ***")
    if proc is None or proc is inst.master:
        raise ProcessExit("segmentation fault", -11)
    inst.kernel.call_soon(inst.kill, proc, "segmentation fault", None)  # 2.0.30: "died :(", no signal (observed)
    inst.kernel.park("segmentation fault")
    raise ProcessExit("segmentation fault", -11)  # not reached: the process is discarded


class BuiltinFunction:
    """A callable whose repr is uWSGI's ``<built-in function NAME>``."""

    __slots__ = ("__name__", "_fn")

    def __init__(self, name: str, fn: Any) -> None:
        self.__name__ = name
        self._fn = fn

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._fn(*args, **kw)

    def __repr__(self) -> str:
        return f"<built-in function {self.__name__}>"

    def __deepcopy__(self, memo: Any) -> BuiltinFunction:
        """Itself: a C function survives ``fork()`` as it is (so the virtual fork's
        copier keeps it, as it keeps the C twin, which it could not copy)."""
        return self


# The type as a C function's: ``type(environ['wsgi.file_wrapper'])`` prints
# ``<class 'builtin_function_or_method'>`` as under uWSGI (it is still not
# ``types.BuiltinFunctionType``: a Python callable cannot be one).
BuiltinFunction.__name__ = BuiltinFunction.__qualname__ = "builtin_function_or_method"
BuiltinFunction.__module__ = "builtins"
if _c is not None:  # the same, without a Python frame per call (see _cwsgi.c)
    BuiltinFunction = _c.Builtin  # type: ignore[misc]


def _header_pair(item: Any) -> tuple[str, str]:
    """A header of ``start_response``'s list, checked in ``py_uwsgi_spit``'s order: the
    (key, value) strings as latin-1 decodes them."""
    if not isinstance(item, tuple):
        raise TypeError("http header must be defined in a tuple")
    if len(item) < 2:
        raise TypeError("http header must be a 2-item tuple")
    key, value = item[0], item[1]
    if not isinstance(key, str):
        raise TypeError("http header key must be a string")
    if not isinstance(value, str):
        raise TypeError("http header value must be a string")
    try:
        return (key.encode("latin-1").decode("latin-1"),
                value.encode("latin-1").decode("latin-1"))
    except UnicodeEncodeError:
        raise TypeError("http header must be encodable in latin1") from None


class _ConnectionCore:
    """A request's response state and the writer's hot methods (``struct
    wsgi_request``): the Python twin of ``_cwsgi.ConnectionCore``."""

    __slots__ = ("_hcap", "_hpos", "_routing", "altered", "app_id", "body", "closed", "header_cnt", "headers",
                 "headers_sent", "headers_size", "hooks", "ignore_body", "inst", "raw_writes",
                 "req", "response_size",
                 "sendfile_chunk", "sendfile_obj", "status", "status_code", "switches",
                 "via_sendfile", "wire", "worker", "write", "write_errors")

    def __init__(self, inst: Instance, req: Request, worker: Any = None,
                 write: Any = None) -> None:
        self.inst = inst
        self.req = req
        self.worker = worker
        #: the write callable start_response returns (uWSGI's one global ``uwsgi_write``;
        #: None: this connection's own, bound when asked, so that no cycle is kept)
        self.write = write
        self.wire: list[bytes] = []  # every byte written on the socket, in order
        self.raw_writes: list[bytes] = []  # what uwsgi.send() wrote
        #: the status line's text; None until uWSGI's header buffer holds one
        self.status: str | None = None
        #: ``wsgi_req->status``: 500 until a status is prepared (what the log shows)
        self.status_code = 500
        self.headers: list[tuple[str, str]] = []
        self.header_cnt = 0
        self.headers_size = 0  # header bytes written (the log's "headers in N bytes")
        self.switches = 0  # iterations of the response loop (the log's "N switches")
        self._hcap = 0  # the header buffer's allocated size (0: no buffer yet)
        self._hpos = 0
        #: what ``wsgi.file_wrapper`` returned (and its read size), for the response loop
        self.sendfile_obj: Any = None
        self.sendfile_chunk = 0
        self.headers_sent = False
        self.response_size = 0  # body bytes written (uWSGI's response_size)
        self.body: list[bytes] = []
        self.write_errors = 0
        self.closed = False
        self.altered = False  # raw writes or a disconnect: parse the wire like a client
        self.via_sendfile = False
        self.app_id = 0  # the app that answers (-1: uWSGI itself, a static file)
        #: body writes do nothing (a route answered instead: ``wsgi_req->ignore_body``)
        self.ignore_body = False
        self._routing = 0  # see _ERROR_ROUTING
        #: what to ask the instance's Python side (``interface.HOOK_*``)
        self.hooks = getattr(inst, "writer_hooks", 0)

    # -- start_response ------------------------------------------------------------------
    def spit(self, args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        """``py_uwsgi_spit``: the checks in uWSGI's order; returns the write callable."""
        if kw:
            raise TypeError("uwsgi_spit() takes no keyword arguments")
        if self.headers_sent:
            raise OSError("headers already sent")
        # exc_info (args[2]) is restored as the pending exception (PyErr_Restore), then the
        # headers are prepared anyway: returning with it set, the call ends in CPython's
        # SystemError, caused by the app's exception (observed).
        exc_info = args[2] if len(args) > 2 else None
        if not args:
            raise TypeError("start_response() takes at least 2 arguments")
        status = args[0]
        if not isinstance(status, str):
            raise TypeError("http status must be a string")
        try:
            raw_status = status.encode("latin-1")
        except UnicodeEncodeError:
            raise TypeError("http status string must be encodable in latin1") from None
        if self._prepare(raw_status):
            if len(args) < 2:
                raise TypeError("start_response() takes at least 2 arguments")
            headers = args[1]
            if not isinstance(headers, list):
                raise TypeError("http headers must be in a python list")
            for item in list(headers):
                # the common case, plain ASCII str: already what latin-1 gives back
                if not (type(item) is tuple and len(item) == 2 and type(item[0]) is str
                        and type(item[1]) is str and item[0].isascii()
                        and item[1].isascii()):
                    item = _header_pair(item)
                if not self._add_header(*item):
                    raise TypeError("unable to add header to the response")
        if (isinstance(exc_info, tuple) and len(exc_info) > 2
                and isinstance(exc_info[1], BaseException)):
            raise SystemError("<built-in function uwsgi_spit> returned a result with an "
                              "exception set") from exc_info[1]
        return self.write if self.write is not None else self.uwsgi_write

    # -- the header buffer (uwsgi_response_prepare_headers / add_header, uwsgi_buffer) ----
    def _prepare(self, status: bytes) -> bool:
        """``uwsgi_response_prepare_headers``: False (and nothing changes) once anything
        was written, or for a status shorter than 3 bytes; a 3-4 byte status gets
        uWSGI's reason phrase."""
        if (self.headers_sent or self.headers_size or self.response_size or len(status) < 3
                or self.write_errors):
            return False
        if not self._hcap:
            self._hcap = _PAGE_SIZE
        self._hpos = 0
        self.header_cnt = 0
        self.headers = []
        self.status_code = 100 * (status[0] - 48) + 10 * (status[1] - 48) + (status[2] - 48)
        if self.hooks & HOOK_ERROR and self._error_routes():
            return False
        if len(status) <= 4:
            phrase = _PHRASES.get(status[:3].decode("latin-1"), "Unknown")
            status = status[:3] + b" " + phrase.encode()
        protocol = self.req.protocol.encode("latin-1") or b"HTTP/1.0"
        if not self._append(len(protocol) + 1 + len(status) + 2):
            self.write_errors += 1
            return False
        self.status = status.decode("latin-1")
        return True

    def _add_header(self, key: str, value: str) -> bool:
        """``uwsgi_response_add_header_do``: the buffer's limit is
        ``--response-headers-limit`` (default 64k); past it, a write error."""
        if self.headers_sent or self.headers_size or self.response_size or self.write_errors:
            return False
        if self.hooks & HOOK_FILTER and self._removed(key):
            return True
        if not self._hcap:
            self._hcap = _PAGE_SIZE
        if not self._append(len(key) + 2 + len(value) + 2):
            self.write_errors += 1
            return False
        self.header_cnt += 1
        self.headers.append((key, value))
        return True

    def _append(self, size: int) -> bool:
        """``uwsgi_buffer_append`` on the header buffer: it grows by pages (or by exactly
        what is missing near the limit) and refuses to grow past the limit."""
        if size > self._hcap - self._hpos:
            limit = self.inst.opts.int("response-headers-limit", 0) or 65535
            chunk = max(size, _PAGE_SIZE)
            if self._hcap + chunk > limit:
                if size < _PAGE_SIZE:
                    chunk = size
                if self._hcap + chunk > limit:
                    return False
            self._hcap += chunk
        self._hpos += size
        return True

    def uwsgi_write(self, *args: Any) -> None:
        """``py_uwsgi_write`` (``<built-in function uwsgi_write>``): bytes only; anything
        else is silently ignored, as in uWSGI."""
        data = args[0] if args else None
        if isinstance(data, bytes):
            self.write_body(data)
            if self.write_errors and self.write_raises():
                raise OSError("write error")

    def _header_block(self) -> bytes:
        return ("\r\n".join([f"{self.req.protocol} {self.status}",
                              *map(": ".join, self.headers)])
                + "\r\n\r\n").encode("latin-1")

    # -- writes ---------------------------------------------------------------------------
    def write_headers(self) -> bool:
        """``uwsgi_response_write_headers_do``: nothing to do without a prepared status."""
        if (self.headers_sent or self.status is None or self.response_size
                or self.write_errors):
            return True
        if self.hooks & HOOK_RESPONSE and self._response_routes():
            return True
        if self.hooks & HOOK_EXTRA and not self._extra_headers():
            return False
        if not self._append(2):  # proto_fix_headers: the final CRLF
            self.write_errors += 1
            return False
        if self.closed:
            return self._fail("uwsgi_response_write_headers_do()", 248)
        self._send_headers()
        return True

    def _send_headers(self) -> None:
        block = self._header_block()
        self.wire.append(block)
        self.headers_size += len(block)
        self.headers_sent = True

    def write_body(self, data: bytes) -> bool:
        """``uwsgi_response_write_body_do``; False on a write error."""
        if self.write_errors:
            return False
        if self.ignore_body:
            return True
        if not self.headers_sent and self.hooks & HOOK_RESPONSE and self._response_routes():
            return True
        # Without a prepared status there are no headers to send: the body goes out
        # alone (observed: a body without start_response reaches the client raw).
        if not self.headers_sent and self.status is not None and not self.response_size:
            if self.hooks & HOOK_EXTRA and not self._extra_headers():
                return False
            if not self._append(2):  # proto_fix_headers: the final CRLF
                self.write_errors += 1
                return False
            if self.closed:
                if data:
                    return self._fail("uwsgi_response_writev_headers_and_body_do()", 306)
                self.write_errors += 1  # counted by write_headers_do, then by its caller
                return self._fail("uwsgi_response_write_headers_do()", 248)
            self._send_headers()
        if not data:
            return True
        if self.closed:
            return self._fail("uwsgi_response_write_body_do()", 429)
        self.wire.append(data)
        self.body.append(data)
        self.response_size += len(data)
        return True

    def finish(self) -> None:
        """``uwsgi_close_request``: headers still pending go out now."""
        if not self.headers_sent and not self.response_size:
            self.write_headers()

    @property
    def log_stats(self) -> dict[str, Any]:
        """The request's counters the log line shows (plain values: fork mode sends
        them from the worker's child)."""
        return {"app_id": self.app_id, "status": self.status_code,
                "response_size": self.response_size,
                "headers_size": self.headers_size, "header_cnt": self.header_cnt,
                "switches": self.switches, "via_sendfile": self.via_sendfile,
                "write_errors": self.write_errors}

    @property
    def raw(self) -> bytes:
        """Every byte written on the socket."""
        return b"".join(self.wire)


class Connection(_ConnectionCore if _c is None else _c.ConnectionCore):  # type: ignore[misc]
    """One request's client socket and response state; the rarely called methods."""

    #: ``pending``: a write error is set as Python's pending exception and the response
    #: goes on (``--write-errors-exception-only``; see :meth:`check_write_errors`)
    __slots__ = ("pending",)

    # -- the log lines of uwsgi_req_error ------------------------------------------------
    def req_error(self, what: str, where: str, line: int, strerror: str = _EBADF) -> None:
        """``uwsgi_req_error``: the failed call, the error and the request, dated; its
        short form when the request has no method, URI or address."""
        req = self.req
        if req.method and req.path and req.remote_addr:
            self.inst.log_verbose(f"{what}: {strerror} [{where} line {line}] during "
                                  f"{req.method} {req.path} ({req.remote_addr})")
        else:  # uwsgi.h's uwsgi_req_error without a method, URI or address
            self.inst.log_verbose(f"{what} {strerror} [{where} line {line}] ")

    def _fail(self, what: str, line: int, strerror: str = _EBADF) -> bool:
        self.write_error(what, line, strerror)
        self.write_errors += 1
        return False

    def write_error(self, what: str, line: int, strerror: str = _EBADF) -> None:
        """A failed write's ``uwsgi_req_error`` line, unless ``--ignore-write-errors``
        (``core/writer.c``, ``core/sendfile.c``)."""
        opts = self.inst.opts
        if not (opts.flag("ignore-write-errors") or opts.flag("write-errors-exception-only")):
            self.req_error(what, "core/writer.c", line, strerror)

    # -- the error and response routes (core/routing.c, called from core/writer.c) -------
    def _error_routes(self) -> bool:
        """``uwsgi_apply_error_routes`` as a status is prepared (any status: the rules
        choose, e.g. ``--error-route-status``): True when a rule ended the request (it
        wrote the response; the app's headers and body are then ignored)."""
        if self._routing & _ERROR_ROUTING:
            return False
        self._routing |= _ERROR_ROUTING  # the actions' own statuses skip the table
        if self.inst.error_routes.on_response(self) == "break":
            self.ignore_body = True
            return True
        self._routing &= ~_ERROR_ROUTING
        return False

    def _response_routes(self) -> bool:
        """``uwsgi_apply_response_routes`` once, as the headers (or the first body
        bytes) go out: True when a rule ended the request."""
        if self._routing & (_RESPONSE_ROUTING | _RESPONSE_APPLIED):
            return False
        self._routing |= _RESPONSE_ROUTING
        outcome = self.inst.response_routes.on_response(self)
        self._routing |= _RESPONSE_APPLIED
        if outcome == "break":
            self.ignore_body = True
            return True
        self._routing &= ~_RESPONSE_ROUTING
        return False

    def _removed(self, key: str) -> bool:
        """``uwsgi_response_add_header``: a header ``--rem-header`` (``--del-header``) or
        a route's ``delheader``/``remheader`` names is not added (any case)."""
        name = key.lower()
        return name in self.inst.removed_headers or \
            any(name == removed.lower() for removed in self.req.removed_headers)

    def _extra_headers(self) -> bool:
        """``--add-header``, then a route's ``addheader``: each line added as given
        (``uwsgi_response_add_header`` with no key), after the app's headers, as the
        headers go out; False when the header
        buffer is full (a write error). A line that is not ``Key: value`` goes out as
        it is, and the reply is then read from the wire, as a client reads it."""
        for line in (*self.inst.additional_headers, *self.req.route_headers):
            if not self._append(len(line) + 2):
                self.write_errors += 1
                return False
            key, sep, value = line.partition(": ")
            if sep and ":" not in key:
                self.headers.append((key, value))
            else:
                self.headers.append((line,))  # type: ignore[arg-type] - joined as it is
                self.altered = True
            self.header_cnt += 1
        return True

    # -- the Python plugin after a failed write (plugins/python/uwsgi_python.h) ---------
    def check_write_errors(self) -> bool:
        """``uwsgi_py_check_write_errors`` and its block, after a failed write: True when
        the block runs (:meth:`write_exception`; the response loop then ends).

        With ``--write-errors-exception-only`` (uWSGI then ignores SIGPIPE and write
        errors) the block never runs: ``OSError('write error')`` is only set, unless
        ``--disable-write-exception``, and the response goes on with it pending
        (``pending``): the next Python code the response runs fails with it (see
        ``workers._next_pending``), or it is logged when the response ends. Otherwise
        the block runs once more than ``--write-errors-tolerance`` writes failed."""
        policy = self.inst.write_policy
        if policy is None:
            self.write_exception()
            return True
        tolerance, disabled, only = policy
        if only and self.write_errors > 0:
            if not disabled:
                self.pending = True
            return False
        if self.write_errors > tolerance:
            self.write_exception()
            return True
        return False

    def write_raises(self) -> bool:
        """Whether the write callable raises after a failed write (``py_uwsgi_write``:
        past ``--write-errors-tolerance``, unless ``--disable-write-exception``;
        ``--write-errors-exception-only`` plays no part there)."""
        policy = self.inst.write_policy
        return policy is None or (self.write_errors > policy[0] and not policy[1])

    def take_pending(self) -> bool:
        """Whether a write error is pending; it no longer is."""
        pending = getattr(self, "pending", False)
        self.pending = False
        return pending

    def send_raw(self, data: bytes) -> bool:
        """``py_uwsgi_send`` on the request's own socket."""
        if self.closed:
            self.inst.log(f"write(): {_EBADF} [plugins/python/uwsgi_pymodule.c line 706]")
            return False
        self.altered = True
        self.raw_writes.append(data)
        self.wire.append(data)
        return True

    def sendfile(self, fd: int, pos: int, length: int) -> bool:
        """``uwsgi_response_sendfile_do``; False on a write error."""
        if self.write_errors:
            return False
        if self.ignore_body:
            return True
        if not self.headers_sent and not self.write_headers():
            self.write_errors += 1  # counted by write_headers_do, then by sendfile_do
            return False
        if length == 0:
            try:
                size = os.fstat(fd).st_size
            except OSError as exc:
                return self._fail("uwsgi_response_sendfile_do()/fstat()", 612,
                                  exc.strerror or _EBADF)
            if pos >= size:
                return True
            length = size
        self.via_sendfile = True
        if self.closed:
            return self._fail("uwsgi_response_sendfile_do()", 655)
        try:
            data = os.pread(fd, length, pos)
        except OSError as exc:
            return self._fail("uwsgi_response_sendfile_do()", 655, exc.strerror or _EBADF)
        if data:
            self.wire.append(data)
            self.body.append(data)
            self.response_size += len(data)
        if len(data) < length:  # sendfile() hit the end of the file: errno stays 0
            return self._fail("uwsgi_response_sendfile_do()", 655, "Success")
        return True

    def write_exception(self) -> None:
        """``uwsgi_py_write_exception``: ``OSError('write error')`` set (unless
        ``--disable-write-exception``), then printed by ``uwsgi_manage_exception`` (one
        log line, no traceback) and counted (even with nothing to print)."""
        from .reading import reading

        inst = self.inst
        policy = inst.write_policy
        shown = policy is None or not policy[1]

        def log() -> None:
            if shown:
                inst.log("OSError: write error")

        w = self.worker
        exceptions = None if w is None else reading(inst).exceptions
        if exceptions is not None:  # --reload-on-exception & co. (nothing caught)
            exceptions.manage(inst, w, self, OSError("write error") if shown else None,
                              catch=False, log=log)
            return
        log()
        if w is not None:
            w.exceptions += 1
            app_id = self.req.app_id
            w.app_exceptions[app_id] = w.app_exceptions.get(app_id, 0) + 1

    def disconnect(self) -> None:
        self.closed = True
        self.altered = True


if _c is not None:  # what the C spit needs of this module
    _c.configure(_header_pair, _PHRASES)
