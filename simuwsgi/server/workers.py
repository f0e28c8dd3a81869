"""Workers and WSGI requests in virtual time.

What it models (``core/utils.c`` ``wsgi_req_accept``/``uwsgi_close_request``,
``plugins/python/wsgi_handlers.c``, ``wsgi_subhandler.c``):

* a worker waits in its accept loop on the listen socket and its signal sockets;
  signals are only handled there, between requests (a busy worker keeps them queued);
  a request waits in the listen queue while every core of every worker is busy, and is
  taken by the next one that comes back to its accept loop; none is refused, and the
  master logs the queue full once a second (``check_listen_queue``);
* when several workers are idle, which one the kernel wakes is chance in real uWSGI:
  here the seeded RNG picks, and the trace records the choice; with ``--thunder-lock``
  the workers wait for a process-shared accept lock instead, first come first served:
  the worker idle the longest takes the connection (observed on 2.0.30: round robin);
* the app is called with uWSGI's environ (``--wsgi-env-behaviour cheat``, the default:
  one dict per core and app, cleared after each request and refilled by the next;
  ``holy``: a new one each time); ``uwsgi.env`` is set for the request (with
  fewer than two threads); the response is collected; counters are updated at the
  *end* of the request (``requests``, ``delta_requests``, the core's request count —
  ``uwsgi.request_id()`` — and ``total_requests``);
* an exception in the app is logged with its traceback and counted in ``exceptions``;
  the client gets what uWSGI sends (see ``_exception_response``);
* the response loop is ``uwsgi_response_subhandler_wsgi`` (see ``_respond``), and each
  request ends with uWSGI's log line (``simuwsgi.server.reqlog``), its counters (headers,
  switches, bytes) taken from the connection;
* ``--harakiri`` is armed for each request; ``--max-requests`` recycles the worker;
* ``--threads N``: each worker has N cores (``core/loop.c`` ``simple_loop_run``, one per
  thread), each running this loop and able to be in a request while the others are.
  The free cores take turns in ``accept()`` behind the worker's accept mutex
  (``thunder_lock``, a pthread mutex between the threads), first come first served: the
  core parked in accept takes the connection and hands the mutex to the next free core,
  so a worker with a free core stays among the accepting ones. A signal is read by
  the core in accept. When ``manage_next_request`` goes off (``--max-requests``, a
  curse, a reload) the worker accepts nothing more, each core leaves after its
  request, and the process exits when the last one does (``wait_for_threads``).

Requests take no virtual time unless the app sleeps or blocks.

The common path of a request around the app's call (``dispatch_request``,
``core_loop``, ``handle_request`` with its default log line) has
an optional C twin (``_creq.c``); the Python functions here stay the reference, and
the C code hands them every case it does not handle itself.
"""

from __future__ import annotations

import bisect
import errno
import functools
import io
import operator
import os
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import greenlet

from . import reading as _reading
from . import reqlog as _reqlog
from ._pyarg import no_kwargs, parser
from ..protocol._numbers import content_length as _content_length
from .._core.accel import load
from .._core.kernel import Killed
from .containment import is_simulator_frame
from .interface import CONTROL, ProcessExit
from .processes import Worker, WorkerThread
from . import wire as _wire
from .wire import BuiltinFunction
from .wire import Connection as _Connection

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["Request", "Response", "dispatch_request", "worker_loop"]

#: the optional C accelerator: a request's bookkeeping (see _creq.c)
_c = load(f"{__package__}._creq")


@dataclass(frozen=True, kw_only=True)
class Response:
    """What the client received.

    ``status`` is None when uWSGI closed the connection without a reply; ``reason``
    then says why (harakiri, worker death, instance stopped).
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

    @classmethod
    def _of(cls, status: int | None, headers: list[tuple[str, str]], body: bytes, reason: str,
            worker: int, started: float, finished: float, raw: bytes) -> Response:
        """A response made without the frozen ``__init__``, whose eight
        ``object.__setattr__`` calls cost ~1 us per request: every field given."""
        self = object.__new__(cls)
        self.__dict__.update(status=status, headers=headers, body=body, reason=reason,
                             worker=worker, started=started, finished=finished, raw=raw)
        return self

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

    # What most requests never change is a class default: a request is made per
    # submit, and each attribute set in ``__init__`` costs (a long run makes 86,400 a day).
    chunked_input: Any = None
    #: Its WebSocket once the app called ``uwsgi.websocket_*`` (``server.websocket``).
    websocket: Any = None
    done = False
    #: Called once when the request completes (``Simulation.wait`` uses it).
    on_done: Any = None
    response: Response | None = None
    worker = 0
    started = 0.0
    #: The client connection while a worker serves it (``simuwsgi.server.wire``).
    conn: Any = None
    #: The network's side of a request that came over a socket (``simuwsgi.net``: the
    #: packet as received, a control plugin's request); None for a driver's request.
    net: Any = None
    #: Its uwsgi packet's vars, once built, and their size in a packet (``packet_vars``;
    #: the environ and the log line read them).
    _vars: dict[str, str] | None = None
    _pktsize = 0
    #: Why no more body bytes come once those are read: the client closed
    #: (``"closed"``) or went silent (``"timeout"``); None: ``chunk_times`` say.
    body_end: str | None = None
    #: Set by the worker (``simuwsgi.server.reading``): the request's vars, the environ's
    #: (``--manage-script-name``), the app chosen, and the log's var count when the
    #: parse stopped early (-1: all the vars).
    vars: dict[str, str] | None = None
    env_vars: dict[str, str] | None = None
    app_id = 0
    var_cnt = -1
    #: var slots uWSGI added outside the packet (``--manage-script-name``'s SCRIPT_NAME)
    var_slots = 0
    #: waits for the client before the app ran (``--post-buffering``)
    switches = 0
    #: When the body's chunks arrive: (virtual time, bytes sent so far), from
    #: ``Simulation.submit(body_chunks=, pace=)``; empty: all with the head.
    chunk_times: Sequence[tuple[float, int]] = ()
    #: vars uWSGI appended while serving it (a static index's ``PATH_INFO``, a route's)
    appended_vars: Sequence[tuple[str, str]] = ()
    #: what the internal routing (``simuwsgi.server.routing``) changed: the response's
    #: ``addheader`` lines, no log line (``donotlog``), the method, URI and address the
    #: log line shows
    route_headers: Sequence[str] = ()
    removed_headers: Sequence[str] = ()
    do_not_log = False
    routed_method: str | None = None
    routed_uri: str | None = None
    routed_addr: str | None = None

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
        #: Sent with ``Transfer-Encoding: chunked``: ``body`` is the chunked stream as
        #: the client wrote it, with no ``CONTENT_LENGTH`` (so ``wsgi.input`` is empty);
        #: the app reads it with ``uwsgi.chunked_read()``, parsed by ``chunked_input``.
        self.chunked = bool(self.headers) and any(
            k.lower() == "transfer-encoding" and v.lower() == "chunked"
            for k, v in self.headers)
        #: ``CONTENT_LENGTH``: ``len(body)``, unless the body is read from elsewhere
        #: (``simuwsgi serve`` keeps a big one in a file) or chunked
        self.body_length = 0 if self.chunked else len(self.body)
        self.remote_addr = remote_addr
        self.protocol = protocol
        self.submitted = submitted

    def arrived(self, now: float) -> int:
        """How many body bytes the client has sent by ``now``."""
        if not self.chunk_times:
            return len(self.body)
        got = 0
        for when, total in self.chunk_times:
            if when > now:
                break
            got = total
        return got

    def next_arrival(self, now: float) -> float | None:
        """When the client sends its next chunk after ``now`` (None: it sent all)."""
        return next((when for when, _total in self.chunk_times if when > now), None)

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
        self.response = Response._of(status, headers, body, reason, self.worker, self.started,
                                     now, raw)
        # called once and forgotten: a callback that holds the request (the network's
        # answer) leaves no request <-> callback cycle for the GC to find
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done()

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
    ``choose`` would among the accepting ones; with ``--thunder-lock``, the accepting
    one idle the longest (``inst.idle_workers`` is then in arrival order).

    ``inst.idle_workers`` is kept in id order, so the pick is an index the RNG draws,
    the same with 4 workers or 256, as long as no worker ever called
    ``uwsgi.accepting(False)`` (then the accepting ones are listed first).
    """
    idle = inst.idle_workers
    count = len(idle)
    if inst.thunder_lock:  # idle workers in the order they came back to the lock
        worker = next((w for w in idle if w.accepting), None)
        if worker is None:
            return None
        idle.remove(worker)
    elif inst.some_refuse:
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
        # randrange(count) is _randbelow(count) (the same draw), two calls fewer
        worker = idle.pop(inst.kernel.rng._randbelow(count))
        _record_choice(inst, what, count, worker)
    worker.idle = False
    return worker


