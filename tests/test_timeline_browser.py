"""The quickstart's timeline in a real browser: Debian's Chromium, headless.

The page runs its own checks when opened with ``#selftest`` (lanes, the harakiri and
reload markers drawn, a click on a request showing its records, the kind filter, zooming
down to a millisecond, no script error) and
writes them into the DOM, which ``--dump-dom`` gives back; Chromium's console log
(``--enable-logging=stderr``) must hold no error; ``timeline.png`` in the report must
not be blank.

Chromium is a system package: without it this test is skipped with the command that
installs it, except under CI (``$CI`` set), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import pytest

from simuwsgi.cli import main as cli_main
from simuwsgi.timeline import CHROMIUM_INSTALL, chromium, headless

QUICKSTART = Path(__file__).resolve().parent.parent / "scenarios" / "quickstart.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if chromium() is None:
        why = f"no Chromium for the browser test ({CHROMIUM_INSTALL})"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; under CI it is never skipped", pytrace=False)
        pytest.skip(why)
    out = tmp_path_factory.mktemp("reports")
    assert cli_main(["run", str(QUICKSTART), "--report", str(out), "--quiet"]) == 0
    return out / "quickstart-seed2026"


def test_quickstart_timeline_passes_its_checks_in_chromium(report: Path) -> None:
    url = (report / "timeline.html").resolve().as_uri() + "#selftest"
    done = headless(url, "--virtual-time-budget=5000", "--dump-dom")
    found = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not run its checks:\n{done.stderr[-2000:]}"
    checks = found.group(1).splitlines()
    assert not [c for c in checks if c.startswith("FAIL")], checks
    assert "ok harakiri marker drawn" in checks and "ok reload-begin marker drawn" in checks
    assert "ok click shows the request's records" in checks
    assert "ok filter hides requests" in checks and "ok zoom stops at a millisecond" in checks
    assert checks[0] == "ok lanes master,worker1,worker2,worker3,worker4"
    console = [line for line in done.stderr.splitlines()
               if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]
    assert not console, console


def _pixels(png: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (filtered) scanlines of a PNG."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_report_has_a_screenshot_that_is_not_blank(report: Path) -> None:
    assert "![timeline](timeline.png)" in (report / "report.md").read_text()
    width, height, raw = _pixels(report / "timeline.png")
    assert width == 1400 and height > 200
    # a blank page is one colour: its filtered rows are all zero bytes (0.02 % are not,
    # the filter bytes, in a blank 1400x240 page; 4.5 % in the quickstart's)
    assert len(set(raw)) > 50 and raw.count(0) < 0.99 * len(raw)


def _selftest(html: Path, which: str) -> list[str]:
    """The page's ``#selftest:WHICH`` checks, as Chromium ran them; no console error."""
    done = headless(html.resolve().as_uri() + f"#selftest:{which}",
                    "--window-size=1400,900", "--virtual-time-budget=5000", "--dump-dom")
    found = re.search(r'<pre id="selftest">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not run its checks:\n{done.stderr[-2000:]}"
    checks = found.group(1).splitlines()
    assert not [c for c in checks if c.startswith("FAIL")], checks
    console = [line for line in done.stderr.splitlines()
               if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]
    assert not console, console
    return checks


def _report(tmp_path: Path, scenario: str) -> Path:
    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium ({CHROMIUM_INSTALL}); under CI it is never skipped")
        pytest.skip(f"no Chromium for the browser test ({CHROMIUM_INSTALL})")
    (tmp_path / "app.py").write_text("def application(env, sr):\n    sr('200 OK', [])\n"
                                     "    return [b'ok']\n")
    (tmp_path / "s.py").write_text(scenario)
    assert cli_main(["run", str(tmp_path / "s.py"), "--report", str(tmp_path / "out"),
                     "--quiet"]) == 0
    [html] = (tmp_path / "out").glob("*/timeline.html")
    return html


def test_axis_ticks_stay_on_round_local_times_across_a_dst_change(tmp_path: Path) -> None:
    """Berlin springs forward at 02:00 on 2026-03-29: two-hour ticks read 00:00, then
    04:00, 06:00 in summer time (with one offset for the whole day, they read 03:00,
    05:00); zoomed in on the change, every tick is on a round local time too."""
    html = _report(tmp_path, "OPTIONS = ['--master', '--wsgi-file', 'app.py']\n"
                             "START = '2026-03-29T00:00:00'\nTZ = 'Europe/Berlin'\n"
                             "DURATION = 86400\n"
                             "def timeline(sim):\n"
                             "    for h in range(24):\n"
                             "        sim.submit('GET', '/', at=h * 3600 + 5)\n"
                             "    sim.run_until(DURATION)\n")
    checks = _selftest(html, "axis")
    assert any(c.startswith("ok axis ticks on round local times") for c in checks), checks
    [ticks] = [c.removeprefix("ok ticks ").split(",") for c in checks if c.startswith("ok ticks")]
    assert ticks[:4] == ["2026-03-29", "04:00:00", "06:00:00", "08:00:00"], ticks
    assert ticks[-1] == "2026-03-30"


def test_a_256_worker_run_draws_only_the_lanes_in_view(tmp_path: Path) -> None:
    html = _report(tmp_path, "OPTIONS = ['--master', '--processes', '256', '--wsgi-file', "
                             "'app.py']\nDURATION = 60\n"
                             "def timeline(sim):\n"
                             "    for i in range(600):\n"
                             "        sim.submit('GET', '/', at=i * 0.1)\n"
                             "    sim.run_until(DURATION)\n")
    checks = _selftest(html, "lanes")
    [drawn] = [c for c in checks if c.startswith("ok virtual lanes: ")]
    shown, total = map(int, re.findall(r"\d+", drawn))
    assert total == 257 and shown < 40  # the master and 256 workers; a window's worth
    assert "ok scrolled: the last lane is drawn" in checks
    assert "ok a click in the last lane shows its record" in checks
    [took] = [float(re.findall(r"[\d.]+", c)[0]) for c in checks if "a frame took" in c]
    assert took < 250, f"a frame of the 256-lane page took {took} ms"
