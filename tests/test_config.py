"""uWSGI option parsing: argv, dict, ini; names, aliases, errors as uWSGI gives them."""

from __future__ import annotations

import pytest

from simuwsgi import ConfigError
from simuwsgi.server.config import parse_ini, parse_options


def test_argv_long_short_and_attached_forms():
    o = parse_options(["--master", "-p", "4", "--harakiri=30", "-M", "--mule", "--mule=m.py",
                       "--cache2", "name=c,items=10"])
    assert o.flag("master")
    assert o.int("processes") == 4 and o.int("workers") == 4
    assert o.int("harakiri") == 30
    assert o.values("mule") == [True, "m.py"]
    assert o.strings("cache2") == ["name=c,items=10"]


def test_aliases_resolve_to_one_setting():
    assert parse_options(["--workers", "3"]).int("processes") == 3
    assert parse_options(["--wsgi", "pkg.app"]).str("module") == "pkg.app"
    assert parse_options(["--file", "app.py"]).str("wsgi-file") == "app.py"
    assert parse_options(["--spooler-freq", "5"]).int("spooler-frequency") == 5


@pytest.mark.parametrize("argv, message", [
    (["--bogus-option", "1"], "unrecognized option '--bogus-option'"),
    (["--processes"], "option '--processes' requires an argument"),
    (["--master=1"], "option '--master' doesn't allow an argument"),
    (["-Z"], "invalid option -- 'Z'"),
])
def test_refused_like_getopt_long(argv, message):
    with pytest.raises(ConfigError) as exc:
        parse_options(argv)
    assert str(exc.value) == message


def test_opt_export_keeps_last_value_and_set_placeholders():
    o = parse_options(["--master", "--processes", "2", "--set", "a=1", "--set", "a=2",
                       "--cache2", "name=c,items=10"])
    assert o.exported() == {"master": True, "processes": b"2", "set": b"a=2", "a": b"2",
                            "cache2": b"name=c,items=10"}


def test_set_of_a_real_option_sets_it():
    o = parse_options(["--set", "processes=3"])
    assert o.int("processes") == 3
    assert o.exported() == {"set": b"processes=3", "processes": b"3"}


def test_dict_options():
    o = parse_options({"master": True, "processes": 2, "mule": ["a.py", "b.py"], "lazy-apps": False})
    assert o.flag("master") and o.int("processes") == 2
    assert o.values("mule") == ["a.py", "b.py"]
    assert not o.has("lazy-apps")
    with pytest.raises(ConfigError, match="unrecognized option '--nope'"):
        parse_options({"nope": 1})


def test_ini_file_with_repeats_placeholders_and_flags(tmp_path):
    ini = tmp_path / "app.ini"
    ini.write_text("""
[uwsgi]
; comment
# another
master = true
processes = %(n)
n = 3
wsgi-file = %dapp.py
mule = a.py
mule = b.py
enable-threads
lazy-apps = false
mycustom = hello
[other]
processes = 99
""")
    o = parse_ini(ini)
    assert o.flag("master") and o.flag("enable-threads")
    assert not o.flag("lazy-apps")
    # uWSGI expands %(...) once every option is read: 2.0.30 spawns 3 workers here
    assert o.str("processes") == "3", "a placeholder defined later is resolved"
    assert o.str("wsgi-file") == f"{tmp_path}/app.py"
    assert o.values("mule") == ["a.py", "b.py"]
    assert o.placeholders["mycustom"] == "hello", "unknown ini keys are placeholders"
    other = parse_ini(f"{ini}:other")
    assert other.int("processes") == 99


def test_ini_flag_words_as_uwsgi_opt_true(tmp_path):
    for word, expected in [("true", True), ("1", True), ("yes", True), ("off", False),
                           ("no", False), ("0", False), ("False", False)]:
        ini = tmp_path / "f.ini"
        ini.write_text(f"[uwsgi]\nmaster = {word}\n")
        assert parse_ini(ini).flag("master") is expected, word


def test_argv_roundtrip_for_real_mode():
    o = parse_options(["--master", "-p", "2", "--mule=x.py", "--set", "a=1"])
    assert o.argv() == ["--master", "--processes=2", "--mule=x.py", "--set=a=1"]
    assert parse_options(o.argv()).exported() == o.exported()


def test_remembered_answers_follow_changed_options():
    # The typed accessors remember their answers (the request path reads a dozen options
    # per request); an option added, or the list replaced, must be seen at once.
    opts = parse_options(["--log-micros", "--processes", "2"])
    derived = []
    assert opts.flag("log-micros") and opts.int("processes") == 2
    assert opts.memo("k", lambda: derived.append(1) or len(derived)) == 1
    assert opts.memo("k", lambda: derived.append(1) or len(derived)) == 1  # remembered
    opts.add("log-micros", "false")
    opts.add("workers", "5")
    assert not opts.flag("log-micros") and opts.int("processes") == 5
    assert opts.values("processes") == ["2", "5"]
    assert opts.memo("k", lambda: derived.append(1) or len(derived)) == 2  # recomputed
    opts.items = [("disable-logging", True)]
    assert opts.flag("disable-logging") and opts.int("processes", 1) == 1
    assert not opts.flag("log-micros") and opts.values("processes") == []