def dispatch_request(inst: Instance, req: Request) -> None:
    """A connection arrives on the listen socket."""
    proc = inst.kernel.current
    inst.trace.add(inst.kernel.now, proc.name if proc is not None else "master",
                   "request.submit", {"id": req.id, "method": req.method, "path": req.path})
    if inst.stopped:
        req.fail("connection refused: instance stopped", inst.kernel.now)
        return
    if inst.is_cheap:  # the master wakes on the socket and spawns the workers
        inst.leave_cheap_mode()
    worker = take_idle_worker(inst, "accept")
    if worker is not None:
        inst.kernel.wake(worker.acceptor, ("req", req))
        return
    _queue_request(inst, req)


def _queue_request(inst: Instance, req: Request) -> None:
    """Every worker is busy: the connection waits in the listen queue."""
    if not inst.listen_queue and inst.has_master:
        inst.kernel.at(inst.next_tick(inst.kernel.now), check_listen_queue, inst)
    inst.listen_queue.append(req)


def check_listen_queue(inst: Instance) -> None:
    """``master_check_listen_queue``, once a second while connections wait: the kernel's
    accept queue holds at most ``--listen`` + 1 of them (``tcpi_unacked``); when it is
    full the master says so. Connections beyond it are not refused: the kernel drops
    their SYNs and the clients retry, so they wait too (here, in arrival order)."""
    if inst.stopped or not inst.listen_queue:
        return
    queue = min(len(inst.listen_queue), inst.listen + 1)
    if queue >= inst.listen:
        name = next(iter(inst.opts.strings("http-socket", "socket", "uwsgi-socket",
                                           "http11-socket")), "127.0.0.1")
        inst.log_verbose(f'*** uWSGI listen queue of socket "{name}" (fd: 3) full !!! '
                         f"({queue}/{inst.listen}) ***", inst.master)
    inst.kernel.at(inst.next_tick(inst.kernel.now), check_listen_queue, inst)


# -- the worker -----------------------------------------------------------------------------
def worker_loop(inst: Instance, w: Worker) -> None:
    """The worker's main thread: the threads of cores 1..N-1, then core 0's loop."""
    if inst.command_mode:
        inst.app.run_command()
    if inst.lazy_apps:
        # Each worker imports its own copy of the app (and of its modules).
        inst.app.forget_app_modules()
        inst.app_loaded = inst.app.load()
        inst._check_need_app()
        w.apps = dict(inst.app.apps)
        w.after_req_hook = inst.app.after_req_hook
    _accepting(inst, w)
    for core in range(1, inst.threads):  # uwsgi_loop_cores_run
        thread = _new_thread(inst, w, core)
        w.cores.append(thread)
        inst.kernel.wake(thread)  # it runs once this one parks: behind it for the mutex
    core_loop(inst, w)


def _accepting(inst: Instance, w: Worker) -> None:
    """The ``accepting`` hooks as the worker is about to accept (``-once``: at its
    first spawn, ``1``: worker 1); a fatal one stops the rest."""
    from .hooks import run_hooks

    first = w.respawn_count == 0
    for option, run in (("hook-accepting", True), ("hook-accepting-once", first),
                        ("hook-accepting1", w.id == 1),
                        ("hook-accepting1-once", w.id == 1 and first)):
        if run and not run_hooks(inst, option, w):
            return


def _new_thread(inst: Instance, w: Worker, core: int) -> WorkerThread:
    holder: list[WorkerThread] = []
    thread = WorkerThread(w, core, lambda: inst.run_thread(holder[0]))
    holder.append(thread)
    return thread


