"""The real ``uwsgi`` as a plain process, for differential tests of what it logs as it
starts, reloads and stops (``RealUwsgi`` manages a long-lived server; these tests want
the whole output of one short run)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from simuwsgi.modes.real import free_port
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi


# uwsgi_log_verbose's date, which real uWSGI takes from the wall clock (any year)
_DATE = re.compile(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} - ")


def undated(line: str) -> str:
    """``line`` without uwsgi_log_verbose's date."""
    return _DATE.sub("", line)


def let_new_processes_start() -> None:
    """A second for a process just spawned to set its signal handlers: SIGINTed before,
    it runs the handler it inherited ("SIGINT/SIGTERM received" twice) or none, and the
    stop waits for it until it is killed (10 s and more)."""
    time.sleep(1)


def before_stop(lines: list[str]) -> list[str]:
    """The lines before the master's answer to the SIGINT that stops it: what follows
    is the harness ending the run (a process still starting then races with it)."""
    stop = next((i for i, line in enumerate(lines) if line.startswith("SIGINT/SIGTERM")),
                len(lines))
    return lines[:stop]


def run_until_exit(options: Sequence[str], cwd: Path) -> tuple[int, list[str]]:
    """Run uWSGI until it exits by itself (start-time refusals): status and lines."""
    out = subprocess.run([require_real_uwsgi(), *options], cwd=cwd, capture_output=True,
                         text=True, timeout=30, check=False)
    return out.returncode, (out.stdout + out.stderr).splitlines()


def run_with(options: Sequence[str], cwd: Path,
             scenario: Callable[[str], None] = lambda url: None, *,
             http: bool = True, until: Sequence[str] = ()) -> list[str]:
    """Start uWSGI (on a free loopback port with ``http``, once it answers), call
    ``scenario(url)``, wait for lines with each text of ``until``, one after the other,
    then SIGINT it; every line it wrote."""
    with running(options, cwd, http=http) as uwsgi:
        scenario(uwsgi.url)
        if until:
            uwsgi.wait_for(*until)
            let_new_processes_start()
    return uwsgi.lines


class Running:
    """A running uWSGI: its url (with ``http``) and the lines it has written so far,
    read as they are written (by a thread), so a test waits for the line it needs
    instead of sleeping for a time a loaded machine may need more than."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.url = url
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._reader.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, *texts: str, timeout: float = 30) -> None:
        """Wait until lines with ``texts``, in that order, have been written (at most
        ``timeout`` seconds: the comparison that follows shows what is missing)."""
        def seen() -> bool:
            found = iter(self.lines)
            return all(any(text in line for line in found) for text in texts)

        with self._changed:
            self._changed.wait_for(seen, timeout)

    def wait_for_output_end(self, timeout: float | None) -> bool:
        """Whether every process holding the output has gone within ``timeout``."""
        self._reader.join(timeout)
        return not self._reader.is_alive()


@contextmanager
def running(options: Sequence[str], cwd: Path, *, http: bool = True) -> Iterator[Running]:
    """uWSGI started (on a free loopback port with ``http``, once it answers), SIGINTed
    when the block ends."""
    argv = [require_real_uwsgi(), *options]
    url = ""
    if http:
        port = free_port()
        argv += ["--http-socket", f"127.0.0.1:{port}"]
        url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(argv, cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    uwsgi = Running(proc, url)
    try:
        if http:
            get(url, wait=15)
        yield uwsgi
    finally:
        proc.send_signal(signal.SIGINT)
        if not uwsgi.wait_for_output_end(15):  # a worker stuck in its shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            uwsgi.wait_for_output_end(None)
        proc.wait()


def get(url: str, *, wait: float = 0) -> bytes:
    """GET ``url``; with ``wait``, retry that many seconds while nothing listens."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
