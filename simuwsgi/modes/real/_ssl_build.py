"""A real uWSGI 2.0.30 with SSL, for the Legion differential tests.

The pyuwsgi wheel is built without SSL, so it has no Legion (``--legion`` is an
unrecognized option there). uWSGI built from its source where OpenSSL's headers are
installed has it: :func:`ssl_uwsgi_binary` returns such a binary -
``$SIMUWSGI_UWSGI_SSL_BINARY`` if set, else one built once per machine into
``~/.cache/simuwsgi/uwsgi-2.0.30-ssl-python/`` from the ``uwsgi==2.0.30`` source release
(``pip download``, then ``python uwsgiconfig.py --build`` with the ``base`` profile and
the Python plugin of this interpreter, so apps can call ``uwsgi.i_am_the_lord``: about
100 s on one core). It needs a C compiler and the OpenSSL and Python headers
(``libssl-dev``); without them it raises ``RealUwsgiError`` saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ._server import RealUwsgiError

__all__ = ["ssl_uwsgi_binary"]

VERSION = "2.0.30"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "simuwsgi" / f"uwsgi-{VERSION}-ssl-python"


def _has_legion(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except OSError:
        return False
    return "--legion " in out or "--legion\n" in out or "--legion-node" in out


def ssl_uwsgi_binary() -> str:
    """The path of a uWSGI 2.0.30 built with SSL (see the module doc)."""
    explicit = os.environ.get("SIMUWSGI_UWSGI_SSL_BINARY")
    if explicit:
        if not _has_legion(explicit):
            raise RealUwsgiError(f"$SIMUWSGI_UWSGI_SSL_BINARY={explicit} is not a uWSGI "
                                 f"with Legion (built without SSL?)")
        return explicit
    target = _cache_dir() / "uwsgi"
    if target.exists() and _has_legion(str(target)):
        return str(target)
    return _build(target)


def _run(cmd: list[str], cwd: str, what: str, timeout: float) -> None:
    env = dict(os.environ, CPUCOUNT="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RealUwsgiError(f"building uWSGI {VERSION} with SSL: {what} failed "
                             f"(needs a C compiler and libssl-dev): {' | '.join(tail)}")


def _build(target: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="simuwsgi-uwsgi-ssl-") as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
              f"uwsgi=={VERSION}", "-d", tmp], tmp, "pip download", 300)
        archive = next(Path(tmp).glob("uwsgi-*.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        src = Path(tmp) / f"uwsgi-{VERSION}"
        (src / "buildconf" / "simuwsgi.ini").write_text(
            "[uwsgi]\nmain_plugin = python\ninherit = base\n")
        _run([sys.executable, "uwsgiconfig.py", "--build", "simuwsgi"], str(src),
             "uwsgiconfig.py --build", 1800)
        if not _has_legion(str(src / "uwsgi")):
            raise RealUwsgiError(f"uWSGI {VERSION} was built without SSL (no OpenSSL "
                                 f"headers?): no --legion option")
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        shutil.copy2(src / "uwsgi", partial)
        os.replace(partial, target)
    return str(target)
