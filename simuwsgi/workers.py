"""Workers and WSGI requests in virtual time.

What it models (``core/utils.c`` ``wsgi_req_accept``/``uwsgi_close_request``,
``plugins/python/wsgi_handlers.c``, ``wsgi_subhandler.c``):

* a worker waits in its accept loop on the listen socket and its signal sockets;
  signals are only handled there, between requests (a busy worker keeps them queued);
  a request waits in the listen queue (``--listen``, default 100) while every worker is
  busy, and is taken by the next worker that comes back to its accept loop;
* when several workers are idle, which one the kernel wakes is chance in real uWSGI:
  here the seeded RNG picks, and the trace records the choice;
* the app is called with uWSGI's environ; ``uwsgi.env`` is set for the request (with
  fewer than two threads); the response is collected; counters are updated at the
  *end* of the request (``requests``, ``delta_requests``, the core's request count —
  ``uwsgi.request_id()`` — and ``total_requests``);
* an exception in the app is logged with its traceback and counted in ``exceptions``;
  the client gets what uWSGI sends (see ``_exception_response``);
* ``--harakiri`` is armed for each request; ``--max-requests`` recycles the worker.

Requests take no virtual time unless the app sleeps or blocks.
"""

from __future__ import annotations

import bisect
import io
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .master import ProcessExit
from .wire import Connection as _Connection

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker

__all__ = ["Request", "Response", "dispatch_request", "worker_loop"]


@dataclass(frozen=True, kw_only=True)
class Response:
    """What the client received.

    ``status`` is None when uWSGI closed the connection without a reply; ``reason``
    then says why (harakiri, worker death, instance stopped, listen queue full).
    """

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    reason: str = ""
    worker: int = 0
    started: float = 0.0
    finished: float = 0.0
    #: Every byte uWSGI wrote on the ``--http-socket`` connection: status line (with the
    #: request's protocol), headers, CRLF, body, and any ``uwsgi.send()`` raw bytes.
    raw: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return default

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Request:
    """A request in flight. Users get it from ``Simulation.submit``."""

    def __init__(self, method: str, path: str, headers: Iterable[tuple[str, str]] | dict[str, str] | None,
                 body: bytes, submitted: float, *, ident: int = 0,
                 remote_addr: str = "127.0.0.1", protocol: str = "HTTP/1.1") -> None:
        self.id = ident
        self.method = method.upper()
        self.path = path
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, dict):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)
        self.body = bytes(body)
        #: ``CONTENT_LENGTH``: ``len(body)``, unless the body is read from elsewhere
        #: (``simuwsgi serve`` keeps a big one in a file)
        self.body_length = len(self.body)
        self.remote_addr = remote_addr
        self.protocol = protocol
        self.submitted = submitted
        self.done = False
        #: Called once when the request completes (``Simulation.wait`` uses it).
        self.on_done: Any = None
        self.response: Response | None = None
        self.worker = 0
        self.started = 0.0
        #: The client connection while a worker serves it (``simuwsgi.wire``).
        self.conn: Any = None

    def finish(self, status: int | None, headers: list[tuple[str, str]], body: bytes,
               now: float, reason: str = "") -> None:
        if self.done:
            return
        self.done = True
        conn = self.conn
        if conn is not None:
            raw = conn.raw
            if conn.altered and status is None and "died" not in reason:
                reason = (f"the client got {len(raw)} bytes that do not start with a "
                          "status line (uwsgi.send)" if raw else
                          "connection closed by uwsgi.disconnect() before any byte was sent")
        else:
            raw = _wire_bytes(self.protocol, status, headers, body)
        self.response = Response(status=status, headers=headers, body=body, reason=reason,
                                 worker=self.worker, started=self.started, finished=now,
                                 raw=raw)
        self.conn = None  # closed; and no request <-> connection cycle for the GC to find
        if self.on_done is not None:
            self.on_done()

    def fail(self, reason: str, now: float | None = None) -> None:
        self.finish(None, [], b"", self.started if now is None else now, reason)

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Request {self.id} {self.method} {self.path} {state}>"


# -- dispatching --------------------------------------------------------------------------
#: The key that keeps ``inst.idle_workers`` in id order (``bisect.insort``).
by_id = operator.attrgetter("id")


