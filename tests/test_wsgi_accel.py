"""The optional C accelerator of the WSGI call (``server/_cwsgi.c``).

Random request programs (apps returning bytes, lists, tuples, generators, iterables
with a ``close()`` that may raise; raising before or after ``start_response``; bad
headers and statuses, non-latin-1 text, ``exc_info``, the write callable, calling
``start_response`` twice, ``wsgi.input`` reads, ``uwsgi.env``, non-bytes items) must
give the same replies, log and trace digest with the C build as with the Python
twins (``SIMUWSGI_PURE_PYTHON=1``, in a subprocess: the connection's base class is
chosen when the module is imported).
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("simuwsgi.server._cwsgi")

APP = r'''
import json, sys, uwsgi

class Body:
    """An iterable with close(): the response loop must call it."""
    def __init__(self, chunks, fail):
        self.chunks, self.fail = chunks, fail
    def __iter__(self):
        return iter(self.chunks)
    def close(self):
        uwsgi.log("close called")
        if self.fail:
            raise ValueError("close fails")

def gen(chunks, fail_at, base):
    for i, chunk in enumerate(chunks):
        if i == fail_at:
            raise (KeyboardInterrupt if base else RuntimeError)("generator fails")
        yield chunk

def application(environ, start_response):
    prog = json.loads(environ["HTTP_X_PROGRAM"])
    env = getattr(uwsgi, "env", None) is environ
    keys = sorted(k for k in environ if k != "HTTP_X_PROGRAM")
    notes = [env, keys, environ["wsgi.version"], environ["wsgi.multithread"],
             environ["wsgi.multiprocess"], environ["uwsgi.version"],
             environ.get("CONTENT_LENGTH"), environ["PATH_INFO"], environ["QUERY_STRING"]]
    write = None
    for op, arg in prog["ops"]:
        try:
            if op == "sr":
                write = start_response(*arg)
                notes.append(type(write).__name__)
            elif op == "sr_exc":
                try:
                    raise ValueError("the app's error")
                except ValueError:
                    start_response(arg, [], sys.exc_info())
            elif op == "sr_kw":
                start_response(arg, [], exc_info=None)
            elif op == "sr_raw":
                start_response(*[tuple(h) if isinstance(h, list) else h for h in arg])
            elif op == "write":
                (write or start_response("200 OK", []))(arg.encode("latin-1"))
            elif op == "read":
                notes.append(environ["wsgi.input"].read(*arg).decode("latin-1"))
            elif op == "readline":
                notes.append(environ["wsgi.input"].readline().decode("latin-1"))
            elif op == "raise":
                raise RuntimeError("the app fails")
        except Exception as exc:
            notes.append("%s: %s" % (type(exc).__name__, exc))
            if prog.get("reraise"):
                raise
    chunks = [c.encode("latin-1") for c in prog["chunks"]] + [repr(notes).encode()]
    kind = prog["kind"]
    if kind == "bytes":
        return b"".join(chunks)
    if kind == "list":
        return chunks
    if kind == "tuple":
        return tuple(chunks)
    if kind == "str":
        return "abc"
    if kind == "odd":
        return [chunks[0], 5, None, chunks[-1]]
    if kind == "gen":
        return gen(chunks, prog.get("fail_at", -1), prog.get("base", False))
    if kind == "body":
        return Body(chunks, prog.get("close_fails", False))
    if kind == "none":
        return None
    if kind == "bytearray":
        return [bytearray(b"x"), chunks[-1]]
    raise RuntimeError("no body")
'''

STATUSES = ["200 OK", "404 Not Found", "404", "299", "20", "", "200 caf\u00e9",
            "200 \u20ac", "500 Oops", 200, "201 Created"]
HEADERS = [[["Content-Type", "text/plain"]], [], [["X-A", "1"], ["X-B", "caf\u00e9"]],
           [["X-Bad", "\u20ac"]], [["Only-One"]], [[1, "x"]], [["X", 2]], ["not-a-tuple"],
           [["X-Big", "v" * 70000]], [["A", "1"], ["A", "2"], ["B", "3"]]]
KINDS = ["bytes", "list", "tuple", "str", "odd", "gen", "body", "none", "bytearray", "raise"]


def _program(rng: random.Random) -> dict:
    ops: list[list] = []
    for _ in range(rng.randint(0, 4)):
        op = rng.choice(["sr", "sr", "sr", "sr_exc", "sr_kw", "sr_raw", "write", "read",
                         "readline", "raise"])
        if op == "sr":
            headers = rng.choice(HEADERS)
            ops.append([op, [rng.choice(STATUSES), [tuple(h) if isinstance(h, list) else h
                                                     for h in headers]]])
        elif op in ("sr_exc", "sr_kw"):
            ops.append([op, rng.choice(STATUSES)])
        elif op == "sr_raw":  # headers not in a list, or no headers at all
            ops.append([op, rng.choice([["200 OK"], ["200 OK", ("A", "b")], []])])
        elif op == "write":
            ops.append([op, rng.choice(["w", "", "written"])])
        elif op == "read":
            ops.append([op, rng.choice([[], [3], [0], [-1]])])
        else:
            ops.append([op, None])
    prog = {"ops": ops, "kind": rng.choice(KINDS),
            "chunks": rng.sample(["a", "", "bc", "d\u00e9f"], rng.randint(0, 3)),
            "reraise": rng.random() < 0.2}
    if prog["kind"] == "gen":
        prog["fail_at"] = rng.choice([-1, -1, 0, 1])
        prog["base"] = rng.random() < 0.3
    if prog["kind"] == "body":
        prog["close_fails"] = rng.random() < 0.5
    return prog


def run(app_dir: str, seed: int, extra: list[str]) -> dict:
    """The replies, log and trace digest of 40 random requests (in this process)."""
    from simuwsgi import Simulation
    from simuwsgi.server import workers

    rng = random.Random(seed)
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py", *extra],
                    app_dir=app_dir, seed=seed) as sim:
        requests = []
        for i in range(40):
            method, body = rng.choice([("GET", b""), ("POST", b"line1\nline2\nrest"),
                                       ("POST", b"x" * 10)])
            path = rng.choice(["/", "/a%20b?q=1", "/caf%C3%A9"])
            requests.append(sim.submit(method, path, body=body, at=i * 0.01,
                                       headers={"X-Program": json.dumps(_program(rng))}))
        sim.wait(requests, timeout=60)
        replies = [None if r.response is None else
                   [r.response.status, r.response.headers, r.response.body.decode("latin-1"),
                    r.response.raw.decode("latin-1"), r.response.reason] for r in requests]
        return {"c": type(workers._call_app).__name__ != "function", "replies": replies,
                "digest": sim.trace.digest(),
                # an unhandled item's address differs from run to run
                "log": [re.sub(r"0x[0-9a-f]+", "0x?", line) for line in sim.log]}


def _in_subprocess(app_dir, seed: int, extra: list[str], pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("SIMUWSGI_PURE_PYTHON", None)
    if pure:
        env["SIMUWSGI_PURE_PYTHON"] = "1"
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_wsgi_accel import run
        print(json.dumps(run({str(app_dir)!r}, {seed}, {extra!r})))
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("extra", [[], ["--threads", "2"], ["--lazy-apps"]])
def test_the_c_wsgi_call_gives_what_the_python_twin_gives(tmp_path, extra):
    (tmp_path / "app.py").write_text(APP)
    logs = []
    for seed in range(3):
        fast = _in_subprocess(tmp_path, seed, extra, pure=False)
        slow = _in_subprocess(tmp_path, seed, extra, pure=True)
        assert fast["c"] and not slow["c"]
        assert fast["replies"] == slow["replies"]
        assert fast["log"] == slow["log"]
        assert fast["digest"] == slow["digest"]
        logs += fast["log"] + [repr(reply) for reply in fast["replies"]]
    # the programs reach the paths they are meant to (in the log, or in a reply's notes)
    log = "\n".join(logs)
    for seen in ("close called", "ValueError: close fails", "Unhandled object from iterator",
                 "RuntimeError: generator fails", "KeyboardInterrupt: generator fails",
                 "RuntimeError: the app fails", "OSError: headers already sent",
                 "TypeError: http header", "latin1", "SystemError"):
        assert seen in log


def test_the_wsgi_accelerator_is_used_unless_pure_python():
    from simuwsgi.server import wire, workers

    pure = bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    assert (wire._c is None) == pure
    assert (type(workers._call_app).__name__ == "function") == pure


def test_the_uwsgi_c_functions_survive_the_virtual_fork_as_they_are(tmp_path):
    """``uwsgi.start_response`` (and the write callable) kept in an app global before
    the fork: a C function, the same object in every worker, as after uWSGI's fork(),
    and not one of the objects the virtual fork reports as shared."""
    from simuwsgi import Simulation

    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import uwsgi
        SR = uwsgi.start_response
        def application(environ, start_response):
            write = SR("200 OK", [])
            write(b"%r " % (SR is uwsgi.start_response is start_response))
            return [repr(SR).encode()]
    """))
    with Simulation(["--master", "--processes", "2", "--wsgi-file", "app.py"],
                    app_dir=tmp_path) as sim:
        bodies = {sim.get("/").body for _ in range(4)}
        assert bodies == {b"True <built-in function uwsgi_spit>"}
        assert not sim.trace.select("vfork.shared")
