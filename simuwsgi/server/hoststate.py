"""The interpreter-wide settings app code can change, kept from outliving the simulations.

A real uWSGI app that calls ``gc.disable()``, ``sys.setrecursionlimit(...)`` (or
``setswitchinterval``, ``set_int_max_str_digits``), ``os.umask(0o077)``, ``os.nice(10)``,
``resource.setrlimit(...)``, ``socket.setdefaulttimeout(3)``, ``logging.basicConfig(...)``,
``warnings.simplefilter("error")``, ``locale.setlocale(...)``, draws from ``random``,
replaces ``sys.excepthook``, sets ``os.environ[...]``, changes directory, installs an
import hook (``sys.meta_path``, ``sys.path_hooks``: APM agents do), adds to ``builtins``
(``gettext.install()``), sets a trace or profile function or asyncio's event loop
policy changes its own processes, which
end with the instance. In a simulation the app runs in the test process: each of these
would stay in the pytest run (a collector switched off for every later test, a Django
``wsgi.py``'s ``os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)`` answering for
the next app, a ``TZ`` applied with ``time.tzset()``). :func:`save` takes them when the
first simulation opens and :func:`restore` puts them back when the last one closes
(``server/containment.py`` calls both). While simulations are open they are one for
every virtual process, where real uWSGI's processes each have their own;
``mode="fork"`` gives them that.

In between, :func:`save` raises the collector's young threshold to ``GC_GEN0``: a run
allocates many short-lived objects (events, trace records), and collecting every 700
allocations cost a fifth of its time; the test between runs too (a long run submits
86,400 requests a virtual day: 5% of it went to those collections).
"""

from __future__ import annotations

import builtins
import gc
import locale
import logging
import os
import random
import resource
import socket
import sys
import threading
import time
import warnings
from typing import Any

_LIMITS = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]
#: The young generation's threshold while simulations are open.
GC_GEN0 = 50_000
_HOOKS = ("excepthook", "displayhook", "unraisablehook", "breakpointhook")

#: What :func:`save` took, or None when nothing is saved.
_saved: dict[str, Any] | None = None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save() -> None:
    """Take the settings as the test process has them (the first simulation opens)."""
    global _saved
    _saved = {
        "environ": dict(os.environ),
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
        "recursion": sys.getrecursionlimit(),
        "switch": sys.getswitchinterval(),
        "digits": getattr(sys, "get_int_max_str_digits", lambda: None)(),  # (3.10.7+)
        "thread hook": threading.excepthook,
        "hooks": [getattr(sys, name) for name in _HOOKS],
        "umask": _umask(),
        "priority": os.getpriority(os.PRIO_PROCESS, 0),
        "limits": {limit: resource.getrlimit(limit) for limit in _LIMITS},
        "socket_timeout": socket.getdefaulttimeout(),
        "warnings": list(warnings.filters),
        "logging": (logging.getLogger().level, logging.root.manager.disable),
        "locale": locale.setlocale(locale.LC_ALL),
        "random": random.getstate(),
        "cwd": _cwd(),
        "import hooks": (list(sys.meta_path), list(sys.path_hooks)),
        "builtins": dict(vars(builtins)),
        "tracing": (sys.gettrace(), sys.getprofile(), threading.gettrace(),
                    threading.getprofile()),
        "asyncio policy": _asyncio_policy(),
    }
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], GC_GEN0), *threshold[1:])


