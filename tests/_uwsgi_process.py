"""The real ``uwsgi`` as a plain process, for differential tests of what it logs as it
starts, reloads and stops (``RealUwsgi`` manages a long-lived server; these tests want
the whole output of one short run)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from simuwsgi.modes.real import free_port
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi


def run_until_exit(options: Sequence[str], cwd: Path) -> tuple[int, list[str]]:
    """Run uWSGI until it exits by itself (start-time refusals): status and lines."""
    out = subprocess.run([require_real_uwsgi(), *options], cwd=cwd, capture_output=True,
                         text=True, timeout=30, check=False)
    return out.returncode, (out.stdout + out.stderr).splitlines()


def run_with(options: Sequence[str], cwd: Path,
             scenario: Callable[[str], None] = lambda url: None, *,
             http: bool = True) -> list[str]:
    """Start uWSGI (on a free loopback port with ``http``, once it answers), call
    ``scenario(url)``, then SIGINT it; every line it wrote."""
    argv = [require_real_uwsgi(), *options]
    url = ""
    if http:
        port = free_port()
        argv += ["--http-socket", f"127.0.0.1:{port}"]
        url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(argv, cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if http:
            get(url, wait=15)
        scenario(url)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # a worker stuck in its shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    return out.splitlines()


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
