"""The stats server (``--stats``): ``Simulation.stats()``, ``simuwsgi serve``'s stats
socket, and their differential tests against pyuwsgi 2.0.30's document."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _uwsgi_process import get, run_with

from simuwsgi import Simulation
from simuwsgi.modes.real import free_port
from simuwsgi.serve import ServedSimulation
from simuwsgi.protocol import decode_stats, decode_stats_http, encode_stats

VECTORS = Path(__file__).parent / "vectors"
APP = ("import time, uwsgi\n"
       "def application(e, s):\n"
       "    if e['PATH_INFO'] == '/slow':\n        time.sleep(3)\n"
       "    if e['PATH_INFO'] == '/lock':\n        uwsgi.lock(1)\n"
       "    if e['PATH_INFO'] == '/cache':\n        uwsgi.cache_get(b'k', 'c1')\n"
       "    s('200 OK', [])\n    return [b'ok']\n")


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "spool").mkdir()
    return tmp_path


def _shape(value: Any) -> Any:
    """Keys (in order) and value types, not values."""
    if isinstance(value, dict):
        return [(key, _shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value).__name__


def test_the_captured_document_and_the_simulated_one_have_one_shape(tmp_path: Path) -> None:
    vector = json.loads((VECTORS / "stats_server_output.json").read_text())
    real = decode_stats(bytes.fromhex(vector["response_hex"]))
    (tmp_path / "capture_app.py").write_text(APP)
    options = ["--master", "--processes", "2", "--chdir", str(tmp_path), "--socket",
               "127.0.0.1:39161", "--stats", "127.0.0.1:9191", "--cache2",
               "name=default,items=10", "--wsgi-file", "capture_app.py"]
    with Simulation(options, app_dir=tmp_path) as sim:
        sim.advance(1)
        sim.request("GET", "/")
        doc = sim.stats()
    assert _shape(doc) == _shape(real)
    for key in ("version", "listen_queue", "load", "locks", "caches"):
        assert doc[key] == real[key]
    assert doc["sockets"] == real["sockets"]
    assert sorted(w["requests"] for w in doc["workers"]) == [0, 1]
    assert [w["respawn_count"] for w in doc["workers"]] == [1, 1]  # each spawn counts
    # the encoder writes the simulated document as uWSGI writes its own
    assert encode_stats(real) == bytes.fromhex(vector["response_hex"])


OPTIONS = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--spooler", "spool",
           "--cron", "5 -1 -1 -1 -1 echo hi", "--locks", "1", "--cache2", "name=c1,items=5"]


def test_a_busy_core_shows_its_request(app_dir: Path) -> None:
    with Simulation(OPTIONS + ["--stats", "127.0.0.1:9191"], app_dir=app_dir) as sim:
        sim.advance(1)
        sim.submit("GET", "/slow?x=1", headers={"Host": "h"})
        sim.advance(0.5)
        doc = sim.stats()
    busy = next(w for w in doc["workers"] if w["status"] == "busy")
    core = busy["cores"][0]
    assert core["in_request"] == 1
    assert core["vars"][:4] == ["REQUEST_METHOD=GET", "PATH_INFO=/slow",
                                "REQUEST_URI=/slow?x=1", "QUERY_STRING=x=1"]
    assert core["vars"][-2:] == ["HTTP_HOST=h", ""]
    assert core["req_info"] == {"request_start": 1767225601}
    assert busy["apps"][0]["requests"] == 1 and busy["requests"] == 0
    assert [lock for item in doc["locks"] for lock in item][-1] == \
        f"spooler on {app_dir / 'spool'}"
    assert doc["spoolers"] == [{"dir": str(app_dir / "spool"), "pid": doc["spoolers"][0]["pid"],
                                "tasks": 0, "respawns": 0, "running": 0}]
    assert doc["crons"][0]["command"] == "echo hi" and doc["crons"][0]["minute"] == 5


@pytest.mark.parametrize("ssl", [False, True])
def test_a_build_with_ssl_names_each_crons_legion(tmp_path, ssl):
    # master_utils.c writes "legion" under #ifdef UWSGI_SSL (checked against a real SSL
    # build in tests/real/test_legion_real.py)
    crons = ["--cron", "5 -1 -1 -1 -1 echo hi", *(["--legion-cron", "lg 5 -1 -1 -1 -1 x"]
                                                 if ssl else [])]
    with Simulation(["--master", *crons], app_dir=tmp_path, allow_no_app=True,
                    ssl=ssl) as sim:
        doc = sim.stats()
    keys = ["minute", "hour", "day", "month", "week", "command", "unique", "pid", "started_at"]
    if ssl:
        keys.insert(7, "legion")
    assert [list(c) for c in doc["crons"]] == [keys] * len(doc["crons"])
    assert [c.get("legion") for c in doc["crons"]] == (["", "lg"] if ssl else [None])


def test_counters_locks_and_caches(app_dir: Path) -> None:
    options = OPTIONS + ["--harakiri", "1", "--processes", "1"]
    with Simulation(options, app_dir=app_dir) as sim:
        sim.advance(1)
        sim.request("GET", "/lock")  # the worker keeps user lock 1
        sim.request("GET", "/cache")
        doc = sim.stats()
        worker = sim.inst.workers[1]
        assert doc["locks"][1] == {"user 1": worker.pid}
        assert (doc["caches"][0]["hits"], doc["caches"][0]["miss"]) == (0, 1)
        sim.uwsgi.cache_set(b"k", b"v", 0, "c1")
        sim.uwsgi.cache_get(b"k", "c1")
        assert sim.stats()["caches"][0]["hits"] == 1
        sim.submit("GET", "/slow")
        sim.advance(3)
        doc = sim.stats()
        assert doc["workers"][0]["harakiri_count"] == 1
        assert doc["workers"][0]["respawn_count"] == 2


def test_no_cores_no_metrics_and_minified(app_dir: Path) -> None:
    base = ["--master", "--wsgi-file", "app.py", "--stats", "127.0.0.1:9191",
            "--enable-metrics"]
    with Simulation(base, app_dir=app_dir) as sim:
        doc = sim.stats()
        assert "metrics" in doc and "cores" in doc["workers"][0]
        assert doc["metrics"]["core.busy_workers"] == {"type": 1, "oid": "5.3", "value": 0}
        assert [lock for item in doc["locks"] for lock in item][-1] == "metrics"
    with Simulation(base + ["--stats-no-cores", "--stats-no-metrics"], app_dir=app_dir) as sim:
        doc = sim.stats()
        assert "metrics" not in doc and "cores" not in doc["workers"][0]
        assert list(doc["workers"][0])[-1] == "apps"


@pytest.mark.parametrize(("extra", "fd"), [
    ([], 9), (["--processes", "4"], 16), (["--mules", "2"], 22), (["--processes", "2",
     "--mules", "1"], 20), (["--cache2", "name=a,items=2", "--cache2", "name=b,items=2"], 12),
    (["--spooler", "spool"], 14), (["--socket", "127.0.0.1:0"], 11)])
def test_the_enabled_line(app_dir: Path, extra: list[str], fd: int) -> None:
    options = ["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py",
               "--stats", "127.0.0.1:0", *extra]
    with Simulation(options, app_dir=app_dir) as sim:
        assert f"*** Stats server enabled on 127.0.0.1:0 fd: {fd} ***" in sim.log


def _read_all(address: str, send: bytes = b"") -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        if send:
            conn.sendall(send)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return data


def test_serve_answers_on_the_stats_address(app_dir: Path) -> None:
    options = ["--master", "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py",
               "--stats", "127.0.0.1:0"]
    with ServedSimulation(options, app_dir=app_dir) as served:
        doc = decode_stats(_read_all(served.address("stats")))
        assert doc == served.call(served.sim.stats)
        assert doc["workers"][0]["status"] == "idle"
    with ServedSimulation(options + ["--stats-http", "--stats-minified"],
                          app_dir=app_dir) as served:
        raw = _read_all(served.address("stats"), b"GET / HTTP/1.0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.0 200 OK\r\n") and b"\n\t" not in raw
        assert decode_stats_http(raw)["version"] == "2.0.30"


def _names(doc: dict[str, Any]) -> Any:
    """The document with the run's own values (pids, times, ports, paths) masked."""
    text = json.dumps(_shape(doc))
    return json.loads(text)


