"""Differential tests of the spooler against real uWSGI 2.0.30 (``@pytest.mark.real``).

The same app and options run under both; the spooler function appends what it saw to a
JSON-lines file next to the app, and the endpoints return what ``uwsgi.spool`` did.
Both file-format directions are checked: files a simulation wrote are consumed by a
real spooler, and files real uWSGI wrote are consumed by a simulation.
"""

from __future__ import annotations

import functools
import json
import shutil
import textwrap
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import pytest

from simuwsgi import Simulation
from simuwsgi import protocol as sf
from simuwsgi.modes.real import RealUwsgi
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

pytestmark = pytest.mark.real

APP = textwrap.dedent('''
    import json, os, time, urllib.parse, uwsgi

    AT = []

    OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "obs.jsonl")

    def enc(x):
        return x.decode("latin-1") if isinstance(x, bytes) else repr(x)

    def spooler(d):
        rec = {"keys": sorted(("s:" + k) if isinstance(k, str) else ("b:" + enc(k)) for k in d),
               "vals": {(k if isinstance(k, str) else enc(k)): enc(v) for k, v in d.items()
                        if k != "spooler_task_name"},
               "name": enc(d["spooler_task_name"])}
        with open(OUT, "a") as f:
            f.write(json.dumps(rec) + "\\n")
        rc = d.get(b"rc", b"-2")
        if rc == b"none":
            return None
        if rc == b"raise":
            raise RuntimeError("boom")
        return int(rc)

    uwsgi.spooler = spooler

    def bad_cases():
        out = []
        for case in ({"a": b"1"}, {b"a": "x"}, {b"a": 5}, {b"a": [104, 105]}, "notadict"):
            try:
                out.append(os.path.basename(uwsgi.spool(case)).decode()[:19])
            except Exception as exc:
                out.append("%s: %s" % (type(exc).__name__, exc))
        try:
            uwsgi.spool(a=b"1")
        except Exception as exc:
            out.append("%s: %s" % (type(exc).__name__, exc))
        d = {b"x": b"1", b"body": b"B"}
        uwsgi.spool(d)
        out.append(sorted(k.decode() for k in d))
        return out

    def application(env, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        if env["PATH_INFO"] == "/bad":
            return [json.dumps(bad_cases()).encode()]
        spec = json.loads(urllib.parse.parse_qs(env["QUERY_STRING"])["j"][0])
        if spec.pop("at_soon", None):
            if not AT:
                AT.append(str(int(time.time()) + 3))  # one instant for every task
            spec["at"] = AT[0]
        d = {k.encode(): v.encode("latin-1") for k, v in spec.items()}
        path = uwsgi.spool(d)
        return [json.dumps({"dir": os.path.basename(os.path.dirname(path)).decode(),
                            "name": os.path.basename(path).decode()}).encode()]
''')


def _q(**vars: str) -> str:
    return "/?j=" + urllib.parse.quote(json.dumps(vars))


def _obs(app_dir: Path) -> list[dict]:
    path = app_dir / "obs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _shape(records: list[dict]) -> list[tuple]:
    """What must agree: keys with their types and the values (task names differ)."""
    return sorted((tuple(r["keys"]), tuple(sorted(r["vals"].items()))) for r in records)


def _spooled_names(app_dir: Path) -> list[str]:
    """The ``n`` var of each task file still in the spool directory ("" for none)."""
    names = []
    for path in (app_dir / "spool").rglob(sf.SPOOL_FILE_PREFIX + "*"):
        try:
            pairs = sf.decode_spool_file(path.read_bytes()).vars
        except (OSError, sf.SpoolFileError):
            continue  # removed meanwhile, or half written
        names.append(next((v.decode() for k, v in pairs if k == b"n"), ""))
    return names


