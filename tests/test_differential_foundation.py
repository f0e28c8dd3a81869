"""Differential tests: the same app and options under real uWSGI and under simuwsgi.

The app reports what it observes (module attributes, ``workers()``, counters, pids) as
JSON; both servers must report the same, up to what is host- or run-specific (pids,
timestamps, the options the harness adds to reach the real server).
"""

from __future__ import annotations

import json

import pytest

from simuwsgi import Simulation
from simuwsgi.modes.real import HARNESS_OPTION_NAMES, RealUwsgi
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

pytestmark = pytest.mark.real

APP = r'''
import json, os, time, uwsgi

def types_of(value):
    if isinstance(value, dict):
        return {str(k): types_of(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [type(value).__name__] + [types_of(v) for v in value]
    return type(value).__name__

IMPORT = {"wid": uwsgi.worker_id(), "ready": uwsgi.ready(), "masterpid_is_me": uwsgi.masterpid() == os.getpid()}

def application(env, sr):
    path = env["PATH_INFO"]
    if path == "/attrs":
        names = ["numproc", "buffer_size", "cores", "has_threads", "version", "version_info",
                 "is_a_reload", "loop", "unbit", "applications", "SPOOL_OK", "SPOOL_RETRY",
                 "SPOOL_IGNORE"]
        out = {n: repr(getattr(uwsgi, n)) for n in names}
        out["opt"] = {k: repr(v) for k, v in uwsgi.opt.items()}
        out["types"] = {n: type(getattr(uwsgi, n)).__name__ for n in
                        ["hostname", "started_on", "magic_table", "sockets", "opt"]}
        out["magic_V"] = repr(uwsgi.magic_table.get(b"V"))
        out["import"] = IMPORT
        out["started_on_is_recent"] = abs(uwsgi.started_on - time.time()) < 30
        out["absent"] = sorted(n for n in ["spool", "queue_push", "sharedarea_read", "snmp_set_counter32",
                                            "add_ms_timer", "spooler_dir", "get_option"]
                               if not hasattr(uwsgi, n))
    elif path == "/workers":
        ws = uwsgi.workers()
        out = {"len": len(ws), "types": types_of(ws[0]), "ids": [w["id"] for w in ws],
               "status": [w["status"] for w in ws if w["id"] == uwsgi.worker_id()][0].decode(),
               "me_requests": [w["requests"] for w in ws if w["id"] == uwsgi.worker_id()][0]}
    elif path == "/count":
        out = {"request_id": uwsgi.request_id(), "total": uwsgi.total_requests(),
               "wid": uwsgi.worker_id(), "mule": uwsgi.mule_id(),
               "spooler": uwsgi.i_am_the_spooler(), "ready": uwsgi.ready(),
               "pid_is_worker": os.getpid() != uwsgi.masterpid()}
    elif path == "/errors":
        out = {}
        for name, call in [("log_bytes", lambda: uwsgi.log(b"x")), ("log_kw", lambda: uwsgi.log(msg="x")),
                           ("log_none", lambda: uwsgi.log()), ("harakiri_str", lambda: uwsgi.set_user_harakiri("1")),
                           ("accepting_float", lambda: uwsgi.accepting(1.5)),
                           ("extra_args_ignored", lambda: uwsgi.worker_id(1, 2, 3))]:
            try:
                out[name] = ["ok", repr(call())]
            except Exception as exc:
                out[name] = [type(exc).__name__, str(exc)]
    elif path == "/boom":
        raise ValueError("boom")
    else:
        out = {}
    sr("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out, sort_keys=True).encode()]
'''


def both(tmp_path, options, paths):
    (tmp_path / "app.py").write_text(APP)
    with RealUwsgi(options, app_dir=tmp_path) as real:
        real_out = [real.get(p) for p in paths]
    with Simulation(options, app_dir=tmp_path) as sim:
        sim_out = [sim.get(p) for p in paths]
    return real_out, sim_out


def payload(resp):
    assert resp.status == 200, resp
    return json.loads(resp.body)


