"""uWSGI's internal routing (``--route`` & co., ``simuwsgi/server/routing.py``).

One table exercises the simulated actions and conditions, each rule picked by its own
path; every request's answer (status, headers, body: what the app saw), the request
log lines (a ``--logformat`` with a ``logvar``) and the table the master dumps at start
are compared with what uWSGI 2.0.30 gave (``EXPECTED``, asked again by the ``real``
tests), in sim and fork mode.
"""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from simuwsgi import Simulation, StartRefusedError
from simuwsgi._errors import OptionNotSimulatedError
from simuwsgi.modes.real import RealUwsgi, RealUwsgiError
from simuwsgi.modes.real.pytest_helpers import requires_real_uwsgi

APP = """
import json

def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    keys = ("PATH_INFO", "REQUEST_METHOD", "REQUEST_URI", "QUERY_STRING", "MYVAR")
    return [json.dumps({k: env[k] for k in keys if k in env}, sort_keys=True).encode()]
"""
ROUTES = [
    "--route", "^/health donotlog:",
    "--route", "^/logged log:seen ${PATH_INFO} [$1] ${HTTP_HOST} ${qs[a]}",
    "--route", "^/forbidden break:403 Forbidden",
    "--route", "^/bare break:",
    "--route", "^/ret return:404",
    "--route", "^/old/(.*) redirect:/new/$1",
    "--route", "^/perm redirect-301:https://example.com/",
    "--route", "^/rw/(.*) rewrite:/rewritten/$1?from=rw",
    "--route-if", "equal:${PATH_INFO};/var addvar:MYVAR=hello-${REQUEST_METHOD}",
    "--route-if", "startswith:${PATH_INFO};/hdr addheader:X-Routed: ${PATH_INFO}",
    "--route-host", "^other\\.example$ break:410 Gone",
    "--route-qs", "secret break:401 Unauthorized",
    "--route-if", "regexp:${PATH_INFO};^/re/(\\d+)$ addvar:MYVAR=number-$1",
    "--route-if-not", "contains:${PATH_INFO};a setmethod:POST",
    "--route-uri", "^/meth\\?x=1$ seturi:/changed?y=2",
    "--route", "^/lv logvar:who=me",
    "--route", "^/goto goto:skip",
    "--route", "^/goto break:500 Bad",
    "--route-label", "skip",
    "--route", "^/cont continue:",
    "--route", "^/cont break:500 NotReached",
    "--route-run", "addheader:X-Everyone: yes",
]
PATHS = ["/health", "/logged?a=b", "/forbidden", "/bare", "/ret", "/old/a/b", "/perm",
         "/rw/x?q=1", "/var", "/hdr/1", "/qs?secret=1", "/re/42", "/meth?x=1", "/lv",
         "/goto", "/cont", "/plain"]
HOST = "bench.example"