def _run_real(app_dir: Path, opts: list[str], requests: list[str], wait: float,
              done: Callable[[list[dict]], bool] | None = None,
              gone: tuple[str, ...] = ()) -> list:
    """The bodies of ``requests`` on the real server, then ``wait`` seconds for its
    spooler - or, with ``done``, until ``done(observations)`` and the files of the tasks
    named ``gone`` ("" for a task with no name) are removed (each at most 4 times ``wait``: a loaded machine scans
    later; the comparison that follows says what is missing)."""
    require_real_uwsgi()
    bodies = []
    with RealUwsgi(opts, app_dir=app_dir, max_lifetime=60) as u:
        for path in requests:
            resp = u.request("GET", path)
            assert resp.status == 200, (resp, u.log_text()[-2000:])
            bodies.append(json.loads(resp.body))
        if done is None:
            time.sleep(wait)
        deadline = time.monotonic() + 4 * wait
        while done is not None and not done(_obs(app_dir)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if done is not None:  # a task writes its observation as it starts: the last one
            time.sleep(0.5)  # returns and its file goes (CI once saw two files still there)
        deadline = time.monotonic() + 4 * wait  # (CI once saw one there after 0.5 s)
        while set(gone) & set(_spooled_names(app_dir)) and time.monotonic() < deadline:
            time.sleep(0.05)
    return bodies


def _ran(records: list[dict], *, once: tuple[str, ...] = (), twice: tuple[str, ...] = ()
         ) -> bool:
    """Whether the tasks named ``once`` have run, and those named ``twice`` twice."""
    runs = [r["vals"].get("n", "") for r in records]
    return all(n in runs for n in once) and all(runs.count(n) >= 2 for n in twice)


def _run_sim(app_dir: Path, opts: list[str], requests: list[str], wait: float) -> list:
    bodies = []
    with Simulation(opts, app_dir=app_dir) as sim:
        for path in requests:
            resp = sim.get(path)
            assert resp.status == 200, resp
            bodies.append(json.loads(resp.body))
        sim.advance(wait)
    return bodies


def _both(tmp_path: Path, extra: list[str], requests: list[str], wait: float,
          done: Callable[[list[dict]], bool], gone: tuple[str, ...] = ()):
    results = {}
    runners = (("real", functools.partial(_run_real, done=done, gone=gone)),
               ("sim", _run_sim))
    for mode, runner in runners:
        app_dir = tmp_path / mode
        app_dir.mkdir()
        (app_dir / "app.py").write_text(APP)
        spool = app_dir / "spool"
        opts = ["--master", "--processes", "1", "--spooler", str(spool),
                "--spooler-frequency", "1", *extra, "--wsgi-file", "app.py"]
        bodies = runner(app_dir, opts, requests, wait)
        left = sorted(str(p.relative_to(spool).parent) for p in spool.rglob(sf.SPOOL_FILE_PREFIX + "*"))
        results[mode] = (bodies, _obs(app_dir), left)
    return results["real"], results["sim"]


def test_return_codes_body_and_key_types(tmp_path: Path) -> None:
    requests = [_q(n="ok", rc="-2"), _q(n="retry", rc="-1"), _q(n="ignore", rc="0"),
                _q(n="one", rc="1"), _q(n="none", rc="none"), _q(n="raise", rc="raise"),
                _q(n="body", body="\u00ffraw body", rc="-2"), "/bad"]
    (rb, robs, rleft), (sb, sobs, sleft) = _both(
        tmp_path, [], requests, 2.5,
        lambda obs: _ran(obs, once=("ok", "body"),
                         twice=("retry", "ignore", "one", "none", "raise")),
        gone=("ok", "body", ""))  # ("": /bad's tasks, last spooled, run once)
    assert rb[-1] == sb[-1]  # the ValueError messages and the mutated dict
    assert rleft == sleft and len(rleft) == 5
    for records in (robs, sobs):
        by_n: dict[str, int] = {}
        for r in records:
            by_n[r["vals"].get("n", "")] = by_n.get(r["vals"].get("n", ""), 0) + 1
        assert by_n["ok"] == 1 and by_n["body"] == 1
        for n in ("retry", "ignore", "one", "none", "raise"):
            assert by_n[n] >= 2, (n, by_n)  # kept and re-run at each scan
    first = lambda records: _shape({r["name"]: r for r in records}.values())
    assert first(robs) == first(sobs)


def test_ordered_priorities_and_at(tmp_path: Path) -> None:
    at = "1"
    requests = [_q(n="1", at_soon=at), _q(n="2", priority="9", at_soon=at),
                _q(n="3", priority="10", at_soon=at), _q(n="4", priority="1", at_soon=at),
                _q(n="5", at_soon=at)]
    # 'at' = 3 s after the first request: nothing runs before, then all in one scan
    real, sim = _both_at_now(tmp_path, ["--spooler-ordered"], requests, 5,
                             lambda obs: _ran(obs, once=("1", "2", "3", "4", "5")))
    assert [r["vals"]["n"] for r in real[1]] == ["4", "2", "3", "1", "5"]
    assert [r["vals"]["n"] for r in sim[1]] == ["4", "2", "3", "1", "5"]
    assert real[0] == [{"dir": d, "name": b["name"]} for d, b in
                       zip(["spool", "9", "10", "1", "spool"], real[0])]
    assert [b["dir"] for b in sim[0]] == ["spool", "9", "10", "1", "spool"]


def _both_at_now(tmp_path: Path, extra: list[str], requests: list[str], wait: float,
                 done: Callable[[list[dict]], bool]):
    results = []
    for mode in ("real", "sim"):
        app_dir = tmp_path / mode
        app_dir.mkdir()
        (app_dir / "app.py").write_text(APP)
        opts = ["--master", "--processes", "1", "--spooler", str(app_dir / "spool"),
                "--spooler-frequency", "1", *extra, "--wsgi-file", "app.py"]
        if mode == "real":
            bodies = _run_real(app_dir, opts, requests, wait, done)
        else:
            bodies = []
            with Simulation(opts, app_dir=app_dir, start=time.time()) as sim:
                for path in requests:
                    bodies.append(json.loads(sim.get(path).body))
                sim.advance(wait)
        results.append((bodies, _obs(app_dir)))
    return results


def test_files_written_by_simuwsgi_run_on_real_uwsgi(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (tmp_path / "app.py").write_text(APP)
    # the simulation only writes (an external spooler has no process)
    with Simulation(["--master", "--spooler-external", str(spool), "--wsgi-file", "app.py"],
                    app_dir=tmp_path, start=time.time() - 60) as sim:
        sim.uwsgi.spool({b"n": b"a", b"k": b"v"})
        sim.uwsgi.spool({b"n": b"b", b"body": b"\x00\xffbinary"})
        sim.uwsgi.spool({b"n": b"c", b"priority": b"3"})
        sim.uwsgi.spool({b"n": b"d", b"rc": b"-1"})
        written = sorted(str(p.relative_to(spool)) for p in spool.rglob(sf.SPOOL_FILE_PREFIX + "*"))
    assert len(written) == 4
    _run_real(tmp_path, ["--master", "--spooler", str(spool), "--spooler-ordered",
                         "--spooler-frequency", "1", "--wsgi-file", "app.py"], [], 2.5,
              lambda obs: _ran(obs, once=("a", "b", "c"), twice=("d",)))
    obs = _obs(tmp_path)
    names = {r["vals"]["n"]: r for r in obs}
    assert set(names) == {"a", "b", "c", "d"}
    assert names["b"]["keys"] == ["b:n", "s:body", "s:spooler_task_name"]
    assert names["b"]["vals"]["body"] == "\x00\xffbinary"
    assert names["c"]["vals"]["priority"] == "3"
    assert sorted(r["name"] for r in obs if r["vals"]["n"] != "d") == sorted(
        Path(w).name for w in written if "_" in w and not w.endswith(names["d"]["name"]))
    assert sum(1 for r in obs if r["vals"]["n"] == "d") >= 2
    left = sorted(str(p.relative_to(spool)) for p in spool.rglob(sf.SPOOL_FILE_PREFIX + "*"))
    assert left == [w for w in written if w.endswith(names["d"]["name"])]


def test_files_written_by_real_uwsgi_run_on_simuwsgi(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (tmp_path / "app.py").write_text(APP)
    opts = ["--master", "--spooler-external", str(spool), "--wsgi-file", "app.py"]
    bodies = _run_real(tmp_path, opts, [_q(n="a", k="v"), _q(n="b", body="payload"),
                                        _q(n="c", priority="7", rc="-1")], 0)
    files = {p.name: p.read_bytes() for p in spool.rglob(sf.SPOOL_FILE_PREFIX + "*")}
    assert sorted(files) == sorted(b["name"] for b in bodies)
    # the bytes real uWSGI wrote are exactly what simuwsgi's encoder produces
    for body, vars_ in zip(bodies, ([(b"n", b"a"), (b"k", b"v")], [(b"n", b"b")],
                                    [(b"n", b"c"), (b"priority", b"7"), (b"rc", b"-1")])):
        extra = b"payload" if body["name"] == bodies[1]["name"] else b""
        assert files[body["name"]] == sf.encode_spool_file(vars_, extra, truncate=True)
    with Simulation(["--master", "--spooler", str(spool), "--spooler-ordered",
                     "--spooler-frequency", "1", "--wsgi-file", "app.py"],
                    app_dir=tmp_path, start=time.time() + 5) as sim:
        sim.advance(2.5)
        left = sim.inst.subsystems["spooler"].pending()
    obs = _obs(tmp_path)
    assert {r["name"] for r in obs} == set(files)
    assert {r["vals"]["n"]: r["keys"] for r in obs}["b"] == ["b:n", "s:body", "s:spooler_task_name"]
    assert [Path(p).name for p in left] == [bodies[2]["name"]]
    shutil.rmtree(spool)
