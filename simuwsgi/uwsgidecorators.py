"""simuwsgi's own ``uwsgidecorators``, compatible with the one uWSGI 2.0 ships.

Written from ``shared/spec/decorators.md`` (not from uWSGI's GPL file). Used when a
simulation is created with ``decorators="simuwsgi"``, and with the default ``"auto"``
when uWSGI's own file is not installed (it comes with pyuwsgi): importing
``uwsgidecorators`` in the app then executes this file as a fresh module named
``uwsgidecorators`` (see ``install_finder``/``fresh``), with uWSGI 2.0's import-time
effects:

* ``Exception('you have to enable the uWSGI master process to use this module')``
  when ``uwsgi.masterpid()`` is 0;
* ``uwsgi.spooler``, ``uwsgi.post_fork_hook`` and ``uwsgi.mule_msg_hook`` are replaced
  by ``manage_spool_request``, ``postfork_chain_hook`` and ``mule_msg_dispatcher``
  (so raw ``uwsgi.spool()`` tasks without ``ud_spool_func`` retry forever, and every
  default-loop mule message is unpickled).

Decorators: ``postfork`` (bare, or ``postfork(N)`` which returns None), ``spool``/
``spoolforever``/``spoolraw`` (``pass_arguments``; keyed by bare function name; the
return value of ``@spool`` ignored, ``@spoolforever`` always retried, ``@spoolraw``'s
``int(ret)``), ``mulefunc``, ``mule``/``muleloop``/``mulemsg``/``farm`` (return None;
``@farm()`` without a name fails in every mule as in 2.0), ``signal``, ``timer``,
``rbtimer``, ``cron``, ``filemon`` (signal numbers from ``get_free_signal()``, always
evaluated), ``rpc``, ``lock``, ``thread``, ``harakiri``, ``erlang``
(``AttributeError``: no erlang plugin).

When imported as ``simuwsgi.uwsgidecorators`` (outside a simulation) the module only
offers ``fresh()``, ``Finder`` and ``install_finder``; the decorators need the ``uwsgi``
module.
"""

from __future__ import annotations

import pickle
import sys
from functools import partial
from threading import Thread
from typing import Any

__all__ = ["CHOICES", "Finder", "fresh", "install_finder", "remove_finder"]

_SIMULATED = __name__ == "uwsgidecorators"

if _SIMULATED:
    import uwsgi

    if uwsgi.masterpid() == 0:
        raise Exception("you have to enable the uWSGI master process to use this module")

spooler_functions: dict[str, Any] = {}
mule_functions: dict[str, Any] = {}
postfork_chain: list[Any] = []


# -- helpers --------------------------------------------------------------------------
def _encode1(val: Any) -> Any:
    return val.encode("utf-8") if isinstance(val, str) else val


def _decode1(val: Any) -> Any:
    return val.decode("utf-8") if isinstance(val, bytes) else val


def _encode_to_spooler(vars: dict[Any, Any]) -> dict[Any, Any]:
    return {_encode1(k): _encode1(v) for k, v in vars.items()}


def _decode_from_spooler(vars: dict[Any, Any]) -> dict[Any, Any]:
    return {_decode1(k): _decode1(v) for k, v in vars.items()}


def get_free_signal() -> int:
    """The lowest signal number with no handler in the calling process's slot."""
    for num in range(256):
        if not uwsgi.signal_registered(num):
            return num
    raise Exception("No free uwsgi signal available")


def manage_spool_request(vars: dict[Any, Any]) -> int:
    """The spooler callable: run the decorated function named by ``ud_spool_func``."""
    task = {_decode1(k): v for k, v in vars.items()}
    args: Any = None
    kwargs: Any = None
    if "args" in task:
        args = pickle.loads(task.pop("args"))
        kwargs = pickle.loads(task.pop("kwargs"))
    task = _decode_from_spooler(task)
    func = spooler_functions[task["ud_spool_func"]]
    if args is not None:
        ret = func(*args, **kwargs)
    else:
        ret = func(task)
    return int(task.get("ud_spool_ret", ret))


def postfork_chain_hook() -> None:
    for entry in postfork_chain:
        entry()


