"""pytest helpers for differential tests against the real uWSGI server.

Use from a ``conftest.py``::

    from simuwsgi.modes.real.pytest_helpers import (  # noqa: F401  (registers the fixtures)
        real_uwsgi_binary, real_uwsgi_pool, real_uwsgi_factory,
    )

and in tests::

    from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

    @requires_real_uwsgi
    def test_something(real_uwsgi_pool):
        u = real_uwsgi_pool.get(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                                app={"app.py": APP_SOURCE})
        assert u.get("/").status == 200

Differential tests must never be silently skipped: when the ``uwsgi`` binary is missing,
:func:`requires_real_uwsgi` and the fixtures **fail** with an explanation.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from ._server import RealUwsgi, find_uwsgi_binary

__all__ = [
    "UWSGI_MISSING_MESSAGE",
    "RealUwsgiPool",
    "real_uwsgi_binary",
    "real_uwsgi_factory",
    "real_uwsgi_pool",
    "require_real_uwsgi",
    "requires_real_uwsgi",
]

UWSGI_MISSING_MESSAGE = (
    "the real `uwsgi` binary is required by this differential test but was not found "
    "(looked at $SIMUWSGI_UWSGI_BINARY, next to {python}, and on $PATH). Install it with "
    "`pip install 'pyuwsgi>=2.0.28'` (it is part of the project's `test` extra). "
    "Differential tests are never skipped: a missing server is a failure."
)

F = TypeVar("F", bound=Callable)

AppSpec = str | Mapping[str, str | bytes] | Path | None


def require_real_uwsgi() -> str:
    """Return the path of the real ``uwsgi``, or **fail** the current test."""
    binary = find_uwsgi_binary()
    if binary is None:
        import sys

        pytest.fail(UWSGI_MISSING_MESSAGE.format(python=sys.executable), pytrace=False)
    return binary


def requires_real_uwsgi(obj: F) -> F:
    """Decorator for test functions or classes: adds the ``real`` marker and makes the test
    *fail* (not skip) when the ``uwsgi`` binary is missing."""
    if inspect.isclass(obj):
        for name, member in list(vars(obj).items()):
            if name.startswith("test") and callable(member):
                setattr(obj, name, requires_real_uwsgi(member))
        return pytest.mark.real(obj)

    if inspect.iscoroutinefunction(obj):  # pragma: no cover - not used by the harness

        @functools.wraps(obj)
        async def awrapper(*args, **kwargs):
            require_real_uwsgi()
            return await obj(*args, **kwargs)

        return pytest.mark.real(awrapper)  # type: ignore[return-value]

    @functools.wraps(obj)
    def wrapper(*args, **kwargs):
        require_real_uwsgi()
        return obj(*args, **kwargs)

    return pytest.mark.real(wrapper)  # type: ignore[return-value]


def _write_app(base: Path, app: AppSpec) -> tuple[Path, str]:
    """Materialise ``app`` under ``base``; return (app_dir, digest)."""
    if app is None:
        return base, "none"
    if isinstance(app, Path):
        h = hashlib.sha256(str(app.resolve()).encode())
        for f in sorted(p for p in app.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(str(f.relative_to(app)).encode() + b"\0" + f.read_bytes() + b"\0")
        return app, "dir:" + h.hexdigest()
    files = {"app.py": app} if isinstance(app, str) else dict(app)
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        data = data.encode() if isinstance(data, str) else data
        h.update(name.encode() + b"\0" + data + b"\0")
    digest = h.hexdigest()
    app_dir = base / digest[:16]
    if not app_dir.exists():
        tmp = base / (digest[:16] + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, str):
                p.write_text(data)
            else:
                p.write_bytes(data)
        tmp.rename(app_dir)
    return app_dir, "files:" + digest


class RealUwsgiPool:
    """Session cache of running instances, keyed by (options, app, env, settings).

    ``get()`` returns the running instance for an identical key (starting it the first
    time, or again if it died); the instance is shared, so only use it from tests that do
    not depend on per-instance history (request counters, pids...) and do not change it
    (reload, kill_worker, stop).  Such tests should use ``fresh()`` or the
    ``real_uwsgi_factory`` fixture.  ``close()`` stops everything, in parallel (a graceful
    stop costs ~1 s each).
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._cache: dict[tuple, RealUwsgi] = {}
        self._all: list[RealUwsgi] = []
        self.starts = 0  # how many instances were started (for tests/diagnostics)

    def _key(self, options: Sequence[str], digest: str, env, kw) -> tuple:
        return (
            tuple(options),
            digest,
            tuple(sorted((env or {}).items())),
            tuple(sorted(kw.items())),
        )

    def get(
        self,
        options: Sequence[str],
        *,
        app: AppSpec = None,
        env: Mapping[str, str] | None = None,
        **kwargs,
    ) -> RealUwsgi:
        """A running instance for these options/app (``app``: source of ``app.py``, a
        ``{relative path: content}`` mapping, or an existing directory)."""
        require_real_uwsgi()
        app_dir, digest = _write_app(self.base_dir, app)
        key = self._key(options, digest, env, kwargs)
        inst = self._cache.get(key)
        if inst is not None and inst.running:
            return inst
        if inst is not None:
            inst.stop()
        inst = self._start(options, app_dir, env, kwargs)
        self._cache[key] = inst
        return inst

    def fresh(
        self,
        options: Sequence[str],
        *,
        app: AppSpec = None,
        env: Mapping[str, str] | None = None,
        **kwargs,
    ) -> RealUwsgi:
        """A new, unshared instance (still stopped by ``close()``)."""
        require_real_uwsgi()
        app_dir, _ = _write_app(self.base_dir, app)
        return self._start(options, app_dir, env, kwargs)

    def discard(self, inst: RealUwsgi) -> None:
        """Remove ``inst`` from the cache, stop it and remove its temporary directory."""
        for k, v in list(self._cache.items()):
            if v is inst:
                del self._cache[k]
        inst.close()

    def _start(self, options, app_dir, env, kwargs) -> RealUwsgi:
        inst = RealUwsgi(list(options), app_dir=app_dir, env=env, **kwargs)
        self._all.append(inst)
        inst.start()
        self.starts += 1
        return inst

    def close(self, timeout: float = 5.0) -> None:
        insts, self._all = self._all, []
        self._cache.clear()
        threads = [threading.Thread(target=i.close, daemon=True) for i in insts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 15)
        for i in insts:  # anything a thread could not finish
            i.kill()


@pytest.fixture(scope="session")
def real_uwsgi_binary() -> str:
    """Path of the real ``uwsgi``; fails (never skips) when it is missing."""
    return require_real_uwsgi()


@pytest.fixture(scope="session")
def real_uwsgi_pool(tmp_path_factory, real_uwsgi_binary):
    """Session-scoped :class:`RealUwsgiPool`."""
    pool = RealUwsgiPool(tmp_path_factory.mktemp("real-uwsgi-apps"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def real_uwsgi_factory(real_uwsgi_binary):
    """Function-scoped factory of fresh instances, all stopped (in parallel) at teardown:
    ``u = real_uwsgi_factory(options, app_dir=tmp_path)`` (kwargs as :class:`RealUwsgi`;
    ``start=False`` returns it unstarted)."""
    made: list[RealUwsgi] = []

    def make(options: Sequence[str], *, start: bool = True, **kwargs) -> RealUwsgi:
        inst = RealUwsgi(list(options), **kwargs)
        made.append(inst)
        if start:
            inst.start()
        return inst

    try:
        yield make
    finally:
        threads = [threading.Thread(target=i.close, daemon=True) for i in made]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for i in made:
            i.kill()
