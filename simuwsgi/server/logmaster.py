"""The master's log pipeline: what it does with each message the processes write to
its log pipes (``core/logging.c`` ``uwsgi_master_log``, ``uwsgi_master_req_log``,
``uwsgi_log_func_do``, ``setup_choosen_logger``, the log encoders; the ``file``
logger of ``plugins/logfile``).

A message is what a process wrote with one ``write`` (the pipes are packet sockets):
one of uWSGI's lines, its newline included, or one write of the app's on fd 1-2 (whole
lines or not: ``workers._LogSink``). For a main-log message the master

1. drops it if a ``--log-drain`` regexp matches, or if ``--log-filter`` regexps are
   given and none matches;
2. sends it to the named logger of every ``--log-route ID REGEXP`` that matches, and
   stops there if one did;
3. else sends it to every logger without a name (``--logger file:PATH``), or, with none,
   to its raw output (the ``--logto`` file, else its terminal).

A message longer than ``--log-master-bufsize`` (8192) is cut there (one ``read``
of the datagram).

A request line (with ``--req-logger`` or ``--log-req-route``; without either it is a
main-log message) takes the same way through ``--log-req-route`` (whose IDs name *main*
loggers: 2.0.30 looks them up there), the request loggers and the raw output, without
drains or filters. Each delivery runs the chain of encoders (``--log-encoder``, or
``--log-req-encoder`` for request lines) in order; an encoder bound to a logger
(``prefix:ID ...``) runs only for that named logger.

Encoders: ``prefix ARGS``, ``suffix ARGS`` (after the newline), ``nl``, ``format ARGS``
and ``json ARGS`` (``${msg}`` without its newline, ``${msgnl}``, ``${unix}``,
``${micros}``, ``${millis}``, ``${strftime:FMT}``, the virtual clock's; json escapes
``\\t \\n \\r " \\\\`` only), ``gzip`` and ``compress`` (zlib, the same bytes as 2.0.30's:
fixed gzip header, deflate at the default level). A ``file:`` logger opens its file at its
first message, as the plugin does.

Left out: the other loggers (their messages are dropped here; the instance warns), the
``logfile=...,maxsize=...`` form of ``file:``, ``--log-alarm``, ``--log-master-stream``
(messages merged by a stream socket).
"""

from __future__ import annotations

import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from .._errors import StartRefusedError

__all__ = ["Encoder", "LogMaster", "Logger", "parse_encoder_vars", "registered_lines"]

_GZIP_HEADER = bytes((0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 3))  # core/zlib.c gzheader
_JSON_ESCAPES = {ord("\t"): b"\\t", ord("\n"): b"\\n", ord("\r"): b"\\r",
                 ord('"'): b'\\"', ord("\\"): b"\\\\"}


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def parse_encoder_vars(args: bytes) -> list[tuple[bool, bytes]]:
    """``uwsgi_log_encoder_parse_vars``: ``args`` as (is a ``${var}``, text) parts, with
    2.0.30's quirks kept: a ``$`` not followed by ``{`` is kept with the next character
    only when literal text came before it since the last ``}`` (else both are lost), and
    an unfinished ``$``/``${var`` at the end keeps two or three characters of it."""
    parts: list[tuple[bool, bytes]] = []
    base: int | None = 0
    base_len = 0
    var: int | None = None
    var_len = 0
    status = 0  # 1: after $, 2: inside ${
    for i, b in enumerate(args):
        if status == 1:
            status = 2 if b == 0x7B else 0  # {
            if status == 0:
                base_len += 2
            continue
        if status == 2:
            if b == 0x7D:  # }
                status = 0
                if base is None and base_len:
                    # uwsgi_concat2n(NULL, 2): the master crashes on its first line
                    raise StartRefusedError(
                        f"log encoder args {args.decode('utf-8', 'replace')!r}: uWSGI "
                        "2.0.30 crashes (segmentation fault) on a '$' not followed by '{' "
                        "between two ${...} variables", status=139)
                parts.append((False, args[base:base + base_len] if base is not None else b""))
                parts.append((True, args[var:var + var_len] if var is not None else b""))
                base = var = None
                base_len = var_len = 0
                continue
            if var is None:
                var = i
            var_len += 1
            continue
        if b == 0x24:  # $
            status = 1
        else:
            if base is None:
                base = i
            base_len += 1
    if base is not None:
        base_len += 2 if status == 1 else 3 if status == 2 else 0
        parts.append((False, args[base:base + base_len]))
    return parts


