"""What uWSGI does with an exception raised in a request, under the exception options
(``core/exceptions.c`` ``uwsgi_manage_exception`` and ``uwsgi_exceptions_catch``, the
Python plugin's exception hooks in ``plugins/python/pyutils.c``).

Without these options ``workers._manage_exception`` logs the traceback and counts the
exception. With one of them the instance has a ``Policy`` (``Reading.exceptions``) and
its requests run on the Python twin (``workers._call_app_py``, never the C accelerator),
which hands every exception here with the request's connection:

* ``--catch-exceptions``: where the app's call or its response iterator raised (not
  ``close()``, not a failed write), a ``500 Internal Server Error`` with one header,
  ``Content-Type: text/plain``, and the exception's report as its body (see
  ``catcher_body``), unless something was already written (the headers sent: then
  nothing is added). Status and headers the app prepared without sending are replaced.
* ``--reload-on-exception``: the worker exits with status 5 (``UWSGI_EXCEPTION_CODE``)
  after the catcher and the traceback; its request gets no log line; the master logs
  "... monitored exception detected, respawning worker N (pid: P)..." and respawns it.
  The exception is not counted in the worker's or app's ``exceptions``.
* ``--reload-on-exception-type/-value/-repr``: the same exit when the exception's
  *message* (``str(exc)``) equals one of the values. 2.0.30 compares all three lists
  with the message (``exception_msg``), not the class nor the repr (observed: a
  ``--reload-on-exception-type ValueError`` never matches, ``--reload-on-exception-type
  'bad value'`` matches ``ValueError('bad value')``). Here the exception is counted.

A failed write (``uwsgi_py_write_exception``) and a failing ``close()`` go through the
same checks, with nothing caught.

``--exception-handler`` is refused at start, as by pyuwsgi, whose build registers no
exception handler ("unable to find exception handler: NAME", exit status 1).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .containment import is_simulator_frame
from .interface import ProcessExit

if TYPE_CHECKING:
    from .config import Options
    from .master import Instance

__all__ = ["Policy", "catcher_body", "class_name", "message"]

#: ``UWSGI_EXCEPTION_CODE``: the exit status of a worker that reloads on an exception
EXIT_CODE = 5
#: the reason of that exit (the trace's, and the requests' it drops)
EXIT_REASON = "exit(5): monitored exception"


@dataclass(frozen=True, kw_only=True)
class Policy:
    """One instance's exception options."""

    catch: bool
    reload: bool
    #: the messages that reload the worker (the -type, -value and -repr values)
    messages: frozenset[str]

    @classmethod
    def from_options(cls, opts: Options) -> Policy | None:
        """The policy, or None when no exception option is given."""
        catch = opts.flag("catch-exceptions")
        reload = opts.flag("reload-on-exception")
        messages = frozenset(opts.strings("reload-on-exception-type",
                                          "reload-on-exception-value",
                                          "reload-on-exception-repr"))
        if not (catch or reload or messages):
            return None
        return cls(catch=catch, reload=reload, messages=messages)

    def manage(self, inst: Instance, w: Any, conn: Any, exc: BaseException | None, *,
               catch: bool, log: Callable[[], None]) -> bool:
        """``uwsgi_manage_exception`` for ``exc`` (None: uWSGI set no Python error):
        counted unless ``--reload-on-exception``, caught (when ``catch`` and
        ``--catch-exceptions``), logged (``log``); then the worker exits when it is to
        reload. True: an exception was handled."""
        do_exit = self.reload
        if not do_exit:
            w.exceptions += 1
            app_id = conn.req.app_id
            w.app_exceptions[app_id] = w.app_exceptions.get(app_id, 0) + 1
            do_exit = bool(self.messages) and message(exc) in self.messages
        if catch and self.catch and exc is not None:
            _catch(inst, conn, exc)
        log()
        if do_exit:
            _finish_sent(inst, conn)
            raise ProcessExit(EXIT_REASON, EXIT_CODE)
        return True


def class_name(exc: BaseException) -> str | None:
    """``uwsgi_python_get_exception_type``: ``module.Name`` (``builtins.ValueError``),
    the name alone when the module is not a string; None without ``__module__``."""
    cls = type(exc)
    name = cls.__name__
    try:
        module = cls.__module__
    except AttributeError:
        return None
    if not isinstance(module, str):
        return name
    return f"{module}.{name}" if module != "exceptions" else name


def message(exc: BaseException | None) -> str | None:
    """``uwsgi_python_exception_msg``: ``str(exc)`` (None when it fails)."""
    if exc is None:
        return None
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - PyObject_Str failed: "-Not available-"
        return None


def catcher_body(inst: Instance, req: Any, exc: BaseException) -> bytes:
    """The body ``uwsgi_exceptions_catch`` writes: the request, the exception (repr,
    class, message), its traceback (``traceback.extract_tb``, the simulator's frames
    left out) and the request's vars, in the packet's order."""
    na = "-Not available-"
    cls, msg = class_name(exc), message(exc)
    repr_ = f"{cls}: {msg}" if cls is not None and msg is not None else na
    text = [(f'uWSGI exceptions catcher for "{req.method} {req.path}" '
             f'(request plugin: "python", modifier1: 0)\n\n'),
            f"Exception: {repr_}\n\n",
            f"Exception class: {cls if cls is not None else na}\n\n",
            f"Exception message: {msg if msg is not None else na}\n\n",
            "Backtrace:\n"]
    tb = exc.__traceback__
    if tb is None:
        text.append(na)
    for frame in traceback.extract_tb(tb) if tb is not None else ():
        if is_simulator_frame(frame.filename):
            continue
        line = frame.line or ""
        text.append(f'filename: "{inst.shown_filename(frame.filename)}" '
                    f'line: {frame.lineno} function: "{frame.name}" '
                    + (f'text/code: "{line}" ' if line else "") + "\n")
    text.append("\n\n")
    out = "".join(text).encode("utf-8", "surrogateescape")
    return out + b"".join(f"{key} = {value}\n".encode("latin-1", "replace")
                          for key, value in _packet_items(inst, req))


def _packet_items(inst: Instance, req: Any) -> list[tuple[str, str]]:
    """The request's vars as its packet holds them (``wsgi_req->buffer``): proto/http.c
    writes REQUEST_URI before PATH_INFO unless the URI has a query string."""
    wire = req.net
    if wire is not None and wire.vars:
        return list(wire.text_vars().items()) + list(req.appended_vars)
    from .workers import packet_vars

    items = list((req.vars or packet_vars(inst, req)).items())
    keys = [key for key, _value in items[:3]]
    if keys[1:3] == ["PATH_INFO", "REQUEST_URI"] and "?" not in req.path:
        items[1], items[2] = items[2], items[1]
    return items + list(req.appended_vars)


def _catch(inst: Instance, conn: Any, exc: BaseException) -> None:
    """``uwsgi_exceptions_catch``: prepare the 500 (refused once anything was written),
    its Content-Type, then the body."""
    if not conn._prepare(b"500 Internal Server Error"):
        return
    if not conn._add_header("Content-Type", "text/plain"):
        return
    conn.write_body(catcher_body(inst, conn.req, exc))


def _finish_sent(inst: Instance, conn: Any) -> None:
    """The worker exits in the request: what it wrote is what the client got (the
    catcher's 500, or a response cut short), then the connection closes. Nothing
    written: the master's reaping drops the request. (In fork mode the parent does
    this with what the child sent, ``ForkRuntime.call_app``.)"""
    if not conn.wire or inst.forks is not None:
        return
    from .workers import finish_sent

    finish_sent(conn.req, conn.raw, inst.kernel.now)