def choose(inst: Instance, candidates: list[Any], what: str) -> Any:
    """Pick one of several equally eligible processes with the seeded RNG (traced)."""
    if len(candidates) == 1:
        return candidates[0]
    ordered = sorted(candidates, key=lambda p: p.id)
    picked = ordered[inst.kernel.rng.randrange(len(ordered))]
    _record_choice(inst, what, len(ordered), picked)
    return picked


def _record_choice(inst: Instance, what: str, among: int, picked: Any) -> None:
    # How many were eligible and which was picked: enough to replay and to compare
    # runs, and the same size with 256 candidates as with 2.
    inst.trace.add(inst.kernel.now, "master", "choice",
                   {"what": what, "among": among, "picked": picked.name})


def take_idle_worker(inst: Instance, what: str) -> Worker | None:
    """An idle worker to hand a request or a signal to (None: all busy), picked as
    ``choose`` would among the accepting ones.

    ``inst.idle_workers`` is kept in id order, so the pick is an index the RNG draws,
    the same with 4 workers or 256, as long as no worker ever called
    ``uwsgi.accepting(False)`` (then the accepting ones are listed first).
    """
    idle = inst.idle_workers
    count = len(idle)
    if inst.some_refuse:
        accepting = [w for w in idle if w.accepting]
        if not accepting:
            return None
        worker = choose(inst, accepting, what)
        idle.remove(worker)
    elif count == 0:
        return None
    elif count == 1:
        worker = idle.pop()
    else:
        worker = idle.pop(inst.kernel.rng.randrange(count))
        _record_choice(inst, what, count, worker)
    worker.idle = False
    return worker


def dispatch_request(inst: Instance, req: Request) -> None:
    """A connection arrives on the listen socket."""
    inst.record("request.submit", None, id=req.id, method=req.method, path=req.path)
    if inst.stopped:
        req.fail("connection refused: instance stopped", inst.kernel.now)
        return
    worker = take_idle_worker(inst, "accept")
    if worker is not None:
        inst.kernel.wake(worker, ("req", req))
        return
    if len(inst.listen_queue) >= inst.listen:
        inst.log("*** uWSGI listen queue of socket \"127.0.0.1\" (fd: 3) full !!! "
                 f"({len(inst.listen_queue)}/{inst.listen}) ***")
        req.fail("connection refused: listen queue full", inst.kernel.now)
        return
    inst.listen_queue.append(req)


# -- the worker -----------------------------------------------------------------------------
def worker_loop(inst: Instance, w: Worker) -> None:
    """The accept loop of one worker: signals between requests, then requests."""
    if inst.lazy_apps:
        # Each worker imports its own copy of the app (and of its modules).
        inst.app.forget_app_modules()
        inst.app_loaded = inst.app.load()
        inst._check_need_app()
        w.apps = dict(inst.app.apps)
    signals = inst.subsystems.get("signals")
    kernel = inst.kernel
    park = kernel.park
    private = w.signal_queue
    shared = signals.shared_workers if signals is not None else ()
    listen = inst.listen_queue
    idle = inst.idle_workers
    insort = bisect.insort
    while True:
        if not w.manage_next_request:
            raise ProcessExit("reload")
        if private:
            signals.run_handler(w, private.popleft())
            continue
        if shared:
            signals.run_handler(w, shared.popleft())
            continue
        if listen and w.accepting:
            handle_request(inst, w, listen.popleft())
            continue
        w.status = "idle"
        w.idle = True
        insort(idle, w, key=by_id)
        kind, value = park("accept")
        if kind == "sig":
            signals.run_handler(w, value)
        elif kind == "req":
            handle_request(inst, w, value)


class _Input(io.BytesIO):
    """``wsgi.input``: uWSGI's ``uwsgi._Input`` (read, readline, readlines, seek, tell,
    fileno, close)."""

    def fileno(self) -> int:
        return 0


_Input.__module__ = "uwsgi"


class _LogSink(io.RawIOBase):
    """The byte end of ``wsgi.errors``: complete lines go to the uWSGI log."""

    def __init__(self, inst: Instance) -> None:
        self._inst = inst
        self._partial = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = self._partial + bytes(data)
        *lines, self._partial = chunk.split(b"\n")
        for line in lines:
            self._inst.log(line.decode("utf-8", "replace"))
        return len(data)


def errors_stream(inst: Instance) -> io.TextIOWrapper:
    """``wsgi.errors``: uWSGI passes a text wrapper over its stderr (the log)."""
    return io.TextIOWrapper(io.BufferedWriter(_LogSink(inst)), encoding="UTF-8",
                            line_buffering=True)


