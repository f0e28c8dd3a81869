"""YAML, JSON and XML configuration files as pyuwsgi 2.0.30 reads them
(``simuwsgi.server.configfiles``): the options each gives (``uwsgi.opt``, observed on
the real server), by option, directly, and through ``include``/``inherit``; uWSGI's
refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from _uwsgi_process import run_until_exit, run_with

from simuwsgi import ConfigError, Simulation
from simuwsgi._errors import StartRefusedError
from simuwsgi.server.configfiles import json_options, xml_options, yaml_options

OPT_APP = ("import uwsgi\nprint('OPT', sorted(uwsgi.opt.items()), flush=True)\n"
           "def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")

# '#' ends a line anywhere; the value is as written (quotes, brackets); the section
# ends at a list item; %n is the file's name without its ending
YAML = """\
# a comment
other:
  processes: 9
uwsgi:
  wsgi-file: optapp.py   # the app
  processes: 1
\tmaster: true
  quoted: "a b"
  listy: [A=1, B=2]
  vacuum: false
  set-ph: who=%n
  greeting: hi-%(who) #tail
  - item
  after: never
"""
REAL_YAML_OPT = [("greeting", b"hi-conf"), ("listy", b"[A=1, B=2]"), ("master", b"true"),
                 ("processes", b"1"), ("quoted", b'"a b"'), ("set-ph", b"who=conf"),
                 ("vacuum", b"false"), ("who", b"conf"), ("wsgi-file", b"optapp.py"),
                 ("yaml", b"conf.yaml")]

# true 1, false and null 0, an int as C's int (32 bits); a real, an object and a nested
# array add nothing; an array one option per element (the last one shows)
JSON = """{"other": {"processes": 9},
 "uwsgi": {"wsgi-file": "optapp.py", "processes": 1, "master": true, "harakiri": 3.5,
   "vacuum": false, "nul": null, "many": ["A=1", 5, true, null, 2.5, ["x"], {"y": 1}],
   "nested": {"a": 1}, "greeting": "hi-%n", "big": 12345678901234, "neg": -3,
   "last": [1, "z"]}}
"""
REAL_JSON_OPT = [("big", b"1942892530"), ("greeting", b"hi-conf"), ("json", b"conf.json"),
                 ("last", b"z"), ("many", b"0"), ("master", b"1"), ("neg", b"-3"),
                 ("nul", b"0"), ("processes", b"1"), ("vacuum", b"0"),
                 ("wsgi-file", b"optapp.py")]

# every <uwsgi> at any depth (only id="dev" with conf.xml:dev); an empty element is 1;
# the first piece of text only ("a " of "a &amp; b"); a nested element is an option
XML = """<?xml version="1.0"?>
<config>
  <uwsgi id="dev">
    <processes>1</processes>
    <wsgi-file>optapp.py</wsgi-file>
    <devonly>yes</devonly>
  </uwsgi>
  <uwsgi>
    <master/>
    <processes>1</processes>
    <wsgi-file>optapp.py</wsgi-file>
    <greeting>a &amp; b</greeting>
    <vacuum></vacuum>
    <named>%n</named>
    <nested><inner>5</inner></nested>
  </uwsgi>