#: Where a core waits in its own loop, outside app code.
_IN_ACCEPT = "accept"
_FOR_MUTEX = "accept mutex"
_JOINING = "joining threads"
_LOOP_WAITS = frozenset({_IN_ACCEPT, _FOR_MUTEX, _JOINING})


def core_loop(inst: Instance, core: Worker) -> None:
    """The accept loop of one core: signals between requests, then requests, each
    taken while holding the worker's accept mutex."""
    w = core.main
    signals = inst.subsystems.get("signals")
    park = inst.kernel.park
    wake = inst.kernel.wake
    private = w.signal_queue
    shared = signals.shared_workers if signals is not None else ()
    listen = inst.listen_queue
    idle = inst.idle_workers
    waiters = w.mutex_waiters
    insort = bisect.insort
    thunder_lock = inst.thunder_lock
    while True:
        if not w.manage_next_request:
            _leave(inst, core)
            return
        owner = w.acceptor
        if owner is not None and owner is not core:  # wait for the mutex
            waiters.append(core)
            park(_FOR_MUTEX)
            continue
        w.acceptor = core
        if private:
            kind, value = "sig", private.popleft()
        elif shared:
            kind, value = "sig", shared.popleft()
        elif listen and w.accepting:
            kind, value = "req", listen.popleft()
        else:
            w.status = "idle"
            w.idle = True
            if thunder_lock:
                idle.append(w)
            else:
                insort(idle, w, key=by_id)
            kind, value = park(_IN_ACCEPT)
        # thunder_unlock: the accept mutex goes to the first core waiting for it (inline:
        # once per signal and request, the hot path of the timer day)
        if waiters:
            nxt = w.acceptor = waiters.popleft()
            wake(nxt)
        else:
            w.acceptor = None
        if kind == "sig":
            signals.run_handler(core, value)
        elif kind == "req":
            handle_request(inst, core, value)


def _leave(inst: Instance, core: Worker) -> None:
    """A core leaves its loop (``manage_next_request`` is off): the last one to leave
    ends the process; core 0, the main thread, waits for the threads to end
    (``wait_for_threads``)."""
    w = core.main
    if not w.busy:
        raise ProcessExit(w.stop_reason)
    if core is w:
        inst.kernel.park(_JOINING)


def unwind_idle_cores(inst: Instance, w: Worker) -> None:
    """The cores of the dead worker ``w`` parked in their loop never run again: their
    greenlets are unwound now (from the hub), else a long run that recycles workers
    would keep every one until the simulation closes. A core stopped in app code is
    left to ``Kernel.close``: a SIGKILL runs none of the app's ``finally`` blocks."""
    kernel = inst.kernel
    for core in w.cores:
        kernel.discard(core)  # (a thread that never ran is simply forgotten)
        g = core.greenlet
        if not g or g.dead or core.wait_reason not in _LOOP_WAITS:
            continue
        previous, kernel.current = kernel.current, core
        try:
            g.throw(Killed)
        except Killed:
            pass
        finally:
            kernel.current = previous


def goodbye(inst: Instance, w: Worker) -> None:
    """``goodbye_cruel_world`` (``--max-requests``, ``--reload-on-rss``...): the worker
    takes no new request; the process exits once its cores are done. It curses itself
    (``uwsgi_curse``): a core still busy after ``--worker-reload-mercy`` is SIGKILLed by
    the master with its request (observed: a 30 s request dies at a mercy of 5 s)."""
    if w.manage_next_request:
        inst.log("...The work of process %d is done. Seeya!" % w.pid, w)
        w.stop_reason = "max-requests"
        if w.busy:
            inst.no_mercy_after(w, inst.worker_reload_mercy)
    w.manage_next_request = False
    w.stop_accepting()


class _Input(io.BytesIO):
    """``wsgi.input``: uWSGI's ``uwsgi._Input`` (read, readline, readlines, seek, tell,
    fileno, close) over the body the client sent, up to the request's Content-Length
    (``wsgi_req->post_cl``, see ``content_length``).

    ``read()`` is ``uwsgi_request_body_read``: it reads at most what is left of the
    Content-Length; a buffer larger than the machine's memory cannot be allocated
    (``malloc()`` fails, logged, ``OSError``), and when the client sent fewer bytes than
    it announced (or has not sent yet: a slow client), uWSGI waits for the rest, each
    wait at most ``--socket-timeout`` (default 4 s) of virtual time; one that times out
    logs ``[uwsgi-body-read] Timeout reading ...`` and raises ``OSError``. After
    ``--post-buffering`` the body is in memory: no wait. ``readline()`` waits the same
    way for its line (or the rest of the body); a timeout there raises
    ``OSError('error during readline(N) ...')``. ``readlines``/iteration read what the
    client will send, without the waiting."""

    def __init__(self, body: bytes, post_cl: int = -1, conn: Any = None) -> None:
        # _cwsgi.c's new_input makes one as this does (keep them alike)
        self._cl = len(body) if post_cl < 0 else post_cl
        super().__init__(body[:self._cl])
        self._conn = conn

    def read(self, *args: Any) -> bytes:  # type: ignore[override]
        (hint,) = _parse_read(args) or (0,)
        pos = self.tell()
        if pos >= self._cl:
            return b""
        remains = self._cl - pos if hint <= 0 else min(hint, self._cl - pos)
        conn = self._conn
        if conn is not None and remains > _memory():
            conn.req_error("uwsgi_request_body_read()/malloc()", "core/reader.c", 371,
                           os.strerror(errno.ENOMEM))
            raise OSError(f"error during read({hint}) on wsgi.input")
        if conn is not None:
            sent = _reading.wait_for_body(_reading.reading(conn.inst), conn.req, pos + remains,
                                          conn)
            if sent is not None:
                self.seek(sent)
                why = _reading.body_read_failed(conn.inst, conn.req, pos + remains - sent,
                                                self._cl, sent)
                raise OSError(f"{why} during read({hint}) on wsgi.input")
        return super().read(remains)


    def readline(self, *args: Any) -> bytes:  # type: ignore[override]
        conn = self._conn
        pos = self.tell()
        if conn is not None and pos < self._cl:
            body = self.getbuffer()
            end = bytes(body[pos:]).find(b"\n")
            del body
            target = self._cl if end < 0 else pos + end + 1
            reading = _reading.reading(conn.inst)
            sent = _reading.wait_for_body(reading, conn.req, target, conn)
            if sent is not None:  # consume_body_for_readline timed out or met EOF
                _reading.body_read_failed(conn.inst, conn.req,
                                          min(reading.buffer_size, self._cl - sent),
                                          self._cl, sent)
                self.seek(sent)
                hint = args[0] if args else 0
                raise OSError(f"error during readline({hint}) on wsgi.input")
        return super().readline(*args)


