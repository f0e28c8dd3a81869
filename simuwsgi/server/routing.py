"""uWSGI's internal routing, as pyuwsgi 2.0.30 has it (``core/routing.c``,
``plugins/router_redirect``, ``plugins/router_rewrite``; the docs' "uWSGI internal
routing").

The rules come from ``--route`` (a regexp on ``PATH_INFO``), ``--route-host``,
``--route-uri``, ``--route-qs``, ``--route-remote-addr``, ``--route-user-agent``,
``--route-remote-user``, ``--route-referer``, ``--route-if``/``--route-if-not``
(``CONDITION:ARGS ACTION``), ``--route-run`` (always) and ``--route-label`` (a target
for ``goto``), one table in the order given; the master logs it at start
(``*** dumping internal routing table ***``). A worker applies it to each request once
its vars are parsed, before the app (``uwsgi_apply_routes``): each matching rule runs
its action, which goes on to the next rule, ends the routing (``continue``/``last``,
``rewrite-last``: the app runs) or ends the request (``break``, ``return``,
``redirect``: the app does not run; what the action wrote is the response).

In an action's argument ``$1``..``$9`` are the rule's regexp groups (of a ``regexp``
condition, for ``--route-if``) and ``${VAR}`` a request var (the last one of that name,
so a var an action added wins); ``${qs[KEY]}``, ``${cookie[NAME]}``,
``${time[unix]}`` and ``${uwsgi[wid]}``/``${uwsgi[pid]}`` are the route vars here.

Actions: ``continue``/``last``, ``break`` (with a status: ``Connection: close``,
``Content-Type: text/plain`` and no body), ``return``/``break-with-status`` (the status's
phrase as a ``text/plain`` body), ``log``, ``donotlog``, ``logvar``, ``goto`` (forward
only), ``addvar``, ``addheader``, ``setmethod``, ``seturi``, ``setpathinfo``,
``setscriptname``, ``setremoteaddr``, ``setscheme``, ``fixpathinfo``, ``harakiri``,
``redirect``/``redirect-302``, ``redirect-301``/``redirect-permanent``, ``rewrite``,
``rewrite-last``, ``delheader``/``remheader`` (the response drops that header, as
``--rem-header`` drops it from every response), ``basicauth``/``basicauth-next`` with
the credentials in the rule (an htpasswd file is not simulated), ``static``/``static-next``
(a file, served as ``--static-map`` serves one). Conditions:
``exists``, ``isfile``, ``isdir``, ``islink``, ``isexec``,
``equal`` (``isequal``, ``eq``, ``==``), ``startswith``, ``endswith``, ``contains``
(``contain``), ``regexp`` (``re``), ``ishigher`` (``>``) and the other comparisons,
``empty``. Any other action, condition or route var is said not simulated at start (an
error with ``strict``).

The other three tables have the same options (``--error-route``, ``--response-route``,
``--final-route`` and their ``-host``... ``-run``, ``-label``) and a rule on the
response's status (``-status``), and are dumped after the first:

* the error table runs as each status is prepared (``core/writer.c``
  ``uwsgi_response_prepare_headers``: ``start_response``, and an action's own status,
  whatever it is; its own actions skip it). A rule that ends the request has written the
  response (``redirect``, ``return``, ``static``...): the app's headers and body are
  then ignored. A ``delheader`` there drops the app's header, added after it.
* the response table runs once, as the headers (or the first body bytes) go out,
  before ``--add-header``'s lines: its ``addheader`` lines go out with them; a rule
  that ends the request leaves the rest unsent.
* the final table runs once the response is written, after the request's counters and
  before its log line; its actions that would write (``redirect``, ``static``...) are
  not simulated (said at start) and do nothing.

``${uwsgi[status]}`` is the status prepared so far (0 before one), ``${uwsgi[rsize]}``
the body bytes written so far. A bad rule ends the start with uWSGI's line (``invalid route syntax``,
``unable to find "NAME" route condition``, ``unable to register route "RULE"``).
Regexps are Python's ``re``, which agrees with PCRE on the usual patterns.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .._errors import StartRefusedError
from .wire import _PHRASES, Connection

if TYPE_CHECKING:
    from .interface import Instance
    from .processes import Worker

__all__ = ["BREAK", "CONTINUE", "ROUTE_OPTIONS", "Router", "gaps"]

#: The four tables (``uwsgi.routes``, ``error_routes``, ``response_routes``,
#: ``final_routes``), in the order the master dumps them.
TABLES = ("", "error", "response", "final")
#: Each option that adds a rule: its table, and the request field a regexp rule looks
#: at (a label is a goto target, ``if``/``if-not`` a condition, ``run`` has no
#: subject, ``status`` is a rule on the response's status: not in the first table).
ROUTE_OPTIONS: dict[str, tuple[str, str | None]] = {
    "route": ("", "path_info"), "route-host": ("", "http_host"),
    "route-uri": ("", "request_uri"), "route-qs": ("", "query_string"),
    "route-remote-addr": ("", "remote_addr"), "route-user-agent": ("", "user_agent"),
    "route-remote-user": ("", "remote_user"), "route-referer": ("", "referer"),
    "route-label": ("", None), "route-if": ("", "if"), "route-if-not": ("", "if-not"),
    "route-run": ("", "run"),
    "error-route": ("error", "path_info"), "error-route-status": ("error", "status"),
    "error-route-host": ("error", "http_host"), "error-route-uri": ("error", "request_uri"),
    "error-route-qs": ("error", "query_string"),
    "error-route-remote-addr": ("error", "remote_addr"),
    "error-route-user-agent": ("error", "user_agent"),
    "error-route-remote-user": ("error", "remote_user"),
    "error-route-referer": ("error", "referer"), "error-route-label": ("error", None),
    "error-route-if": ("error", "if"), "error-route-if-not": ("error", "if-not"),
    "error-route-run": ("error", "run"),
    "response-route": ("response", "path_info"),
    "response-route-status": ("response", "status"),
    "response-route-host": ("response", "http_host"),
    "response-route-uri": ("response", "request_uri"),
    "response-route-qs": ("response", "query_string"),
    "response-route-remote-addr": ("response", "remote_addr"),
    "response-route-user-agent": ("response", "user_agent"),
    "response-route-remote-user": ("response", "remote_user"),
    "response-route-referer": ("response", "referer"),
    "response-route-label": ("response", None), "response-route-if": ("response", "if"),
    "response-route-if-not": ("response", "if-not"),
    "response-route-run": ("response", "run"),
    "final-route": ("final", "path_info"), "final-route-status": ("final", "status"),
    "final-route-host": ("final", "http_host"), "final-route-uri": ("final", "request_uri"),
    "final-route-qs": ("final", "query_string"),
    "final-route-remote-addr": ("final", "remote_addr"),
    "final-route-user-agent": ("final", "user_agent"),
    "final-route-remote-user": ("final", "remote_user"),
    "final-route-referer": ("final", "referer"), "final-route-label": ("final", None),
    "final-route-if": ("final", "if"), "final-route-if-not": ("final", "if-not"),
    "final-route-run": ("final", "run"),
}
#: The var behind each request field.
_FIELD_VARS = {"path_info": "PATH_INFO", "http_host": "HTTP_HOST",
               "request_uri": "REQUEST_URI", "query_string": "QUERY_STRING",
               "remote_addr": "REMOTE_ADDR", "user_agent": "HTTP_USER_AGENT",
               "remote_user": "REMOTE_USER", "referer": "HTTP_REFERER"}

NEXT, CONTINUE, BREAK = "next", "continue", "break"
_DIGITS = "0123456789"


@dataclass
class _Rule:
    pos: int
    label: str | None = None
    subject: str | None = None  # a field, or a condition's argument
    regexp: str = ""  # the rule's regexp, or the condition's name
    pattern: re.Pattern[str] | None = None
    condition: Callable[[_Run, _Rule], tuple[bool, re.Match[str] | None]] | None = None
    negate: bool = False
    action: str = ""  # "name:arg" as given
    name: str = ""
    arg: str = ""
    runner: Callable[[_Run, _Rule, re.Match[str] | None], str] | None = None


@dataclass
class _Run:
    """One request's pass through the table."""

    inst: Instance
    worker: Worker
    req: Any
    vars: dict[str, str]
    fields: dict[str, str]
    added: list[tuple[str, str]] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    rules: list[_Rule] = field(default_factory=list)
    pc: int = 0
    goto: int = 0
    #: the response's connection (the error and response tables write on it), its
    #: status (``wsgi_req->status``: 0 before one is prepared) and body size so far
    conn: Any = None
    status: int = 0
    rsize: int = 0
    router: Any = None  # the table's Router

    def var(self, key: str) -> str | None:
        for k, v in reversed(self.added):
            if k == key:
                return v
        return self.vars.get(key)

    def append(self, key: str, value: str) -> None:
        """``uwsgi_req_append``: a var added after the packet's (it wins over them)."""
        self.added.append((key, value))


