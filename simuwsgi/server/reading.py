"""What a worker does with a request between accepting it and calling the app.

What it models, in uWSGI's order:

* ``proto/http.c`` (``--http-socket``, the default): the head the client sends (request line,
  headers, blank line) must end within ``--buffer-size`` bytes (default 4096), else
  ``invalid HTTP request size (max N)...skip``: the connection is closed, nothing is
  counted or logged; a head near the limit goes through the same parser as
  ``simuwsgi serve`` (``protocol.parse_http_request``: a var that does not fit the
  buffer is dropped with uWSGI's ``[WARNING] unable to add ...``);
* the vars, in order (``proto_base_add_uwsgi_var`` and its hooks): ``CONTENT_LENGTH``
  above ``--limit-post`` is ``Invalid (too big) CONTENT_LENGTH. skip.``, more than
  ``2 x --max-vars`` vars is ``max vec size reached. skip this var.``; either way the
  client gets no byte and the request is logged as a 500 of app -1 whose var count
  stops where the parse stopped (observed on 2.0.30);
* ``uwsgi_parse_vars`` (``core/protocol.c``): ``--post-buffering`` reads the whole
  body before the app runs (``uwsgi_postbuffer_do_in_mem``: a client that does not
  send it within ``--socket-timeout`` fails the request with uWSGI's
  ``[uwsgi-body-read] Timeout ...`` line); ``--manage-script-name`` moves the longest
  ``--mount`` point that prefixes ``PATH_INFO`` (at a ``/`` boundary, a trailing ``/``
  ignored for the test, never the empty one) into ``SCRIPT_NAME`` (the HTTP parser
  adds no ``SCRIPT_NAME`` under this option: uWSGI adds a var slot, no packet bytes,
  for a ``PATH_INFO`` longer than ``/``; a request for ``/`` has none at all); then
  the static file checks (``simuwsgi.server.static``);
* the app (``uwsgi_request_wsgi``): the one mounted exactly on ``SCRIPT_NAME``, else
  the default app, else uWSGI's 'no python application found' 500.

A client can be slow: ``Simulation.submit(..., body_chunks=[...], pace=S)`` sends the
body in chunks ``S`` virtual seconds apart (see ``Request.arrived``); every wait for the
client is bounded by ``--socket-timeout`` (default 4 s).

With only ``--socket`` (uwsgi framing, as behind nginx) the vars come as one packet:
above ``--buffer-size`` it is ``invalid request block size: N (max M)...skip``.

Left out: ``--post-buffering``'s temporary file (the body is kept in memory either way,
which the app cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..protocol._errors import RemoteProtocolError
from ..protocol._http_request import parse_http_request
from . import routing as _routing

if TYPE_CHECKING:
    from .master import Instance
    from .processes import Worker
    from .workers import Request

__all__ = ["FAILED", "PARSED", "ROUTED", "SERVED", "Reading", "body_read_failed", "reading",
           "wait_for_body"]

#: outcomes of ``Reading.parse_vars``: call the app; a static file answered; the
#: request failed (logged as a 500, no byte sent)
PARSED, SERVED, FAILED, ROUTED = "parsed", "served", "failed", "routed"


@dataclass(slots=True)
class Reading:
    """One instance's request limits, read once from its options."""

    inst: Instance
    buffer_size: int
    max_vars: int
    limit_post: int
    post_buffering: int
    socket_timeout: float
    manage_script_name: bool
    uwsgi_framing: bool  # requests come as uwsgi packets (--socket only), not HTTP
    static: Any  # simuwsgi.server.static.StaticFiles, or None without any static option
    #: the internal routing (``simuwsgi.server.routing.Router``), None without a route
    routes: Any = None
    #: the final routes (``--final-route`` & co.: ``workers.handle_request`` applies
    #: them, never the C twin)
    final_routes: Any = None
    #: the exception options (``simuwsgi.server.exceptions.Policy``, None without any:
    #: with them requests run on the Python twin, never the C one)
    exceptions: Any = None
    #: request shape -> (packet vars, their size), see ``workers.packet_vars``
    shapes: dict[tuple[Any, ...], tuple[dict[str, str], int]] = field(default_factory=dict)

    # -- proto/http.c ------------------------------------------------------------------
    def read_head(self, req: Request, vars_: dict[str, str]) -> dict[str, str] | None:
        """The request's vars as the HTTP parser builds them within ``--buffer-size``
        (a uwsgi packet: whole or refused); None when uWSGI closes the connection
        (logged)."""
        pktsize = vars_size(req, vars_)
        if self.uwsgi_framing:  # proto/uwsgi.c
            if pktsize <= self.buffer_size:
                return vars_
            self.inst.log(f"invalid request block size: {pktsize} (max {self.buffer_size})"
                          "...skip")
            return None
        # the head is shorter than the packet (a header is as long as its var, which
        # adds 'HTTP_') but for the request line: far from the limit, nothing to check
        if 2 * (pktsize + len(req.path)) + 64 < self.buffer_size:
            return vars_
        inst = self.inst
        raw = _render_head(req, vars_)
        try:
            parsed = parse_http_request(
                raw, hostname=inst.hostname.encode(), buffer_size=self.buffer_size,
                server_port=vars_["SERVER_PORT"].encode(),
                remote_addr=req.remote_addr.encode())
        except RemoteProtocolError as exc:
            inst.log(str(exc))
            return None
        assert parsed is not None  # the whole head is given: it ends, or it is refused
        for line in parsed.warnings:
            inst.log(line)
        found = {k.decode("latin-1"): v.decode("latin-1") for k, v in parsed.request.vars}
        if self.manage_script_name:
            del found["SCRIPT_NAME"]  # proto/http.c leaves it to uwsgi_parse_vars
        return found

    # -- uwsgi_parse_vars ----------------------------------------------------------------
    def parse_vars(self, w: Worker, req: Request, vars_: dict[str, str]) -> str:
        """The steps between the vars and the app; ``req.app_id`` and ``req.env_vars``
        (the environ's vars) are set for ``PARSED``."""
        inst = self.inst
        if self.limit_post or len(vars_) > 2 * self.max_vars:
            stop = self._hooks(vars_)
            if stop >= 0:
                req.var_cnt = stop
                return FAILED
        if self.post_buffering and _content_length(vars_) and not self._buffer_body(req):
            return FAILED
        env = vars_
        if self.manage_script_name:
            env = self._manage_script_name(req, vars_)
        if self.routes is not None:  # uwsgi_apply_routes: before the app (and the statics)
            if self.routes.apply(inst, w, req, env) == _routing.BREAK:
                return ROUTED
            if req.appended_vars:
                env = {**env, **dict(req.appended_vars)}
        if self.static is not None and self.static.serve(w, req, env):
            return SERVED
        if req.appended_vars:  # a static index's PATH_INFO, the method fell through
            env = {**env, **dict(req.appended_vars)}
        req.env_vars = env
        req.app_id = inst.app.app_id(env.get("SCRIPT_NAME", ""),
                                     w.apps if inst.lazy_apps else None)
        return PARSED

    def _hooks(self, vars_: dict[str, str]) -> int:
        """The var count where the vars hooks stop the parse (-1: they do not)."""
        vec = 2 * self.max_vars  # uwsgi.vec_size - 5 = 4 * max_vars slots, 2 per var
        for index, key in enumerate(vars_):
            if key == "CONTENT_LENGTH" and self.limit_post and \
                    _content_length(vars_) > self.limit_post:
                self.inst.log("Invalid (too big) CONTENT_LENGTH. skip.")
                return 2 * index
            if index >= vec:
                self.inst.log("max vec size reached. skip this var.")
                return 2 * index
        return -1

    def _buffer_body(self, req: Request) -> bool:
        """``uwsgi_postbuffer_do_in_mem``/``_in_disk``: the whole body read now."""
        cl = _content_length(req.vars)
        got = wait_for_body(self, req, cl)
        if got is None:
            return True
        body_read_failed(self.inst, req, cl - got, cl, 0)
        return False

    def _manage_script_name(self, req: Request, vars_: dict[str, str]) -> dict[str, str]:
        """The environ's vars: a ``SCRIPT_NAME`` slot (the HTTP parser added none) set to
        the mountpoint chosen, ``PATH_INFO`` what follows it."""
        path_info = vars_.get("PATH_INFO", "")
        if len(path_info) <= 1 or not self.inst.app.apps:
            return vars_
        req.var_slots += 1
        best = 0
        chosen = None
        for mountpoint in self.inst.app.mountpoints.values():
            size = len(mountpoint) - 1 if mountpoint.endswith("/") else len(mountpoint)
            if (len(path_info) < size or size <= best
                    or not path_info.startswith(mountpoint[:size])
                    or (len(path_info) > size and path_info[size] != "/")):
                continue
            best = size
            chosen = mountpoint
        env = dict(vars_)
        env["SCRIPT_NAME"] = ""
        if chosen is not None:
            env["SCRIPT_NAME"] = chosen
            env["PATH_INFO"] = path_info[len(chosen):]
        return env