@pytest.mark.real
def test_real_document_shape(app_dir: Path) -> None:
    port = free_port()
    got: dict[str, Any] = {}

    def scenario(url: str) -> None:
        slow = threading.Thread(target=lambda: get(url + "/slow?x=1"))
        slow.start()
        # while /slow (3 s) runs, once it has begun and the master has measured the
        # listen queue (max_queue, at its first 1 s tick) with /slow no longer in it
        # (a tick just before the worker accepted it says queue 1: CI saw it once)
        deadline = time.monotonic() + 2.5
        while True:
            got["doc"] = doc = decode_stats(_read_all(f"127.0.0.1:{port}"))
            if (any(w["status"] == "busy" for w in doc["workers"])
                    and all(s["max_queue"] and not s["queue"] for s in doc["sockets"])) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        slow.join()

    lines = run_with(OPTIONS + ["--stats", f"127.0.0.1:{port}"], app_dir, scenario)
    real = got["doc"]
    http_port = next(s["name"] for s in real["sockets"]).rsplit(":", 1)[1]
    with Simulation(OPTIONS + ["--stats", f"127.0.0.1:{port}", "--http-socket",
                               f"127.0.0.1:{http_port}"], app_dir=app_dir) as sim:
        sim.advance(1)
        sim.request("GET", "/", headers=[("Accept-Encoding", "identity")])
        sim.submit("GET", "/slow?x=1", headers=[
            ("Accept-Encoding", "identity"), ("Host", f"127.0.0.1:{http_port}"),
            ("User-Agent", "Python-urllib/3.11"), ("Connection", "close")])
        sim.advance(0.5)
        doc = sim.stats()
    assert _shape(doc) == _shape(real) or _shape(doc["workers"][::-1]) == _shape(real["workers"])
    assert doc["locks"] == real["locks"]
    assert doc["caches"] == real["caches"] and doc["sockets"] == real["sockets"]
    for mine, theirs in zip(doc["spoolers"], real["spoolers"], strict=True):
        assert {**mine, "pid": 0} == {**theirs, "pid": 0}
    assert [{**c, "pid": 0} for c in doc["crons"]] == [{**c, "pid": 0} for c in real["crons"]]

    def busy(d: dict[str, Any]) -> dict[str, Any]:
        return next(w for w in d["workers"] if w["status"] == "busy")

    mask = re.compile(r"^(SERVER_NAME)=.*")
    assert [mask.sub(r"\1=", v) for v in busy(doc)["cores"][0]["vars"]] == \
        [mask.sub(r"\1=", v) for v in busy(real)["cores"][0]["vars"]]
    for d in (doc, real):  # the app counts the request in flight, the worker does not
        assert busy(d)["apps"][0]["requests"] == busy(d)["requests"] + 1
    assert "*** Stats server enabled on " in "\n".join(lines)
    # the descriptor number follows a model exact for one feature at a time (see
    # simuwsgi.server.stats.enabled_line): masked here
    line = next(x for x in lines if x.startswith("*** Stats server"))
    fd = re.compile(r"fd: \d+")
    assert fd.sub("fd: N", line) in [fd.sub("fd: N", x) for x in sim.log]


