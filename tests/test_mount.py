"""--mount, --manage-script-name and uwsgi.applications (``simuwsgi/server/apps.py``,
``simuwsgi/server/reading.py``): which app a request reaches, and the lines of app loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from simuwsgi import AppLoadError, Simulation

ECHO = ("def application(e, s):\n    s('200 OK', [])\n"
        "    return [('{name} %s|%s' % (e.get('SCRIPT_NAME', '-'), e['PATH_INFO'])).encode()]\n")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    for name in ("one", "two", "root"):
        (tmp_path / f"{name}.py").write_text(ECHO.format(name=name))
    return tmp_path


def _bodies(sim: Simulation, paths: list[str]) -> list[str]:
    return [sim.get(p).text for p in paths]


def test_manage_script_name_picks_the_longest_mountpoint(app_dir: Path) -> None:
    opts = ["--mount", "/a=one.py", "--mount", "/a/b/=two.py", "--mount", "/=root.py",
            "--manage-script-name"]
    with Simulation(opts, app_dir=app_dir) as sim:
        # a trailing '/' counts for the prefix test only: PATH_INFO starts after it; a
        # request for '/' gets no SCRIPT_NAME at all (observed on 2.0.30)
        assert _bodies(sim, ["/a/x", "/a/b/c", "/ab", "/", "/zz"]) == [
            "one /a|/x", "two /a/b/|c", "one |/ab", "one -|/", "one |/zz"]
        log = list(sim.log)
        # the first mount on '/...' is the default app; '/' itself (trailing '/' dropped)
        # is never chosen by the prefix
        assert "mounting one.py on /a" in log
        assert "WSGI app 0 (mountpoint='/a') ready in 0 seconds on interpreter 0x0 pid: " \
               f"{sim.process('master').pid} (default app)" in log
        assert any(line.startswith("WSGI app 2 (mountpoint='/') ready") and
                   not line.endswith("(default app)") for line in log)
        lines = [line for line in log if line.startswith("[pid:")]
        assert "|app: 1|req: 1/2]" in lines[1] and "|app: 0|req: 1/1]" in lines[0]


def test_without_manage_script_name_everything_goes_to_the_default_app(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "root.py", "--mount", "/a=one.py"], app_dir=app_dir) as sim:
        assert _bodies(sim, ["/a/x"]) == ["root |/a/x"]  # SCRIPT_NAME '' from the parser
        apps = sim.uwsgi.workers()[0]["apps"]
        assert [(a["id"], a["mountpoint"]) for a in apps] == [(0, b""), (1, b"/a")]


def test_a_mountpoint_twice_and_a_mount_without_app(app_dir: Path) -> None:
    opts = ["--mount", "/a=one.py", "--mount", "/a=two.py", "--mount", "/m=module",
            "--manage-script-name"]
    with Simulation(opts, app_dir=app_dir) as sim:
        assert "mountpoint /a already configured. skip." in sim.log
        assert "mounting module on /m" in sim.log
        assert _bodies(sim, ["/a/1"]) == ["one /a|/1"]


def test_no_default_app_is_uwsgis_500(app_dir: Path) -> None:
    opts = ["--mount", "x=one.py", "--manage-script-name"]
    with Simulation(opts, app_dir=app_dir) as sim:
        r = sim.get("/y")
        assert r.status == 500 and r.body == b"Internal Server Error"
        assert "--- no python application found, check your startup logs for errors ---" \
            in sim.log


def test_a_mounted_file_that_fails_ends_the_start(app_dir: Path) -> None:
    (app_dir / "bad.py").write_text("raise ValueError('boom')\n")
    with pytest.raises(AppLoadError) as info:
        Simulation(["--mount", "/b=bad.py"], app_dir=app_dir).start()
    assert info.value.exit_status == 22
    assert "unable to load app 0 (mountpoint='/b') (callable not found or import error)" \
        in info.value.log


def test_invalid_mountpoint_is_refused(app_dir: Path) -> None:
    with pytest.raises(Exception, match="invalid mountpoint: nothing"):
        Simulation(["--mount", "nothing"], app_dir=app_dir).start()


MULTI = """
import uwsgi