@requires_real_uwsgi
def test_module_attributes_and_opt(tmp_path):
    options = ["--master", "--processes", "2", "--buffer-size", "8192", "--set", "a=1",
               "--set", "a=2", "--cache2", "name=c,items=10", "--wsgi-file", "app.py"]
    (real,), (sim,) = both(tmp_path, options, ["/attrs"])
    r, s = payload(real), payload(sim)
    for key in HARNESS_OPTION_NAMES:
        r["opt"].pop(key, None)
    assert s == r


@requires_real_uwsgi
def test_workers_fields_types_and_counters(tmp_path):
    options = ["--master", "--processes", "1", "--wsgi-file", "app.py"]
    real, sim = both(tmp_path, options, ["/count", "/count", "/count", "/workers"])
    assert [payload(x) for x in sim] == [payload(x) for x in real]


@requires_real_uwsgi
def test_argument_errors_match(tmp_path):
    options = ["--master", "--wsgi-file", "app.py"]
    (real,), (sim,) = both(tmp_path, options, ["/errors"])
    assert payload(sim) == payload(real)


@requires_real_uwsgi
def test_app_exception_status(tmp_path):
    options = ["--master", "--wsgi-file", "app.py"]
    real, sim = both(tmp_path, options, ["/boom", "/count"])
    assert [x.status for x in sim] == [x.status for x in real]
    assert payload(sim[1])["request_id"] == payload(real[1])["request_id"]


@requires_real_uwsgi
def test_app_that_fails_to_import_answers_500(tmp_path):
    (tmp_path / "app.py").write_text("raise ImportError('nope')\n")
    options = ["--master", "--wsgi-file", "app.py"]
    with RealUwsgi(options, app_dir=tmp_path, allow_no_app=True) as real:
        r = real.get("/")
    with Simulation(options, app_dir=tmp_path, allow_no_app=True) as sim:
        s = sim.get("/")
        assert "*** no app loaded. going in full dynamic mode ***" in sim.log
    assert (s.status, s.headers, s.body) == (r.status, r.headers, r.body)



@requires_real_uwsgi
@pytest.mark.parametrize(("source", "options", "status"), [
    ("raise ImportError('nope')\n", ["--need-app"], 22),   # GAME OVER
    ("", ["--need-app"], 22),                              # no callable
    ("import sys\nsys.exit(3)\n", [], 3),                  # PyErr_Print() exits
])
def test_app_that_does_not_load_ends_the_instance(tmp_path, source, options, status):
    from simuwsgi import AppLoadError
    from simuwsgi.modes.real import RealUwsgiError

    (tmp_path / "app.py").write_text(source)
    options = ["--master", *options, "--wsgi-file", "app.py"]
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(options, app_dir=tmp_path).start()
    with pytest.raises(AppLoadError) as sim:
        Simulation(options, app_dir=tmp_path).start()
    assert sim.value.exit_status == real.value.returncode == status
    game_over = "*** no app loaded. GAME OVER ***"
    assert (game_over in sim.value.log) == (game_over in real.value.log) == (status == 22)



@requires_real_uwsgi
@pytest.mark.parametrize("ini", ["deploy/uwsgi.ini", "deploy/chdir.ini", "deploy/here.ini",
                                 "deploy/nested.ini"])
def test_relative_paths_in_an_ini_resolve_as_uwsgi_resolves_them(tmp_path, monkeypatch, ini):
    from test_simulation import _layout

    _layout(tmp_path)
    with RealUwsgi(["--ini", ini], app_dir=tmp_path) as real:
        r = real.get("/")
    monkeypatch.chdir(tmp_path)
    with Simulation.from_ini(ini) as sim:
        s = sim.get("/")
    assert (s.status, s.body) == (r.status, r.body)