def file_wrapper(filelike: Any, blksize: int = 8192) -> Iterable[bytes]:
    """``wsgi.file_wrapper`` (``uwsgi_sendfile``): the file's content, in blocks."""
    def blocks() -> Iterable[bytes]:
        try:
            while True:
                chunk = filelike.read(blksize)
                if not chunk:
                    return
                yield chunk
        finally:
            close = getattr(filelike, "close", None)
            if close is not None:
                close()
    return blocks()


def _server_port(inst: Instance) -> str:
    for value in inst.opts.strings("http-socket", "socket", "http11-socket"):
        host, sep, port = value.rpartition(":")
        if sep and port.isdigit():
            return port
    return "80"


def build_environ(inst: Instance, req: Request, w: Worker) -> dict[str, Any]:
    """The WSGI environ uWSGI's Python plugin builds for an ``--http-socket`` request
    (observed on 2.0.30: no ``REMOTE_PORT``; ``SERVER_NAME`` is the host name;
    ``CONTENT_LENGTH`` only with a body; headers become ``HTTP_*``)."""
    constant = inst.__dict__.get("_environ_constant")
    if constant is None:  # the options are read once per instance, not per request
        constant = inst._environ_constant = (  # type: ignore[attr-defined]
            _server_port(inst), inst.opts.int("threads", 0) > 1, inst.hostname.encode())
    server_port, multithread, node = constant
    parts = urlsplit(req.path)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": req.method,
        "REQUEST_URI": req.path,
        "PATH_INFO": _unquote_path(parts.path or "/"),
        "QUERY_STRING": parts.query,
        "SERVER_PROTOCOL": req.protocol,
        "SCRIPT_NAME": "",
        "SERVER_NAME": inst.hostname,
        "SERVER_PORT": server_port,
        "REMOTE_ADDR": req.remote_addr,
    }
    for name, value in req.headers:
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    if req.body and "CONTENT_LENGTH" not in environ:
        environ["CONTENT_LENGTH"] = str(len(req.body))
    environ.update({
        "wsgi.input": _Input(req.body),
        "wsgi.errors": inst.errors_stream(),
        "wsgi.file_wrapper": file_wrapper,
        "wsgi.version": (1, 0),
        "wsgi.run_once": False,
        "wsgi.url_scheme": "http",
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": inst.numproc > 1,
        "uwsgi.version": b"2.0.30",
        "uwsgi.node": node,
    })
    return environ


def _unquote_path(path: str) -> str:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path).decode("latin-1")


def handle_request(inst: Instance, w: Worker, req: Request) -> None:
    kernel = inst.kernel
    w.status = "busy"
    w.request = req
    req.worker = w.id
    req.started = kernel.now
    inst.record("request.start", w, id=req.id, method=req.method, path=req.path)
    if inst.harakiri:
        inst.arm_harakiri(w, inst.harakiri)
    if inst.forks is None:
        status, headers, body, failed = _call_app(inst, w, req)
    else:  # fork mode: the app runs in the worker's OS process
        status, headers, body, failed = inst.forks.call_app(w, req)
    end = kernel.now
    # uwsgi_close_request: counters at the end of the request.
    w.requests += 1
    w.delta_requests += 1
    w.core_requests += 1
    inst.total_requests += 1
    app_id = 0
    w.app_requests[app_id] = w.app_requests.get(app_id, 0) + 1
    elapsed_us = int(round((end - req.started) * 1_000_000))
    w.running_time += elapsed_us
    w.avg_rt = elapsed_us if w.requests == 1 else (w.avg_rt + elapsed_us) // 2
    w.tx += len(body)
    w.request = None
    if w.harakiri_deadline or w.user_harakiri_deadline:
        w.harakiri_deadline = 0.0
        w.user_harakiri_deadline = 0.0
        inst._reschedule_harakiri(w)
    inst.record("request.end", w, id=req.id, status=status, bytes=len(body),
                **({"exception": True} if failed else {}))
    reason = ""
    if status is None:
        reason = ("connection closed without a response: " +
                  ("the app raised before start_response" if failed
                   else "start_response not called"))
    req.finish(status, headers, body, end, reason)
    # uWSGI's request log line (the vars count and size are not tracked here).
    inst.log(f"[pid: {w.pid}|app: 0|req: {w.requests}/{inst.total_requests}] "
             f"{req.remote_addr} () {{0 vars in 0 bytes}} "
             f"{req.method} {req.path} => generated {len(body)} bytes (HTTP/1.1 {status})", w)
    if (inst.max_requests > 0 and w.delta_requests >= inst.max_requests
            and int(inst.wall()) - w.last_spawn >= inst.min_worker_lifetime):
        raise ProcessExit("max-requests")