def reading(inst: Instance) -> Reading:
    """The instance's ``Reading`` (made on first use)."""
    found: Reading | None = getattr(inst, "_reading", None)
    if found is None:
        from .exceptions import Policy
        from .static import StaticFiles

        opts = inst.opts
        found = inst._reading = Reading(  # type: ignore[attr-defined]
            inst=inst,
            buffer_size=min(0xFFFF, opts.int("buffer-size", 4096) or 4096),
            max_vars=opts.int("max-vars", 64) or 64,
            limit_post=opts.int("limit-post", 0),
            post_buffering=opts.int("post-buffering", 0),
            socket_timeout=float(opts.int("socket-timeout", 4) or 4),
            manage_script_name=opts.flag("manage-script-name"),
            uwsgi_framing=bool(opts.strings("socket", "uwsgi-socket")) and not opts.strings(
                "http-socket", "http11-socket"),
            static=StaticFiles.from_options(inst), routes=getattr(inst, "routes", None),
            final_routes=getattr(inst, "final_routes", None),
            exceptions=Policy.from_options(opts))
    return found


def wait_for_body(reading: Reading, req: Request, upto: int, conn: Any = None) -> int | None:
    """``uwsgi_wait_read_req`` until the client sent ``upto`` body bytes, each wait at
    most ``--socket-timeout`` (a switch each, of ``conn`` or, before the app has a
    connection, of ``req``): None once they are there, else how many had arrived when
    a wait timed out (or at once when the body was cut: ``req.body_end``)."""
    kernel = reading.inst.kernel
    timeout = reading.socket_timeout
    while True:
        got = req.arrived(kernel.now)
        if got >= upto:
            return None
        due = req.next_arrival(kernel.now)
        if due is None and req.body_end is not None:
            return got
        late = due is None or due - kernel.now > timeout
        kernel.wake(kernel.current, None, delay=timeout if late else due - kernel.now)
        kernel.park("reading the request body")
        (conn if conn is not None else req).switches += 1
        if late:
            return got


