"""Where uWSGI's log lines go, and the prefix ``uwsgi_log`` puts on them (``core/
logging.c`` ``uwsgi_log``, ``uwsgi_log_verbose``, ``uwsgi_setup_log``; ``core/uwsgi.c``
``uwsgi_opt_log_date``, ``uwsgi_opt_logfile_chmod``; the ``file`` logger plugin).

What it models:

* ``--log-date``/``--logdate`` (no value, or ``true``/``1``/``on``/``yes``): every line
  written by ``uwsgi_log`` starts with the date (``ctime``, 24 characters) and `` - ``;
  with another value, that ``strftime`` format instead; ``--log-prefix STR`` is the same
  option (``STR`` is a ``strftime`` format too). Lines uWSGI writes otherwise have no
  prefix: the request log lines (``writev`` on the request log fd), Python's tracebacks
  and ``wsgi.errors`` (written to fd 2 directly). ``uwsgi_log_verbose`` lines always have
  a date, in the ``--log-date`` format when one is set;
* ``--logto PATH`` (``--daemonize PATH``: the real server also leaves its terminal) and
  ``--logger file:PATH``: every line also goes to ``PATH`` (appended,
  relative to the instance's directory), ``--logfile-chmod MODE`` applied to it (three
  octal digits, else uWSGI's ``invalid chmod value`` and exit);
* ``--req-logger file:PATH`` (``--logger-req``): the request lines go to ``PATH`` and not
  to the main log.

When an option makes the master the log's writer (``LOG_MASTER_OPTIONS``: ``--logger``,
``--req-logger``, ``--log-encoder``, ``--log-route``...), every line goes through its
pipeline (``logmaster``: drains, filters, routes, loggers, encoders); the ``--logto``
file then gets only what no logger takes.

The simulation's log (``Simulation.log``) holds the lines as the processes logged them
(before the log master's drains, filters, routes and encoders); the files are written
as the lines are logged.

``--log-maxsize N`` (``core/logging.c`` ``uwsgi_check_logrotate``): once a second the
master looks at the ``--logto`` file's size; above N bytes it writes
``<date> - logsize: SIZE, triggering rotation to NAME...`` in it, renames it to NAME
(``--log-backupname``, else ``FILE.<unix time>``, the virtual time) and starts a new
empty file.

``--logto2 PATH``: as ``--logto``, but the file is opened after the privileges drop:
it starts at ``your processes number limit``, the lines before are the terminal's only.

``--touch-logrotate FILE`` rotates it the same way whatever its size when FILE is
touched (seen at the same once-a-second look); ``--touch-logreopen FILE`` writes
``[<unix time>] logsize: SIZE, triggering log-reopen...`` and ``[<unix time>] NAME
reopened.`` (the file is opened for each line already).

Left out: UDP/socket/syslog loggers, ``--daemonize2``, ``--log-reopen``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from .config import LOG_MASTER_OPTIONS, REQ_LOG_MASTER_OPTIONS
from .logmaster import Logger, LogMaster, registered_lines

if TYPE_CHECKING:
    from .config import Options
    from .interface import Instance

__all__ = ["LogRotation", "LogSink"]

_TRUE = ("true", "1", "on", "yes")
_LOG_MASTER = frozenset(LOG_MASTER_OPTIONS + REQ_LOG_MASTER_OPTIONS)


class LogSink:
    """The prefix and the files of one instance's log."""

    def __init__(self, opts: Options, base_dir: Path) -> None:
        self.dated = False
        self.strftime: str | None = None
        for name, value in opts.items:
            if name in ("log-date", "logdate", "log-prefix"):
                self.dated = True  # uwsgi_opt_log_date, all three
                if isinstance(value, str) and value.lower() not in _TRUE:
                    self.strftime = value
        mode = opts.str("logfile-chmod")
        if mode is not None and (len(mode) != 3 or any(c not in "01234567" for c in mode)):
            raise ConfigError(f"invalid chmod value: {mode} (uWSGI exits)")
        self._mode = int(mode, 8) if mode is not None else None
        self._base = base_dir
        # --daemonize's file is the log's as --logto's is (the instance, not detached:
        # a simulation has no terminal to leave)
        logfile = opts.str("logto") or opts.str("daemonize")
        # --log-truncate: logto() opens it with O_TRUNC (once: a reload keeps its fd)
        self.files = ([self._create(logfile, opts.flag("log-truncate"))] if logfile
                      else [])
        #: ``--logto2``: a log file opened after the privileges drop (``open_logto2``)
        self._logto2 = opts.str("logto2")
        #: ``--logto``'s file (uWSGI's ``logfile``: the one ``--log-maxsize`` rotates)
        self.logfile = self.files[0] if logfile else None
        given = {name for name, _value in opts.items}
        #: the master writes the log (``uwsgi.log_master``): every line goes through
        #: its pipeline (``logmaster``)
        self.master: LogMaster | None = None
        #: lines the master writes to its terminal, when someone reads them (``serve``)
        self.terminal: list[bytes] | None = None
        #: logger specs that are not simulated (the instance warns about them)
        self.ignored: list[str] = []
        #: ``[log-encoder] registered ...``: uwsgi_setup_log's lines, before the banner
        self.registered: list[str] = []
        self._own_request_log = False
        if given & _LOG_MASTER:
            loggers = [Logger(v, base_dir) for v in opts.strings("logger")]
            req_loggers = [Logger(v, base_dir)
                           for v in opts.strings("req-logger", "logger-req")]
            self.ignored = [lg.spec for lg in loggers + req_loggers if lg.path is None]
            encoders = opts.strings("log-encoder")
            req_encoders = opts.strings("log-req-encoder")
            self.master = LogMaster(
                loggers=loggers, req_loggers=req_loggers, encoders=encoders,
                req_encoders=req_encoders, drains=opts.strings("log-drain"),
                filters=opts.strings("log-filter"), routes=opts.strings("log-route"),
                req_routes=opts.strings("log-req-route"),
                req_master=bool(given & set(REQ_LOG_MASTER_OPTIONS)), raw=self._raw,
                bufsize=opts.int("log-master-bufsize", 8192))
            self.registered = registered_lines(encoders, req_encoders)
            #: request lines leave the main log (a request logger without a name)
            self._own_request_log = any(lg.id is None for lg in req_loggers)

    def open_logto2(self) -> None:
        """``--logto2``'s file gets the lines from now on (uWSGI opens it after the
        privileges drop: the first lines are the terminal's only)."""
        if self._logto2 and self.logfile is None:
            self.logfile = self._create(self._logto2)
            self.files.insert(0, self.logfile)

    @property
    def active(self) -> bool:
        return self.dated or bool(self.files or self.master or self._logto2)

    def _create(self, path: str, truncate: bool = False) -> Path:
        """Open the file as uWSGI does at start (created if missing, chmod applied); it
        is appended to line by line (no descriptor is held by the simulation)."""
        full = self._base / path
        with open(full, "w" if truncate else "a", encoding="utf-8"):
            pass
        if self._mode is not None:
            os.chmod(full, self._mode)
        return full

    def stamp(self, wall: float) -> str:
        """The `` - ``-ended date of ``uwsgi_log_verbose`` (and of ``uwsgi_log`` when
        ``--log-date`` is set)."""
        if self.strftime is not None:
            return time.strftime(self.strftime, time.localtime(int(wall))) + " - "
        return time.asctime(time.localtime(int(wall))) + " - "

    def write(self, line: str, request: bool = False, now: float = 0.0) -> bool:
        """Send ``line`` to the files (through the log master's pipeline when it writes
        the log; ``now``: the virtual wall time, for its encoders); False when it does
        not belong in the main log (a request line that has a request logger)."""
        if self.master is not None:
            self.master.message(_bytes(line + "\n"), now, request)
            return not (request and self.master.req_master and self._own_request_log)
        for path in self.files:
            with open(path, "a", encoding="utf-8", errors="surrogateescape") as stream:
                stream.write(line + "\n")
        return True

    def write_original(self, data: bytes, reload: bool) -> None:
        """A line written before the log is set up (``uwsgi_setup_log_encoders``): to
        the terminal at the first start, to the ``--logto`` file after a reload."""
        if reload and self.logfile is not None:
            with open(self.logfile, "ab") as stream:
                stream.write(data)
        elif self.terminal is not None:
            self.terminal.append(data)

    def _raw(self, data: bytes) -> None:
        """The log master's raw output: the ``--logto`` file, else its terminal."""
        if self.logfile is not None:
            with open(self.logfile, "ab") as stream:
                stream.write(data)
        elif self.terminal is not None:
            self.terminal.append(data)


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class LogRotation:
    """``--log-maxsize``: the master's once-a-second look at the ``--logto`` file (a
    master loop client; present only with both options and a master)."""

    needs_iteration = True

    @classmethod
    def create(cls, inst: Instance) -> LogRotation | None:
        sink = inst.log_sink
        maxsize = inst.opts.int("log-maxsize", 0)
        touches = inst.opts.strings("touch-logrotate") or inst.opts.strings("touch-logreopen")
        if sink is None or sink.logfile is None or not inst.has_master or \
                (maxsize <= 0 and not touches):
            return None
        return cls(inst, sink, maxsize)

    def __init__(self, inst: Instance, sink: LogSink, maxsize: int) -> None:
        self.inst = inst
        self.sink = sink
        self.maxsize = maxsize
        self._checked = -1  # the second of the last look
        #: ``--touch-logrotate``/``--touch-logreopen``: per file, [mtime, missing]
        self._touches = {option: {name: [0, False] for name in inst.opts.strings(option)}
                         for option in ("touch-logrotate", "touch-logreopen")}

    def _touched(self, option: str) -> bool:
        """``uwsgi_check_touches``: a file of the list was touched (its mtime grew), made
        or removed since the last look (the first look only remembers it)."""
        for name, state in self._touches[option].items():
            try:
                mtime = int(os.stat(self.inst.opts.path(name)).st_mtime)
            except OSError:
                if state[0] and not state[1]:
                    state[1] = True
                    return True
                if not state[0] and not state[1]:
                    self.inst.log(f"unable to stat() {name}, events will be triggered as soon "
                                  "as the file is created", self.inst.master)
                    state[1] = True
                state[0] = 0
                continue
            if not state[0] and state[1]:
                state[0], state[1] = mtime, False
                return True
            if state[0] and mtime > state[0]:
                state[0] = mtime
                return True
            state[0] = mtime
        return False

    def facade_functions(self) -> dict[str, object]:
        return {}

    def master_loop_started(self) -> None:
        loop = self.inst.master_loop
        if loop is not None:
            loop.add_client(self)

    def before_events(self, loop: Any, wall_s: int, timeout: bool) -> None:
        pass

    def at_top(self, loop: Any, wall_s: int) -> None:
        if wall_s == self._checked:  # once a second (uwsgi.current_time)
            return
        self._checked = wall_s
        size = _logfile_size(self.inst)
        rotate = self._touched("touch-logrotate")  # (both lists looked at, every time)
        reopen = self._touched("touch-logreopen")
        if (self.maxsize > 0 and size > self.maxsize) or rotate:
            rotate_log(self.inst, wall_s, size)
        elif reopen:
            reopen_log(self.inst, wall_s, size)

    def next_wake(self, loop: Any) -> float | None:
        return loop.next_idle_wake()  # every second, as the master's loop looks

    def clock_stepped(self, loop: Any) -> None:
        pass


