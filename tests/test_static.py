"""Static files served by the worker (``simuwsgi/server/static.py``): what the client gets, what
falls through to the app, and the log lines (the differential test against the real
server is in ``test_reading.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi.server.static import http_date

APP = ("def application(e, s):\n    s('200 OK', [])\n"
       "    return [('app %s' % e['PATH_INFO']).encode()]\n")
MTIME = 1_700_000_000


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "mime.types").write_text("text/plain\ttxt\ntext/css css\n"
                                         "image/x-one a b\n# comment\n")
    files = tmp_path / "files"
    (files / "sub").mkdir(parents=True)
    for name, text in (("a.txt", "hello\n"), ("s.css", "css\n"), ("x.py", "code"),
                       ("sub/index.txt", "index\n"), ("one.b", "b")):
        (files / name).write_text(text)
        os.utime(files / name, (MTIME, MTIME))
    (tmp_path / "outside.txt").write_text("secret")
    (files / "link.txt").symlink_to(tmp_path / "outside.txt")
    return tmp_path


OPTS = ["--wsgi-file", "app.py", "--mimefile", "mime.types", "--static-map", "/s=files",
        "--static-index", "index.txt", "--static-skip-ext", ".py"]


def test_a_file_its_headers_and_its_log_line(app_dir: Path) -> None:
    with Simulation(OPTS, app_dir=app_dir) as sim:
        r = sim.get("/s/a.txt")
        assert r.raw == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6"
                         b"\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\nhello\n")
        line = sim.log[-1]
        assert line.startswith(f"[pid: {sim.process('worker1').pid}|app: -1|req: -1/1]")
        assert "generated 6 bytes in 0 msecs via sendfile() (HTTP/1.1 200) 3 headers in " \
               "110 bytes (0 switches on core 0)" in line
        assert "[uwsgi-static] added mapping for /s => files" in sim.log
        assert sim.log[0] == "[uwsgi-static] added mapping for /s => files"
        assert "building mime-types dictionary from file mime.types...3 entry found" in sim.log


def test_what_falls_through_to_the_app(app_dir: Path) -> None:
    with Simulation(OPTS, app_dir=app_dir) as sim:
        assert sim.get("/s/missing").body == b"app /s/missing"
        assert sim.get("/s/x.py").body == b"app /s/x.py"  # --static-skip-ext
        assert sim.request("POST", "/s/a.txt").body == b"app /s/a.txt"
        assert sim.get("/s/link.txt").body == b"app /s/link.txt"
        assert any("[uwsgi-fileserve] security error: " in line and
                   "outside.txt is not under " in line for line in sim.log)


def test_index_head_and_not_modified(app_dir: Path) -> None:
    with Simulation(OPTS, app_dir=app_dir) as sim:
        for path in ("/s/sub", "/s/sub/"):
            r = sim.get(path)
            assert r.body == b"index\n" and r.header("Content-Type") == "text/plain"
        # PATH_INFO + index is appended to the vars: 2 more, 13 + len bytes more
        assert "{20 vars in 214 bytes}" in sim.log[-1]
        head = sim.request("HEAD", "/s/a.txt")
        assert head.status == 200 and head.body == b"" and head.header("Content-Length") == "6"
        r = sim.get("/s/a.txt", headers={"If-Modified-Since": http_date(MTIME)})
        assert r.raw == b"HTTP/1.1 304 Not Modified\r\n\r\n"
        r = sim.get("/s/a.txt", headers={"If-Modified-Since": http_date(MTIME - 1)})
        assert r.status == 200
        # a one-letter extension ending a line is not read (uwsgi_build_mime_dict)
        assert sim.get("/s/one.b").header("Content-Type") is None


def test_check_static_map2_expires_and_serve_mode(app_dir: Path) -> None:
    opts = ["--wsgi-file", "app.py", "--mimefile", "mime.types", "--check-static", "files",
            "--static-map2", "/sub=files", "--static-expires-type", "text/css=60",
            "--static-expires-uri", r"\.txt$ 30", "--file-serve-mode", "x-sendfile"]
    with Simulation(opts, app_dir=app_dir, start="2026-01-01T00:00:00+00:00") as sim:
        sim.advance(10)
        css = sim.get("/s.css")
        assert css.header("Expires") == "Thu, 01 Jan 2026 00:01:10 GMT"
        assert css.header("X-Sendfile") == str((app_dir / "files" / "s.css").resolve())
        assert css.body == b"" and css.header("Content-Length") is None
        txt = sim.get("/sub/index.txt")  # static-map2: the whole PATH_INFO under files/
        assert txt.header("Expires") == "Thu, 01 Jan 2026 00:00:40 GMT"
        assert [k for k, _v in txt.headers] == ["Expires", "Content-Type", "X-Sendfile",
                                                 "Last-Modified"]


def test_static_options_no_longer_warn(app_dir: Path) -> None:
    with Simulation(OPTS, app_dir=app_dir, strict=True) as sim:
        assert sim.get("/s/a.txt").status == 200


def test_range_with_honour_range(app_dir: Path) -> None:
    (app_dir / "files" / "ten.txt").write_text("0123456789")
    with Simulation([*OPTS, "--honour-range"], app_dir=app_dir) as sim:
        def get(rng: str, **more: str) -> object:
            return sim.get("/s/ten.txt", headers={"Range": rng, **more})
        part = get("bytes=2-4")
        assert (part.status, part.body) == (206, b"234")
        assert part.header("Content-Range") == "bytes 2-4/10"
        assert part.header("Content-Length") == "3"
        assert "(HTTP/1.1 200) 4 headers" in sim.log[-1]  # uWSGI logs its 206 as a 200
        assert get("bytes=-3").body == b"789" and get("bytes=7-").body == b"789"
        assert get("bytes=0-99").status == 200  # the whole file
        bad = get("bytes=20-30")
        assert (bad.status, bad.body) == (416, b"")
        assert bad.header("Content-Range") == "bytes */10"
        assert get("items=1-2").status == 416
        assert get("bytes=2-4", **{"If-Range": http_date(2_000_000_000)}).status == 200
    with Simulation(OPTS, app_dir=app_dir) as sim:  # without --honour-range: ignored
        assert sim.get("/s/ten.txt", headers={"Range": "bytes=2-4"}).status == 200


def test_gzip_sibling(app_dir: Path) -> None:
    (app_dir / "files" / "a.txt.gz").write_bytes(b"GZ")
    with Simulation([*OPTS, "--static-gzip-ext", ".txt"], app_dir=app_dir) as sim:
        r = sim.get("/s/a.txt", headers={"Accept-Encoding": "gzip, deflate"})
        assert r.body == b"GZ" and r.header("Content-Encoding") == "gzip"
        assert r.header("Content-Type") == "text/plain"
        assert sim.get("/s/a.txt").body == b"hello\n"
        assert sim.get("/s/s.css", headers={"Accept-Encoding": "gzip"}).body == b"css\n"


def test_a_static_file_leaves_the_average_response_time(app_dir: Path) -> None:
    (app_dir / "app.py").write_text(
        "import time\ndef application(e, s):\n    time.sleep(0.5)\n"
        "    s('200 OK', [])\n    return [b'']\n")
    with Simulation(OPTS, app_dir=app_dir) as sim:
        sim.get("/slow")
        assert sim.uwsgi.workers()[0]["avg_rt"] == 500_000
        sim.get("/s/a.txt")
        worker = sim.uwsgi.workers()[0]
        assert (worker["avg_rt"], worker["running_time"]) == (500_000, 500_000)