def _json_escape(data: bytes) -> bytes:
    """``escape_json`` (its result ends at a NUL byte: it is used as a C string)."""
    data = data.split(b"\0", 1)[0]
    return b"".join(_JSON_ESCAPES.get(b, bytes((b,))) for b in data)


def _strftime(fmt: bytes, now: float) -> bytes:
    """``strftime`` into uWSGI's 64-byte buffer: nothing when the result does not fit."""
    try:
        text = _bytes(time.strftime(fmt.decode("utf-8", "surrogateescape"),
                                    time.localtime(int(now))))
    except ValueError:
        return b""
    return text if len(text) < 64 else b""


def _gzip(msg: bytes) -> bytes:
    """``uwsgi_gzip``: raw deflate (memLevel 9) with a sync flush then a finish, after a
    fixed header (no time, OS 3)."""
    z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15, 9)
    body = z.compress(msg) + z.flush(zlib.Z_SYNC_FLUSH) + z.flush(zlib.Z_FINISH)
    return _GZIP_HEADER + body + struct.pack("<II", zlib.crc32(msg), len(msg) & 0xFFFFFFFF)


class Encoder:
    """One item of an encoder chain: ``NAME[:ID][ ARGS]``."""

    __slots__ = ("_parts", "args", "name", "use_for")

    def __init__(self, spec: str) -> None:
        head, _space, args = spec.partition(" ")
        name, colon, use_for = head.partition(":")
        if name not in _ENCODERS:
            raise StartRefusedError(f'log encoder "{name}" not found')
        self.name = name
        #: the id of the only logger it encodes for (``ule->use_for``)
        self.use_for = use_for if colon else None
        self.args = _bytes(args)
        self._parts = parse_encoder_vars(self.args) if name in ("format", "json") else []

    def encode(self, msg: bytes, now: float) -> bytes:
        return _ENCODERS[self.name](self, msg, now)

    def _vars(self, msg: bytes, now: float, escape: Callable[[bytes], bytes]) -> bytes:
        out = []
        for is_var, text in self._parts:
            if not is_var:
                out.append(text)
            elif text == b"msg":
                out.append(escape(msg[:-1] if msg.endswith(b"\n") else msg))
            elif text == b"msgnl":
                out.append(escape(msg))
            elif text == b"unix":
                out.append(b"%d" % int(now))
            elif text == b"micros":
                out.append(b"%d" % round(now * 1_000_000))
            elif text == b"millis":
                out.append(b"%d" % (round(now * 1_000_000) // 1000))
            elif text.startswith(b"strftime:"):
                out.append(escape(_strftime(text[9:], now)))
        return b"".join(out)


_ENCODERS: dict[str, Callable[[Encoder, bytes, float], bytes]] = {
    "prefix": lambda e, msg, now: e.args + msg,
    "suffix": lambda e, msg, now: msg + e.args,
    "nl": lambda e, msg, now: msg + b"\n",
    "format": lambda e, msg, now: e._vars(msg, now, lambda text: text),
    "json": lambda e, msg, now: e._vars(msg, now, _json_escape),
    "gzip": lambda e, msg, now: _gzip(msg),
    "compress": lambda e, msg, now: zlib.compress(msg),
}


class Logger:
    """A ``--logger``/``--req-logger``: ``[ID ]NAME[:ARG]`` (``setup_choosen_logger``:
    the ID is the word before a space when it is all letters and digits)."""

    __slots__ = ("id", "path", "spec")

    def __init__(self, spec: str, base: Path) -> None:
        self.spec = spec
        self.id: str | None = None
        name = spec
        word, space, rest = spec.partition(" ")
        if space and all(c.isascii() and c.isalnum() for c in word):
            self.id, name = word, rest
        kind, _colon, arg = name.partition(":")
        #: the file of a ``file:`` logger (None: a logger that is not simulated)
        self.path = base / arg if kind == "file" and arg else None

    def write(self, data: bytes) -> None:
        """The ``file`` logger: its file opened at the first message (created with
        mode 0640 less the umask, appended to; ``--logfile-chmod`` is ``--logto``'s)."""
        if self.path is None:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def registered_lines(encoders: list[str], req_encoders: list[str]) -> list[str]:
    """``uwsgi_setup_log_encoders``'s lines, each encoder as given (written before the
    log is set up: to the terminal, not encoded)."""
    return ([f"[log-encoder] registered {spec}" for spec in encoders]
            + [f"[log-req-encoder] registered {spec}" for spec in req_encoders])


def _regexp(spec: str) -> re.Pattern[bytes]:
    try:
        return re.compile(_bytes(spec))
    except re.error as exc:  # (PCRE2's own message is a code: "code 114")
        raise StartRefusedError(f"pcre error: {exc.msg} at offset {exc.pos or 0}") from None


def _routes(specs: Iterable[str]) -> list[tuple[str, re.Pattern[bytes]]]:
    """``uwsgi_opt_add_regexp_custom_list``: ``ID REGEXP``."""
    out = []
    for spec in specs:
        ident, space, pattern = spec.partition(" ")
        if not space:
            raise StartRefusedError("invalid custom regexp syntax: must be <custom> <regexp>")
        out.append((ident, _regexp(pattern)))
    return out


class LogMaster:
    """The master's log and request-log pipes and what it does with their messages."""

    def __init__(self, *, loggers: list[Logger], req_loggers: list[Logger],
                 encoders: list[str], req_encoders: list[str], drains: list[str],
                 filters: list[str], routes: list[str], req_routes: list[str],
                 req_master: bool, raw: Callable[[bytes], None], bufsize: int = 8192) -> None:
        self.loggers = loggers
        self.req_loggers = req_loggers
        self.encoders = [Encoder(spec) for spec in encoders]
        self.req_encoders = [Encoder(spec) for spec in req_encoders]
        self.drains = [_regexp(spec) for spec in drains]
        self.filters = [_regexp(spec) for spec in filters]
        named = {}
        for logger in loggers:  # uwsgi_get_logger_from_id: the first main logger
            if logger.id is not None:
                named.setdefault(logger.id, logger)
        # a route to an ID no main logger has is skipped (custom_ptr NULL)
        self.routes = [(named[i], p) for i, p in _routes(routes) if i in named]
        self.req_routes = [(named[i], p) for i, p in _routes(req_routes) if i in named]
        #: request lines have their own pipe (``uwsgi.req_log_master``)
        self.req_master = req_master
        self._raw = raw
        #: ``--log-master-bufsize``: the master reads a message into a buffer this big
        #: (a datagram's rest is lost)
        self.bufsize = bufsize

    def message(self, msg: bytes, now: float, request: bool) -> None:
        """``uwsgi_master_log``/``uwsgi_master_req_log`` for one message."""
        msg = msg[:self.bufsize]
        if request and self.req_master:
            self._dispatch(msg, now, self.req_routes, self.req_loggers, self.req_encoders)
            return
        if any(p.search(msg) for p in self.drains):
            return
        if self.filters and not any(p.search(msg) for p in self.filters):
            return
        self._dispatch(msg, now, self.routes, self.loggers, self.encoders)

    def _dispatch(self, msg: bytes, now: float, routes: list[tuple[Logger, re.Pattern[bytes]]],
                  loggers: list[Logger], encoders: list[Encoder]) -> None:
        routed = False
        for logger, pattern in routes:
            if pattern.search(msg):
                self._deliver(msg, now, encoders, logger)
                routed = True
        if routed:
            return
        unnamed = [logger for logger in loggers if logger.id is None]
        for logger in unnamed:
            self._deliver(msg, now, encoders, logger)
        if not unnamed:
            self._deliver(msg, now, encoders, None)

    def _deliver(self, msg: bytes, now: float, encoders: list[Encoder],
                 logger: Logger | None) -> None:
        """``uwsgi_log_func_do``."""
        for encoder in encoders:
            if encoder.use_for is not None and (logger is None or logger.id != encoder.use_for):
                continue
            msg = encoder.encode(msg, now)
        if logger is None:
            self._raw(msg)
        else:
            logger.write(msg)