# -- post-fork ---------------------------------------------------------------------------
class postfork:
    def __init__(self, f: Any) -> None:
        if isinstance(f, int):
            self.wid = f
            self.f: Any = None
        else:
            self.wid = 0
            self.f = f
        postfork_chain.append(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.f is None:
            # @postfork(N) applied to a function: keep it, the name becomes None
            self.f = args[0]
            return None
        if self.wid == 0 or self.wid == uwsgi.worker_id():
            return self.f()
        return None


# -- spooler ---------------------------------------------------------------------------------
_SPOOL_CONTROL_KEYS = ("message_dict", "spooler", "priority", "at", "body")


class _spoolraw:
    def __init__(self, f: Any, pass_arguments: bool) -> None:
        if "spooler" not in uwsgi.opt:
            raise Exception(f"you have to enable the uWSGI spooler to use "
                            f"@{type(self).__name__} decorator")
        self.f = f
        spooler_functions[f.__name__] = f
        f.spool = self.__call__
        self.pass_arguments = pass_arguments
        self.base_dict = {"ud_spool_func": f.__name__}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        arguments = self.base_dict.copy()
        if not self.pass_arguments:
            if args:
                arguments.update(args[0])
            arguments.update(kwargs)
            return uwsgi.spool(_encode_to_spooler(arguments))
        for key in _SPOOL_CONTROL_KEYS:
            if key in kwargs:
                arguments[key] = kwargs.pop(key)
        arguments["args"] = pickle.dumps(args)
        arguments["kwargs"] = pickle.dumps(kwargs)
        return uwsgi.spool(_encode_to_spooler(arguments))

    def spool(self, *args: Any, **kwargs: Any) -> Any:
        return self.__call__(*args, **kwargs)


class _spool(_spoolraw):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_OK)
        return super().__call__(*args, **kwargs)


class _spoolforever(_spoolraw):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_RETRY)
        return super().__call__(*args, **kwargs)


def spool_decorate(f: Any = None, pass_arguments: bool = False, _class: type = _spoolraw) -> Any:
    if f is None:
        return partial(_class, pass_arguments=pass_arguments)
    return _class(f, pass_arguments)


def spoolraw(f: Any = None, pass_arguments: bool = False) -> Any:
    return spool_decorate(f, pass_arguments, _spoolraw)


def spool(f: Any = None, pass_arguments: bool = False) -> Any:
    return spool_decorate(f, pass_arguments, _spool)


def spoolforever(f: Any = None, pass_arguments: bool = False) -> Any:
    return spool_decorate(f, pass_arguments, _spoolforever)


# -- mules -------------------------------------------------------------------------------------
class mulefunc:
    def __init__(self, f: Any) -> None:
        if callable(f):
            self.fname = f.__name__
            self.mule = 0
            mule_functions[f.__name__] = f
        else:
            self.mule = f
            self.fname = None

    def real_call(self, *args: Any, **kwargs: Any) -> None:
        uwsgi.mule_msg(pickle.dumps({"service": "uwsgi_mulefunc", "func": self.fname,
                                     "args": args, "kwargs": kwargs}), self.mule)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.fname:
            f = args[0]
            self.fname = f.__name__
            mule_functions[self.fname] = f
            return self.real_call
        return self.real_call(*args, **kwargs)


def mule_msg_dispatcher(message: bytes) -> Any:
    msg = pickle.loads(message)
    if msg["service"] == "uwsgi_mulefunc":
        return mule_functions[msg["func"]](*msg["args"], **msg["kwargs"])
    return None


class mule_brain:
    def __init__(self, f: Any, num: int) -> None:
        self.f = f
        self.num = num

    def __call__(self) -> None:
        if uwsgi.mule_id() == self.num:
            try:
                self.f()
            except BaseException:
                exc = sys.exc_info()
                sys.excepthook(exc[0], exc[1], exc[2])  # type: ignore[arg-type]
                sys.exit(1)


class mule_brainloop(mule_brain):
    def __call__(self) -> None:
        if uwsgi.mule_id() == self.num:
            while True:
                try:
                    self.f()
                except BaseException:
                    exc = sys.exc_info()
                    sys.excepthook(exc[0], exc[1], exc[2])  # type: ignore[arg-type]
                    sys.exit(1)


class mule:
    def __init__(self, num: int) -> None:
        self.num = num

    def __call__(self, f: Any) -> None:
        postfork_chain.append(mule_brain(f, self.num))


class muleloop(mule):
    def __call__(self, f: Any) -> None:
        postfork_chain.append(mule_brainloop(f, self.num))


class mulemsg_loop:
    def __init__(self, f: Any, num: int) -> None:
        self.f = f
        self.num = num

    def __call__(self) -> None:
        if uwsgi.mule_id() == self.num:
            while True:
                message = uwsgi.mule_get_msg()
                if message:
                    self.f(message)


class mulemsg:
    def __init__(self, num: int) -> None:
        self.num = num

    def __call__(self, f: Any) -> None:
        postfork_chain.append(mulemsg_loop(f, self.num))


class farm_loop:
    def __init__(self, f: Any, farm: Any) -> None:
        self.f = f
        self.farm = farm

    def __call__(self) -> None:
        if uwsgi.mule_id() == 0:
            return
        if not uwsgi.in_farm(self.farm):  # in_farm(None) raises TypeError, as in 2.0
            return
        while True:
            message = uwsgi.farm_get_msg()
            if message:
                self.f(message)


class farm:
    def __init__(self, name: Any = None, **kwargs: Any) -> None:
        self.name = name

    def __call__(self, f: Any) -> None:
        postfork_chain.append(farm_loop(f, self.name))