@pytest.mark.real
def test_real_metrics_names_types_and_oids(app_dir: Path) -> None:
    port = free_port()
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py", "--enable-metrics",
               "--metric", "name=mine,type=gauge,oid=100.1", "--stats", f"127.0.0.1:{port}"]
    got: dict[str, Any] = {}

    def scenario(_url: str) -> None:
        got["doc"] = decode_stats(_read_all(f"127.0.0.1:{port}"))

    run_with(options, app_dir, scenario)
    with Simulation(options + ["--http-socket", "127.0.0.1:0"], app_dir=app_dir) as sim:
        doc = sim.stats()

    def table(d: dict[str, Any]) -> list[tuple[str, int, str]]:
        return [(name, m["type"], m["oid"]) for name, m in d["metrics"].items()]

    assert table(doc) == table(got["doc"])
    assert doc["locks"] == got["doc"]["locks"]


def test_a_cluster_node_exposes_its_stats(app_dir: Path) -> None:
    from simuwsgi import Cluster

    cluster = Cluster()
    for name in ("a", "b"):
        cluster.add(name, ["--master", "--socket", ":3031", "--wsgi-file", "app.py",
                           "--stats", ":9191"], app_dir=app_dir)
    with cluster:
        cluster.expose("b", "127.0.0.1:0", protocol="stats")
        doc = cluster.serve(duration=20, client=lambda bound: decode_stats(
            _read_all(bound["b"])))
        assert doc["pid"] == cluster["b"].inst.master.pid
        assert _shape(doc) == _shape(cluster["b"].stats())