def restore() -> None:
    """Put back what :func:`save` took (the last simulation closes)."""
    global _saved
    saved, _saved = _saved, None
    if saved is None:
        return
    _restore_environ(saved["environ"])
    enabled, threshold, frozen = saved["gc"]
    (gc.enable if enabled else gc.disable)()
    gc.set_threshold(*threshold)
    if gc.get_freeze_count() > frozen:  # the app's gc.freeze(): the test's objects
        gc.unfreeze()  # are collectable again (its own frozen ones with them)
    sys.setrecursionlimit(saved["recursion"])
    sys.setswitchinterval(saved["switch"])
    if saved["digits"] is not None:
        sys.set_int_max_str_digits(saved["digits"])
    threading.excepthook = saved["thread hook"]
    for name, hook in zip(_HOOKS, saved["hooks"], strict=True):
        setattr(sys, name, hook)
    os.umask(saved["umask"])
    _try(os.setpriority, os.PRIO_PROCESS, 0, saved["priority"])  # os.nice() (root only)
    for limit, value in saved["limits"].items():
        if resource.getrlimit(limit) != value:
            _try(resource.setrlimit, limit, value)  # a hard limit lowered: root only
    socket.setdefaulttimeout(saved["socket_timeout"])
    if warnings.filters != saved["warnings"]:
        warnings.filters[:] = saved["warnings"]
        warnings._filters_mutated()  # type: ignore[attr-defined]
    _restore_logging(*saved["logging"])
    random.setstate(saved["random"])
    if locale.setlocale(locale.LC_ALL) != saved["locale"]:
        locale.setlocale(locale.LC_ALL, saved["locale"])
    if saved["cwd"] is not None and _cwd() != saved["cwd"]:
        _try(os.chdir, saved["cwd"])
    meta_path, path_hooks = saved["import hooks"]
    if sys.meta_path != meta_path:
        sys.meta_path[:] = meta_path
    if sys.path_hooks != path_hooks:
        sys.path_hooks[:] = path_hooks
        sys.path_importer_cache.clear()  # (finders the app's hooks made)
    _restore_builtins(saved["builtins"])
    trace, profile, thread_trace, thread_profile = saved["tracing"]
    if sys.gettrace() is not trace:
        sys.settrace(trace)
    if sys.getprofile() is not profile:
        sys.setprofile(profile)
    if threading.gettrace() is not thread_trace:
        threading.settrace(thread_trace)
    if threading.getprofile() is not thread_profile:
        threading.setprofile(thread_profile)
    policy = saved["asyncio policy"]
    events = sys.modules.get("asyncio.events")
    if policy is not _MISSING and events is not None:
        events._event_loop_policy = policy  # type: ignore[attr-defined]


_MISSING: Any = object()


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # (the directory was removed)
        return None


def _asyncio_policy() -> Any:
    """asyncio's event loop policy as it is (without making one), when asyncio is loaded
    (else the app's import of it is dropped with the simulation's imports)."""
    events = sys.modules.get("asyncio.events")
    return getattr(events, "_event_loop_policy", None) if events is not None else _MISSING


def _restore_builtins(saved: dict[str, Any]) -> None:
    """The names app code added to ``builtins`` (``gettext.install()``'s ``_``...) go,
    the ones it replaced come back."""
    current = vars(builtins)
    for name in [name for name in current if name not in saved]:
        del current[name]
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value:
            current[name] = value


def _try(call: Any, *args: Any) -> None:
    """Put a setting back that only a privileged process may raise again."""
    try:
        call(*args)
    except (OSError, ValueError):
        pass


def _restore_environ(saved: dict[str, str]) -> None:
    tz = os.environ.get("TZ")
    for key in [key for key in os.environ if key not in saved]:
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
    if os.environ.get("TZ") != tz:
        time.tzset()


def _restore_logging(level: int, disable: int) -> None:
    """The root logger's level and ``logging.disable`` as they were; a handler app code
    bound to an instance's log (``logging.basicConfig()`` or a Django ``LOGGING``
    ``StreamHandler`` made while ``sys.stderr`` was the instance's ``wsgi.errors``) is
    taken off its logger and closed, as it ends with the instance's processes (the
    test's own handlers, pytest's, stay)."""
    from .workers import writes_to_a_log  # the server's stream: a lazy, one-way import

    root = logging.getLogger()
    root.setLevel(level)
    logging.disable(disable)
    loggers = [root, *(logger for logger in logging.root.manager.loggerDict.values()
                       if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers[:]:
            if writes_to_a_log(getattr(handler, "stream", None)):
                logger.removeHandler(handler)
                handler.close()
