"""CI: the package as `pip install simuwsgi` gives it (a built wheel, no extras) works.

Run by .ci/run with the wheel's virtualenv: the CLI runs an app for a virtual hour with a
report, the pytest plugin's fixture serves a request, and `simuwsgi serve` answers a real
HTTP request on loopback and stops on SIGINT.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

APP = """\
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello from the wheel']
"""
TEST = """\
import pytest

@pytest.mark.uwsgi("--master", "--processes", "2", "--wsgi-file", "app.py")
def test_home(uwsgi_sim):
    assert uwsgi_sim.get("/").body == b"hello from the wheel"
"""


def run(*argv: str) -> None:
    print("wheel check:", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, timeout=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as d:
        os.chdir(d)
        Path("app.py").write_text(APP)
        Path("test_app.py").write_text(TEST)
        run(str(bindir / "simuwsgi"), "--help")
        run(str(bindir / "simuwsgi"), "run", "--for", "1h", "--report", "reports", "--",
            "--master", "--processes", "2", "--wsgi-file", "app.py")
        assert list(Path("reports").glob("*/report.md")), "no report written"
        run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_app.py")
        port = free_port()
        serve = subprocess.Popen([str(bindir / "simuwsgi"), "serve", "--", "--master",
                                  "--processes", "1", "--http-socket", f"127.0.0.1:{port}",
                                  "--wsgi-file", "app.py"])
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or serve.poll() is not None:
                        raise
                    time.sleep(0.1)
            assert body == b"hello from the wheel", body
            print("wheel check: serve answered", body, flush=True)
        finally:
            serve.send_signal(signal.SIGINT)  # uWSGI's shutdown: goodbye, exit status 0
            try:
                status = serve.wait(timeout=15)
            except subprocess.TimeoutExpired:
                serve.kill()
                raise
        assert status == 0, f"serve exited with {status} on SIGINT"
    return 0


if __name__ == "__main__":
    sys.exit(main())
