"""The request log line (``core/logging.c`` ``log_request``, ``uwsgi_logit_simple``,
``uwsgi_logit_lf``).

What it models: after every request uWSGI decides whether to log it (``--disable-logging``
turns the default off; ``uwsgi.log_this_request()``, ``--log-zero``, ``--log-slow MS``,
``--log-4xx``, ``--log-5xx``, ``--log-big BYTES``, ``--log-sendfile`` force it), then
writes either the default line

``[pid: P|app: A|req: R/T] ADDR (USER) {N vars in M bytes} [CTIME] METHOD URI =>
generated B bytes in T msecs (PROTO STATUS) H headers in HB bytes (S switches on core C)``

(``--log-micros``: ``micros``; `` via sendfile() `` after a sendfile; ``--memory-report``
prefixes the memory usage) or the ``--logformat``/``--log-format`` line, whose
``%(name)`` variables are 2.0.30's (``uri method user addr host proto uagent referer
status rsize hsize size cl micros msecs secs tmsecs tmicros time ltime ftime ctime epoch
pid wid switches vars core vsz rss vszM rssM pktsize modifier1 modifier2 headers werr
rerr ioerr``), ``%(var.NAME)`` a request var, ``%(metric.NAME)`` a metric, any other
name a logvar set by ``uwsgi.set_logvar``; an empty value prints ``-``.

Times come from the virtual clock (the request's start and end). Request lines go to
the log without the ``--log-date``/``--log-prefix`` prefix, as uWSGI writes them with
``writev`` on its request log fd (to ``--req-logger file:PATH`` when set, see
``logsink``).

``%(ftime)`` is ``%(ltime)`` unless ``--logformat-strftime`` and a ``--log-date`` format
are set. ``%(rss)``/``%(vsz)`` and the ``--memory-report`` prefix show the memory the
worker published at the end of the request (``Instance.publish_request_memory``:
``sim.set_rss``'s values, 0 until set). Left out: the ``vhost`` prefix, ``%(rerr)`` 0.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from .._core.localdays import LocalDays

if TYPE_CHECKING:
    from .master import Instance

__all__ = ["RequestLogRecord", "log_request"]


@dataclass(kw_only=True, slots=True)  # not frozen: a frozen __init__ costs 25 calls
class RequestLogRecord:
    """What ``struct wsgi_request`` holds when the request is logged."""

    pid: int
    wid: int
    app_id: int
    app_req: int
    total: int
    addr: str
    method: str
    uri: str
    proto: str
    status: int
    var_cnt: int
    pktsize: int
    start_wall: float
    micros: int
    response_size: int
    headers_size: int
    header_cnt: int
    switches: int
    core: int = 0
    via_sendfile: bool = False
    write_errors: int = 0
    cl: int = 0
    host: str = ""
    uagent: str = ""
    referer: str = ""
    user: str = ""
    rss: int = 0
    vsz: int = 0
    log_this: bool = False
    do_not_log: bool = False


class _Policy(NamedTuple):
    """The options the request log reads, read once per set of options."""

    log_zero: bool
    slow: int
    log_4xx: bool
    log_5xx: bool
    big: int
    log_sendfile: bool
    disabled: bool
    micros: bool
    memory_report: bool
    fmt: str | None
    strftime: bool
    x_forwarded_for: bool


def _read_policy(o: Any) -> _Policy:
    fmt = o.last("logformat", "log-format")
    return _Policy(o.flag("log-zero"), o.int("log-slow", 0), o.flag("log-4xx"),
                   o.flag("log-5xx"), o.int("log-big", 0), o.flag("log-sendfile"),
                   o.flag("disable-logging"), o.flag("log-micros"), o.flag("memory-report"),
                   fmt if isinstance(fmt, str) else None,
                   o.flag("logformat-strftime", "log-format-strftime"),
                   o.flag("log-x-forwarded-for"))


def policy(inst: Instance) -> _Policy:
    """The request log's options of ``inst`` (remembered while they do not change)."""
    return inst.opts.memo(("reqlog",), _read_policy, inst.opts)  # type: ignore[no-any-return]


def _should_log(p: _Policy, r: RequestLogRecord) -> bool:
    """``log_request``: the conditions that log a request even when logging is off."""
    if r.do_not_log:  # a route's donotlog: nothing forces the line then
        return False
    if r.log_this:
        return True
    if p.log_zero and r.response_size == 0:
        return True
    if p.slow and r.micros // 1000 >= p.slow:
        return True
    if p.log_4xx and 400 <= r.status <= 499:
        return True
    if p.log_5xx and 500 <= r.status <= 599:
        return True
    if p.big and r.response_size >= p.big:
        return True
    if p.log_sendfile and r.via_sendfile:
        return True
    return not p.disabled


