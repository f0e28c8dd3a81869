"""``--wsgi-env-behaviour``: how the Python plugin allocates the WSGI environ
(``plugins/python/python_plugin.c``).

* ``cheat`` (the default): one dict per app and core, cleared as each request ends and
  filled again by the next one: an environ the app kept is empty after its request,
  then the next request's; ``uwsgi.env`` stays that dict between requests;
* ``holy``: a new dict per request, kept as it was; ``uwsgi.env`` is removed.

An invalid value ends the start (``invalid wsgi-env-behaviour value: X``, exit 1). The
``real`` tests ask uWSGI 2.0.30 the same.
"""

from __future__ import annotations

import textwrap

import pytest

from simuwsgi import Simulation, StartRefusedError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import uwsgi

KEPT = []

def application(env, start_response):
    out = {}
    if KEPT:
        prev = KEPT[-1]
        out = {"same": prev is env, "prev": prev.get("PATH_INFO")}
    out["env"] = getattr(uwsgi, "env", None) is env
    KEPT.append(env)
    start_response("200 OK", [])
    return [repr(sorted(out.items())).encode()]
"""
#: per option value: what the second request saw of the first request's environ
EXPECTED = {
    "": "[('env', True), ('prev', '/b'), ('same', True)]",
    "cheat": "[('env', True), ('prev', '/b'), ('same', True)]",
    "holy": "[('env', True), ('prev', '/a'), ('same', False)]",
}


def _argv(value: str) -> list[str]:
    return ["--master", "--wsgi-file", "app.py",
            *(["--wsgi-env-behaviour", value] if value else [])]


def _seen(get) -> str:
    get("/a")
    return get("/b").decode()


@pytest.mark.parametrize("mode", ["sim", "fork"])
@pytest.mark.parametrize("value", list(EXPECTED))
def test_the_environ_between_requests(tmp_path, value, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with Simulation(_argv(value), app_dir=tmp_path, mode=mode) as sim:
        assert _seen(lambda p: sim.get(p).body) == EXPECTED[value]
        assert not [line for line in sim.log if "not simulated" in line]


def test_an_invalid_value_ends_the_start(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with pytest.raises(StartRefusedError, match="^invalid wsgi-env-behaviour value: odd$"):
        Simulation(_argv("odd"), app_dir=tmp_path).start()


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("value", list(EXPECTED))
def test_the_same_on_the_real_server(tmp_path, value):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with RealUwsgi(_argv(value), app_dir=tmp_path) as real:
        assert _seen(lambda p: real.get(p, timeout=5).body) == EXPECTED[value]


@pytest.mark.real
@requires_real_uwsgi
def test_an_invalid_value_ends_the_real_start(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(_argv("odd"), app_dir=tmp_path).start()
    assert real.value.returncode == 1
    assert "invalid wsgi-env-behaviour value: odd" in real.value.log