# -- signals, timers, cron, file monitors --------------------------------------------------------
class signal:
    def __init__(self, num: int, **kwargs: Any) -> None:
        self.num = num
        self.target = kwargs.get("target", "")

    def __call__(self, f: Any) -> Any:
        uwsgi.register_signal(self.num, self.target, f)
        return f


class timer:
    def __init__(self, secs: int, **kwargs: Any) -> None:
        self.num = kwargs.get("signum", get_free_signal())
        self.secs = secs
        self.target = kwargs.get("target", "")

    def __call__(self, f: Any) -> Any:
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_timer(self.num, self.secs)
        return f


class rbtimer:
    def __init__(self, secs: int, **kwargs: Any) -> None:
        self.num = kwargs.get("signum", get_free_signal())
        self.secs = secs
        self.target = kwargs.get("target", "")

    def __call__(self, f: Any) -> Any:
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_rb_timer(self.num, self.secs)
        return f


class cron:
    def __init__(self, minute: int, hour: int, day: int, month: int, dayweek: int,
                 **kwargs: Any) -> None:
        self.num = kwargs.get("signum", get_free_signal())
        self.fields = (minute, hour, day, month, dayweek)
        self.target = kwargs.get("target", "")

    def __call__(self, f: Any) -> Any:
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_cron(self.num, *self.fields)
        return f


class filemon:
    def __init__(self, fsobj: str, **kwargs: Any) -> None:
        self.num = kwargs.get("signum", get_free_signal())
        self.fsobj = fsobj
        self.target = kwargs.get("target", "")

    def __call__(self, f: Any) -> Any:
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_file_monitor(self.num, self.fsobj)
        return f


# -- the rest ------------------------------------------------------------------------------------
class rpc:
    def __init__(self, name: Any) -> None:
        self.name = name

    def __call__(self, f: Any) -> Any:
        uwsgi.register_rpc(self.name, f)
        return f


class erlang:
    def __init__(self, name: Any) -> None:
        self.name = name

    def __call__(self, f: Any) -> Any:
        uwsgi.erlang_register_process(self.name, f)
        return f


class lock:
    def __init__(self, f: Any) -> None:
        self.f = f

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if uwsgi.i_am_the_spooler():
            return None
        uwsgi.lock()
        try:
            return self.f(*args, **kwargs)
        finally:
            uwsgi.unlock()


class thread:
    def __init__(self, f: Any) -> None:
        self.f = f

    def __call__(self, *args: Any) -> Any:
        t = Thread(target=self.f, args=args)
        t.daemon = True
        t.start()
        return self.f


class harakiri:
    def __init__(self, seconds: int) -> None:
        self.s = seconds

    def real_call(self, *args: Any, **kwargs: Any) -> Any:
        uwsgi.set_user_harakiri(self.s)
        result = self.f(*args, **kwargs)
        uwsgi.set_user_harakiri(0)
        return result

    def __call__(self, f: Any) -> Any:
        self.f = f
        return self.real_call


if _SIMULATED:
    uwsgi.spooler = manage_spool_request
    uwsgi.post_fork_hook = postfork_chain_hook
    uwsgi.mule_msg_hook = mule_msg_dispatcher


# -- loading this file as the app's ``uwsgidecorators`` ------------------------------------------
def _spec() -> Any:
    import importlib.util

    return importlib.util.spec_from_file_location("uwsgidecorators", __file__)


def fresh() -> Any:
    """A new ``uwsgidecorators`` module (its import-time effects run now, against the
    ``uwsgi`` module in ``sys.modules``). It is not put in ``sys.modules``."""
    import importlib.util

    spec = _spec()
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Finder:
    """A ``sys.meta_path`` finder that makes ``import uwsgidecorators`` load this file
    (a real import: each process that imports it runs it afresh)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "uwsgidecorators":
            return None
        return _spec()

    def invalidate_caches(self) -> None:
        pass


#: What ``Simulation(decorators=...)`` takes.
CHOICES = ("auto", "simuwsgi")


def install_finder(choice: str) -> Finder:
    """Make ``import uwsgidecorators`` in app code work while a simulation is open:
    ``"simuwsgi"`` loads this file, before any other finder is asked; ``"auto"``
    prefers uWSGI's own file (the one the pyuwsgi wheel installs, or one on the app's
    path), which works on the ``uwsgi`` facade unchanged, and loads this file only where
    no other finder has one (``pip install simuwsgi`` alone). Returns the finder put in
    ``sys.meta_path``, for :func:`remove_finder`."""
    if choice not in CHOICES:
        raise ValueError(f"decorators must be one of {', '.join(map(repr, CHOICES))}, "
                         f"not {choice!r}")
    finder = Finder()
    if choice == "simuwsgi":
        sys.meta_path.insert(0, finder)
    else:
        sys.meta_path.append(finder)
    return finder


def remove_finder(finder: Finder | None) -> None:
    """Take out what :func:`install_finder` put in (idempotent)."""
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)