LIFECYCLE_APP = r'''
import json, os, time, uwsgi
served = 0
def application(env, sr):
    global served
    served += 1
    if env["PATH_INFO"] == "/sleep":
        time.sleep(3)
    if env["PATH_INFO"] == "/reload":
        uwsgi.reload()
    w = uwsgi.workers()[0]
    sr("200 OK", [])
    return [json.dumps({"pid": os.getpid(), "wid": uwsgi.worker_id(), "served": served,
                        "requests": w["requests"], "respawn_count": w["respawn_count"],
                        "reload": uwsgi.is_a_reload, "masterpid": uwsgi.masterpid()}).encode()]
'''


def lifecycle(server, wait, mark=lambda: None):
    """The shape of a harakiri, a max-requests recycle and a reload, as seen by the app."""
    first = payload(server.get("/"))
    killed = server.get("/sleep")
    after_kill = payload(server.get("/"))
    second = payload(server.get("/"))
    third = payload(server.get("/"))
    since = mark()
    server.get("/reload")
    wait(since)
    reloaded = payload(server.get("/"))
    return {
        "killed_status": killed.status,
        "respawned_same_id_new_pid": (after_kill["wid"] == first["wid"],
                                      after_kill["pid"] != first["pid"]),
        "after_kill": (after_kill["served"], after_kill["requests"], after_kill["respawn_count"]),
        "recycled_after_max_requests": (second["pid"] == after_kill["pid"],
                                        third["pid"] != second["pid"]),
        "third": (third["served"], third["respawn_count"]),
        "reload": (reloaded["reload"], reloaded["masterpid"] == first["masterpid"],
                   reloaded["pid"] != third["pid"], reloaded["requests"]),
    }


@requires_real_uwsgi
def test_harakiri_respawn_max_requests_and_reload(tmp_path):
    (tmp_path / "app.py").write_text(LIFECYCLE_APP)
    options = ["--master", "--harakiri", "1", "--max-requests", "2",
               "--min-worker-lifetime", "0", "--wsgi-file", "app.py"]
    with RealUwsgi(options, app_dir=tmp_path) as real:
        real_shape = lifecycle(real, lambda since: real.wait_reloaded(timeout=15, since=since),
                               real.mark)
    with Simulation(options, app_dir=tmp_path) as sim:
        sim_shape = lifecycle(sim, lambda since: sim.advance(2))
    assert sim_shape == real_shape


ENVIRON_APP = r'''
import json
def application(env, sr):
    body = env["wsgi.input"].read()
    out = {}
    for key, value in env.items():
        if key.startswith("wsgi.") or key.startswith("uwsgi."):
            out[key] = repr(value) if isinstance(value, (bytes, bool, tuple, str)) else type(value).__name__
        else:
            out[key] = value
    out["body"] = body.decode()
    out["input_methods"] = sorted(m for m in ("read", "readline", "readlines", "seek", "tell",
                                              "fileno", "close") if hasattr(env["wsgi.input"], m))
    out["errors_is_writable"] = hasattr(env["wsgi.errors"], "write")
    sr("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(out, sort_keys=True).encode()]
'''


@requires_real_uwsgi
@pytest.mark.parametrize("method, path, body, headers", [
    ("GET", "/p?q=1", b"", {}),
    ("POST", "/a%20b/c?x=%41&y", b"hello", {"Content-Type": "text/plain", "X-Custom": "1"}),
])
def test_wsgi_environ(tmp_path, method, path, body, headers):
    import socket

    (tmp_path / "app.py").write_text(ENVIRON_APP)
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py"]
    with RealUwsgi(options, app_dir=tmp_path) as real:
        r = payload(real.request(method, path, body=body, headers=dict(headers)))
    with Simulation(options, app_dir=tmp_path, hostname=socket.gethostname()) as sim:
        s = payload(sim.request(method, path, body=body, headers=dict(headers)))
    # What the harness's HTTP client adds, and the port of its socket, are its own.
    for key in ("HTTP_HOST", "HTTP_CONNECTION", "HTTP_ACCEPT_ENCODING", "HTTP_USER_AGENT",
                "SERVER_PORT"):
        r.pop(key, None)
        s.pop(key, None)
    assert s == r
