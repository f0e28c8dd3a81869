"""``os.register_at_fork`` in app code, and the options that make uWSGI run those hooks.

uWSGI forks in C, so CPython's fork hooks run only where 2.0.30 calls them
(``plugins/python/python_plugin.c``): ``--py-call-uwsgi-fork-hooks`` around each
worker's fork (``before``/``after_in_parent`` in the master, ``after_in_child`` in the
worker while ``uwsgi.worker_id()`` is still 0; a mule then gets a Segmentation Fault as
it starts), ``--py-call-osafterfork`` the ``after_in_child`` hooks in every forked
process. Sentry and ddtrace tell their users to set the first. The observed answers of
the real server are the expected values here, and the ``real`` tests check them again.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi, requires_real_uwsgi

APP = """
import os, uwsgi
calls = []
def hook(what):
    return lambda: calls.append("%s:%d" % (what, uwsgi.worker_id()))
os.register_at_fork(before=hook("before1"), after_in_parent=hook("parent1"),
                    after_in_child=hook("child1"))
os.register_at_fork(before=hook("before2"), after_in_child=hook("child2"))
def boom():
    raise RuntimeError("hook failed")
os.register_at_fork(after_in_child=boom)
def application(env, start_response):
    start_response("200 OK", [])
    return [repr(calls).encode()]
"""

#: options -> (the workers' answers, how many hooks raised), as uWSGI 2.0.30 gives them
CASES = {
    "none": ([], [b"[]"], 0),
    "uwsgi-fork-hooks": (
        ["--py-call-uwsgi-fork-hooks"],
        [b"['before2:0', 'before1:0', 'child1:0', 'child2:0']",
         b"['before2:0', 'before1:0', 'parent1:0', 'before2:0', 'before1:0', 'child1:0', "
         b"'child2:0']"], 2),
    "osafterfork": (["--py-call-osafterfork"],
                    [b"['child1:1', 'child2:1']", b"['child1:2', 'child2:2']"], 2),
    # a mule and a spooler run the after_in_child hooks too
    "osafterfork-all": (["--py-call-osafterfork", "--mule", "--spooler", "spool"],
                        [b"['child1:1', 'child2:1']", b"['child1:2', 'child2:2']"], 4),
}


def _hook_errors(log: list[str]) -> list[str]:
    """The reports of the hook that raised, its address blanked out."""
    return [re.sub(r" at 0x[0-9a-f]+", "", line) for line in log
            if line.startswith("Exception ignored in") or "hook failed" in line]


def _options(case: str, where: Path) -> list[str]:
    extra = CASES[case][0]
    if "--spooler" in extra:
        (where / "spool").mkdir(exist_ok=True)
    return ["--master", "--processes", "2", "--wsgi-file", "app.py", *extra]


def _sim(where: Path, case: str, mode: str) -> tuple[list[bytes], list[str]]:
    (where / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_options(case, where), app_dir=where, mode=mode) as sim:
        bodies = sorted({sim.get("/").body for _ in range(6)})
        sim.advance(1)
        return bodies, _hook_errors(list(sim.log))


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize("case", list(CASES))
def test_the_hooks_run_where_uwsgi_runs_them(tmp_path, case, mode):
    bodies, errors = _sim(tmp_path, case, mode)
    assert bodies == CASES[case][1]
    assert errors.count("Exception ignored in: <function boom>") == CASES[case][2]
    assert errors.count("RuntimeError: hook failed") == CASES[case][2]


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("case", list(CASES))
def test_the_hooks_run_as_on_the_real_server(tmp_path, case):
    real_dir, sim_dir = tmp_path / "real", tmp_path / "sim"
    real_dir.mkdir()
    sim_dir.mkdir()
    (real_dir / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_options(case, real_dir), app_dir=real_dir) as real:
        bodies = {real.get("/", timeout=5).body for _ in range(6)}
        time.sleep(1)
        log = real.app_log()
    sim_bodies, sim_errors = _sim(sim_dir, case, "sim")
    # (which worker answers is the kernel's choice there; the processes' lines interleave)
    assert bodies <= set(sim_bodies) == set(CASES[case][1])
    assert Counter(_hook_errors(log)) == Counter(sim_errors)


_MULE_LINES = ("spawned uWSGI mule", "!!! uWSGI process", "OOOPS mule")


def test_a_mule_crashes_at_start_with_uwsgi_fork_hooks(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(["--master", "--wsgi-file", "app.py", "--mule",
                     "--py-call-uwsgi-fork-hooks"], app_dir=tmp_path) as sim:
        sim.advance(2.5)
        log = list(sim.log)
        assert sim.get("/").status == 200  # the workers serve on
    crashes = [line for line in log if line.startswith(_MULE_LINES)]
    assert crashes[:3] == ["spawned uWSGI mule 1 (pid: 1003)",
                           "!!! uWSGI process 1003 got Segmentation Fault !!!",
                           "OOOPS mule 1 (pid: 1003) crippled...trying respawn..."]
    assert len([line for line in crashes if "Segmentation" in line]) >= 2  # and again


@pytest.mark.real
@requires_real_uwsgi
def test_a_mule_crashes_at_start_on_the_real_server_too(tmp_path):
    binary = require_real_uwsgi()
    (tmp_path / "app.py").write_text("def application(e, s):\n    s('200 OK', [])\n"
                                     "    return [b'']\n")
    log_file = tmp_path / "uwsgi.log"
    with open(log_file, "wb") as out:
        server = subprocess.Popen(
            [binary, "--master", "--wsgi-file", "app.py", "--mule",
             "--py-call-uwsgi-fork-hooks", "--http-socket", "127.0.0.1:0"],
            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while "crippled" not in log_file.read_text(errors="replace"):
                assert time.monotonic() < deadline, log_file.read_text()[-2000:]
                time.sleep(0.1)
        finally:
            server.kill()
            server.wait()
    lines = [re.sub(r"\d+", "N", line) for line in log_file.read_text().splitlines()
             if line.startswith(_MULE_LINES)]
    assert lines[:3] == ["spawned uWSGI mule N (pid: N)",
                         "!!! uWSGI process N got Segmentation Fault !!!",
                         "OOOPS mule N (pid: N) crippled...trying respawn..."]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_registering_is_checked_and_stays_in_the_simulation(tmp_path, mode):
    """CPython's checks; and the hooks never join the test process's own: a fork the
    test makes after the simulation runs none of them."""
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import os
        errors = []
        for kwargs in ({}, {"before": 1}):
            try:
                os.register_at_fork(**kwargs)
            except TypeError as exc:
                errors.append(str(exc))
        os.register_at_fork(after_in_child=lambda: open("forked", "w").close())
        def application(env, start_response):
            start_response("200 OK", [])
            return [repr(errors).encode()]
    """))
    script = textwrap.dedent(f"""
        import os, sys
        from simuwsgi import Simulation
        with Simulation(["--master", "--wsgi-file", "app.py"], app_dir={str(tmp_path)!r},
                        mode={mode!r}) as sim:
            print(sim.get("/").body.decode())
        os.chdir({str(tmp_path)!r})
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print(os.path.exists("forked"))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out == ["['At least one argument is required.', \"'before' must be callable, "
                   "not int\"]", "False"]


def test_the_options_are_simulated():
    from simuwsgi.server.options_status import status

    for name in ("py-call-uwsgi-fork-hooks", "py-call-osafterfork"):
        assert status(name).status == "simulated"
