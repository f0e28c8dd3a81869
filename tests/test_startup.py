"""Options real uWSGI refuses at start, and ``--processes 0`` (``simuwsgi.server.startup``).

Each behaviour is checked on the simulator and, in the ``real`` tests, observed on
pyuwsgi 2.0.30 with the same options."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from _uwsgi_process import let_new_processes_start, run_until_exit

from simuwsgi import ConfigError, Simulation
from simuwsgi._errors import StartRefusedError
from simuwsgi.modes.real import free_port
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

APP = ("import os\n"
       "CWD = os.getcwd()\n"
       "def application(environ, start_response):\n"
       "    start_response('200 OK', [])\n"
       "    return [CWD.encode(), b'|', os.getcwd().encode()]\n")
HTTP = ["--http-socket", "127.0.0.1:0"]
AS_ROOT = os.getuid() == 0


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def _refused(options: list[str], app_dir: Path) -> tuple[StartRefusedError, list[str]]:
    sim = Simulation(options, app_dir=app_dir)
    with pytest.raises(StartRefusedError) as info:
        sim.start()
    return info.value, sim.log


def _real_until(options: list[str], app_dir: Path, line: str) -> list[str]:
    """Run the real uWSGI until it logs ``line`` (or 15 s), then SIGINT it."""
    proc = subprocess.Popen([require_real_uwsgi(), *options], cwd=app_dir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            text = proc.stdout.readline()
            if not text:
                break
            lines.append(text.rstrip("\n"))
            if line in text:
                let_new_processes_start()
                break
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return lines


# -- negative integers -------------------------------------------------------------------
@pytest.mark.parametrize("options", [["--processes", "-5"], ["-p", "-5"], {"processes": -5}])
def test_negative_processes_refused(options: object) -> None:
    with pytest.raises(StartRefusedError) as info:
        Simulation(options)
    assert str(info.value) == 'invalid value for option "processes": must be > 0'
    assert info.value.status == 1 and isinstance(info.value, ConfigError)


def test_negative_value_of_any_int_option_named_as_given() -> None:
    with pytest.raises(StartRefusedError, match='option "workers": must be > 0'):
        Simulation(["--workers", "-1"])
    with pytest.raises(StartRefusedError, match='option "harakiri": must be > 0'):
        Simulation(["--harakiri", "-3"])
    Simulation(["--harakiri", "0"]).close()


@pytest.mark.real
def test_real_negative_processes(app_dir: Path) -> None:
    code, lines = run_until_exit(["--processes", "-5", *HTTP, "--wsgi-file", "app.py"], app_dir)
    assert code == 1
    assert lines[-1] == 'invalid value for option "processes": must be > 0'


# -- chdir ---------------------------------------------------------------------------------
def test_missing_chdir_refused(app_dir: Path) -> None:
    error, log = _refused(["--chdir", "/nonexistent-dir", "--wsgi-file", "app.py"], app_dir)
    assert str(error) == "chdir(): No such file or directory [core/uwsgi.c line 2618]"
    assert log == ["chdir() to /nonexistent-dir",
                   "chdir(): No such file or directory [core/uwsgi.c line 2618]"]


def test_chdir_to_a_file_refused(app_dir: Path) -> None:
    error, _log = _refused(["--chdir", "app.py"], app_dir)
    assert str(error) == "chdir(): Not a directory [core/uwsgi.c line 2618]"


def test_chdir_is_every_process_working_directory(app_dir: Path) -> None:
    sub = app_dir / "sub"
    sub.mkdir()
    (sub / "app.py").write_text(APP)
    here = os.getcwd()
    with Simulation(["--master", "--processes", "2", "--chdir", str(sub), "--wsgi-file",
                     "app.py"], app_dir=app_dir) as sim:
        assert sim.request("GET", "/").body == f"{sub}|{sub}".encode()
        assert os.getcwd() == here  # the test's own directory, between steps
        assert sim.log[0] == f"chdir() to {sub}"


@pytest.mark.real
def test_real_missing_chdir(app_dir: Path) -> None:
    code, lines = run_until_exit(["--chdir", "/nonexistent-dir", *HTTP, "--wsgi-file", "app.py"],
                             app_dir)
    assert code == 1
    assert lines[-2:] == ["chdir() to /nonexistent-dir",
                          "chdir(): No such file or directory [core/uwsgi.c line 2618]"]


# -- plugins ---------------------------------------------------------------------------------
PLUGIN_LINES = [
    'open("./python3_plugin.so"): No such file or directory [core/utils.c line 3709]',
    "!!! UNABLE to load uWSGI plugin: ./python3_plugin.so: cannot open shared object file: "
    "No such file or directory !!!",
    'open("./http_plugin.so"): No such file or directory [core/utils.c line 3709]',
    "!!! UNABLE to load uWSGI plugin: ./http_plugin.so: cannot open shared object file: "
    "No such file or directory !!!",
]


def test_plugins_are_logged_as_not_loaded_and_ignored(app_dir: Path) -> None:
    with Simulation(["--plugins", "python3,http", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        assert sim.log[:4] == PLUGIN_LINES
        assert sim.request("GET", "/").status == 200


def test_need_plugin_refused(app_dir: Path) -> None:
    error, log = _refused(["--need-plugin", "python3", "--wsgi-file", "app.py"], app_dir)
    assert str(error) == 'unable to load plugin "python3"'
    assert log == [*PLUGIN_LINES[:2], 'unable to load plugin "python3"']


@pytest.mark.real
def test_real_plugins(app_dir: Path) -> None:
    lines = _real_until(["--plugins", "python3,http", *HTTP, "--wsgi-file", "app.py"],
                        app_dir, "spawned uWSGI worker 1")
    assert [line for line in lines if "_plugin.so" in line] == PLUGIN_LINES
    assert any("spawned uWSGI worker 1" in line for line in lines)


@pytest.mark.real
def test_real_need_plugin(app_dir: Path) -> None:
    code, lines = run_until_exit(["--need-plugin", "python3", *HTTP, "--wsgi-file", "app.py"],
                             app_dir)
    assert code == 1
    assert lines[-3:] == [*PLUGIN_LINES[:2], 'unable to load plugin "python3"']


# -- uid / gid -----------------------------------------------------------------------------
@pytest.mark.parametrize(("option", "line"), [("--uid", "user nosuchuser1 not found."),
                                              ("--gid", "group nosuchuser1 not found.")])
def test_unknown_uid_gid(app_dir: Path, option: str, line: str) -> None:
    sim = Simulation([option, "nosuchuser1", "--wsgi-file", "app.py"], app_dir=app_dir)
    if AS_ROOT:  # uwsgi_as_root looks the names up only when started as root
        with pytest.raises(StartRefusedError, match=line):
            sim.start()
        assert sim.log[-1] == line
    else:
        with sim:
            assert sim.request("GET", "/").status == 200


@pytest.mark.real
@pytest.mark.parametrize(("option", "line"), [("--uid", "user nosuchuser1 not found."),
                                              ("--gid", "group nosuchuser1 not found.")])
def test_real_unknown_uid_gid(app_dir: Path, option: str, line: str) -> None:
    if not AS_ROOT:
        lines = _real_until([option, "nosuchuser1", *HTTP, "--wsgi-file", "app.py"], app_dir,
                            "spawned uWSGI worker 1")
        assert line not in lines
        return
    code, lines = run_until_exit([option, "nosuchuser1", *HTTP, "--wsgi-file", "app.py"], app_dir)
    assert (code, lines[-1]) == (1, line)


# -- uWSGI's own --strict ------------------------------------------------------------------------
def test_uwsgi_strict_refuses_unknown_ini_keys(app_dir: Path) -> None:
    ini = app_dir / "app.ini"
    ini.write_text("[uwsgi]\nwsgi-file = app.py\nfoo = 1\nstrict = true\nbar = 2\n")
    with pytest.raises(StartRefusedError, match=r"^\[strict-mode\] unknown config directive: bar$"):
        Simulation(str(ini))


@pytest.mark.real
def test_real_uwsgi_strict(app_dir: Path) -> None:
    (app_dir / "app.ini").write_text(
        "[uwsgi]\nwsgi-file = app.py\nfoo = 1\nstrict = true\nbar = 2\n")
    code, lines = run_until_exit(["--ini", "app.ini", *HTTP], app_dir)
    assert (code, lines[-1]) == (1, "[strict-mode] unknown config directive: bar")


# -- --processes 0 ----------------------------------------------------------------------------
def test_processes_0_without_master_exits_after_loading_the_app(app_dir: Path) -> None:
    with Simulation(["--processes", "0", "--wsgi-file", "app.py"], app_dir=app_dir) as sim:
        assert sim.inst.stopped
        assert not sim.inst.workers
        assert "goodbye to uWSGI." not in sim.log
        assert sim.log[-1].startswith("WSGI app 0 (mountpoint='') ready")
        assert sim.request("GET", "/").status is None


def test_processes_0_with_master_runs_no_worker(app_dir: Path) -> None:
    with Simulation(["--master", "--processes", "0", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        assert not sim.inst.workers and not sim.inst.stopped
        response = sim.request("GET", "/", timeout=5)
        assert response.status is None and "timeout" in response.reason
        assert sim.inst.facade.numproc == 0


@pytest.mark.real
def test_real_processes_0_without_master(app_dir: Path) -> None:
    code, lines = run_until_exit(["--processes", "0", *HTTP, "--wsgi-file", "app.py"], app_dir)
    assert code == 0
    assert "*** Operational MODE: no-workers ***" in lines
    assert not [line for line in lines if "spawned uWSGI worker" in line]


@pytest.mark.real
def test_real_processes_0_with_master_answers_nothing(app_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([require_real_uwsgi(), "--master", "--processes", "0",
                             "--http-socket", f"127.0.0.1:{port}", "--wsgi-file", "app.py"],
                            cwd=app_dir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            conn.settimeout(1.5)
            with pytest.raises(socket.timeout):
                conn.recv(100)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert "*** Operational MODE: no-workers ***" in out
    assert "spawned uWSGI worker" not in out


# -- chdir2 ---------------------------------------------------------------------------------
def test_chdir2_after_the_app_is_loaded(app_dir: Path) -> None:
    other = app_dir / "other"
    other.mkdir()
    with Simulation(["--master", "--chdir2", str(other), "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        body = sim.request("GET", "/").body.decode()
        imported_in, serving_in = body.split("|")
        assert serving_in == str(other) and imported_in != str(other)
        assert f"chdir() to {other}" in sim.log


CHDIR2_LINES = ["chdir() to /nonexistent-dir",
                "chdir(): No such file or directory [core/uwsgi.c line 3503]",
                "DAMN ! worker 1 (pid: P) died :( trying respawn ...",
                "Respawned uWSGI worker 1 (new pid: P)",
                "chdir() to /nonexistent-dir",
                "chdir(): No such file or directory [core/uwsgi.c line 3503]",
                "DAMN ! worker 1 (pid: P) died :( trying respawn ...",
                "worker respawning too fast !!! i have to sleep a bit (2 seconds)..."]


def _from_chdir2(lines: list[str]) -> list[str]:
    import re

    # (workers may write uWSGI's running-as-root warnings in between)
    lines = [line for line in lines if "as root" not in line]
    first = lines.index("chdir() to /nonexistent-dir")
    return [re.sub(r"pid: \d+", "pid: P", line) for line in lines[first:first + 8]]


def test_missing_chdir2_makes_workers_exit(app_dir: Path) -> None:
    with Simulation(["--master", "--chdir2", "/nonexistent-dir", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        sim.advance(2.5)
        assert _from_chdir2(sim.log) == CHDIR2_LINES


@pytest.mark.real
def test_real_chdir2(app_dir: Path) -> None:
    # the fork-bomb guard's line depends on how fast the machine respawns: up to the
    # first respawn only
    lines = _real_until(["--master", "--chdir2", "/nonexistent-dir", *HTTP, "--wsgi-file",
                         "app.py"], app_dir, "Respawned uWSGI worker 1")
    assert _from_chdir2(lines)[:4] == CHDIR2_LINES[:4]
