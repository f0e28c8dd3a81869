"""The simuwsgi command: run uWSGI options or a scenario, summary, report, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack

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