def test_without_a_master_there_is_no_stats_server(app_dir: Path) -> None:
    from simuwsgi._errors import ConfigError

    with Simulation(["--wsgi-file", "app.py"], app_dir=app_dir) as sim, \
            pytest.raises(ConfigError, match="needs the master process"):
        sim.stats()


def test_each_core_of_a_threaded_worker(app_dir: Path) -> None:
    with Simulation(["--master", "--threads", "2", "--wsgi-file", "app.py"],
                    app_dir=app_dir) as sim:
        sim.submit("GET", "/slow?a")
        sim.submit("GET", "/slow?b")
        sim.advance(0.5)
        worker = sim.stats()["workers"][0]
        assert [c["in_request"] for c in worker["cores"]] == [1, 1]
        assert sorted(c["vars"][3] for c in worker["cores"]) == ["QUERY_STRING=a",
                                                                 "QUERY_STRING=b"]
        assert worker["status"] == "busy" and worker["apps"][0]["requests"] == 2
        sim.advance(3)
        worker = sim.stats()["workers"][0]
        assert [c["requests"] for c in worker["cores"]] == [1, 1]
        assert worker["requests"] == 2 and worker["apps"][0]["requests"] == 2


def test_the_metrics_lock_comes_before_the_spoolers(app_dir: Path) -> None:
    """uWSGI creates the metrics' lock (uwsgi_setup_metrics) before the spoolers', in
    either order of the options (as the real server lists them)."""
    for options in (["--spooler", "spool", "--enable-metrics"],
                    ["--enable-metrics", "--spooler", "spool"]):
        with Simulation(["--master", "--wsgi-file", "app.py", *options],
                        app_dir=app_dir) as sim:
            names = [name for item in sim.stats()["locks"] for name in item]
        assert names[-2:] == ["metrics", f"spooler on {app_dir / 'spool'}"]


@pytest.mark.parametrize("run", [False, True])
def test_a_cron_command_runs_until_the_master_reaps_it(app_dir: Path, run: bool) -> None:
    """``crons[].started_at`` is the firing's time while the command runs, 0 again once
    the master reaped it (it kept the last firing for good: always running); ``pid`` is
    the command's while it runs when the simulation runs it (``cron_commands``)."""
    with Simulation(["--master", "--wsgi-file", "app.py", "--cron", "-1 -1 -1 -1 -1 true"],
                    app_dir=app_dir, cron_commands=run, start="2026-01-01T00:00:00") as sim:
        sim.advance(1.5)  # fired at 1 s (the first look)
        (cron,) = sim.stats()["crons"]
        assert cron["started_at"] == 1767225601
        assert (cron["pid"] > 0) == run
        sim.advance(1)  # the master's next look reaps it
        (cron,) = sim.stats()["crons"]
        assert (cron["pid"], cron["started_at"]) == (-1, 0)
