"""Trace instrumentation that runs *inside* the real uWSGI server (real mode).

Real mode copies this file into the run's temporary directory and loads it with
``--shared-import`` before the app, so it runs in the master before any fork (and again in
processes that load the app lazily). It writes trace records as JSON lines to the file
named by ``$SIMUWSGI_TRACE_FILE`` (one ``O_APPEND`` write per record, so the processes'
lines never interleave)::

    {"t": <CLOCK_MONOTONIC seconds>, "pid": <os pid>, "kind": "...", "fields": {...}}

The driver (``simuwsgi.modes.real._mode``) turns pids into process names (``worker1``,
``mule2``, ``spooler1``, ``master``) from the uWSGI log and times into seconds since the
instance was ready. Kinds are the simulator's kinds:

* ``signal.handler`` {num}: a handler given to ``uwsgi.register_signal`` starts;
* ``postfork``: ``uwsgi.post_fork_hook`` runs in a newly forked process;
* ``spool.start`` / ``spool.end`` {rc}: the ``uwsgi.spooler`` callable runs (``rc`` as
  ``uwsgi_python_spooler`` converts the return value: an int, else -1);
* ``mule.msg`` {bytes, hook: True}: ``uwsgi.mule_msg_hook`` receives a message;
* ``rpc.call`` {name, argc}: a function given to ``uwsgi.register_rpc`` runs.

The module-level hooks (``post_fork_hook``, ``spooler``, ``mule_msg_hook``) are plain
attributes the C code reads from the module dict when it needs them, so assignments to
them are intercepted by giving the ``uwsgi`` module a ``ModuleType`` subclass whose
``__setattr__`` wraps the value before storing it. The wrappers keep ``__name__`` and
``__wrapped__``, and re-raise whatever the user's function raises, so uWSGI prints and
logs exceptions exactly as without instrumentation.

This file is never imported by simuwsgi itself (it reads the real clock, as it must).
"""

import functools
import json
import os
import time
import types

import uwsgi

_PATH = os.environ.get("SIMUWSGI_TRACE_FILE")
_FD = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if _PATH else None


def record(kind, **fields):
    """Append one trace record (never raises)."""
    if _FD is None:
        return
    try:
        line = json.dumps({"t": time.monotonic(), "pid": os.getpid(), "kind": kind,
                           "fields": fields}, default=repr)
        os.write(_FD, line.encode() + b"\n")
    except Exception:  # noqa: BLE001, S110 - tracing must never break the app
        pass


def _wrap(func, before, after=None):
    if not callable(func) or getattr(func, "__simuwsgi_wrapped__", False):
        return func

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        before(*args)
        try:
            result = func(*args, **kwargs)
        except BaseException:
            if after is not None:
                after(_RAISED)
            raise
        if after is not None:
            after(result)
        return result

    wrapper.__simuwsgi_wrapped__ = True
    return wrapper


_RAISED = object()  # what "after" hooks get when the user's function raised


def _spooler_rc(result):
    return int(result) if isinstance(result, int) else -1


def _wrap_spooler(func):
    def before(*args):
        record("spool.start")

    def after(result):
        record("spool.end", rc=_spooler_rc(result))

    return _wrap(func, before, after)


_HOOKS = {
    "post_fork_hook": lambda f: _wrap(f, lambda *a: record("postfork")),
    "spooler": _wrap_spooler,
    "mule_msg_hook": lambda f: _wrap(
        f, lambda *a: record("mule.msg", bytes=len(a[0]) if a else 0, hook=True)),
}


class _InstrumentedModule(types.ModuleType):
    def __setattr__(self, name, value):
        hook = _HOOKS.get(name)
        if hook is not None:
            value = hook(value)
        super().__setattr__(name, value)


_register_signal = uwsgi.register_signal


def register_signal(*args, **kwargs):
    if len(args) >= 3:
        args = args[:2] + (_wrap(args[2], lambda *a: record("signal.handler",
                                                              num=a[0] if a else None)),) + args[3:]
    return _register_signal(*args, **kwargs)


uwsgi.register_signal = register_signal

if hasattr(uwsgi, "register_rpc"):
    _register_rpc = uwsgi.register_rpc

    def register_rpc(*args, **kwargs):
        if len(args) >= 2:
            name = args[0]
            args = (name, _wrap(args[1], lambda *a: record(
                "rpc.call", name=name if isinstance(name, str) else repr(name),
                argc=len(a))),) + args[2:]
        return _register_rpc(*args, **kwargs)

    uwsgi.register_rpc = register_rpc

for _name, _hook in _HOOKS.items():
    if _name in vars(uwsgi):
        setattr(uwsgi, _name, _hook(getattr(uwsgi, _name)))
uwsgi.__class__ = _InstrumentedModule