</config>
"""
REAL_XML_OPT = [("devonly", b"yes"), ("greeting", b"a "), ("inner", b"5"), ("master", b"1"),
                ("named", b"conf"), ("processes", b"1"), ("vacuum", b"1"),
                ("wsgi-file", b"optapp.py"), ("xml", b"conf.xml")]
REAL_XML_DEV_OPT = [("devonly", b"yes"), ("processes", b"1"), ("wsgi-file", b"optapp.py"),
                    ("xml", b"conf.xml")]

CASES = {
    "yaml": ("conf.yaml", YAML, ["--yaml", "conf.yaml"], REAL_YAML_OPT),
    "json": ("conf.json", JSON, ["--json", "conf.json"], REAL_JSON_OPT),
    "xml": ("conf.xml", XML, ["--xml", "conf.xml"], REAL_XML_OPT),
    "xml-id": ("conf.xml", XML, ["--xml", "conf.xml:dev"], REAL_XML_DEV_OPT),
}


def _write(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / "optapp.py").write_text(OPT_APP)
    (tmp_path / name).write_text(text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_uwsgi_opt_of_a_config_file(tmp_path: Path, case: str) -> None:
    name, text, argv, expected = CASES[case]
    _write(tmp_path, name, text)
    with Simulation(argv, app_dir=tmp_path) as sim:
        assert sorted(sim.inst.facade.opt.items()) == expected


@pytest.mark.real
@pytest.mark.parametrize("case", sorted(CASES))
def test_real_uwsgi_opt_of_a_config_file(tmp_path: Path, case: str) -> None:
    name, text, argv, expected = CASES[case]
    _write(tmp_path, name, text)
    lines = run_with(argv, tmp_path, until=["OPT"])
    opt = next(line for line in lines if line.startswith("OPT "))
    got = [item for item in eval(opt[4:]) if item[0] != "http-socket"]  # noqa: S307
    assert got == expected


def test_the_config_files_options_in_order() -> None:
    assert yaml_options("uwsgi:\n  socket: a\n  http-socket: b\n  socket: c\n") == [
        ("socket", "a"), ("http-socket", "b"), ("socket", "c")]
    pairs, dropped = json_options('{"uwsgi": {"socket": "a", "x": 1.5, "http-socket": "b",'
                                  ' "socket": "c"}}')
    assert pairs == [("socket", "c"), ("http-socket", "b")]  # a key's first place, last value
    assert dropped == [("x", "real")]
    assert xml_options("<uwsgi><socket>a</socket><http-socket>b</http-socket></uwsgi>") == [
        ("socket", "a"), ("http-socket", "b")]


def test_yaml_section_ends_where_uwsgis_reader_ends_it() -> None:
    # a line no deeper than the section's keys... ends it; so does a key without ": "
    assert yaml_options("uwsgi:\n  a: 1\nb: 2\n  c: 3\n") == [("a", "1")]
    assert yaml_options("uwsgi:\n  a: 1\n  b:\n  c: 3\n") == [("a", "1")]
    assert yaml_options("dev:\n  a: 1\nuwsgi:\n  b: 2\n", "dev") == [("a", "1")]
    assert yaml_options("uwsgi:\r\n  a: 1\r\n") == [("a", "1\r")]  # rstrip keeps a \r


def test_a_file_given_directly_is_read_by_its_ending(tmp_path: Path) -> None:
    _write(tmp_path, "conf.yml", YAML)
    with Simulation(["conf.yml"], app_dir=tmp_path) as sim:
        assert sim.inst.facade.opt["master"] == b"true"
    with Simulation(str(tmp_path / "conf.yml"), app_dir=tmp_path) as sim:
        assert sim.inst.facade.opt["quoted"] == b'"a b"'


def test_include_and_inherit_read_every_format(tmp_path: Path) -> None:
    _write(tmp_path, "conf.json", JSON)
    (tmp_path / "base.xml").write_text("<uwsgi><processes>3</processes><x>1</x></uwsgi>")
    with Simulation(["--include", "conf.json", "--inherit", "base.xml"],
                    app_dir=tmp_path) as sim:
        # inherit comes last: its processes is a later value, the first one counts
        assert sim.inst.facade.opt["x"] == b"1"
        assert sim.inst.facade.opt["big"] == b"1942892530"


def test_json_members_uwsgi_skips_are_said(tmp_path: Path) -> None:
    _write(tmp_path, "conf.json", JSON)
    with Simulation(["--json", "conf.json"], app_dir=tmp_path) as sim:
        said = [line for line in sim.log if line.startswith("[simuwsgi] conf.json:")]
    assert said == [
        f"[simuwsgi] conf.json: {key}: uWSGI 2.0.30 (jansson) ignores a JSON {kind} there; "
        "no option is added"
        for key, kind in (("harakiri", "real"), ("many", "real"), ("many", "array"),
                          ("many", "object"), ("nested", "object"))]


#: refusals observed on pyuwsgi 2.0.30 (status 1): argv, files, uWSGI's line
REFUSALS = [
    (["--json", "bad.json"], {"bad.json": '{"uwsgi": {"master": true,}}'},
     "error parsing JSON data: line 1 "),
    (["--json", "arr.json"], {"arr.json": "[1, 2]"},
     "you must define a object named uwsgi in your JSON data"),
    (["--json", "n.json:dev"], {"n.json": '{"uwsgi": 1}'},
     "you must define a object named dev in your JSON data"),
    (["--xml", "bad.xml"], {"bad.xml": "<uwsgi><a>1</b></uwsgi>"},
     "unable to parse xml file: mismatched tag (line 1)"),
    (["--xml", "x.xml:"], {"x.xml": "<uwsgi/>"}, "invalid xml id"),
    (["--include", "x.conf"], {"x.conf": ""}, "unable to load configuration from x.conf"),
    (["--include", "e.ini:uwsgi"], {"e.ini": "[uwsgi]\n"},
     "unable to load configuration from e.ini:uwsgi"),
]


@pytest.mark.parametrize("argv,files,line", REFUSALS)
def test_refusals(tmp_path: Path, argv: list[str], files: dict[str, str], line: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(StartRefusedError) as refused:
        Simulation(argv, app_dir=tmp_path)
    assert str(refused.value).startswith(line)


@pytest.mark.real
@pytest.mark.parametrize("argv,files,line", REFUSALS)
def test_real_refusals(tmp_path: Path, argv: list[str], files: dict[str, str],
                       line: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code, lines = run_until_exit(argv, tmp_path)
    assert code == 1
    assert [got for got in lines if got.startswith(line)]


def test_unknown_file_given_directly_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^unable to load configuration from foo\.txt"):
        Simulation(["foo.txt"], app_dir=tmp_path)


def test_an_xml_file_whose_root_never_closes_is_refused_not_read_forever() -> None:
    from simuwsgi.server.configfiles import ConfigFileError

    with pytest.raises(ConfigFileError, match="never closed"):
        xml_options("<uwsgi><a>1</a>")


def test_a_file_given_directly_is_read_after_the_options_and_not_exported(
        tmp_path: Path) -> None:
    # getopt leaves the file for last; uwsgi_opt_load exports no option (observed:
    # `uwsgi t.yml` has no 'yaml' in uwsgi.opt, `uwsgi --include t.yml` has 'include')
    _write(tmp_path, "conf.yml", "uwsgi:\n  wsgi-file: optapp.py\n  x: file\n")
    with Simulation(["conf.yml", "--set", "x=argv"], app_dir=tmp_path) as sim:
        opt = sim.inst.facade.opt
        assert opt["x"] == b"file" and "yaml" not in opt
    with Simulation(["--include", "conf.yml"], app_dir=tmp_path) as sim:
        assert sim.inst.facade.opt["include"] == b"conf.yml"


@pytest.mark.real
def test_real_file_given_directly_is_read_after_the_options_and_not_exported(
        tmp_path: Path) -> None:
    _write(tmp_path, "conf.yml", "uwsgi:\n  wsgi-file: optapp.py\n  x: file\n")
    lines = run_with(["conf.yml", "--set", "x=argv"], tmp_path, until=["OPT"])
    opt = dict(eval(next(line for line in lines if line.startswith("OPT "))[4:]))  # noqa: S307
    assert opt["x"] == b"file" and "yaml" not in opt


def test_real_mode_and_scenarios_pass_a_config_file_by_its_option(tmp_path: Path) -> None:
    from simuwsgi.modes.real._mode import real_argv

    assert real_argv("conf.yaml", tmp_path) == ["--yaml", str(tmp_path / "conf.yaml")]
    assert real_argv("conf.json:dev", tmp_path) == ["--json", str(tmp_path / "conf.json:dev")]
    assert real_argv("/etc/u.xml", tmp_path) == ["--xml", "/etc/u.xml"]
    assert real_argv("u.ini:s", tmp_path) == ["--ini", str(tmp_path / "u.ini:s")]


@given(text=st.text(max_size=200) | st.sampled_from([YAML, JSON, XML]).flatmap(
    lambda base: st.integers(0, len(base)).map(lambda cut: base[:cut])))
@settings(max_examples=300, deadline=None)
def test_any_text_is_options_or_uwsgis_refusal(text: str) -> None:
    from simuwsgi.server.configfiles import ConfigFileError

    assert all(isinstance(k, str) and isinstance(v, str) for k, v in yaml_options(text))
    for read in (json_options, xml_options):
        try:
            read(text)
        except ConfigFileError as exc:
            assert "\n" not in str(exc)


def test_deep_json_is_refused_in_one_line() -> None:
    from simuwsgi.server.configfiles import ConfigFileError

    with pytest.raises(ConfigFileError, match="maximum parsing depth reached"):
        json_options("[" * 100_000 + "]" * 100_000)
