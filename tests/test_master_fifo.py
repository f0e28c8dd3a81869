"""``--master-fifo``: command bytes written to a real fifo, read by the master one per
wake-up of its loop (``simuwsgi.subsystems.fifo``), compared with 2.0.30."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from _uwsgi_process import running, undated

from simuwsgi import Simulation

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'x']\n"
OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--master-fifo", "fifo0",
           "--master-fifo", "fifo1", "--pidfile", "pid"]
#: (command, the fifo it is written to, the line that says it was read: None for none)
SCRIPT = [("s", "fifo0", "\tworker 2 app 0"), ("E", "fifo0", None), ("x", "fifo0", None),
          ("S", "fifo0", "subscriptions blocked"), ("B", "fifo0", "[broodlord]"),
          ("S", "fifo0", "subscriptions re-enabled"), ("l", "fifo0", None),
          ("P", "fifo0", "writing pidfile to pid"),
          ("1", "fifo0", "active master fifo is now fifo1"),
          ("q", "fifo1", "goodbye to uWSGI.")]
# observed on pyuwsgi 2.0.30 (dates taken off, pids, the port and which worker served the
# one request masked): 'E' (no Emperor), 'x' (no command) and 'l' (no --logto) do nothing
EXPECTED = [
    "", ";uWSGI instance configuration", "[uwsgi]", "master = true", "processes = 2",
    "wsgi-file = app.py", "master-fifo = fifo0", "master-fifo = fifo1", "pidfile = pid",
    "http-socket = ADDRESS", ";end of configuration", "",
    "\tworkers total requests: 1", "-----------------",
    "\tworker 1 app 0 [] requests: N exceptions: 0", "-----------------",
    "\tworker 2 app 0 [] requests: N exceptions: 0", "-----------------", "",
    "subscriptions blocked", "[broodlord] instance not governed by an Emperor !!!",
    "subscriptions re-enabled", "writing pidfile to pid",
    "active master fifo is now fifo1", "graceful shutdown triggered...",
    "Gracefully killing worker 1 (pid: P)...", "Gracefully killing worker 2 (pid: P)...",
    "goodbye to uWSGI."]


def _masked(lines: list[str]) -> list[str]:
    start = max(i for i, line in enumerate(lines) if line.startswith("spawned uWSGI worker"))
    out = [re.sub(r"pid: \d+", "pid: P", re.sub(r"127\.0\.0\.1:\d+", "ADDRESS", undated(line)))
           for line in lines[start + 1:] if not line.startswith("[pid: ")]  # (a request)
    out = [re.sub(r"\] requests: \d+", "] requests: N", line) for line in out]
    # the workers log their own SIGHUP line: in either order
    shutdown = out.index("graceful shutdown triggered...")
    return out[:shutdown + 1] + sorted(out[shutdown + 1:-1]) + out[-1:]


def _write(directory: Path, fifo: str, command: str) -> None:
    """Write ``command`` to the fifo once the master has it open (the real master makes
    a fifo as its loop starts, and again after each writer: a moment later)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            fd = os.open(directory / fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # not made yet (ENOENT), or no reader yet (ENXIO)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    try:
        os.write(fd, command.encode())
    finally:
        os.close(fd)


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_commands(tmp_path: Path, mode: str) -> None:
    (tmp_path / "app.py").write_text(APP)
    with Simulation([*OPTIONS, "--http-socket", "127.0.0.1:9"], app_dir=tmp_path,
                    mode=mode) as sim:
        assert stat.S_ISFIFO(os.stat(tmp_path / "fifo0").st_mode)
        assert stat.S_IMODE(os.stat(tmp_path / "fifo0").st_mode) == 0o600
        sim.get("/")  # as the real run's first request, that says it is up
        sim.advance(1)
        for command, fifo, _line in SCRIPT:
            _write(tmp_path, fifo, command)
            sim.advance(1)
        assert sim.inst.stopped
        assert _masked(list(sim.log)) == EXPECTED
        assert (tmp_path / "pid").read_text() == f"{sim.inst.master.pid}\n"
    # the writer of "1" closed: the master made the fifo of the new slot
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo1").st_mode)


@pytest.mark.real
def test_real_commands(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    with running(OPTIONS, tmp_path) as uwsgi:
        uwsgi.wait_for("spawned uWSGI worker 2")
        for command, fifo, line in SCRIPT:
            _write(tmp_path, fifo, command)
            if line is not None:
                uwsgi.wait_for(line)
        lines = list(uwsgi.lines)
    assert _masked(lines) == EXPECTED


def test_reload_commands_and_the_cheap_mode(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    options = ["--master", "--processes", "1", "--wsgi-file", "app.py", "--master-fifo",
               "fifo", "--logto", "log.txt"]
    with Simulation(options, app_dir=tmp_path) as sim:
        sim.advance(1)

        def command(byte: str) -> list[str]:
            before = len(sim.log)
            _write(tmp_path, "fifo", byte)
            sim.advance(3)
            return [re.sub(r"pid: \d+", "pid: P", undated(line)) for line in sim.log[before:]]

        # observed on 2.0.30 ('W': SIGINT to each worker, which dies and is respawned;
        # 'C': every worker SIGKILLed; 'l', 'L': the --logto file reopened, rotated)
        assert command("w") == ["Gracefully killing worker 1 (pid: P)...",
                                "worker 1 killed successfully (pid: P)",
                                "Respawned uWSGI worker 1 (new pid: P)"]
        assert command("W") == ["killing worker 1 (pid: P)",
                                "DAMN ! worker 1 (pid: P) died :( trying respawn ...",
                                "Respawned uWSGI worker 1 (new pid: P)"]
        assert command("c")[:3] == ["chain reload starting...", "chain next victim is worker 1",
                                    "Gracefully killing worker 1 (pid: P)..."]
        assert re.fullmatch(r"\[\d+\] logsize: \d+, triggering log-reopen\.\.\.",
                            command("l")[0])
        rotated = command("L")
        assert re.fullmatch(r"logsize: \d+, triggering rotation to log\.txt\.\d+\.\.\.",
                            rotated[0])
        assert (tmp_path / rotated[0].split(" to ")[1].rstrip(".")).exists()
        assert command("C") == ["going cheap...", "killing worker 1 (pid: P)",
                                "cheap mode enabled: waiting for socket connection..."]
        assert not any(w.alive for w in sim.inst.workers.values())
        assert sim.get("/").status == 200  # a connection brings the workers back


def test_plus_and_minus_move_the_cheaper(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    options = ["--master", "--processes", "4", "--cheaper", "1", "--cheaper-algo", "manual",
               "--wsgi-file", "app.py", "--master-fifo", "fifo"]
    with Simulation(options, app_dir=tmp_path) as sim:
        sim.advance(1)

        def alive() -> int:
            return sum(w.alive for w in sim.inst.workers.values())

        assert alive() == 1
        _write(tmp_path, "fifo", "++")
        sim.advance(2)
        assert alive() == 3
        _write(tmp_path, "fifo", "-")
        sim.advance(2)
        assert alive() == 2


def test_what_the_app_writes_is_read_at_the_masters_next_iteration(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        f"def application(e, s):\n    open({str(tmp_path / 'fifo')!r}, 'w').write('S')\n"
        "    s('200 OK', [])\n    return [b'x']\n")
    with Simulation(["--processes", "1", "--wsgi-file", "app.py", "--master-fifo", "fifo"],
                    app_dir=tmp_path) as sim:  # (--master-fifo makes the master)
        assert sim.inst.has_master
        sim.get("/")
        sim.advance(1)
        assert [undated(line) for line in sim.log if "subscriptions" in line] == [
            "subscriptions blocked"]


def test_pause_and_refork_are_said_not_simulated(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    with Simulation(["--master", "--wsgi-file", "app.py", "--master-fifo", "fifo"],
                    app_dir=tmp_path) as sim:
        sim.advance(1)
        _write(tmp_path, "fifo", "pf")
        sim.advance(1)
        said = [line for line in sim.log if "[simuwsgi] master fifo" in line]
        assert len(said) == 2 and "'p'" in said[0] and "'f'" in said[1]
        assert any("*** PAUSE (press start to resume" in line for line in sim.log)
