"""The typed stub ``simuwsgi/stubs/uwsgi.pyi``: its names are uWSGI 2.0.30's, its
parameters positional-only where uWSGI's are, and its return annotations agree with what
the simulated (and real, see test_api_names/test_wire) functions return."""

from __future__ import annotations

import ast
import json
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from _sim import start
from test_api_names import NAMES_2_0_30, OPTIONAL

import simuwsgi

STUB = Path(simuwsgi.__file__).parent / "stubs" / "uwsgi.pyi"
#: the spooler group (api.md §2), absent from test_api_names' option-free run
SPOOLER_NAMES = {"spool", "send_to_spooler", "set_spooler_frequency", "spooler_jobs",
                 "spooler_pid", "spooler_pids", "spooler_get_task", "spoolers"}
#: functions whose keywords work (spool/send_to_spooler accept them but always fail)
KEYWORD_FUNCTIONS = {"mule_get_msg"}


def _tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def _public_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_")}


def _functions(tree: ast.Module) -> dict[str, list[ast.FunctionDef]]:
    out: dict[str, list[ast.FunctionDef]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out.setdefault(node.name, []).append(node)
    return out


def test_stub_names_are_the_2_0_30_names():
    expected = set(NAMES_2_0_30) | {"queue_size"} | SPOOLER_NAMES | {"env"}
    for names, _pointer in OPTIONAL.values():
        expected |= set(names)
    assert _public_names(_tree()) == expected


def test_parameters_are_positional_only():
    for name, defs in _functions(_tree()).items():
        if name in KEYWORD_FUNCTIONS:
            continue
        for fn in defs:
            assert not fn.args.args, f"{name}: {[a.arg for a in fn.args.args]} accept keywords"
            assert not fn.args.kwonlyargs and fn.args.kwarg is None, name


def test_stub_is_shipped_as_package_data():
    pyproject = (Path(simuwsgi.__file__).parent.parent / "pyproject.toml").read_text()
    assert "stubs/*.pyi" in pyproject


# -- return annotations against behaviour -------------------------------------------------
_NS: dict[str, Any] = {
    "Literal": Literal, "Any": Any, "Callable": typing.Callable, "TypeAlias": Any,
    "_TrueOrNone": Literal[True] | None,
    "_Text": str | bytes | memoryview,
}


def _returns(name: str) -> list[Any]:
    """The evaluated return annotations of ``name`` (one per overload)."""
    return [eval(ast.unparse(fn.returns), _NS) for fn in _functions(_tree())[name]]


def _allows(annotation: Any, value: Any) -> bool:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is Any:
        return True
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return any(_allows(a, value) for a in args)
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (list, tuple, dict):
        if not isinstance(value, origin):
            return False
        if origin is dict:
            return all(_allows(args[0], k) and _allows(args[1], v) for k, v in value.items())
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args) == len(value) and all(map(_allows, args, value))
        return all(_allows(args[0], v) for v in value)
    if isinstance(annotation, type):
        return isinstance(value, annotation) and not (annotation is int and
                                                      isinstance(value, bool) and
                                                      annotation is not bool)
    return True


#: name -> code whose ``out`` is the function's result, in a request
CASES = {
    "cache_set": "uwsgi.cache_set('k', b'v'); out = uwsgi.cache_set('k', b'w')",
    "cache_get": "out = uwsgi.cache_get('missing')",
    "cache_keys": "out = uwsgi.cache_keys()",
    "cache_inc": "out = uwsgi.cache_inc('n')",
    "cache_num": "out = uwsgi.cache_num('n')",
    "is_locked": "out = uwsgi.is_locked()",
    "lock": "out = uwsgi.lock(); uwsgi.unlock()",
    "rpc_list": "out = uwsgi.rpc_list()",
    "call": "out = uwsgi.call(b'nothing')",
    "signal_registered": "out = uwsgi.signal_registered(5)",
    "in_farm": "out = uwsgi.in_farm()",
    "i_am_the_spooler": "out = uwsgi.i_am_the_spooler()",
    "ready": "out = uwsgi.ready()",
    "log": "out = uwsgi.log('x')",
    "set_warning_message": "out = uwsgi.set_warning_message('w')",
    "mem": "out = uwsgi.mem()",
    "metric_inc": "out = uwsgi.metric_inc('nope')",
    "metric_get": "out = uwsgi.metric_get('nope')",
    "send": "out = uwsgi.send(b'')",
    "disconnect": "out = None",
    "async_sleep": "out = uwsgi.async_sleep(0)",
    "add_var": "out = uwsgi.add_var('A', 'B')",
    "get_logvar": "out = uwsgi.get_logvar('nope')",
    "queue_push": "out = uwsgi.queue_push(b'm')",
    "queue_last": "out = uwsgi.queue_last()",
    "queue_pull": "out = uwsgi.queue_pull()",
    "sharedarea_read8": "out = uwsgi.sharedarea_read8(0, 0)",
    "sharedarea_write8": "out = uwsgi.sharedarea_write8(0, 0, 1)",
    "snmp_incr_counter32": "out = uwsgi.snmp_incr_counter32(1)",
}


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    d = tmp_path_factory.mktemp("typing")
    extra = '''
def observe(environ, start_response):
    code = environ["wsgi.input"].read().decode()
    ns = {"uwsgi": uwsgi}
    exec(code, ns)
    start_response("200 OK", [])
    return [repr(ns.get("out")).encode()]
'''
    sim = start(d, "--processes", "1", "--cache", "10", "--locks", "1", "--queue", "4",
                "--queue-blocksize", "4096", "--sharedarea", "1", "--snmp",
                "--callable", "observe", extra=extra)
    results = {}
    with sim:
        for name, code in CASES.items():
            resp = sim.request("POST", "/", body=code.encode())
            assert resp.status == 200, (name, resp)
            results[name] = eval(resp.body.decode())
        opt = sim.request("POST", "/", body=b"out = uwsgi.opt").body
        workers = sim.request("POST", "/", body=b"out = uwsgi.workers()").body
        results["opt"] = eval(opt.decode())
        results["workers"] = eval(workers.decode())
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_return_annotation_allows_the_observed_value(name, observed):
    value = observed[name]
    assert any(_allows(a, value) for a in _returns(name)), (name, value, _returns(name))