_Input.__module__ = "uwsgi"
_parse_read = parser("|l:read")


def _memory() -> int:
    """What one ``malloc`` can get on this machine (Linux's heuristic overcommit refuses
    more than the physical memory, roughly)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def content_length(value: str | None) -> int:
    """``get_content_length`` of a var's text (``simuwsgi.protocol``'s)."""
    return _content_length((value or "").encode("latin-1", "replace"))


class _LogSink(io.RawIOBase):
    """The byte end of ``wsgi.errors``: complete lines go to the uWSGI log."""

    def __init__(self, inst: Instance) -> None:
        self._inst = inst
        self._partial = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        chunk = self._partial + data
        *lines, self._partial = chunk.split(b"\n")
        sink = self._inst.log_sink
        if sink is not None and sink.master is not None and data:
            # the master's log pipe gets each write() as one message, whole lines or not
            self._inst.log_message(data, [line.decode("utf-8", "replace") for line in lines])
            return len(data)
        for line in lines:
            self._inst.log_raw(line.decode("utf-8", "replace"))
        return len(data)


def errors_stream(inst: Instance) -> io.TextIOWrapper:
    """``wsgi.errors``: uWSGI passes a text wrapper over its stderr (the log)."""
    return io.TextIOWrapper(io.BufferedWriter(_LogSink(inst)), encoding="UTF-8",
                            line_buffering=True)


def writes_to_a_log(stream: Any) -> bool:
    """Whether ``stream`` is an instance's :func:`errors_stream`."""
    return (isinstance(stream, io.TextIOWrapper)
            and isinstance(getattr(stream.buffer, "raw", None), _LogSink))


_parse_sendfile = parser("O|i:uwsgi_sendfile")


def file_wrapper(inst: Instance) -> BuiltinFunction:
    """``wsgi.file_wrapper``: uWSGI's ``uwsgi_sendfile``, one function per instance. It
    returns the file object itself, remembered for the request's response loop."""
    wrapper = getattr(inst, "_file_wrapper", None)
    if wrapper is None:
        def uwsgi_sendfile(*args: Any, **kw: Any) -> Any:
            no_kwargs("uwsgi_sendfile", kw)
            parsed = _parse_sendfile(args)
            filelike = parsed[0]
            if not hasattr(filelike, "read"):
                raise AttributeError("object has no attribute 'read'")
            req = getattr(inst.kernel.current, "request", None)
            conn = getattr(req, "conn", None)
            if conn is not None:
                conn.sendfile_obj = filelike
                conn.sendfile_chunk = parsed[1] if len(parsed) > 1 else 0
            return filelike

        wrapper = inst._file_wrapper = BuiltinFunction("uwsgi_sendfile", uwsgi_sendfile)
    return wrapper


def _server_port(inst: Instance) -> str:
    """``SERVER_PORT``: the port of the first socket option (remembered per options)."""
    port: str = inst.opts.memo(("server-port",), _read_server_port, inst.opts)
    return port


def _read_server_port(opts: Any) -> str:
    for value in opts.strings("http-socket", "socket", "http11-socket"):
        host, sep, port = value.rpartition(":")
        if sep and port.isdigit():
            return port
    return "80"


def packet_vars(inst: Instance, req: Request) -> dict[str, str]:
    """The vars uWSGI's ``--http-socket`` parser (``proto/http.c`` ``http_parse``) puts
    in the request's uwsgi packet (observed on 2.0.30: no ``REMOTE_PORT``;
    ``SERVER_NAME`` is the host name; ``CONTENT_LENGTH`` only with a body; headers
    become ``HTTP_*``), and their size in the packet (``req._pktsize``). Built once per
    request shape: requests that differ only in their body's bytes share one dict (a
    run sends the same few again and again), so no caller may change it."""
    if req._vars is not None:
        return req._vars
    reading = _reading.reading(inst)
    shapes = reading.shapes
    key = (req.method, req.path, req.protocol, req.remote_addr, len(req.body), req.chunked,
           *req.headers)
    try:
        known = shapes.get(key)
    except TypeError:  # a header given as a list: not remembered
        key = known = None
    if known is not None:
        req._vars, req._pktsize = known
        return known[0]
    path_info, query = _split_uri(req.path)
    packet = {
        "REQUEST_METHOD": req.method,
        "PATH_INFO": path_info,
        "REQUEST_URI": req.path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": req.protocol,
        "SCRIPT_NAME": "",
        "SERVER_NAME": inst.hostname,
        "SERVER_PORT": _server_port(inst),
        "REMOTE_ADDR": req.remote_addr,
    }
    for name, value in req.headers:
        key_ = name.upper().replace("-", "_")
        if key_ == "CONTENT_TYPE" or key_ == "CONTENT_LENGTH":
            packet[key_] = value
        else:
            packet["HTTP_" + key_] = value
    if req.body and "CONTENT_LENGTH" not in packet and not req.chunked:
        packet["CONTENT_LENGTH"] = str(len(req.body))
    if reading.manage_script_name:
        del packet["SCRIPT_NAME"]  # proto/http.c leaves it to uwsgi_parse_vars
    req._vars = packet
    req._pktsize = _reading.packet_size(packet)
    if key is not None:
        if len(shapes) >= _SHAPES:
            shapes.clear()
        shapes[key] = packet, req._pktsize
    return packet


#: How many request shapes an instance remembers (``packet_vars``).
_SHAPES = 4096


