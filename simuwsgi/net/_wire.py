"""How a request that came from a real socket reaches the simulated app.

A wire request enters the simulation as an ordinary ``Simulation.submit`` request
(so it queues, takes a worker, counts, can be killed by harakiri...) carrying a
:class:`WireRequest` in its ``net`` attribute. The ``net`` subsystem wraps every app
callable the instance loads (:func:`install`); the wrapper, which runs in the worker:

* for a WSGI request, replaces the environ the simulator built with the one uWSGI's
  Python plugin builds from the wire vars (``plugins/python/wsgi_subhandler.c``: every
  var decoded as latin-1, the last duplicate winning, then ``wsgi.input``,
  ``wsgi.file_wrapper``, ``wsgi.version``, ``wsgi.errors``, ``wsgi.run_once``,
  ``wsgi.multithread``, ``wsgi.multiprocess``, ``wsgi.url_scheme`` (``UWSGI_SCHEME``,
  else ``HTTPS`` on/1, else http), ``uwsgi.version``, ``uwsgi.node``), and records the
  status string and header list exactly as the app gave them to ``start_response`` (the
  reply is built from them when the simulator does not record the connection's bytes
  itself, see ``_node._http_reply``);
* for a packet served by another plugin (RPC, cache, signal, spool), runs the
  plugin's action (``control``) in the worker instead of the app, as uWSGI's request
  plugins run in a worker.

Requests submitted by the test API carry no ``net`` attribute and reach the app
untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..master import Instance

__all__ = ["WireRequest", "install"]

_WSGI_KEYS = ("wsgi.input", "wsgi.file_wrapper", "wsgi.version", "wsgi.errors",
              "wsgi.run_once", "wsgi.multithread", "wsgi.multiprocess")


class WireRequest:
    """What a wire request carries into the worker, and what the worker leaves."""

    __slots__ = ("control", "headers", "ran", "result", "status", "vars")

    def __init__(self, vars: tuple[tuple[bytes, bytes], ...] = (),
                 control: Callable[[], Any] | None = None) -> None:
        self.vars = vars
        self.control = control
        self.ran = False
        self.result: Any = None
        self.status: str | None = None
        self.headers: list[tuple[Any, Any]] = []


def _scheme(env: dict[str, Any]) -> str:
    scheme = env.get("UWSGI_SCHEME")
    if scheme:
        return str(scheme)
    https = env.get("HTTPS")
    if https:
        return "https" if https[:2].lower() == "on" or https[0] == "1" else "http"
    return "http"


def wire_environ(environ: dict[str, Any], vars: tuple[tuple[bytes, bytes], ...]) -> None:
    """Rebuild ``environ`` in place from the wire vars (keeps the simulator's objects
    for ``wsgi.input``, ``wsgi.errors``...)."""
    keep = {k: environ[k] for k in _WSGI_KEYS if k in environ}
    version = environ.get("uwsgi.version", b"2.0.30")
    node = environ.get("uwsgi.node", b"")
    core = environ.get("uwsgi.core")
    environ.clear()
    for key, value in vars:
        environ[key.decode("latin-1")] = value.decode("latin-1")
    for key in _WSGI_KEYS:
        if key in keep:
            environ[key] = keep[key]
    environ["wsgi.url_scheme"] = _scheme(environ)
    environ["uwsgi.version"] = version
    if core is not None:
        environ["uwsgi.core"] = core
    environ["uwsgi.node"] = node


def wrap_app(inst: Instance, app: Any) -> Any:
    """The app as seen by workers of a networked instance (see the module doc)."""
    if getattr(app, "__simuwsgi_wire__", False):
        return app
    kernel = inst.kernel
    resolve = inst.app.resolve  # the running process's copy of the app (virtual fork)

    def app_on_the_wire(environ: dict[str, Any], start_response: Any) -> Any:
        request = getattr(kernel.current, "request", None)
        wire = getattr(request, "net", None)
        if wire is None:
            return resolve(app)(environ, start_response)
        if wire.control is not None:
            wire.ran = True
            wire.result = wire.control()
            return ()
        wire_environ(environ, wire.vars)

        def recording_start_response(status: Any, headers: Any, exc_info: Any = None) -> Any:
            write = start_response(status, headers, exc_info)
            wire.status = status
            wire.headers = list(headers)
            return write

        return resolve(app)(environ, recording_start_response)

    app_on_the_wire.__simuwsgi_wire__ = True  # type: ignore[attr-defined]
    app_on_the_wire.__wrapped__ = app  # type: ignore[attr-defined]
    return app_on_the_wire


class _WireApps(dict):  # type: ignore[type-arg]
    """``AppLoader.apps`` whose values are wrapped as they are stored."""

    def __init__(self, inst: Instance, initial: dict[int, Any]) -> None:
        super().__init__()
        self._inst = inst
        for key, app in initial.items():
            self[key] = app

    def __setitem__(self, key: int, app: Any) -> None:
        super().__setitem__(key, wrap_app(self._inst, app))


def install(inst: Instance) -> None:
    """Wrap the apps this instance loads from now on (idempotent)."""
    loader = inst.app
    if not isinstance(loader.apps, _WireApps):
        loader.apps = _WireApps(inst, loader.apps)