def _apply_groups(text: str, match: re.Match[str] | None) -> str:
    """``uwsgi_regexp_apply_ovec``: ``$N`` is group N (empty if it did not take part or
    does not exist: a rule with no regexp has none), ``$`` before anything else stays."""
    out, dollar = [], False
    groups = match.re.groups if match is not None else -1
    for ch in text:
        if dollar:
            dollar = False
            if ch in _DIGITS:
                n = int(ch)
                if match is not None and n <= groups:
                    out.append(match.group(n) or "")
                continue
            out.append("$" + ch)
        elif ch == "$":
            dollar = True
        else:
            out.append(ch)
    return "".join(out)


def _translate(run: _Run, text: str, match: re.Match[str] | None,
               groups: bool = True) -> str:
    """``uwsgi_routing_translate``: the rule's groups (an action's argument; not a
    condition's, where ``$1`` stays as written), then ``${VAR}``/``${name[key]}``."""
    if groups:
        text = _apply_groups(text, match)
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            out.append(_route_var(run, text[i + 2:end]) or "")
            i = end + 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _route_var(run: _Run, key: str) -> str | None:
    bracket = key.find("[")
    if bracket > 0 and key.endswith("]"):
        name, arg = key[:bracket], key[bracket + 1:-1]
        func = _ROUTE_VARS.get(name)
        if func is not None:
            return func(run, arg)
    return run.var(key)