def a(e, s):
    s('200 OK', [])
    return [b'A ' + e['PATH_INFO'].encode()]


uwsgi.applications = {b'/a': a, b'/b': b'a', b'/c': 'a'}
"""


def test_uwsgi_applications_as_2_0_30_reads_them(tmp_path: Path) -> None:
    """Observed on 2.0.30: the first key's app gets mountpoint '' (the main app's),
    keys must be bytes, a bytes value names nothing found, a str value is 'called'."""
    (tmp_path / "multi.py").write_text(MULTI)
    with Simulation(["--module", "multi", "--manage-script-name"], app_dir=tmp_path) as sim:
        log = list(sim.log)
        at = log.index("found a multiapp module...")
        assert log[at + 1].startswith("WSGI app 0 (mountpoint='') ready")
        assert log[at + 1].endswith("(default app)")
        assert log[at + 2] == "skipping broken app /b"
        assert log[at + 3].startswith("WSGI app 1 (mountpoint='/c') ready")
        assert sim.get("/b/y").body == b"A /b/y"
        assert sim.get("/c/z").status is None
        assert "TypeError: 'str' object is not callable" in sim.log


def test_str_keys_are_refused_on_python_3(tmp_path: Path) -> None:
    (tmp_path / "multi.py").write_text(MULTI.replace("b'/a'", "'/a'"))
    with Simulation(["--module", "multi"], app_dir=tmp_path, allow_no_app=True) as sim:
        assert "the app mountpoint must be a string" in sim.log
        assert "*** no app loaded. going in full dynamic mode ***" in sim.log


def test_wsgi_file_ignores_uwsgi_applications(tmp_path: Path) -> None:
    (tmp_path / "multi.py").write_text(MULTI + "application = a\n")
    with Simulation(["--wsgi-file", "multi.py"], app_dir=tmp_path) as sim:
        assert "found a multiapp module..." not in sim.log
        assert sim.get("/q").body == b"A /q"


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_mounts_static_and_limits_in_both_modes(app_dir: Path, mode: str) -> None:
    (app_dir / "files").mkdir()
    (app_dir / "files" / "a.txt").write_text("A")
    opts = ["--mount", "/a=one.py", "--mount", "/b=two.py", "--manage-script-name",
            "--static-map", "/s=files", "--limit-post", "10", "--post-buffering", "100"]
    with Simulation(opts, app_dir=app_dir, mode=mode) as sim:
        assert _bodies(sim, ["/b/x", "/zz", "/s/a.txt"]) == ["two /b|/x", "one |/zz", "A"]
        assert sim.request("POST", "/a", body=b"x" * 11).status is None
        slow = sim.request("POST", "/a/", body_chunks=[b"x", b"y"], pace=1)
        assert slow.body == b"one /a|/" and slow.finished - slow.started == 1


def test_a_module_without_the_callable_logs_only_uwsgis_line(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text("x = 1\n")
    with pytest.raises(AppLoadError) as info:
        Simulation(["--module", "mod:nope"], app_dir=tmp_path).start()
    assert info.value.cause == [
        "unable to load app 0 (mountpoint='') (callable not found or import error)",
        "*** no app loaded. going in full dynamic mode ***"]
    assert not any(line.startswith("unable to find") for line in info.value.log)


def test_requests_and_exceptions_are_counted_per_app(app_dir: Path) -> None:
    (app_dir / "bad.py").write_text("def application(e, s):\n    raise ValueError('x')\n")
    opts = ["--mount", "/a=one.py", "--mount", "/b=bad.py", "--manage-script-name"]
    with Simulation(opts, app_dir=app_dir) as sim:
        for path in ("/a/1", "/b/1", "/b/2"):
            sim.get(path)
        apps = sim.uwsgi.workers()[0]["apps"]
        assert [(a["requests"], a["exceptions"]) for a in apps] == [(1, 0), (2, 2)]
