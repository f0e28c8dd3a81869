"""Helpers for the shared-state tests: an app that runs the snippet it is sent."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simuwsgi import Simulation

EXEC_APP = '''
import json, uwsgi
GLOBALS = {"uwsgi": uwsgi}
EXEC_MARK = True

def enc(v):
    if isinstance(v, (bytes, bytearray)):
        return ["b", bytes(v).hex()]
    if isinstance(v, (list, tuple)):
        return [enc(x) for x in v]
    return v

def application(environ, start_response):
    code = environ["wsgi.input"].read().decode()
    ns = dict(GLOBALS)
    try:
        exec(code, ns)
        out = enc(ns.get("out"))
    except Exception as exc:
        out = ["exc", type(exc).__name__, str(exc)]
    start_response("200 OK", [])
    return [json.dumps(out).encode()]
'''


def start(tmp_path: Path, *options: str, extra: str = "") -> Simulation:
    (tmp_path / "app.py").write_text(EXEC_APP + extra)
    sim = Simulation(["--master", *options, "--wsgi-file", "app.py"], app_dir=tmp_path)
    sim.start()
    return sim


def run(sim: Simulation, code: str) -> Any:
    """Run ``code`` in a worker during a request; returns its ``out`` (JSON-decoded)."""
    r = sim.request("POST", "/", body=code.encode())
    assert r.status == 200, r
    return json.loads(r.body)


def b(data: bytes) -> list[str]:
    return ["b", data.hex()]