def test_none_not_false_and_str_keys(observed):
    # the annotations would also admit these; pin the facts the stub documents
    assert observed["cache_set"] is None  # not False
    assert observed["is_locked"] is False  # a real bool
    assert all(isinstance(k, str) for k in observed["workers"][0])
    assert all(isinstance(k, str) for k in observed["opt"])
    assert all(v is True or isinstance(v, bytes) for v in observed["opt"].values())
    assert _allows(_returns("workers")[0], observed["workers"])


def test_positional_only_functions_refuse_keywords(tmp_path):
    tree = _tree()
    names = sorted(n for n, defs in _functions(tree).items()
                   if n not in KEYWORD_FUNCTIONS and any(fn.args.posonlyargs for fn in defs))
    code = ("out = {}\nfor n in NAMES:\n    f = getattr(uwsgi, n, None)\n"
            "    if f is None: continue\n"
            "    try:\n        f(zz=1)\n        out[n] = 'accepted'\n"
            "    except TypeError as e:\n        out[n] = str(e)\n"
            "    except Exception as e:\n        out[n] = type(e).__name__\n"
            ).replace("NAMES", json.dumps(names))
    with start(tmp_path, "--processes", "1", "--cache", "10", "--locks", "1") as sim:
        resp = sim.request("POST", "/", body=code.encode())
        out = json.loads(resp.body)
    assert out, "no function checked"
    from simuwsgi.subsystems.misc import NOT_SIMULATED

    for name, message in out.items():
        if name in NOT_SIMULATED:
            continue
        assert message.endswith("takes no keyword arguments"), (name, message)


def test_literal_empty_bytes_results(observed):
    assert observed["async_sleep"] == b""
    assert any(_allows(a, observed["async_sleep"]) for a in _returns("async_sleep"))


def test_facade_agrees_on_disagreements_with_types_uwsgi(tmp_path):
    """Points where the public types-uWSGI stubs and 2.0.30 differ (docs/typing.md),
    checked on the simulated module (real uWSGI gives the same, tests/test_wire.py and
    docs/typing.md)."""
    code = (
        "def attempt(f):\n"
        "    try:\n        return repr(f())\n"
        "    except Exception as e:\n        return type(e).__name__ + ': ' + str(e)\n"
        "out = [attempt(lambda: uwsgi.signal()), attempt(lambda: uwsgi.call('x')),\n"
        "       attempt(lambda: uwsgi.chunked_read_nb()),\n"
        "       attempt(lambda: uwsgi.connect('127.0.0.1:1', timeout=1)),\n"
        "       attempt(lambda: uwsgi.sendfile('app.py', 0, 0, filesize=1)),\n"
        "       attempt(lambda: uwsgi.websocket_send(message=b'x')),\n"
        "       [n for n in ('decorators', 'i_am_the_lord', 'spooler', 'post_fork_hook')\n"
        "        if hasattr(uwsgi, n)]]\n")
    with start(tmp_path, "--processes", "1") as sim:
        resp = sim.request("POST", "/", body=code.encode())
    out = json.loads(resp.body)
    assert out == [
        "TypeError: signal() takes at least 1 argument (0 given)",
        "ValueError: unable to call rpc function",
        "None",
        "TypeError: connect() takes no keyword arguments",
        "TypeError: sendfile() takes no keyword arguments",
        "TypeError: websocket_send() takes no keyword arguments",
        [],
    ]
