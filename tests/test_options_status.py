"""The option status table, its warning, strict mode and ``simuwsgi options``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simuwsgi import ConfigError, NotSimulatedError, Simulation
from simuwsgi._errors import OptionNotSimulatedError
from simuwsgi.server._uwsgi_options import ALIASES, OPTIONS
from simuwsgi.cli import main
from simuwsgi.server.options_status import (
    NO_EFFECT,
    NOT_SIMULATED_NOTES,
    SIMULATED,
    STATUSES,
    format_table,
    status,
    table,
)

PACKAGE = Path(__file__).resolve().parent.parent / "simuwsgi"
APP = "def application(environ, start_response):\n" \
      "    start_response('200 OK', [])\n    return [b'ok']\n"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


def test_every_option_has_one_status() -> None:
    rows = table()
    assert [r.name for r in rows] == list(OPTIONS)
    assert len(rows) == 942
    assert {r.status for r in rows} == set(STATUSES)
    for r in rows:
        if r.status == "no-effect":
            assert r.note, f"--{r.name}: a no-effect option says why"


def test_an_alias_has_the_status_of_its_option() -> None:
    for alias, target in ALIASES.items():
        assert status(alias).status == status(target).status
        assert status(alias).alias_of == target
    assert status("workers").status == "simulated"
    assert status("cpu-affinity").status == "no-effect"


def test_the_table_only_names_real_canonical_options() -> None:
    for name in (*SIMULATED, *NO_EFFECT, *NOT_SIMULATED_NOTES):
        assert name in OPTIONS and name not in ALIASES, name
    assert not set(SIMULATED) & set(NO_EFFECT)


def test_every_simulated_option_is_read_by_the_simulator() -> None:
    """Honesty check: a name marked simulated (or one of its aliases) appears as a
    string in the simulator's code outside the option tables."""
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py")
                       if p.name not in ("options_status.py", "_uwsgi_options.py"))
    for name in SIMULATED:
        names = [name] + [a for a, t in ALIASES.items() if t == name]
        assert any(re.search(rf"[\"']{re.escape(n)}[\"']", source) for n in names), name


def test_unknown_name_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        status("bogus")


# -- the warning and strict mode ---------------------------------------------------------
def test_a_not_simulated_option_is_named_in_one_warning(app_dir: Path) -> None:
    with Simulation(["--wsgi-file", "app.py", "--stats-push", "file:x", "--cpu-affinity", "1",
                     "--skip-zero", "--processes", "2"], app_dir=app_dir) as sim:
        warnings = [line for line in sim.log if "not simulated" in line]
        assert warnings == ["*** simuwsgi WARNING: options not simulated: --stats-push "
                            "--skip-zero ('simuwsgi options NAME' says what is "
                            "missing) ***"]
        assert sim.log[0] == warnings[0]
        records = sim.trace.select("options.not_simulated")
        assert [r.fields["options"] for r in records] == [["stats-push", "skip-zero"]]
        assert sim.request("GET", "/").body == b"ok"


def test_simulated_and_no_effect_options_do_not_warn(app_dir: Path) -> None:
    with Simulation(["--master", "--wsgi-file", "app.py", "--cpu-affinity", "1",
                     "--harakiri", "5"], app_dir=app_dir) as sim:
        assert not [line for line in sim.log if "not simulated" in line]
        assert not sim.trace.select("options.not_simulated")


def test_strict_refuses_not_simulated_options(app_dir: Path) -> None:
    with pytest.raises(OptionNotSimulatedError) as info:
        Simulation(["--wsgi-file", "app.py", "--stats-push", "file:x",
                    "--final-route", "^/x break:404"],
                   app_dir=app_dir, strict=True)
    assert str(info.value) == ("options not simulated (strict): --stats-push final route "
                               "action 'break'; 'simuwsgi options NAME' says why")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, NotSimulatedError)
    Simulation(["--wsgi-file", "app.py", "--cpu-affinity", "1"], app_dir=app_dir,
               strict=True).close()


@pytest.mark.uwsgi(strict=True)
def test_strict_as_a_marker_keyword(uwsgi_simulation, app_dir: Path) -> None:
    with pytest.raises(OptionNotSimulatedError):
        uwsgi_simulation(["--wsgi-file", "app.py", "--stats-push", "file:x"], app_dir=app_dir)


def test_run_strict_exits_2(app_dir: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(app_dir)
    assert main(["run", "--strict", "--for", "1", "--quiet", "--",
                 "--wsgi-file", "app.py", "--stats-push", "file:x"]) == 2
    assert "options not simulated (strict): --stats-push" in capsys.readouterr().err
    assert main(["run", "--for", "1", "--quiet", "--",
                 "--wsgi-file", "app.py", "--stats-push", "file:x"]) == 0


# -- simuwsgi options ----------------------------------------------------------------------
def test_options_command_one_name(capsys) -> None:
    assert main(["options", "workers"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("--workers") and "simulated" in out and "(= --processes)" in out
    assert main(["options", "bogus"]) == 2
    assert "uWSGI 2.0.30 has no option '--bogus'" in capsys.readouterr().err


def test_options_command_filters_by_status(capsys) -> None:
    assert main(["options", "--status", "no-effect"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(r.status == "no-effect" for r in table())
    assert all("no-effect" in line for line in lines)
    assert any(line.startswith("--cpu-affinity ") for line in lines)


def test_docs_options_md_is_the_generated_table() -> None:
    doc = PACKAGE.parent / "docs" / "options.md"
    assert doc.read_text() == format_table(table(), markdown=True), \
        "regenerate it: simuwsgi options --markdown > docs/options.md"


def test_closing_a_simulation_never_started_leaves_no_uwsgi_module(app_dir: Path) -> None:
    import sys

    had, before = "uwsgi" in sys.modules, sys.modules.get("uwsgi")
    Simulation(["--wsgi-file", "app.py"], app_dir=app_dir, strict=True).close()
    assert ("uwsgi" in sys.modules) == had and sys.modules.get("uwsgi") is before