def _logfile_size(inst: Instance) -> int:
    sink = inst.log_sink
    try:
        return sink.logfile.stat().st_size if sink is not None and sink.logfile else 0
    except OSError:
        return 0


def rotate_log(inst: Instance, wall_s: int | None = None, size: int | None = None) -> None:
    """``uwsgi_log_do_rotate`` of the ``--logto`` file (nothing without one): the line,
    dated, in the file being rotated, then renamed to ``--log-backupname`` or
    ``FILE.<unix time>``, and a new empty file."""
    sink = inst.log_sink
    logfile = sink.logfile if sink is not None else None
    if sink is None or logfile is None:
        return
    wall_s = math.floor(inst.wall()) if wall_s is None else wall_s
    size = _logfile_size(inst) if size is None else size
    opts = inst.opts
    given = opts.str("logto") or opts.str("daemonize") or opts.str("logto2") or str(logfile)
    name = opts.str("log-backupname") or f"{given}.{wall_s}"
    # written (dated) in the file being rotated (uwsgi_logfile_write)
    inst.log_verbose(f"logsize: {size}, triggering rotation to {name}...", inst.master)
    target = sink._base / name
    try:
        os.replace(logfile, target)
    except OSError as exc:
        inst.log(f"unable to rotate log: rename(): {exc.strerror}", inst.master)
        return
    inst.record("log.rotate", inst.master, size=size, to=name)
    with open(logfile, "w", encoding="utf-8"):
        pass


def reopen_log(inst: Instance, wall_s: int | None = None, size: int | None = None) -> None:
    """``uwsgi_log_reopen`` of the ``--logto`` file (nothing without one): its two lines
    written raw in the file, which is opened again (a simulation opens it for each line
    already)."""
    sink = inst.log_sink
    if sink is None or sink.logfile is None:
        return
    wall_s = math.floor(inst.wall()) if wall_s is None else wall_s
    size = _logfile_size(inst) if size is None else size
    opts = inst.opts
    given = opts.str("logto") or opts.str("daemonize") or opts.str("logto2")
    inst.log_raw(f"[{wall_s}] logsize: {size}, triggering log-reopen...", inst.master)
    inst.log_raw(f"[{wall_s}] {given} reopened.", inst.master)
