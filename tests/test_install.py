"""The installed package works without its optional extras.

``pip install simuwsgi`` brings only the runtime dependencies (greenlet, msgpack, trio).
Everything else (``cryptography`` for Legion, and the test extra: pytest, hypothesis,
freezegun, SimPy, pyuwsgi) must be imported lazily, with an error that names the extra
where it is needed. The check runs in a fresh interpreter where those packages cannot be
imported, as on a machine that never installed them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: Packages that are not runtime dependencies.
OPTIONAL = ("cryptography", "pytest", "_pytest", "hypothesis", "freezegun", "simpy", "pyuwsgi")
#: Modules that only run inside their host: the pytest plugin in pytest, the real-mode
#: instrumentation inside the real uWSGI server (it imports the server's ``uwsgi``).
HOSTED = ("simuwsgi.pytest_plugin", "simuwsgi.modes.real.pytest_helpers", "simuwsgi.modes.real._instrument")

_BLOCKER = textwrap.dedent(
    f"""
    import importlib.abc, sys

    class NoExtras(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NoExtras())
    """
)


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "check.py"
    script.write_text(_BLOCKER + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False)


def test_every_module_imports_and_a_simulation_runs_without_the_extras(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'hello']\n"
    )
    result = _run(
        f"""
        import importlib, pkgutil, simuwsgi
        names = [m.name for m in pkgutil.walk_packages(simuwsgi.__path__, "simuwsgi.")
                 if m.name not in {HOSTED!r}]
        for name in names:
            importlib.import_module(name)
        print("imported", len(names))

        from simuwsgi import Simulation
        with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"]) as sim:
            resp = sim.get("/")
            sim.advance(60)
        print("response", resp.status, resp.body)

        from simuwsgi.cli import main
        try:
            main(["--help"])
        except SystemExit as exc:
            print("help exit", exc.code)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    imported = int(out.split("imported ", 1)[1].split()[0])
    assert imported > 50, out
    assert "response 200 b'hello'" in out
    assert "help exit 0" in out


def test_legion_encryption_names_the_extra_it_needs(tmp_path: Path) -> None:
    result = _run(
        """
        from simuwsgi.protocol import LegionCipher
        cipher = LegionCipher.from_option("aes-128-cbc", b"secret")
        try:
            cipher.encrypt(b"x")
        except ModuleNotFoundError as exc:
            print("error:", exc)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'simuwsgi[legion]'" in result.stdout
