"""ini features as 2.0.30 parses them: option logic blocks, print, exit, inherit,
include, ``:section`` and the ``$()``/``@()``/``%()`` passes (``simuwsgi.server.config``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _uwsgi_process import run_until_exit, run_with

from simuwsgi import Simulation
from simuwsgi._errors import StartRefusedError
from simuwsgi.server.config import parse_ini

APP = "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n"
BASE_INI = """[uwsgi]
processes = 2
print = base-print %(processes)
"""
MAIN_INI = """[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = app.py
master = true
inherit = base.ini
processes = 4
print = main-print %(processes) $(SIMUWSGI_T_HOME) $(SIMUWSGI_T_NOPE) @(word.txt) %(n n) %(n + 2) %(nope)
n = 3
if-env = SIMUWSGI_T_HOME
print = home is %(_)
endif =
if-env = SIMUWSGI_T_NOPE
print = never
endif =
if-not-env = SIMUWSGI_T_NOPE
print = no nope
endif =
if-opt = n=3
print = n is 3
endif =
if-exists = app.py
print = exists %(_)
end-if =
if-not-exists = nothing.py
print = no nothing
endif =
for = a b c
print = item %(_)
endfor =
for-times = 2
print = n%(_)
endfor =
else = x
print = after %(else)
"""
EXPECTED = [
    "main-print 4 /home/t $(SIMUWSGI_T_NOPE) hello 33 5 %(nope)",
    "home is /home/t", "no nope", "n is 3", "exists app.py", "no nothing",
    "item a", "item b", "item c", "n1", "n2", "after x",
    "base-print %(processes)",
]


@pytest.fixture
def ini_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "word.txt").write_text("hello\n")
    (tmp_path / "base.ini").write_text(BASE_INI)
    (tmp_path / "main.ini").write_text(MAIN_INI)
    monkeypatch.setenv("SIMUWSGI_T_HOME", "/home/t")
    monkeypatch.delenv("SIMUWSGI_T_NOPE", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_ini_logic_print_and_passes(ini_dir: Path) -> None:
    with Simulation(str(ini_dir / "main.ini")) as sim:
        assert [line for line in sim.log if line in EXPECTED] == EXPECTED
        # inherit is read last: its processes = 2 is the value applied
        assert sorted(sim.inst.workers) == [1, 2]


@pytest.mark.real
def test_real_ini_logic_print_and_passes(ini_dir: Path) -> None:
    lines = run_with(["--ini", "main.ini"], ini_dir, http=False,
                     until=("spawned uWSGI worker 1", "spawned uWSGI worker 2"))
    assert [line for line in lines if line in EXPECTED] == EXPECTED
    assert sum("spawned uWSGI worker" in line for line in lines) == 2


def test_nested_logic_refused(tmp_path: Path) -> None:
    ini = tmp_path / "a.ini"
    ini.write_text("[uwsgi]\nfor = a b\nif-env = PATH\nprint = x\nendif =\nendfor =\n")
    with pytest.raises(StartRefusedError,
                       match=r"^recursive logic in options is not supported \(option = if-env\)$"):
        parse_ini(ini)


def test_exit_refuses_with_its_status(tmp_path: Path) -> None:
    ini = tmp_path / "a.ini"
    ini.write_text("[uwsgi]\nprocesses = 2\nexit = 3\n")
    with pytest.raises(StartRefusedError) as info:
        parse_ini(ini)
    assert info.value.status == 3


def test_include_and_section_of_the_last_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are uWSGI's current directory's
    (tmp_path / "inc.ini").write_text("[uwsgi]\nprocesses = 5\nini = :extra\n[extra]\nmules = 2\n")
    ini = tmp_path / "a.ini"
    ini.write_text("[uwsgi]\nprocesses = 1\ninclude = inc.ini\nmaster = true\n")
    o = parse_ini(ini)
    assert o.values("processes") == ["1", "5"] and o.str("mules") == "2"


def test_for_readline_and_glob(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are uWSGI's current directory's
    (tmp_path / "names.txt").write_text("x\ny\n")
    (tmp_path / "m1.py").write_text("")
    (tmp_path / "m2.py").write_text("")
    ini = tmp_path / "a.ini"
    ini.write_text("[uwsgi]\nfor-readline = names.txt\nset-ph = k%(_)=1\nendfor =\n"
                   "for-glob = m*.py\nmule = %(_)\nendfor =\n")
    o = parse_ini(ini)
    assert o.placeholders["kx"] == "1" and o.placeholders["ky"] == "1"
    assert o.values("mule") == [str(tmp_path / "m1.py"), str(tmp_path / "m2.py")]


def test_missing_at_file_refused(tmp_path: Path) -> None:
    with pytest.raises(StartRefusedError, match=r'^open\("nofile.txt"\): No such file'):
        Simulation(["--set", "x=@(nofile.txt)"], app_dir=tmp_path)


OPT_APP = ("import uwsgi\nprint('OPT', sorted(uwsgi.opt.items()), flush=True)\n"
           "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")
OPT_INI = ("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = optapp.py\nprocesses = 0\n"
           "mycustom = hello\n"
           "for = a b\nset-ph = k%(_)=1\nendfor =\n")
# observed on pyuwsgi 2.0.30
REAL_OPT = [("endfor", b""), ("for", b"a b"), ("http-socket", b"127.0.0.1:0"),
            ("ini", b"o.ini"), ("ka", b"1"), ("kb", b"1"), ("mycustom", b"hello"),
            ("processes", b"0"),
            ("set-ph", b"kb=1"), ("wsgi-file", b"optapp.py")]


def test_uwsgi_opt_after_logic_and_placeholders(tmp_path: Path) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / "o.ini").write_text(OPT_INI)
    with Simulation(["--ini", "o.ini"], app_dir=tmp_path) as sim:
        assert sorted(sim.inst.facade.opt.items()) == REAL_OPT


@pytest.mark.real
def test_real_uwsgi_opt_after_logic_and_placeholders(tmp_path: Path) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / "o.ini").write_text(OPT_INI)
    _code, lines = run_until_exit(["--ini", "o.ini"], tmp_path)
    assert f"OPT {REAL_OPT!r}" in lines


#: an ini file with bytes that are not UTF-8 in a value, in a file read by ``@(...)`` and
#: in one read by ``for-readline`` (pyuwsgi segfaults on such bytes in its argv, so the
#: file carries them)
ODD_INI = (b"[uwsgi]\nwsgi-file = optapp.py\nodd = a\xffb\nfor-readline = lines.txt\n"
           b"x%(_) = %(_)\nendfor =\nodd2 = @(lines.txt)\n")
# observed on pyuwsgi 2.0.30 (with its --http-socket)
REAL_ODD_OPT = [("endfor", b""), ("for-readline", b"lines.txt"), ("ini", b"odd.ini"),
                ("odd", b"a\xffb"), ("odd2", b"c\xfed"), ("wsgi-file", b"optapp.py"),
                ("x%(_)", b"c\xfed")]


def _odd_ini(tmp_path: Path) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / "odd.ini").write_bytes(ODD_INI)
    (tmp_path / "lines.txt").write_bytes(b"c\xfed\n")


def test_uwsgi_opt_keeps_bytes_of_an_ini_that_are_not_utf8(tmp_path: Path) -> None:
    _odd_ini(tmp_path)
    with Simulation(["--ini", "odd.ini"], app_dir=tmp_path) as sim:
        assert sorted(sim.inst.facade.opt.items()) == REAL_ODD_OPT


@pytest.mark.real
def test_real_uwsgi_opt_keeps_bytes_of_an_ini_that_are_not_utf8(tmp_path: Path) -> None:
    _odd_ini(tmp_path)
    lines = run_with(["--ini", "odd.ini"], tmp_path, until=["OPT"])
    opt = next(line for line in lines if line.startswith("OPT "))
    got = [item for item in eval(opt[4:]) if item[0] != "http-socket"]  # noqa: S307
    assert got == REAL_ODD_OPT

READLINE_INI = ("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = optapp.py\nprocesses = 0\n"
                "for-readline = nofile.txt\nprint = never %(_)\nendfor =\n")
PARSE_LINES = ['open("nofile.txt"): No such file or directory [core/config.c line 96]',
               '*** WARNING: Can\'t find section "nosuch" in INI configuration file r.ini ***']


def test_missing_readline_file_and_section_are_logged(tmp_path: Path) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / "r.ini").write_text(READLINE_INI)
    with Simulation(["--ini", "r.ini", "--ini", "r.ini:nosuch"], app_dir=tmp_path) as sim:
        assert sim.log[:2] == PARSE_LINES
        assert not [line for line in sim.log if "never" in line]


@pytest.mark.real
def test_real_missing_readline_file_and_section(tmp_path: Path) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / "r.ini").write_text(READLINE_INI)
    _code, lines = run_until_exit(["--ini", "r.ini", "--ini", "r.ini:nosuch"], tmp_path)
    assert [line for line in lines if line in PARSE_LINES] == PARSE_LINES
    assert not [line for line in lines if "never" in line]