def _app(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def _argv(*extra: str) -> list[str]:
    return ["--master", "--processes", "1", "--wsgi-file", "app.py",
            "--logformat", "%(method) %(uri) %(status) who=%(who) hsize=%(hsize)", *extra]


def _answers(get) -> list[tuple]:
    out = []
    for path in PATHS:
        reply = get(path, {"Host": HOST})
        body = reply.body.decode()
        out.append((path, reply.status, list(reply.headers),
                    json.loads(body) if body.startswith("{") else body))
    reply = get("/", {"Host": "other.example"})
    out.append(("host", reply.status, list(reply.headers), reply.body.decode()))
    return out


def _log(log: list[str]) -> list[str]:
    """The routing table's dump and everything logged after the workers started."""
    dump = [line for line in log if line.startswith(("[rule:", "*** dumping", "*** end of"))]
    start = max(i for i, line in enumerate(log) if line.startswith("spawned uWSGI worker"))
    return dump + log[start + 1:]


_EVERYONE = ("X-Everyone", "yes")
_TEXT = ("Content-Type", "text/plain")


def _app_saw(path: str, method: str, uri: str, query: str = "", **extra: str) -> dict:
    return {"PATH_INFO": path, "REQUEST_METHOD": method, "REQUEST_URI": uri,
            "QUERY_STRING": query, **extra}


#: what uWSGI 2.0.30 answered
EXPECTED = [
    ("/health", 200, [_TEXT, _EVERYONE], _app_saw("/health", "GET", "/health")),
    ("/logged?a=b", 200, [_TEXT, _EVERYONE], _app_saw("/logged", "POST", "/logged?a=b", "a=b")),
    ("/forbidden", 403, [("Connection", "close"), _TEXT], ""),
    ("/bare", None, [], ""),
    ("/ret", 404, [_TEXT, ("Content-Length", "9")], "Not Found"),
    ("/old/a/b", 302, [("Location", "/new/a/b")], "Moved"),
    ("/perm", 301, [("Location", "https://example.com/")], "Moved Permanently"),
    ("/rw/x?q=1", 200, [_TEXT, _EVERYONE],
     _app_saw("/rewritten/x", "POST", "/rw/x?q=1", "from=rw&q=1")),
    ("/var", 200, [_TEXT, _EVERYONE], _app_saw("/var", "GET", "/var", MYVAR="hello-GET")),
    ("/hdr/1", 200, [_TEXT, ("X-Routed", "/hdr/1"), _EVERYONE],
     _app_saw("/hdr/1", "POST", "/hdr/1")),
    ("/qs?secret=1", 401, [("Connection", "close"), _TEXT], ""),
    ("/re/42", 200, [_TEXT, _EVERYONE], _app_saw("/re/42", "POST", "/re/42", MYVAR="number-42")),
    ("/meth?x=1", 200, [_TEXT, _EVERYONE], _app_saw("/meth", "POST", "/changed?y=2", "x=1")),
    ("/lv", 200, [_TEXT, _EVERYONE], _app_saw("/lv", "POST", "/lv")),
    ("/goto", 200, [_TEXT, _EVERYONE], _app_saw("/goto", "POST", "/goto")),
    ("/cont", 200, [_TEXT], _app_saw("/cont", "POST", "/cont")),
    ("/plain", 200, [_TEXT, _EVERYONE], _app_saw("/plain", "GET", "/plain")),
    ("host", 410, [("Connection", "close"), _TEXT], ""),
]
LOG = [
    "*** dumping internal routing table ***",
    "[rule: 0] subject: path_info regexp: ^/health action: donotlog:",
    "[rule: 1] subject: path_info regexp: ^/logged action: log:seen ${PATH_INFO} [$1] "
    "${HTTP_HOST} ${qs[a]}",
    "[rule: 2] subject: path_info regexp: ^/forbidden action: break:403 Forbidden",
    "[rule: 3] subject: path_info regexp: ^/bare action: break:",
    "[rule: 4] subject: path_info regexp: ^/ret action: return:404",
    "[rule: 5] subject: path_info regexp: ^/old/(.*) action: redirect:/new/$1",
    "[rule: 6] subject: path_info regexp: ^/perm action: redirect-301:https://example.com/",
    "[rule: 7] subject: path_info regexp: ^/rw/(.*) action: rewrite:/rewritten/$1?from=rw",
    "[rule: 8] subject: ${PATH_INFO};/var func: equal action: "
    "addvar:MYVAR=hello-${REQUEST_METHOD}",
    "[rule: 9] subject: ${PATH_INFO};/hdr func: startswith action: "
    "addheader:X-Routed: ${PATH_INFO}",
    "[rule: 10] subject: http_host regexp: ^other\\.example$ action: break:410 Gone",
    "[rule: 11] subject: query_string regexp: secret action: break:401 Unauthorized",
    "[rule: 12] subject: ${PATH_INFO};^/re/(\\d+)$ func: regexp action: "
    "addvar:MYVAR=number-$1",
    "[rule: 13] subject: ${PATH_INFO};a func: !contains action: setmethod:POST",
    "[rule: 14] subject: request_uri regexp: ^/meth\\?x=1$ action: seturi:/changed?y=2",
    "[rule: 15] subject: path_info regexp: ^/lv action: logvar:who=me",
    "[rule: 16] subject: path_info regexp: ^/goto action: goto:skip",
    "[rule: 17] subject: path_info regexp: ^/goto action: break:500 Bad",
    "[rule: 18] label: skip",
    "[rule: 19] subject: path_info regexp: ^/cont action: continue:",
    "[rule: 20] subject: path_info regexp: ^/cont action: break:500 NotReached",
    "[rule: 21] action: addheader:X-Everyone: yes",
    "*** end of the internal routing table ***",
    "seen /logged [] bench.example b",
    "POST /logged?a=b 200 who=- hsize=62",
    "GET /forbidden 403 who=- hsize=71",
    "GET /bare 500 who=- hsize=0",
    "GET /ret 404 who=- hsize=71",
    "GET /old/a/b 302 who=- hsize=42",
    "GET /perm 301 who=- hsize=66",
    "POST /rw/x?q=1 200 who=- hsize=62",
    "GET /var 200 who=- hsize=62",
    "POST /hdr/1 200 who=- hsize=80",
    "GET /qs?secret=1 401 who=- hsize=74",
    "POST /re/42 200 who=- hsize=62",
    "POST /changed?y=2 200 who=- hsize=62",
    "POST /lv 200 who=me hsize=62",
    "POST /goto 200 who=- hsize=62",
    "POST /cont 200 who=- hsize=45",
    "GET /plain 200 who=- hsize=62",
    "GET / 410 who=- hsize=66",
]


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_the_routing_table_as_uwsgi_applies_it(tmp_path, mode):
    with Simulation(_argv(*ROUTES), app_dir=_app(tmp_path), mode=mode) as sim:
        answers = _answers(lambda path, headers: sim.get(path, headers=headers))
        log = list(sim.log)
    assert answers == EXPECTED
    assert _log(log) == LOG
    assert not [line for line in log if "not simulated" in line]


#: bad rules, and uWSGI's line for each (it exits 1)
BAD_RULES = [
    ("^/a", "invalid route syntax"),
    ("^/a nosuchaction:x", 'unable to register route "^/a nosuchaction:x"'),
    ("^/a break", "invalid route syntax"),  # (an action without its colon)
    ("^/a logvar:novalue", "invalid logvar syntax, must be key=value"),
]


@pytest.mark.parametrize("route, line", BAD_RULES)
def test_a_bad_rule_ends_the_start(tmp_path, route, line):
    with pytest.raises(StartRefusedError) as refused:
        Simulation(_argv("--route", route), app_dir=_app(tmp_path)).start()
    assert str(refused.value) == line
    assert refused.value.status == 1


def test_an_unknown_condition_ends_the_start(tmp_path):
    with pytest.raises(StartRefusedError, match='unable to find "nosuch" route condition'):
        Simulation(_argv("--route-if", "nosuch:x break:"), app_dir=_app(tmp_path)).start()


def test_what_is_not_simulated_is_said(tmp_path):
    argv = _argv("--route", "^/a send:hi", "--route-if", "ipv4in:${REMOTE_ADDR};10.0.0.0/8 "
                 "break:403", "--route", "^/b log:${time[iso]}")
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        warnings = [line for line in sim.log if "not simulated" in line]
    assert len(warnings) == 1
    for gap in ("route action 'send'", "route condition 'ipv4in'", "route var '${time[iso]}'"):
        assert gap in warnings[0]
    with pytest.raises(OptionNotSimulatedError, match="route action 'send'"):
        Simulation(_argv("--route", "^/a send:hi"), app_dir=_app(tmp_path), strict=True).start()


def test_goto_only_jumps_forward(tmp_path):
    argv = _argv("--route-label", "back", "--route", "^/ goto:back")
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        reply = sim.get("/x")
        assert reply.status is None
        assert '[uwsgi-route] ERROR "goto" instruction can only jump forward (check your ' \
            "label !!!)" in sim.log


def test_donotlog_wins_over_the_forced_log_lines(tmp_path):
    argv = ["--master", "--wsgi-file", "app.py", "--disable-logging", "--log-4xx",
            "--route", "^/quiet donotlog:", "--route", "^/ return:404"]
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        sim.get("/loud")
        sim.get("/quiet")
        lines = [line for line in sim.log if "=>" in line]
    assert len(lines) == 1 and "GET /loud" in lines[0]


def test_routes_and_add_header_together(tmp_path):
    argv = _argv("--add-header", "X-Global: 1", "--route-run", "addheader:X-Route: 2")
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        assert list(sim.get("/").headers) == [_TEXT, ("X-Global", "1"), ("X-Route", "2")]


@pytest.mark.real
@requires_real_uwsgi
def test_the_same_on_the_real_server(tmp_path):
    with RealUwsgi(_argv(*ROUTES), app_dir=_app(tmp_path)) as real:
        answers = _answers(lambda path, headers: real.get(path, timeout=5, headers=headers))
        time.sleep(0.5)
        log = real.app_log()
    assert answers == EXPECTED
    assert _log(log) == LOG


@pytest.mark.real
@requires_real_uwsgi
@pytest.mark.parametrize("route, line", BAD_RULES)
def test_a_bad_rule_ends_the_real_start(tmp_path, route, line):
    with pytest.raises(RealUwsgiError) as real:
        RealUwsgi(_argv("--route", route), app_dir=_app(tmp_path)).start()
    assert real.value.returncode == 1
    assert line in real.value.log


@pytest.mark.real
@requires_real_uwsgi
def test_real_routes_and_add_header_together(tmp_path):
    argv = _argv("--add-header", "X-Global: 1", "--route-run", "addheader:X-Route: 2")
    with RealUwsgi(argv, app_dir=_app(tmp_path)) as real:
        assert list(real.get("/", timeout=5).headers) == [_TEXT, ("X-Global", "1"),
                                                          ("X-Route", "2")]


ROUTED_LINES = ["app: -1|req: -1/1", "app: -1|req: -1/2", "app: -1|req: -1/3", "app: 0|req: 1/4"]


def _request_ids(log: list[str]) -> list[str]:
    return [line.split("|", 1)[1].split("]")[0] for line in log if "=>" in line]


def test_a_routed_request_is_logged_without_an_app(tmp_path):
    argv = ["--master", "--wsgi-file", "app.py", "--route", "^/r return:404",
            "--route", "^/b break:403 No", "--route", "^/n break:"]
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        for path in ("/r", "/b", "/n", "/x"):
            sim.get(path)
        assert _request_ids(sim.log) == ROUTED_LINES


@pytest.mark.real
@requires_real_uwsgi
def test_a_routed_request_is_logged_without_an_app_on_the_real_server(tmp_path):
    argv = ["--master", "--wsgi-file", "app.py", "--route", "^/r return:404",
            "--route", "^/b break:403 No", "--route", "^/n break:"]
    with RealUwsgi(argv, app_dir=_app(tmp_path)) as real:
        for path in ("/r", "/b", "/n", "/x"):
            real.get(path, timeout=5)
        time.sleep(0.5)
        assert _request_ids(real.app_log()) == ROUTED_LINES


def test_the_requests_a_route_ended_are_counted_per_core(tmp_path):
    argv = ["--master", "--wsgi-file", "app.py", "--stats", "127.0.0.1:1717",
            "--route", "^/r return:404", "--route", "^/c continue:"]
    with Simulation(argv, app_dir=_app(tmp_path)) as sim:
        for path in ("/r", "/c", "/x", "/r"):
            sim.get(path)
        core = sim.stats()["workers"][0]["cores"][0]
    assert (core["requests"], core["routed_requests"]) == (4, 2)


GROUPS = ["--route-if", "equal:${PATH_INFO};/z log:A[$1]B[$x]C[$]", "--route-run", "log:R[$2]",
          "--route-if", "equal:$1;$1 log:literal"]
#: a rule without a regexp has no groups: $N is dropped from its action, and a
#: condition's argument keeps it as written (observed)
GROUP_LINES = ["A[]B[$x]C[$]", "R[]", "literal"]


def test_a_rule_without_a_regexp_has_no_groups(tmp_path):
    with Simulation(["--master", "--wsgi-file", "app.py", *GROUPS], app_dir=_app(tmp_path)) as sim:
        sim.get("/z")
        assert [line for line in sim.log if line[:2] in ("A[", "R[", "li")] == GROUP_LINES


@pytest.mark.real
@requires_real_uwsgi
def test_a_rule_without_a_regexp_has_no_groups_on_the_real_server(tmp_path):
    with RealUwsgi(["--master", "--wsgi-file", "app.py", *GROUPS], app_dir=_app(tmp_path)) as real:
        real.get("/z", timeout=5)
        time.sleep(0.5)
        assert [line for line in real.app_log() if line[:2] in ("A[", "R[", "li")] == GROUP_LINES


HEADERS_APP = """
def application(env, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Powered-By", "app"),
                              ("X-Secret", "s")])
    return [env.get("REMOTE_USER", "-").encode()]
"""
AUTH = "Basic " + __import__("base64").b64encode(b"admin:s3cret").decode()
WRONG = "Basic " + __import__("base64").b64encode(b"admin:nope").decode()
HEADER_ROUTES = ["--del-header", "x-powered-by", "--route", "^/hide remheader:X-Secret",
                 "--route", "^/admin basicauth:Staff only,admin:s3cret",
                 "--route", "^/maybe basicauth-next:Staff,admin:s3cret",
                 "--route", "^/maybe return:403"]
#: path, Authorization -> status, headers, body (uWSGI 2.0.30's answers)
HEADER_CASES = [
    ("/", None, 200, [_TEXT, ("X-Secret", "s")], "-"),
    ("/hide", None, 200, [_TEXT], "-"),
    ("/admin", None, 401, [("WWW-Authenticate", 'Basic realm="Staff only"')], "Unauthorized"),
    ("/admin", WRONG, 401, [("WWW-Authenticate", 'Basic realm="Staff only"')],
     "Unauthorized"),
    ("/admin", AUTH, 200, [_TEXT, ("X-Secret", "s")], "admin"),
    ("/maybe", WRONG, 403, [_TEXT, ("Content-Length", "9")], "Forbidden"),
    ("/maybe", AUTH, 403, [_TEXT, ("Content-Length", "9")], "Forbidden"),
]


def _header_answers(get) -> list[tuple]:
    out = []
    for path, auth, *_ in HEADER_CASES:
        reply = get(path, {"Authorization": auth} if auth else {})
        out.append((path, auth, reply.status, list(reply.headers), reply.body.decode()))
    return out


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_headers_removed_and_basic_auth(tmp_path, mode):
    (tmp_path / "app.py").write_text(textwrap.dedent(HEADERS_APP))
    argv = ["--master", "--wsgi-file", "app.py", *HEADER_ROUTES]
    with Simulation(argv, app_dir=tmp_path, mode=mode) as sim:
        answers = _header_answers(lambda path, headers: sim.get(path, headers=headers))
        assert not [line for line in sim.log if "not simulated" in line]
    assert answers == [tuple(case) for case in HEADER_CASES]


@pytest.mark.real
@requires_real_uwsgi
def test_headers_removed_and_basic_auth_on_the_real_server(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(HEADERS_APP))
    argv = ["--master", "--wsgi-file", "app.py", *HEADER_ROUTES]
    with RealUwsgi(argv, app_dir=tmp_path) as real:
        answers = _header_answers(lambda path, headers: real.get(path, timeout=5,
                                                                 headers=headers))
    assert answers == [tuple(case) for case in HEADER_CASES]


STATIC_ROUTES = ["--route", "^/f static:{dir}/st.txt", "--route", "^/g static:{dir}/missing.txt",
                 "--route", "^/h static-next:{dir}/missing.txt"]


def _static_answers(get, tmp_path) -> list[tuple]:
    out = []
    for path in ("/f", "/g", "/h"):
        reply = get(path)
        out.append((path, reply.status, [h for h in reply.headers if h[0] != "Last-Modified"],
                    reply.body))
    return out


#: a route's static file: served without a Content-Type (no static option loaded the
#: mime types), the request ended either way; static-next goes on to the app
STATIC_EXPECTED = [("/f", 200, [("Content-Length", "13")], b"hello static\n"),
                   ("/g", None, [], b""),
                   ("/h", 200, [_TEXT], None)]


def _static_setup(tmp_path) -> list[str]:
    _app(tmp_path)
    (tmp_path / "st.txt").write_text("hello static\n")
    return ["--master", "--wsgi-file", "app.py",
            *[arg.format(dir=tmp_path) for arg in STATIC_ROUTES]]


def _static_check(answers: list[tuple]) -> None:
    assert [a[:3] for a in answers] == [e[:3] for e in STATIC_EXPECTED]
    assert answers[0][3] == STATIC_EXPECTED[0][3] and answers[1][3] == b""


@pytest.mark.parametrize("mode", ["sim", "fork"])
def test_a_static_route(tmp_path, mode):
    with Simulation(_static_setup(tmp_path), app_dir=tmp_path, mode=mode) as sim:
        _static_check(_static_answers(sim.get, tmp_path))
        lines = [line for line in sim.log if "GET /f" in line]
        assert "via sendfile()" in lines[0] and "app: -1|req: -1/1" in lines[0]


@pytest.mark.real
@requires_real_uwsgi
def test_a_static_route_on_the_real_server(tmp_path):
    with RealUwsgi(_static_setup(tmp_path), app_dir=tmp_path) as real:
        _static_check(_static_answers(lambda p: real.get(p, timeout=5), tmp_path))
        time.sleep(0.3)
        lines = [line for line in real.app_log() if "GET /f" in line]
        assert "via sendfile()" in lines[0] and "app: -1|req: -1/1" in lines[0]