def _call_app(inst: Instance, w: Worker, req: Request) -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """Run the WSGI callable; returns (status, headers, body, raised).

    Every write goes through the request's ``wire.Connection`` (``req.conn``), in the
    order uWSGI puts bytes on the socket; ``uwsgi.send``/``sendfile``/``disconnect`` and
    the module-level ``uwsgi.start_response`` reach it through ``req.conn``.
    """
    app = (w.apps if inst.lazy_apps else inst.app.apps).get(0)
    if app is None:
        # "no app loaded": uWSGI answers 500 without calling anything.
        inst.log("--- no python application found, check your startup logs for errors ---", w)
        return 500, [("Connection", "close"), ("Content-Type", "text/plain")], \
            b"Internal Server Error", False
    app = inst.app.resolve(app)  # this process's copy of the master's callable
    environ = build_environ(inst, req, w)
    facade = inst.facade
    if inst.cores < 2:
        facade.env = environ
    misc = inst.subsystems.get("misc")
    if misc is not None:
        conn = req.conn = _Connection(inst, req, w, misc.writeout)
        start_response = misc.spit
    else:
        conn = req.conn = _Connection(inst, req, w)
        start_response = _local_spit(conn)
    failed = False
    try:
        result = app(environ, start_response)
        try:
            for chunk in result:
                if isinstance(chunk, str):
                    raise TypeError("unable to get the body of the response: str, not bytes")
                if not conn.write_body(bytes(chunk)):
                    conn.write_exception()
                    break
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except (ProcessExit,):
        raise
    except SystemExit as exc:
        raise ProcessExit("SystemExit", exc.code if isinstance(exc.code, int) else 1) from None
    except Exception:  # noqa: BLE001 - uWSGI logs the traceback and carries on
        failed = True
        w.exceptions += 1
        w.app_exceptions[0] = w.app_exceptions.get(0, 0) + 1
        inst.log_exception()
    finally:
        if inst.cores < 2 and getattr(facade, "env", None) is environ:
            try:
                del facade.env
            except AttributeError:
                pass
    conn.finish()
    if conn.altered or (conn.wire and not conn.headers_sent):
        # raw bytes (uwsgi.send, sendfile before start_response): what a client parses
        return (*_parse_wire(conn.raw), failed)
    body = b"".join(conn.body)
    if conn.status is None:
        return _exception_response() if failed else (None, [], b"", False)
    try:
        code = int(conn.status.split(None, 1)[0])
    except (ValueError, IndexError):
        code = None
    return code, conn.headers, body, failed


def _local_spit(conn: Any) -> Any:
    """A ``start_response`` bound to ``conn`` (when the misc subsystem is absent)."""
    def start_response(*args: Any, **kw: Any) -> Any:
        return conn.spit(args, kw)
    return start_response


def _wire_bytes(protocol: str, status: int | None, headers: list[tuple[str, str]],
                body: bytes) -> bytes:
    """What uWSGI writes for a response it builds itself (no app, fork mode)."""
    if status is None:
        return b""
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"{protocol} {status} {phrase}".rstrip()] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse_wire(raw: bytes) -> tuple[int | None, list[tuple[str, str]], bytes]:
    """Read the bytes like an HTTP client: no status line, no status."""
    import re

    sep = raw.find(b"\r\n\r\n")
    if sep < 0:
        return None, [], b""
    lines = raw[:sep].decode("latin-1").split("\r\n")
    match = re.match(r"^HTTP/\d(?:\.\d)? (\d{3})(?: .*)?$", lines[0])
    if match is None:
        return None, [], b""
    headers = []
    for line in lines[1:]:
        if line:
            key, _, value = line.partition(":")
            headers.append((key.strip(), value.strip()))
    return int(match.group(1)), headers, raw[sep + 4:]


def _exception_response() -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """What the client gets when the app raised before ``start_response``: nothing —
    uWSGI logs the request as a 500 and closes the connection (observed, 2.0.30)."""
    return None, [], b"", True