def build_environ(inst: Instance, req: Request, w: Worker,
                  conn: Any = None) -> dict[str, Any]:
    """The WSGI environ uWSGI's Python plugin builds: the packet's vars, then
    ``wsgi.input`` and the other ``wsgi.*`` and ``uwsgi.*`` keys. A WSGI request that
    came over a socket (``simuwsgi.net``) has the vars the node received
    (``WireRequest.text_vars``), the keys in the order ``wsgi_subhandler.c`` adds them
    and its ``wsgi.url_scheme``; its body's length is the simulated packet's."""
    vars_ = req.env_vars or req.vars or packet_vars(inst, req)
    length = vars_.get("CONTENT_LENGTH")
    wire = req.net
    wired = wire is not None and wire.control is None
    environ: dict[str, Any] = dict(wire.text_vars() if wired else vars_)
    environ["wsgi.input"] = _Input(req.body, content_length(length) if length else 0, conn)
    if wired:
        environ.update(inst.opts.memo(("wire environ",), _wire_environ_keys, inst))
        environ["wsgi.url_scheme"] = wire.scheme
    else:
        environ.update(inst.opts.memo(("environ",), _environ_keys, inst))
    return environ


def _environ_keys(inst: Instance) -> dict[str, Any]:
    """The environ's keys after ``wsgi.input``: the same for every request."""
    return {
        "wsgi.errors": inst.errors_stream(),
        "wsgi.file_wrapper": file_wrapper(inst),
        "wsgi.version": (1, 0),
        "wsgi.run_once": False,
        "wsgi.url_scheme": "http",
        "wsgi.multithread": inst.threads > 1,
        "wsgi.multiprocess": inst.numproc > 1,
        "uwsgi.version": b"2.0.30",
        "uwsgi.node": inst.hostname.encode(),
    }


#: The order of those keys in the environ of a request that came over a socket.
_WIRE_ENVIRON_ORDER = ("wsgi.file_wrapper", "wsgi.version", "wsgi.errors", "wsgi.run_once",
                       "wsgi.multithread", "wsgi.multiprocess", "wsgi.url_scheme",
                       "uwsgi.version", "uwsgi.node")


def _wire_environ_keys(inst: Instance) -> dict[str, Any]:
    """``_environ_keys`` (the very objects) in the order of a wire request's environ."""
    keys = inst.opts.memo(("environ",), _environ_keys, inst)
    return {key: keys[key] for key in _WIRE_ENVIRON_ORDER}


def _split_uri(uri: str) -> tuple[str, str]:
    """``PATH_INFO`` (unquoted) and ``QUERY_STRING`` of a request URI; those of short
    URIs are remembered (a run requests the same few again and again)."""
    return _split_short_uri(uri) if len(uri) <= 256 else _split_any_uri(uri)


