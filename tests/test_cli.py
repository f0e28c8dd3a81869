"""The simuwsgi command: run uWSGI options or a scenario, summary, report, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from simuwsgi.cli import main

REPO = Path(__file__).resolve().parents[1]


def test_run_options_with_requests_trace_and_report(write_app, tmp_path, capsys, monkeypatch):
    write_app("import uwsgi\ndef application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--for", "1m", "--seed", "3", "--request", "5s GET /",
                 "--request", "30 GET /a", "--trace", "t.msgpack", "--report", "rep", "--",
                 "--master", "--processes", "2", "--wsgi-file", "app.py"])
    out = capsys.readouterr().out
    assert code == 0
    assert "scenario cli (seed 3): 60 virtual s" in out
    assert "requests: 200: 2" in out
    rows = msgpack.unpackb((tmp_path / "t.msgpack").read_bytes())
    assert [r[0] for r in rows if r[3] == "request.start"] == [5.0, 30.0]
    summary = json.loads((tmp_path / "rep" / "cli-seed3" / "summary.json").read_text())
    assert summary["requests_by_status"] == {"200": 2}
    assert (tmp_path / "rep" / "cli-seed3" / "report.md").read_text().startswith("# simuwsgi run")


def test_unknown_option_exits_2_with_uwsgis_words(capsys):
    assert main(["run", "--", "--bogus-option", "1"]) == 2
    assert "unrecognized option '--bogus-option'" in capsys.readouterr().err


def test_scenario_with_check(tmp_path, write_app, capsys):
    write_app("def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n")
    (tmp_path / "s.py").write_text(
        "OPTIONS = ['--master', '--wsgi-file', 'app.py']\nDURATION = '10s'\n"
        "def timeline(sim):\n    sim.get('/')\n    sim.advance(10)\n"
        "def check(sim):\n    assert sim.trace.count('request.end') == 2, 'expected two'\n")
    assert main(["run", str(tmp_path / "s.py")]) == 1
    assert "check: failed: expected two" in capsys.readouterr().out


def test_bundled_scenarios_run_and_are_deterministic(capsys):
    for scenario in sorted((REPO / "scenarios").glob("*.py")):
        assert main(["run", str(scenario), "--quiet"]) == 0, scenario.name
        first = capsys.readouterr().out
        assert main(["run", str(scenario), "--quiet"]) == 0
        second = capsys.readouterr().out
        digest = [line for line in first.splitlines() if "digest" in line]
        assert digest and digest == [line for line in second.splitlines() if "digest" in line]


def test_run_can_keep_only_some_trace_kinds(write_app, tmp_path, capsys, monkeypatch):
    write_app("import uwsgi\nuwsgi.register_signal(1, 'workers', lambda n: None)\n"
              "uwsgi.add_timer(1, 1)\n"
              "def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--for", "1m", "--trace-kinds", "timer.*, request.end", "--trace",
                 "t.msgpack", "--request", "5s GET /", "--",
                 "--master", "--processes", "2", "--wsgi-file", "app.py"])
    out = capsys.readouterr().out
    assert code == 0
    assert "trace kept only timer.*, request.end" in out
    kinds = {r[3] for r in msgpack.unpackb((tmp_path / "t.msgpack").read_bytes())}
    assert kinds == {"timer.add", "timer.fire", "request.end"}
    assert main(["run", "--mode", "real", "--trace-kinds", "timer.*", "--",
                 "--master", "--wsgi-file", "app.py"]) == 2
    assert "--trace-kinds: real mode" in capsys.readouterr().err


# -- failing loudly: every user error is one line and a non-zero exit ----------------------
APP = "def application(e, sr):\n    sr('200 OK', [])\n    return [b'x']\n"
TIMELINE_SCENARIO = ("OPTIONS = ['--master', '--wsgi-file', 'app.py']\nDURATION = 10\n"
                     "def timeline(sim):\n    sim.advance(10)\n")


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--for", "-5", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --for takes a positive duration (e.g. 90, 10m, 1d), not '-5'"),
    (["run", "--for", "soon", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: bad duration 'soon': use seconds or a number with a unit s, m, h, d or "
     "w (e.g. '90', '10m', '1d', '1h30m')"),
    (["run", "nothere.py"], "simuwsgi run: no such scenario file: nothere.py"),
    (["run", "app.py"],
     "simuwsgi run: app.py is not a scenario (it sets no OPTIONS); to run it as the app, "
     "give uWSGI options after --: simuwsgi run -- --master --wsgi-file app.py"),
    (["run", "tl.py", "--for", "1h"],
     "simuwsgi run: --for: scenario tl has its own timeline, which decides how long it "
     "runs: drop --for or edit the timeline"),
    (["run", "--for", "1m", "--request", "2m GET /", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --request '2m GET /': at 120 s, past the end of the run (60 s): give a "
     "longer --for"),
    (["run", "--request", "GET /", "--", "--master"],
     "simuwsgi run: --request takes 'AT METHOD PATH' (e.g. '5s GET /'), not 'GET /'"),
    (["run"], "simuwsgi run: give a SCENARIO.py or uWSGI options after --, e.g. simuwsgi run "
              "-- --master --wsgi-file app.py"),
    (["run", "broken.py"], "simuwsgi run: scenario broken.py, line 1: '[' was never closed"),
    (["run", "raises.py"],
     "simuwsgi run: scenario raises.py failed to load: ZeroDivisionError: division by zero"),
    (["run", "--mode", "real", str(REPO / "scenarios" / "quickstart.py")],
     "simuwsgi run: --mode real runs in real time: quickstart lasts 1 d, so it would take "
     "1 d of real time: add --yes to run it anyway"),
    (["run", "--tz", "Nowhere/Zone", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --tz: no time zone 'Nowhere/Zone': use an IANA name such as "
     "Europe/Paris or UTC"),
    (["run", "--trace", "nodir/t.msgpack", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --trace nodir/t.msgpack: no directory nodir to write it in"),
    (["run", "--report", "app.py/rep", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --report app.py/rep: cannot create it: Not a directory"),
    (["run", "--trace-kinds", ",", "--", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: --trace-kinds takes kinds such as 'cron.*,request.end', not ','"),
    (["serve", "--", "--master", "--wsgi-file", "nothere.py", "--http-socket", "127.0.0.1:0"],
     None),
    (["serve", "--for", "-3", "--", "--master", "--http-socket", "127.0.0.1:0"],
     "simuwsgi serve: --for takes a positive duration (e.g. 90, 10m), not '-3'"),
    (["serve", "--tz", "Nowhere/Zone", "--", "--master", "--http-socket", "127.0.0.1:0"],
     "simuwsgi serve: No time zone found with key Nowhere/Zone"),
])
def test_a_user_error_is_one_line_and_a_non_zero_exit(tmp_path, monkeypatch, capsys, argv,
                                                      message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "tl.py").write_text(TIMELINE_SCENARIO)
    (tmp_path / "broken.py").write_text("OPTIONS = [\n")
    (tmp_path / "raises.py").write_text("OPTIONS = []\n1 / 0\n")
    code = main(argv)
    out, err = capsys.readouterr()
    if message is None:  # serve: the app's log excerpt follows the one line
        assert code == 1
        assert err.splitlines()[-1] == "  *** no app loaded. going in full dynamic mode ***"
        assert err.splitlines()[0] == (
            "simuwsgi serve: the app nothere.py did not load: uWSGI would run on, answering "
            "every request with a 500 (--allow-no-app runs it anyway)")
        assert "Traceback" not in err
        return
    assert code == 2
    assert _one_line(err) == message
    assert out == ""


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--master", "--wsgi-file", "app.py"],
     "simuwsgi run: unrecognized arguments: --master --wsgi-file app.py: uWSGI options go "
     "after --, e.g. simuwsgi run -- --master --wsgi-file app.py"),
    (["serve", "--master", "--http-socket", ":8000"],
     "simuwsgi serve: unrecognized arguments: --master --http-socket :8000: uWSGI options "
     "go after --, e.g. simuwsgi serve -- --master --http-socket :8000"),
    (["run", "--mode", "slow"],
     "simuwsgi run: argument --mode: invalid choice: 'slow' (choose from 'sim', 'fork', "
     "'real') (see simuwsgi run --help)"),
    (["frobnicate"], None),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    line = _one_line(capsys.readouterr().err)
    if message is not None:
        assert line == message
    else:
        assert line.startswith("simuwsgi: argument command: invalid choice: 'frobnicate'")


def test_version_and_run_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == "simuwsgi 0.1.0 (simulates uWSGI 2.0.30)\n"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: simuwsgi run [SCENARIO.py] [flags] [-- UWSGI_OPTIONS...]")
    assert "simuwsgi run --for 1d --request '5s GET /' -- --master --processes 2" in help_text


@pytest.mark.parametrize(("source", "extra", "last"), [
    ("raise ImportError('no such thing')\n", [],
     "*** no app loaded. going in full dynamic mode ***"),
    ("raise ImportError('no such thing')\n", ["--need-app"], "*** no app loaded. GAME OVER ***"),
])
def test_an_app_that_did_not_load_fails_the_run_with_its_traceback(
        tmp_path, monkeypatch, capsys, source, extra, last):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(source)
    assert main(["run", "--for", "10", "--", "--master", *extra, "--wsgi-file", "app.py"]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert lines[0] == ("simuwsgi run: the app did not load and --need-app is set: uWSGI "
                        "exits with status 22" if extra else
                        "simuwsgi run: the app app.py did not load: uWSGI would run on, "
                        "answering every request with a 500 (--allow-no-app runs it anyway)")
    assert lines[1] == "  Traceback (most recent call last):"
    assert "  ImportError: no such thing" in lines
    assert lines[-1] == "  " + last


@pytest.mark.parametrize("mode", ["sim", pytest.param("real", marks=pytest.mark.real)])
def test_an_app_that_did_not_load_shows_the_same_lines_in_sim_and_real_mode(
        tmp_path, monkeypatch, capsys, mode):
    """One line, then uWSGI's own lines from the app's traceback (the app's frames only,
    as uWSGI's C loader shows them) to ``*** no app loaded``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text("import nonexistent_module_xyz\n")
    assert main(["run", "--mode", mode, "--for", "5", "--", "--master",
                 "--wsgi-file", "app.py"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("simuwsgi run: the app ") and "did not load" in lines[0]
    assert lines[1:] == [
        "  Traceback (most recent call last):", '    File "app.py", line 1, in <module>',
        "      import nonexistent_module_xyz",
        "  ModuleNotFoundError: No module named 'nonexistent_module_xyz'",
        "  unable to load app 0 (mountpoint='') (callable not found or import error)",
        "  *** no app loaded. going in full dynamic mode ***"]


def test_allow_no_app_runs_on_and_check_is_reported_only_when_one_ran(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--for", "10", "--allow-no-app", "--request", "1 GET /", "--",
                 "--master"]) == 0
    out = capsys.readouterr().out
    assert "requests: 500: 1" in out
    assert "check:" not in out
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "s.py").write_text("OPTIONS = ['--master', '--wsgi-file', 'app.py']\n"
                                   "def check(sim):\n    pass\n")
    assert main(["run", "s.py"]) == 0
    assert "  check: passed\n" in capsys.readouterr().out


def test_a_request_after_the_timeline_ended_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "tl.py").write_text(TIMELINE_SCENARIO)
    assert main(["run", "tl.py", "--request", "30 GET /"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "simuwsgi run: --request at 30 s: past the end of the run (the timeline stopped at "
        "10 s)")


def test_an_exception_in_the_scenario_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "s.py").write_text("OPTIONS = ['--master', '--wsgi-file', 'app.py']\n"
                                   "def timeline(sim):\n    sim.get('/')\n"
                                   "    sim.run_until(-1)\n")
    assert main(["run", "s.py"]) == 3
    assert _one_line(capsys.readouterr().err) == (
        "simuwsgi run: scenario s.py, line 4: ValueError: cannot run back in time: -1 is "
        "before now")