def _ctime(wall: float) -> str:
    # ``asctime(localtime())`` of the second, from the local day ``LocalDays`` holds (a
    # request a second makes a new second each time). The last second's text is kept
    # (requests come many to a second); ``time.tzset()`` makes a new ``tzname``, so a
    # new time zone is served neither the old one's text nor (``LocalDays`` checks it)
    # its day.
    secs = int(wall)
    zone = time.tzname
    last = _last_ctime
    if last[0] != secs or last[1] is not zone:
        last[:] = secs, zone, _days.asctime(secs)
    return last[2]  # type: ignore[no-any-return]


#: ``_ctime``'s last (second, ``time.tzname``, text), and the local days it reads.
_last_ctime: list[Any] = [None, None, ""]
_days = LocalDays()


def default_line(p: _Policy, r: RequestLogRecord) -> str:
    """``uwsgi_logit_simple`` (``p``: the request log's options)."""
    micros = p.micros
    rt = r.micros if micros else r.micros // 1000
    via = " via sendfile() " if r.via_sendfile else " "
    mem = ""
    if p.memory_report:
        mem = (f"{{address space usage: {r.vsz} bytes/{r.vsz // 1024 // 1024}MB}} "
               f"{{rss usage: {r.rss} bytes/{r.rss // 1024 // 1024}MB}} ")
    return (f"{mem}[pid: {r.pid}|app: {r.app_id}|req: {r.app_req}/{r.total}] {r.addr} "
            f"({r.user}) {{{r.var_cnt} vars in {r.pktsize} bytes}} [{_ctime(r.start_wall)}] "
            f"{r.method} {r.uri} => generated {r.response_size} bytes in {rt} "
            f"{'micros' if micros else 'msecs'}{via}({r.proto} {r.status}) {r.header_cnt} "
            f"headers in {r.headers_size} bytes ({r.switches} switches on core {r.core})")


def _num(value: float) -> str:
    return str(int(value))


def _variables(r: RequestLogRecord, ftime: str | None) -> dict[str, str]:
    start = int(r.start_wall * 1_000_000)
    lt = time.localtime(int(r.start_wall))
    return {
        "uri": r.uri, "method": r.method, "user": r.user, "addr": r.addr, "host": r.host,
        "proto": r.proto, "uagent": r.uagent, "referer": r.referer,
        "status": _num(r.status), "rsize": _num(r.response_size),
        "hsize": _num(r.headers_size), "size": _num(r.headers_size + r.response_size),
        "cl": _num(r.cl), "micros": _num(r.micros), "msecs": _num(r.micros // 1000),
        "secs": f"{r.micros / 1_000_000:f}", "tmsecs": _num(start // 1000),
        "tmicros": _num(start), "time": _num(start // 1_000_000),
        "ltime": time.strftime("%d/%b/%Y:%H:%M:%S %z", lt),
        "ftime": time.strftime(ftime or "%d/%b/%Y:%H:%M:%S %z", lt),
        "ctime": _ctime(r.start_wall), "epoch": _num(r.start_wall + r.micros / 1_000_000),
        "pid": _num(r.pid), "wid": _num(r.wid), "switches": _num(r.switches),
        "vars": _num(r.var_cnt), "core": _num(r.core), "vsz": _num(r.vsz),
        "rss": _num(r.rss), "vszM": _num(r.vsz // 1024 // 1024),
        "rssM": _num(r.rss // 1024 // 1024), "pktsize": _num(r.pktsize),
        "modifier1": "0", "modifier2": "0", "headers": _num(r.header_cnt),
        "werr": _num(r.write_errors), "rerr": "0", "ioerr": _num(r.write_errors),
    }


_VAR = re.compile(r"%\(([^)]*)\)")


def format_line(fmt: str, r: RequestLogRecord, logvars: dict[bytes, bytes],
                request_vars: dict[str, str], metrics: Any = None,
                ftime: str | None = None) -> str:
    """``uwsgi_logit_lf``: ``fmt`` with its ``%(name)`` variables replaced (``ftime``:
    the ``--log-date`` format, with ``--logformat-strftime``)."""
    known = _variables(r, ftime)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in known:
            text = known[name]
        elif name.startswith("var."):
            text = request_vars.get(name[4:], "")
        elif name.startswith("metric."):
            text = str(metrics.value(name[7:]) if metrics is not None else 0)
        else:
            text = logvars.get(name.encode(), b"").decode("latin-1")
        return text or "-"

    return _VAR.sub(value, fmt)


def log_request(inst: Instance, r: RequestLogRecord, logvars: dict[bytes, bytes],
                request_vars: dict[str, str], proc: object = None,
                p: _Policy | None = None) -> None:
    """Log the request if uWSGI would, in the configured format (``p``: ``policy(inst)``
    when the caller has it)."""
    if p is None:
        p = policy(inst)
    if not _should_log(p, r):
        return
    fmt = p.fmt
    sink = inst.log_sink
    ftime = sink.strftime if sink is not None and p.strftime else None
    line = (format_line(fmt, r, logvars, request_vars, inst.subsystems.get("metrics"), ftime)
            if fmt else default_line(p, r))
    inst.log_raw(line, proc, request=True)  # type: ignore[arg-type]