def body_read_failed(inst: Instance, req: Request, remains: int, cl: int,
                     consumed: int) -> str:
    """Log why a body read got no more bytes (``core/reader.c``'s ``uwsgi_read_error0``
    when the client closed, ``uwsgi_read_timeout`` else) and return the word of the
    ``OSError`` the app gets (``error``/``timeout during read(...)``)."""
    if req.body_end == "closed":
        inst.log(f"[uwsgi-body-read] Error reading {remains} bytes. Content-Length: {cl} "
                 f"consumed: {consumed} left: {cl - consumed} message: Client closed "
                 f"connection")
        return "error"
    inst.log(f"[uwsgi-body-read] Timeout reading {remains} bytes. Content-Length: {cl} "
             f"consumed: {consumed} left: {cl - consumed}")
    return "timeout"


def _content_length(vars_: dict[str, str]) -> int:
    from .workers import content_length

    return content_length(vars_.get("CONTENT_LENGTH"))


def packet_size(vars_: dict[str, str]) -> int:
    """The bytes of ``vars_`` in a uwsgi packet: 2 + 2 length bytes per var (latin-1
    with "replace" is one byte per character)."""
    return 4 * len(vars_) + sum(map(len, vars_)) + sum(map(len, vars_.values()))


def vars_size(req: Request, vars_: dict[str, str]) -> int:
    """``packet_size(vars_)`` for the vars of ``req`` (known when they are its packet's,
    see ``workers.packet_vars``)."""
    return req._pktsize if vars_ is req._vars else packet_size(vars_)


def _head_lines(req: Request, vars_: dict[str, str]) -> list[str]:
    """The head a client sends for ``req`` (its ``Content-Length`` last when the
    simulation added it for a body)."""
    lines = [f"{req.method} {req.path} {req.protocol}"]
    lines += [f"{k}: {v}" for k, v in req.headers]
    if "CONTENT_LENGTH" in vars_ and not any(k.lower() == "content-length"
                                              for k, _v in req.headers):
        lines.append(f"Content-Length: {vars_['CONTENT_LENGTH']}")
    return lines


def _render_head(req: Request, vars_: dict[str, str]) -> bytes:
    return ("\r\n".join(_head_lines(req, vars_)) + "\r\n\r\n").encode("latin-1", "replace")