@pytest.mark.parametrize("mode", ["sim", "fork", "real"])
def test_ctrl_c_shuts_the_run_down(tmp_path, monkeypatch, capsys, mode):
    """Ctrl-C is KeyboardInterrupt wherever it lands: here in the timeline."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "s.py").write_text("OPTIONS = ['--master', '--wsgi-file', 'app.py']\n"
                                   "def timeline(sim):\n    sim.get('/')\n"
                                   "    raise KeyboardInterrupt\n")
    assert main(["run", "s.py", "--mode", mode]) == 130
    what = "run" if mode == "real" else "simulation"
    assert _one_line(capsys.readouterr().err) == (
        f"simuwsgi run: interrupted (the {what} was shut down)")


def test_sigint_during_a_long_run_exits_130(tmp_path):
    """A real SIGINT, while the app's signal handlers run every virtual second (there an
    ``except`` would swallow a KeyboardInterrupt): the run stops at the next slice."""
    (tmp_path / "app.py").write_text("import uwsgi\nuwsgi.register_signal(1, 'workers', "
                                     "lambda n: None)\nuwsgi.add_timer(1, 1)\n" + APP)
    (tmp_path / "s.py").write_text(
        "OPTIONS = ['--master', '--processes', '2', '--wsgi-file', 'app.py']\n"
        "DURATION = 52 * 7 * 86400\n"
        "def timeline(sim):\n    open('started', 'w').close()\n    sim.run_until(DURATION)\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "simuwsgi.cli", "run", "s.py", "--trace-kinds", "request.*"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _one_line(err) == "simuwsgi run: interrupted (the simulation was shut down)"
    assert out == ""


def test_sigint_stops_serve_as_uwsgi_stops(tmp_path):
    """serve's master takes SIGINT as uWSGI's does: a clean shutdown, exit status 0."""
    (tmp_path / "app.py").write_text(APP)
    proc = subprocess.Popen(
        [sys.executable, "-m", "simuwsgi.cli", "serve", "--", "--master", "--http-socket",
         "127.0.0.1:0", "--wsgi-file", "app.py"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    lines = []
    while not any("serving http on" in line for line in lines) and time.monotonic() < deadline:
        lines.append(proc.stderr.readline())
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.splitlines()[-3:] == ["SIGINT/SIGTERM received...killing workers...",
                                     "worker 1 buried after 1 seconds", "goodbye to uWSGI."]
    assert "Traceback" not in err


# -- simuwsgi trace ------------------------------------------------------------------------
def test_trace_prints_a_saved_trace_as_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.py").write_text(APP)
    assert main(["run", "--for", "1m", "--request", "5 GET /a", "--request", "40 GET /b",
                 "--trace", "t.msgpack", "--", "--master", "--processes", "2",
                 "--wsgi-file", "app.py"]) == 0
    capsys.readouterr()
    assert main(["trace", "t.msgpack", "--kind", "request.start", "--from", "10",
                 "--to", "1m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["time", "(s)", "process", "kind", "fields"]
    assert len(lines) == 2
    assert lines[1].split()[0] == "40.000000" and lines[1].split()[2] == "request.start"
    assert "path=/b" in lines[1]
    assert main(["trace", "t.msgpack", "--process", "master", "--kind", "spawn"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["0.000000", "master", "spawn"]
    assert main(["trace", "nothere.msgpack"]) == 2
    assert "No such file" in _one_line(capsys.readouterr().err)
    assert main(["trace", "app.py"]) == 2
    assert _one_line(capsys.readouterr().err).startswith(
        "simuwsgi trace: app.py is not a simuwsgi trace (run --trace FILE saves one)")
    assert main(["trace", "t.msgpack", "--from", "later"]) == 2
    _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("policy,summary", [
    ("run", "requests: 200: 1"),
    ("refuse", "1 without a response"),  # NotSimulatedError before start_response
])
def test_run_subprocess_says_whether_the_apps_commands_run(write_app, tmp_path, capsys,
                                                           monkeypatch, policy, summary):
    write_app("import subprocess\ndef application(e, sr):\n"
              "    subprocess.run(['true'], check=True)\n"
              "    sr('200 OK', [])\n    return [b'x']\n")
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--for", "10", "--subprocess", policy, "--request", "1 GET /",
                 "--trace", "t.msgpack", "--", "--master", "--wsgi-file", "app.py"])
    out = capsys.readouterr().out
    assert code == 0
    assert summary in out
    rows = msgpack.unpackb((tmp_path / "t.msgpack").read_bytes())
    assert [r[4]["action"] for r in rows if r[3] == "subprocess"] == [policy]


@pytest.mark.parametrize("command", [
    ["options"],
    ["explain", "scenarios/quickstart.py"],
    ["run", "scenarios/chaos/spool_twice.py", "--seed", "0", "--faults",
     "Kill('spooler1', at=30)"],
    ["explore", "scenarios/chaos/spool_twice.py", "--seeds", "2", "--report", "{tmp}"],
])
def test_a_closed_pipe_ends_a_command_quietly(tmp_path, command):
    """``simuwsgi ... | head``: the reader has gone before the first line is written; the
    command stops with a shell's SIGPIPE status and no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "simuwsgi.cli", *(c.format(tmp=tmp_path) for c in command)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # as ``head`` exits
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert err == ""


def test_explore_draws_a_progress_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    argv = ["explore", str(REPO / "scenarios/chaos/spool_twice.py"), "--seeds", "3",
            "--report", str(tmp_path)]
    assert main(argv) == 1  # seed 2 fails
    assert capsys.readouterr().err == ""  # not a terminal: no bar, no progress line
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("\r  [") and err.endswith("\n")
    assert "[##############################] 100% 3/3 seeds, 1 failing, " in err
    assert err.rstrip().endswith("seeds/s, shrunk 1/1")  # then the failing seed shrinks
    assert main([*argv, "--quiet"]) == 1
    assert capsys.readouterr().err == ""