def _qs(run: _Run, key: str) -> str | None:
    for k, v in urllib.parse.parse_qsl(run.var("QUERY_STRING") or "", keep_blank_values=True):
        if k == key:
            return v
    return None


def _cookie(run: _Run, name: str) -> str | None:
    for part in (run.var("HTTP_COOKIE") or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def _time(run: _Run, what: str) -> str | None:
    return str(int(run.inst.wall())) if what == "unix" else None


def _uwsgi(run: _Run, what: str) -> str | None:
    if what == "wid":
        return str(run.worker.id)
    if what == "pid":
        return str(run.worker.pid)
    if what == "status":
        return str(run.status)
    if what == "rsize":
        return str(run.rsize)
    return None


_ROUTE_VARS: dict[str, Callable[[_Run, str], str | None]] = {
    "qs": _qs, "cookie": _cookie, "time": _time, "uwsgi": _uwsgi}
#: what the route vars of ``_ROUTE_VARS`` answer (others are said not simulated)
_ROUTE_VAR_KEYS = {"time": ("unix",), "uwsgi": ("wid", "pid", "status", "rsize")}
_KNOWN_VARS = ("cookie", "qs", "mime", "uwsgi", "time", "httptime", "base64", "hex")


# -- conditions (their argument: "A;B" translated on both sides) ------------------------
def _two(run: _Run, rule: _Rule) -> tuple[str, str] | None:
    assert rule.subject is not None
    left, sep, right = rule.subject.partition(";")
    if not sep:
        return None
    return _translate(run, left, None, False), _translate(run, right, None, False)


def _compare(test: Callable[[str, str], bool]) -> Any:
    def condition(run: _Run, rule: _Rule) -> tuple[bool, None]:
        pair = _two(run, rule)
        return (pair is not None and test(*pair)), None
    return condition


def _num(text: str) -> int:
    """``uwsgi_str_num``: the leading digits (0 if none)."""
    digits = re.match(r"\d*", text)
    return int(digits.group()) if digits and digits.group() else 0


def _path_test(test: Callable[[str], bool]) -> Any:
    def condition(run: _Run, rule: _Rule) -> tuple[bool, None]:
        assert rule.subject is not None
        return test(_translate(run, rule.subject, None, False)), None
    return condition


def _regexp_condition(run: _Run, rule: _Rule) -> tuple[bool, re.Match[str] | None]:
    assert rule.subject is not None
    left, sep, pattern = rule.subject.partition(";")
    if not sep:
        return False, None
    match = re.search(pattern, _translate(run, left, None, False))
    return match is not None, match


def _status(run: _Run, rule: _Rule) -> tuple[bool, None]:
    """``uwsgi_route_condition_status`` (an ``-status`` rule): the response's status is
    the rule's number."""
    return run.status == _num(rule.regexp), None


def _empty(run: _Run, rule: _Rule) -> tuple[bool, None]:
    assert rule.subject is not None
    return _translate(run, rule.subject, None, False) == "", None


_CONDITIONS: dict[str, Any] = {
    "exists": _path_test(os.path.exists), "isfile": _path_test(os.path.isfile),
    "isdir": _path_test(os.path.isdir), "islink": _path_test(os.path.islink),
    "isexec": _path_test(lambda p: os.access(p, os.X_OK)),
    "startswith": _compare(lambda a, b: a.startswith(b)),
    "endswith": _compare(lambda a, b: a.endswith(b)),
    "contains": _compare(lambda a, b: b in a), "contain": _compare(lambda a, b: b in a),
    "regexp": _regexp_condition, "re": _regexp_condition, "empty": _empty,
}
for _name in ("equal", "isequal", "eq", "=="):
    _CONDITIONS[_name] = _compare(lambda a, b: a == b)
for _names, _test in ((("ishigher", ">"), lambda a, b: _num(a) > _num(b)),
                      (("islower", "<"), lambda a, b: _num(a) < _num(b)),
                      (("ishigherequal", ">="), lambda a, b: _num(a) >= _num(b)),
                      (("islowerequal", "<="), lambda a, b: _num(a) <= _num(b))):
    for _name in _names:
        _CONDITIONS[_name] = _compare(_test)
#: uWSGI's other conditions (refused by nothing, not simulated here)
_OTHER_CONDITIONS = ("ipv4in", "ipv6in", "lord")


# -- actions ----------------------------------------------------------------------------
def _text(run: _Run, rule: _Rule, match: re.Match[str] | None, arg: str | None = None) -> str:
    return _translate(run, rule.arg if arg is None else arg, match)


def _conn(run: _Run) -> Any:
    """The request's connection, made when an action first writes on it."""
    if run.conn is not None:
        return run.conn
    if run.req.conn is None:
        run.req.conn = Connection(run.inst, run.req, run.worker)
        run.req.conn.app_id = -1  # no app chose it yet: the log line says app -1
    return run.req.conn


def _continue(run: _Run, rule: _Rule, match: Any) -> str:
    return CONTINUE


def _break(run: _Run, rule: _Rule, match: Any) -> str:
    if len(rule.arg) >= 3:
        conn = _conn(run)
        if conn._prepare(rule.arg.encode("latin-1", "replace")):
            conn._add_header("Connection", "close")
            conn._add_header("Content-Type", "text/plain")
            conn.write_headers()
    return BREAK


def _return(run: _Run, rule: _Rule, match: Any) -> str:
    phrase = _PHRASES.get(rule.arg[:3]) if len(rule.arg) >= 3 else None
    if phrase is None:
        return BREAK
    conn = _conn(run)
    if conn._prepare(f"{rule.arg} {phrase}".encode("latin-1", "replace")):
        conn._add_header("Content-Type", "text/plain")
        conn._add_header("Content-Length", str(len(phrase)))
        conn.write_body(phrase.encode("latin-1"))
    return BREAK


def _redirect(status: str, body: bytes) -> Any:
    def action(run: _Run, rule: _Rule, match: Any) -> str:
        conn = _conn(run)
        if conn._prepare(status.encode()):
            location = _text(run, rule, match)
            if conn._add_header("Location", location):
                conn.write_body(body)
        return BREAK
    return action


def _log(run: _Run, rule: _Rule, match: Any) -> str:
    run.inst.log(_text(run, rule, match), run.worker)
    return NEXT


def _donotlog(run: _Run, rule: _Rule, match: Any) -> str:
    run.req.do_not_log = True
    return NEXT


def _logvar(run: _Run, rule: _Rule, match: Any) -> str:
    key, _, value = rule.arg.partition("=")
    misc = run.inst.subsystems.get("misc")
    if misc is not None:
        misc.state().logvars[key.encode("latin-1")] = \
            _text(run, rule, match, value).encode("latin-1", "replace")
    return NEXT


def _goto(run: _Run, rule: _Rule, match: Any) -> str:
    target = _text(run, rule, match)
    found = next((r.pos for r in run.rules if r.label == target), None)
    run.goto = found if found is not None else _num(rule.arg)
    if run.goto <= run.pc:
        run.goto = 0
        run.inst.log('[uwsgi-route] ERROR "goto" instruction can only jump forward '
                     "(check your label !!!)", run.worker)
        return BREAK
    return NEXT


def _addvar(run: _Run, rule: _Rule, match: Any) -> str:
    key, _, value = rule.arg.partition("=")
    run.append(key, _text(run, rule, match, value))
    return NEXT


def _addheader(run: _Run, rule: _Rule, match: Any) -> str:
    run.headers.append(_text(run, rule, match))
    return NEXT


def _remheader(run: _Run, rule: _Rule, match: Any) -> str:
    run.removed.append(_text(run, rule, match))
    return NEXT


def _basicauth(then_next: bool) -> Any:
    """``router_basicauth`` with the credentials in the rule (``REALM,USER:PASSWORD``): a
    request without them gets ``401 Authorization Required`` (``basicauth-next``: goes on
    to the next rule when it sent other ones); once a rule admitted it, ``REMOTE_USER``
    says who, and the later rules let it through."""
    def action(run: _Run, rule: _Rule, match: Any) -> str:
        realm, _, credentials = rule.arg.partition(",")
        if run.fields.get("remote_user"):
            return NEXT
        authorization = run.fields.get("authorization", "")
        if len(authorization) > 7 and credentials:
            if authorization.startswith("Basic "):
                try:
                    auth = base64.b64decode(authorization[6:], validate=False).decode(
                        "latin-1")
                except (binascii.Error, ValueError):
                    auth = None
                if auth is not None:
                    if auth == credentials:
                        user = credentials.partition(":")[0]
                        run.append("REMOTE_USER", user)
                        run.fields["remote_user"] = user
                        return NEXT
                    if then_next:
                        return NEXT
        conn = _conn(run)
        if conn._prepare(b"401 Authorization Required"):
            conn._add_header("WWW-Authenticate", f'Basic realm="{realm}"')
            conn.write_body(b"Unauthorized")
        return BREAK
    return action


def _static(then_next: bool) -> Any:
    """``router_static``: ``uwsgi_file_serve`` of the file (as a ``--static-map`` file,
    with no Content-Type unless a static option loaded the mime types); the request
    ends whether or not it was there (``static-next``: the routing goes on either way)."""
    def action(run: _Run, rule: _Rule, match: Any) -> str:
        from .reading import reading
        from .static import StaticFiles

        static = reading(run.inst).static
        if static is None:  # no static option: the routes' own (no mime types)
            router = run.router
            if router.static is None:
                router.static = StaticFiles.from_options(run.inst, always=True)
            static = router.static
        env = {**run.vars, **dict(run.added)}
        static._file_serve(run.worker, run.req, env, _text(run, rule, match), "", True,
                           run.conn)
        return NEXT if then_next else BREAK
    return action


def _setter(var: str, field_name: str | None) -> Any:
    def action(run: _Run, rule: _Rule, match: Any) -> str:
        value = _text(run, rule, match)
        run.append(var, value)
        if field_name is not None:
            run.fields[field_name] = value
        return NEXT
    return action


def _fixpathinfo(run: _Run, rule: _Rule, match: Any) -> str:
    script = run.var("SCRIPT_NAME") or ""
    if script:
        path = run.fields["path_info"][len(script):]
        run.append("PATH_INFO", path)
        run.fields["path_info"] = path
    return NEXT


def _harakiri(run: _Run, rule: _Rule, match: Any) -> str:
    seconds = _num(rule.arg)
    if seconds > 0:
        run.inst.arm_harakiri(run.worker, seconds, user=True)
    return NEXT


def _rewrite(last: bool) -> Any:
    def action(run: _Run, rule: _Rule, match: Any) -> str:
        target = _text(run, rule, match)
        path, sep, query = target.partition("?")
        old_query = run.fields.get("query_string", "")
        if sep:
            query = f"{query}&{old_query}" if old_query else query
        else:
            query = old_query
        path = urllib.parse.unquote(path, errors="surrogateescape")
        run.append("PATH_INFO", path)
        run.fields["path_info"] = path
        run.append("QUERY_STRING", query)
        run.fields["query_string"] = query
        return CONTINUE if last else NEXT
    return action


_ACTIONS: dict[str, Any] = {
    "continue": _continue, "last": _continue, "break": _break, "return": _return,
    "break-with-status": _return, "log": _log, "donotlog": _donotlog, "logvar": _logvar,
    "goto": _goto, "addvar": _addvar, "addheader": _addheader,
    "setmethod": _setter("REQUEST_METHOD", "method"),
    "seturi": _setter("REQUEST_URI", "request_uri"),
    "setpathinfo": _setter("PATH_INFO", "path_info"),
    "setscriptname": _setter("SCRIPT_NAME", None),
    "setremoteaddr": _setter("REMOTE_ADDR", "remote_addr"),
    "setscheme": _setter("UWSGI_SCHEME", None), "fixpathinfo": _fixpathinfo,
    "harakiri": _harakiri,
    "redirect": _redirect("302 Found", b"Moved"), "redirect-302": _redirect("302 Found", b"Moved"),
    "redirect-301": _redirect("301 Moved Permanently", b"Moved Permanently"),
    "redirect-permanent": _redirect("301 Moved Permanently", b"Moved Permanently"),
    "rewrite": _rewrite(False), "rewrite-last": _rewrite(True),
    "delheader": _remheader, "remheader": _remheader,
    "static": _static(False), "static-next": _static(True),
    "basicauth": _basicauth(False), "basicauth-next": _basicauth(True),
}
#: The routers pyuwsgi 2.0.30 registers that are not simulated (a rule using one is
#: accepted, as uWSGI accepts it, and said not simulated).
_OTHER_ACTIONS = (
    "donotoffload", "clearheaders", "resetheaders",
    "disableheaders", "signal", "send", "send-crnl", "chdir", "setapp", "setuser",
    "sethome", "setfile", "setdocroot", "setprocname", "alarm", "setmodifier1",
    "setmodifier2", "+", "-", "*", "/", "flush", "fixcl", "forcecl", "cache", "cachestore", "cache-store", "cachevar",
    "cacheinc", "cachedec", "cachemul", "cachediv", "uwsgi", "http", "fastcgi", "scgi",
    "xattr", "spnego", "ldapauth", "ldapauth-next", "radius", "rpc", "rpcret", "rpcnext",
    "rpcraw", "rpcvar", "metric", "metricinc", "metricdec", "metricmul", "metricdiv",
    "metricset", "hash", "memcached", "memcachedstore", "redis", "redisstore", "access",
    "expires", "gzip", "chunked", "toupper", "template", "tofile", "to-file",
    "sendfile", "fastfile", "xsendfile", "xaccel", "geo", "goto-next", "sethome",
)


#: The actions that write a response: in the final table (run once the response is
#: written) they are not simulated, and do nothing.
_WRITERS = ("break", "return", "break-with-status", "redirect", "redirect-302",
            "redirect-301", "redirect-permanent", "static", "static-next", "basicauth",
            "basicauth-next")


class Router:
    """One routing table and how a worker applies it to a request."""

    def __init__(self, rules: list[_Rule], table: str = "") -> None:
        self.rules = rules
        self.table = table  # "", "error", "response" or "final"
        if table == "final":
            for rule in rules:
                if rule.name in _WRITERS:
                    rule.runner = None  # said not simulated at start
        #: the file serving of ``static`` actions when no static option made one
        self.static: Any = None
        #: whether a rule may take a header off the response (delheader/remheader), or
        #: add one (addheader)
        self.removes_headers = any(r.runner is _remheader for r in rules)
        self.adds_headers = any(r.runner is _addheader for r in rules)

    @classmethod
    def from_options(cls, opts: Any, table: str = "") -> Router | None:
        """``table``'s rules (in the options' order), None without any; a bad rule is
        ``StartRefusedError`` with uWSGI's line."""
        rules: list[_Rule] = []
        for name, value in opts.items:
            where, kind = ROUTE_OPTIONS.get(name, (None, None))
            if where != table or not isinstance(value, str):
                continue
            rules.append(_parse(len(rules), kind, value))
        return cls(rules, table) if rules else None

    def dump(self) -> list[str]:
        """``uwsgi_routing_dump``: the table, as the master logs it at start."""
        name = f"{self.table} routing table" if self.table else "routing table"
        lines = [f"*** dumping internal {name} ***"]
        for r in self.rules:
            if r.label is not None:
                lines.append(f"[rule: {r.pos}] label: {r.label}")
            elif r.subject is None:
                lines.append(f"[rule: {r.pos}] action: {r.action}")
            else:
                how = "func" if r.condition is not None else "regexp"
                lines.append(f"[rule: {r.pos}] subject: {r.subject} {how}: "
                             f"{'!' if r.negate else ''}{r.regexp} action: {r.action}")
        lines.append(f"*** end of the internal {name} ***")
        return lines

    def apply(self, inst: Instance, w: Worker, req: Any, vars_: dict[str, str], *,
              conn: Any = None, status: int = 0, rsize: int = 0) -> str:
        """``uwsgi_apply_routes_do`` for one request: ``CONTINUE`` (the app runs, with
        the vars and headers the actions added on ``req``) or ``BREAK`` (the response is
        what the actions wrote on ``req.conn``, if anything). The error and response
        tables run on the response's ``conn``, with its status and body size so far."""
        fields = {name: vars_.get(var, "") for name, var in _FIELD_VARS.items()}
        fields["method"] = vars_.get("REQUEST_METHOD", "")
        fields["authorization"] = vars_.get("HTTP_AUTHORIZATION", "")
        run = _Run(inst, w, req, vars_, fields, rules=self.rules, conn=conn, status=status,
                   rsize=rsize, router=self)
        outcome = CONTINUE
        for rule in self.rules:
            if rule.label is None and not (run.goto > 0 and run.pc < run.goto):
                run.goto = 0
                outcome = self._rule(run, rule)
                if outcome != NEXT:
                    break
            run.pc += 1
        outcome = CONTINUE if outcome == NEXT else outcome
        if run.added:
            req.appended_vars = (*req.appended_vars, *run.added)
        if run.headers:  # wsgi_req->additional_headers: every table's, in order
            req.route_headers = (*req.route_headers, *run.headers)
        if run.removed:
            req.removed_headers = (*req.removed_headers, *run.removed)
        if fields["method"] != vars_.get("REQUEST_METHOD", ""):
            req.routed_method = fields["method"]  # the request line of the log says so
        if fields["request_uri"] != vars_.get("REQUEST_URI", ""):
            req.routed_uri = fields["request_uri"]
        if fields["remote_addr"] != vars_.get("REMOTE_ADDR", ""):
            req.routed_addr = fields["remote_addr"]
        if outcome == BREAK:
            if self.table != "final":  # the final table writes nothing
                _conn(run)
            if hasattr(w, "main"):
                w.main.core_routed[w.core] += 1
            else:  # the app's call in a fork mode child: its parent counts it
                w.routed += 1
        return outcome

    def on_response(self, conn: Any) -> str:
        """The error or response table on ``conn``'s request (``uwsgi_apply_error_routes``
        as the status is prepared, ``uwsgi_apply_response_routes`` as the headers go
        out), with the vars the app got."""
        return self.apply(conn.inst, conn.worker, conn.req, _app_vars(conn.req), conn=conn,
                          status=conn.status_code, rsize=conn.response_size)

    def after_response(self, inst: Instance, w: Worker, req: Any, status: int,
                       rsize: int) -> None:
        """The final table (``uwsgi_apply_final_routes``), once the response is written,
        with its status and size."""
        self.apply(inst, w, req, _app_vars(req), status=status, rsize=rsize)

    def _rule(self, run: _Run, rule: _Rule) -> str:
        match = None
        if rule.condition is not None:
            ok, match = rule.condition(run, rule)
            if ok == rule.negate:
                return NEXT
            if rule.negate:
                match = None
        elif rule.subject is not None:
            assert rule.pattern is not None
            match = rule.pattern.search(run.fields.get(rule.subject, ""))
            if match is None:
                return NEXT
        if rule.runner is None:  # not simulated (said at start): the rule does nothing
            return NEXT
        return rule.runner(run, rule, match)


def _app_vars(req: Any) -> dict[str, str]:
    """The vars the app got (and those a route or a static index appended)."""
    vars_ = req.env_vars if req.env_vars is not None else (req.vars or {})
    return {**vars_, **dict(req.appended_vars)} if req.appended_vars else vars_


def _parse(pos: int, kind: str | None, value: str) -> _Rule:
    """``uwsgi_opt_add_route``."""
    rule = _Rule(pos=pos)
    if kind is None:
        rule.label = value
        return rule
    if kind == "run":
        command = value
    elif kind == "status":  # the number, and "func" in the dump (if_func is set)
        regexp, space, command = value.partition(" ")
        if not space:
            raise StartRefusedError("invalid route syntax")
        rule.subject, rule.regexp, rule.condition = regexp, regexp, _status
    else:
        regexp, space, command = value.partition(" ")
        if not space:
            raise StartRefusedError("invalid route syntax")
        if kind in ("if", "if-not"):
            name, colon, argument = regexp.partition(":")
            if not colon:
                raise StartRefusedError("invalid route condition syntax")
            rule.negate = kind == "if-not"
            rule.condition = _CONDITIONS.get(name) or (
                _no_condition if name in _OTHER_CONDITIONS else None)
            if rule.condition is None:
                raise StartRefusedError(f'unable to find "{name}" route condition')
            rule.regexp, rule.subject = name, argument
        else:
            rule.subject, rule.regexp = kind, regexp
            try:
                rule.pattern = re.compile(regexp)
            except re.error as exc:
                raise StartRefusedError(f"pcre error: {exc}") from None
    rule.action = command
    name, colon, arg = command.partition(":")
    if not colon:
        raise StartRefusedError("invalid route syntax")
    if name not in _ACTIONS and name not in _OTHER_ACTIONS:
        raise StartRefusedError(f'unable to register route "{value}"')
    rule.name, rule.arg, rule.runner = name, arg, _ACTIONS.get(name)
    if name == "logvar" and "=" not in arg:
        raise StartRefusedError("invalid logvar syntax, must be key=value")
    if name.startswith("basicauth") and "," not in arg:
        raise StartRefusedError(f"invalid route syntax: {arg}")
    if name == "addvar" and "=" not in arg:
        raise StartRefusedError("[uwsgi-route] invalid addvar syntax, must be KEY=VAL")
    return rule


def _no_condition(run: _Run, rule: _Rule) -> tuple[bool, None]:
    return False, None


def gaps(opts: Any) -> list[str]:
    """What the instance's routing uses that is not simulated: actions, conditions and
    route vars (as ``route action 'send'``...)."""
    out: list[str] = []
    for table in TABLES:
        try:
            router = Router.from_options(opts, table)
        except StartRefusedError:
            return []  # refused at start, with uWSGI's line
        kind = f"{table} route" if table else "route"
        for rule in router.rules if router is not None else ():
            if rule.label is not None:
                continue
            if rule.runner is None or (table == "final" and rule.name in _WRITERS):
                out.append(f"{kind} action '{rule.name}'")
            elif rule.name.startswith("basicauth") and ":" not in rule.arg.partition(",")[2]:
                out.append(f"{kind} action '{rule.name}' with an htpasswd file")
            if rule.condition is _no_condition:
                out.append(f"{kind} condition '{rule.regexp}'")
            for text in (rule.arg, rule.subject or ""):
                for name, key in re.findall(r"\$\{(\w+)\[([^\]]*)\]\}", text):
                    if name in _KNOWN_VARS and key not in _ROUTE_VAR_KEYS.get(name, (key,)):
                        out.append(f"route var '${{{name}[{key}]}}'")
                    elif name in _KNOWN_VARS and name not in _ROUTE_VARS:
                        out.append(f"route var '${{{name}[...]}}'")
    return list(dict.fromkeys(out))