def _split_any_uri(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return _unquote_path(parts.path or "/"), parts.query


_split_short_uri = functools.lru_cache(maxsize=4096)(_split_any_uri)


def _unquote_path(path: str) -> str:
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(path).decode("latin-1")


def handle_request(inst: Instance, w: Worker, req: Request) -> None:
    """Core ``w`` (a worker, or one of its threads) runs ``req``."""
    kernel = inst.kernel
    reading = _reading.reading(inst)
    vars_ = req._vars or packet_vars(inst, req)
    if req.net is None:  # serve's real socket server read those
        read = reading.read_head(req, vars_)
        if read is None:  # closed: nothing counted, no log line
            req.fail("connection closed without a response: the request head does not "
                     "fit --buffer-size", kernel.now)
            return
        vars_ = read
    req.vars = vars_
    w.status = "busy"
    w.request = req
    req.worker = w.id
    req.started = kernel.now
    fields = {"id": req.id, "method": req.method, "path": req.path}
    if inst.threads > 1:
        fields["core"] = w.core
    inst.trace.add(req.started, w.name, "request.start", fields)
    start_wall = inst.wall()
    if inst.harakiri:
        inst.arm_harakiri(w, inst.harakiri)
    outcome = reading.parse_vars(w, req, vars_)
    # rpc, signal, cache, spool (simuwsgi.net._wire's control) run in the app's place but
    # are no app's requests: uWSGI counts them in the totals only, and logs no line
    wire = req.net
    plugin = wire is not None and wire.control is not None
    counted = outcome is _reading.PARSED and req.app_id >= 0 and not plugin
    if counted:  # as the app is called
        w.app_local_requests[req.app_id] = w.app_local_requests.get(req.app_id, 0) + 1
    if outcome is _reading.FAILED:  # uWSGI's 500 with no byte sent
        status, headers, body, failed = None, [], b"", False
    elif outcome is _reading.SERVED or outcome is _reading.ROUTED:  # a static file, a
        # route that ended the request: the connection holds the response
        status, headers, body, failed = _result(req.conn, False)
    elif inst.forks is None:
        call = _call_app if reading.exceptions is None else _call_app_py
        status, headers, body, failed = call(inst, w, req)
    else:  # fork mode: the app runs in the worker's OS process
        status, headers, body, failed = inst.forks.call_app(w, req)
    end = kernel.now
    # uwsgi_close_request: counters at the end of the request.
    w.requests += 1
    w.delta_requests += 1
    w.core_counts[w.core] += 1
    inst.total_requests += 1
    if counted:
        w.app_requests[req.app_id] = w.app_requests.get(req.app_id, 0) + 1
    if outcome is not _reading.SERVED:  # a static file: do_not_account_avg_rt
        elapsed_us = int(round((end - req.started) * 1_000_000))
        w.running_time += elapsed_us
        w.avg_rt = elapsed_us if w.requests == 1 else (w.avg_rt + elapsed_us) // 2
    w.tx += _tx(req, outcome is _reading.FAILED)
    w.request = None
    # uwsgi.after_req_hook runs before harakiri is left (unless --harakiri-no-arh)
    hook = None if plugin else (w.after_req_hook if inst.lazy_apps else
                                inst.app.after_req_hook)
    late_harakiri = hook is not None and not inst.opts.flag(*_NO_ARH)
    if not late_harakiri:
        _leave_harakiri(inst, w)
    fields = {"id": req.id, "status": status, "bytes": len(body)}
    if failed:
        fields["exception"] = True
    inst.trace.add(end, w.name, "request.end", fields)
    reason = ""
    if outcome is _reading.FAILED:
        reason = "connection closed without a response: the request was refused (see the log)"
    elif status is None:
        reason = ("connection closed without a response: " +
                  ("the app raised before start_response" if failed
                   else "start_response not called"))
    req.finish(status, headers, body, end, reason)
    inst.publish_request_memory(w)
    if not plugin:
        if inst.final_routes is not None:
            _final_routes(inst, w, req, outcome is _reading.FAILED)
        if hook is not None:
            _after_req_hook(inst, w, req, hook)
        _log_request(inst, w, req, start_wall, end, outcome is _reading.FAILED)
    if late_harakiri:
        _leave_harakiri(inst, w)
    req.conn = None  # closed; and no request <-> connection cycle left for the GC to find
    # uwsgi_close_request: --max-requests (+ (id - 1) * --max-requests-delta), then the
    # memory limits
    limit = inst.max_requests + (w.id - 1) * inst.max_requests_delta
    if ((inst.max_requests > 0 and w.delta_requests >= limit
            and int(inst.wall()) - w.last_spawn >= inst.min_worker_lifetime)
            or inst.measure_memory(w.main)):
        goodbye(inst, w.main)


#: ``--harakiri-no-arh`` and its aliases: harakiri is left before ``uwsgi.after_req_hook``
_NO_ARH = ("harakiri-no-arh", "no-harakiri-arh", "no-harakiri-after-req-hook")


def _leave_harakiri(inst: Instance, w: Worker) -> None:
    """``uwsgi_close_request``'s "leave harakiri mode" (and user harakiri)."""
    if w.harakiri_deadline or w.user_harakiri_deadline:
        w.harakiri_deadline = 0.0
        w.user_harakiri_deadline = 0.0
        inst._reschedule_harakiri(w)


def _after_req_hook(inst: Instance, w: Worker, req: Request, hook: Any) -> None:
    """``uwsgi_after_request_wsgi``: ``uwsgi.after_req_hook`` (as the apps were
    initialised) called with no argument once the response is done and counted, before
    the log line, the request still the worker's (a harakiri then names it). An
    exception is managed as uWSGI manages one (logged, counted, never answered: the
    response is gone); ``sys.exit()`` ends the worker."""
    w.request = req
    try:
        if inst.forks is not None:  # the hook is the child's (fork mode)
            inst.forks.after_request(w, req)
            return
        try:
            inst.app.resolve(hook)()  # this process's copy (virtual fork)
        except CONTROL:
            raise
        except SystemExit as exc:
            raise ProcessExit.from_system_exit(exc) from None
        except BaseException:  # noqa: BLE001 - uwsgi_manage_exception(wsgi_req, 0)
            _manage_exception(inst, w, req.conn, False)
    finally:
        w.request = None


def _stats(req: Request, refused: bool) -> dict[str, Any]:
    """The request's counters, from its connection (``Connection.log_stats``)."""
    stats = getattr(req.conn, "log_stats", None)
    if stats is None:  # no app: uWSGI's own 500 (2 headers, 83 bytes on HTTP/1.1)
        stats = {**_FAILED_STATS, "switches": req.switches} if refused else \
            _no_app_stats(req.protocol)
    return stats


def _tx(req: Request, refused: bool = False) -> int:
    """What ``uwsgi_close_request`` adds to the worker's ``tx``: the bytes written, body
    and headers."""
    stats = _stats(req, refused)
    return int(stats["response_size"]) + int(stats["headers_size"])


def _final_routes(inst: Instance, w: Worker, req: Request, refused: bool) -> None:
    """``uwsgi_apply_final_routes``: after the counters, before the log line, with the
    response's status and size (``${uwsgi[status]}``)."""
    stats = _stats(req, refused)
    inst.final_routes.after_response(inst, w, req, stats["status"], stats["response_size"])


def _log_request(inst: Instance, w: Worker, req: Request, start_wall: float,
                 end: float, refused: bool = False) -> None:
    """uWSGI's request log line, from the connection's counters (``reqlog``)."""
    stats = _stats(req, refused)
    wire = req.net
    if wire is not None and wire.vars:
        # the packet the node received (its HTTP parser's, or a router's or web server's
        # uwsgi packet): the vars uWSGI counts and logs
        vars_ = wire.text_vars()
    else:
        vars_ = req.vars or packet_vars(inst, req)
    addr = req.routed_addr or req.remote_addr
    policy = _reqlog.policy(inst)
    if policy.x_forwarded_for and "HTTP_X_FORWARDED_FOR" in vars_:
        addr = vars_["HTTP_X_FORWARDED_FOR"]
    misc = inst.subsystems.get("misc")
    state = misc.request_state(req) if misc is not None else None
    app_id = stats["app_id"]
    record = _reqlog.RequestLogRecord(
        pid=w.pid, wid=w.id, app_id=app_id,
        app_req=w.app_local_requests.get(app_id, 0) if app_id >= 0 else -1,
        total=inst.total_requests, addr=addr, method=req.routed_method or req.method,
        uri=req.path if req.routed_uri is None else req.routed_uri,
        proto=req.protocol, status=stats["status"],
        var_cnt=req.var_cnt if req.var_cnt >= 0 else
        2 * (len(vars_) + len(req.appended_vars) + req.var_slots),
        pktsize=_reading.vars_size(req, vars_) + (
            sum(4 + len(k) + len(v) for k, v in req.appended_vars) if req.appended_vars
            else 0),
        start_wall=start_wall, micros=int(round((end - req.started) * 1_000_000)),
        response_size=stats["response_size"], headers_size=stats["headers_size"],
        header_cnt=stats["header_cnt"], switches=stats["switches"], core=w.core,
        via_sendfile=stats["via_sendfile"], write_errors=stats["write_errors"],
        cl=len(req.body), host=vars_.get("HTTP_HOST", ""), rss=w.rss_size, vsz=w.vsz_size,
        uagent=vars_.get("HTTP_USER_AGENT", ""), referer=vars_.get("HTTP_REFERER", ""),
        log_this=bool(state is not None and state.log_forced), do_not_log=req.do_not_log)
    _reqlog.log_request(inst, record, state.logvars if state is not None else {}, vars_, w,
                        policy)


#: A request whose vars the parse refused: a 500 with nothing written.
_FAILED_STATS = {"app_id": -1, "status": 500, "response_size": 0, "headers_size": 0,
                 "header_cnt": 0, "switches": 0, "via_sendfile": False, "write_errors": 0}


def _no_app_stats(protocol: str) -> dict[str, Any]:
    head = (f"{protocol} 500 Internal Server Error\r\nConnection: close\r\n"
            "Content-Type: text/plain\r\n\r\n")
    return {"app_id": -1, "status": 500, "response_size": 21, "headers_size": len(head),
            "header_cnt": 2, "switches": 0, "via_sendfile": False, "write_errors": 0}


def _call_app(inst: Instance, w: Worker, req: Request) -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """Run the WSGI callable; returns (status, headers, body, raised).

    Every write goes through the request's ``wire.Connection`` (``req.conn``), in the
    order uWSGI puts bytes on the socket; ``uwsgi.send``/``sendfile``/``disconnect`` and
    the module-level ``uwsgi.start_response`` reach it through ``req.conn``.
    """
    app = (w.apps if inst.lazy_apps else inst.app.apps).get(req.app_id)
    if app is None:
        # "no app loaded": uWSGI answers 500 without calling anything.
        inst.log("--- no python application found, check your startup logs for errors ---", w)
        return 500, [("Connection", "close"), ("Content-Type", "text/plain")], \
            b"Internal Server Error", False
    app = inst.app.resolve(app)  # this process's copy of the master's callable
    misc = inst.subsystems.get("misc")
    if misc is not None:
        conn = req.conn = _Connection(inst, req, w, misc.writeout)
        start_response = misc.spit
    else:
        conn = req.conn = _Connection(inst, req, w)
        start_response = _local_spit(conn)
    conn.app_id = req.app_id
    conn.switches = req.switches
    environ = build_environ(inst, req, w, conn)
    holy = inst.wsgi_env_holy
    if not holy:  # --wsgi-env-behaviour cheat: the core's one dict for this app, refilled
        environ = reused_environ(w, req.app_id, environ)
    # uwsgi.env: ``env`` is no per-process hook, so it goes straight into the module's
    # dict (past the module type's Python ``__setattr__``/``__delattr__``)
    module = inst.facade.__dict__
    if inst.cores < 2:
        module["env"] = environ
    failed = False
    try:
        try:
            result = app(environ, start_response)
        except (*CONTROL, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - request_subhandler: logged, no response loop
            failed = True
            _manage_exception(inst, w, conn)
        else:
            failed = _respond(inst, w, conn, result)
    except CONTROL:
        raise
    except SystemExit as exc:
        raise ProcessExit.from_system_exit(exc) from None
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt... from the body: logged
        failed = True
        _manage_exception(inst, w, conn)
    finally:
        if not holy:  # uwsgi_python_destroy_env_cheat: cleared (uwsgi.env stays it)
            environ.clear()
        elif inst.cores < 2 and module.get("env") is environ:
            del module["env"]
    return _result(conn, failed)


def reused_environ(w: Any, app_id: int, environ: dict[str, Any]) -> dict[str, Any]:
    """``uwsgi_python_create_env_cheat``: the environ dict of this core and app, made at
    its first request and cleared after each, filled with ``environ``'s items."""
    kept = w.environs
    if kept is None:
        kept = w.environs = {}
    found = kept.get(app_id)
    if found is None:
        kept[app_id] = environ
        return environ
    found.update(environ)
    return found  # type: ignore[no-any-return]


def _result(conn: Any, failed: bool) -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """What the client got on ``conn`` once the request ends: (status, headers, body,
    raised)."""
    conn.finish()
    return _outcome(conn, failed)


def _outcome(conn: Any, failed: bool) -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """``_result`` once the connection is finished."""
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


def _manage_exception(inst: Instance, w: Worker, conn: Any = None, catch: bool = True) -> bool:
    """``uwsgi_manage_exception``: the traceback logged, the exception counted. With
    the exception options (``exceptions.Policy``: the Python twin alone runs then, and
    gives the request's ``conn``), ``catch`` says whether ``--catch-exceptions`` may
    answer (``uwsgi.catch_exceptions``, or 0 for close() and file reads)."""
    policy = None if conn is None else _reading.reading(inst).exceptions
    if policy is not None:
        return policy.manage(inst, w, conn, sys.exc_info()[1], catch=catch,  # type: ignore[no-any-return]
                             log=inst.log_exception)
    w.exceptions += 1
    request = getattr(w, "request", None)  # its app's count (uwsgi_apps[app_id])
    app_id = request.app_id if request is not None else 0
    w.app_exceptions[app_id] = w.app_exceptions.get(app_id, 0) + 1
    inst.log_exception()
    return True


def _respond(inst: Instance, w: Worker, conn: Any, result: Any) -> bool:
    """``uwsgi_response_subhandler_wsgi``: a ``bytes`` result is the body; the object
    ``wsgi.file_wrapper`` returned is sent as a file; anything else is iterated, each
    ``bytes`` item written and any other item logged as unhandled (a ``str`` body is
    iterated character by character, observed). Each item is one of the log's
    "switches"; ``close()`` is called at the end whatever happened. True when an
    exception was logged."""
    failed = _write_result(inst, w, conn, result)
    close = getattr(result, "close", None)
    if conn.take_pending() and close is not None:  # its close() fails with the error,
        conn.write_exception()  # which uwsgi_manage_exception prints (else: cleared)
        failed = True
    if close is not None:
        try:
            close()
        except Exception:  # noqa: BLE001
            failed = _manage_exception(inst, w, conn, False)
    return failed


def _write_result(inst: Instance, w: Worker, conn: Any, result: Any) -> bool:
    """The response loop proper; True when an exception was logged."""
    if isinstance(result, bytes):
        if not conn.write_body(result):
            conn.check_write_errors()
        return False
    if conn.sendfile_obj is not None and result is conn.sendfile_obj:
        _send_file_wrapper(inst, w, conn, result)
        return False
    try:
        chunks = iter(result)
    except Exception:  # noqa: BLE001 - uWSGI logs it and closes the request
        return _manage_exception(inst, w, conn)
    while True:
        try:
            chunk = _next_pending(conn, chunks) if conn.take_pending() else next(chunks)
        except StopIteration:
            if conn.take_pending():  # PyIter_Next's NULL with the write error set
                conn.write_exception()
                return True
            return False
        except Exception:  # noqa: BLE001
            return _manage_exception(inst, w, conn)
        if isinstance(chunk, bytes):
            if not conn.write_body(chunk) and conn.check_write_errors():
                return False
        elif conn.sendfile_obj is not None and chunk is conn.sendfile_obj:
            if not _send_file_wrapper(inst, w, conn, chunk):
                return False
        else:
            _unhandled(inst, chunk)
        conn.switches += 1


def _unhandled(inst: Instance, chunk: Any) -> None:
    inst.log(f"[ERROR] Unhandled object from iterator: {chunk!r} ({hex(id(chunk))})")


def _send_file_wrapper(inst: Instance, w: Worker, conn: Any, filelike: Any) -> bool:
    """The file ``wsgi.file_wrapper`` wrapped: sent with sendfile() when it has a file
    descriptor, else read (in ``blksize`` reads) and written; False on a write error."""
    try:
        fd = filelike if isinstance(filelike, int) else filelike.fileno()
        fd = fd if isinstance(fd, int) else -1
    except Exception:  # noqa: BLE001 - PyObject_AsFileDescriptor failed: cleared
        fd = -1
    if fd >= 0:
        conn.sendfile(fd, 0, 0)
    elif hasattr(filelike, "read"):
        args = (conn.sendfile_chunk,) if conn.sendfile_chunk > 0 else ()
        while True:
            try:
                data = filelike.read(*args)
            except Exception:  # noqa: BLE001
                _manage_exception(inst, w, conn, False)
                break
            if not isinstance(data, bytes) or not data:
                break
            if not conn.write_body(data):
                break
    return not (conn.write_errors and conn.check_write_errors())


def _next_pending(conn: Any, chunks: Any) -> Any:
    """``next(chunks)`` while a write error is pending (``--write-errors-exception-only``):
    a C iterator gives its next item, the error still pending; Python code the iterator
    resumes (a generator) runs until its first call of a C function, which returns with
    the error set: CPython's ``SystemError``, caused by the write error (observed,
    2.0.30), raised there in the app's code."""
    me, previous = greenlet.getcurrent(), sys.getprofile()

    def fail_at_c_return(frame: Any, event: str, arg: Any) -> None:
        if (event == "c_return" and greenlet.getcurrent() is me
                and not is_simulator_frame(frame.f_code.co_filename)):
            sys.setprofile(previous)
            raise SystemError(f"{_c_function_repr(arg)} returned a result with an "
                              "exception set") from OSError("write error")

    conn.pending = True
    sys.setprofile(fail_at_c_return)
    try:
        chunk = next(chunks)
    except SystemError as exc:
        if isinstance(exc.__cause__, OSError) and str(exc.__cause__) == "write error":
            conn.pending = False  # it is the cause of the error the app got
            tb = exc.__traceback__  # Python 3.10 enters the app's frame twice in it
            while tb is not None and tb.tb_next is not None:
                if tb.tb_next.tb_frame is tb.tb_frame and tb.tb_next.tb_lineno == tb.tb_lineno:
                    tb.tb_next = tb.tb_next.tb_next
                else:
                    tb = tb.tb_next
        raise
    finally:
        if sys.getprofile() is fail_at_c_return:
            sys.setprofile(previous)
    return chunk


def _c_function_repr(fn: Any) -> str:
    """How CPython names a C function in its ``SystemError``: a method of a built-in type
    by its descriptor (``<method 'append' of 'list' objects>``), else its repr."""
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        descriptor = getattr(type(owner), getattr(fn, "__name__", ""), None)
        if type(descriptor).__name__ == "method_descriptor":
            return repr(descriptor)
    return repr(fn)


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


def finish_sent(req: Request, raw: bytes, now: float) -> None:
    """The worker exits in the request after writing ``raw`` (``--reload-on-exception``):
    the client read it like any response, then the connection closed."""
    if req.conn is None:  # fork mode: the connection was the child's
        req.conn = types.SimpleNamespace(raw=raw, altered=False, log_stats=None)
    status, headers, body = _parse_wire(raw)
    req.finish(status, headers, body, now,
               "the worker exited after writing it (monitored exception)")


def _exception_response() -> tuple[int | None, list[tuple[str, str]], bytes, bool]:
    """What the client gets when the app raised before ``start_response``: nothing —
    uWSGI logs the request as a 500 and closes the connection (observed, 2.0.30)."""
    return None, [], b"", True


_call_app_py = _call_app
if _wire._c is not None:  # the common case of the WSGI call in C (see _cwsgi.c)
    _call_app = _wire._c.app_caller({  # noqa: F811 - the twin stays the fallback
        "fallback": _call_app, "Connection": _Connection, "Input": _Input,
        "content_length": content_length, "packet_vars": packet_vars,
        "environ_keys": _environ_keys, "environ_key": ("environ",),
        "wire_environ_keys": _wire_environ_keys, "wire_environ_key": ("wire environ",),
        "manage_exception": _manage_exception, "respond": _respond, "outcome": _outcome,
        "unhandled": _unhandled, "send_file_wrapper": _send_file_wrapper,
        "CONTROL": CONTROL, "exit": ProcessExit.from_system_exit,
        "exception_response": _exception_response, "reused_environ": reused_environ})


#: The Python twins of the C functions, which the C code calls for every case it does
#: not handle itself (see _creq.c); the exception options run ``_call_app_py`` alone.
_dispatch_request_py, _handle_request_py = dispatch_request, handle_request
_take_idle_worker_py = take_idle_worker
#: ``Simulation.submit``'s steps for a request without body chunks, in C (None: the
#: Python method does them)
submit_request = None if _c is None else _c.submit
if _c is not None:  # a request's common path in C (see _creq.c)
    _c.setup(globals(), _reqlog.__dict__)
    core_loop = _c.core_loop  # noqa: F811
    take_idle_worker = _c.take_idle_worker  # noqa: F811 - also the signals' pick
    dispatch_request = _c.dispatch_request  # noqa: F811 - the twin is kept above
    handle_request = _c.handle_request  # noqa: F811
