"""The optional C accelerator of a request's bookkeeping (``server/_creq.c``).

Random request programs (methods, paths with queries and %-escapes, headers, bodies,
apps answering various statuses, raising, sleeping, setting logvars, not calling
``start_response``) under the options the C path handles or hands back
(``--max-requests``, ``--harakiri``, ``--threads 2``, ``--disable-logging`` with
``--log-4xx``/``--log-5xx``, ``--memory-report``, ``--logformat``...) must give the same
replies, stats counters, log and trace digest with the C functions as with the Python
functions they stand for (run in a subprocess with ``SIMUWSGI_PURE_PYTHON=1``); so must
enough requests for the log and the trace to spill, requests that come over a
cluster's network (HTTP and uwsgi sockets), and requests between the events that replace
what a request reads (reloads, killed and respawned workers, cheaper spawns, a second
simulation, a class default changed: ``_cattr.h`` keeps no value across them).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from simuwsgi import Cluster, Simulation, simulation
from simuwsgi.server import workers

pytest.importorskip("simuwsgi.server._creq")

APP = """
import json, time, uwsgi

def tick(num):
    uwsgi.log("tick %d in worker %d" % (num, uwsgi.worker_id()))

uwsgi.register_signal(1, "workers", tick)
uwsgi.add_timer(1, 2)

def application(environ, start_response):
    query = environ["QUERY_STRING"]
    plan = json.loads(environ.get("HTTP_X_PLAN", "{}"))
    body = environ["wsgi.input"].read()
    if plan.get("sleep"):
        time.sleep(plan["sleep"])
    if plan.get("logvar"):
        uwsgi.set_logvar("who", plan["logvar"])
    if plan.get("force"):
        uwsgi.log_this_request()
    if plan.get("raise") == "before":
        raise RuntimeError("before start_response")
    if not plan.get("silent"):
        start_response(plan.get("status", "200 OK"), [("Content-Type", "text/plain"),
                                                      ("X-Query", query)])
    if plan.get("raise") == "after":
        raise ValueError("after start_response")
    chunks = [environ["PATH_INFO"].encode("latin-1"), b"|", body]
    return chunks * plan.get("repeat", 1)
"""

#: option sets: the C path's common cases and the ones it hands to the Python code
VARIANTS = {
    "plain": [],
    "max-requests": ["--max-requests", "3", "--min-worker-lifetime", "1"],
    "harakiri": ["--harakiri", "2"],
    "threads": ["--threads", "2"],
    "quiet": ["--disable-logging", "--log-4xx", "--log-5xx"],
    "memory": ["--memory-report", "--log-micros", "--log-zero"],
    "logformat": ["--logformat", "%(method) %(uri) %(status) %(who) %(rsize) %(micros)"],
    "slow-big": ["--disable-logging", "--log-slow", "500", "--log-big", "20"],
    "log-date": ["--log-date", "--thunder-lock"],
    # the vars' steps the C path hands back: some heads near the buffer's size, bodies
    # over the limit, buffered bodies
    "buffer": ["--buffer-size", "700"],
    "post": ["--limit-post", "250", "--post-buffering", "100"],
    # uwsgi framing; per-worker apps with a mountpoint; the memory limits after the line
    "socket": ["--socket", "127.0.0.1:3031", "--max-requests", "4",
               "--max-requests-delta", "2", "--min-worker-lifetime", "1"],
    "lazy-mount": ["--lazy-apps", "--mount", "/m=app.py", "--log-micros"],
    "reload-rss": ["--reload-on-rss", "40", "--min-worker-lifetime", "1", "--log-5xx"],
}

STATUSES = ["200 OK", "201 Created", "204 No Content", "302 Found", "404 Not Found",
            "418 I'm a teapot", "500 Internal Server Error", "503 Service Unavailable"]


def _path(rng: random.Random) -> str:
    parts = ["a", "b%20c", "%7Euser", "d.txt", "", "e%2Ff", "caf\u00e9"]
    path = "/" + "/".join(rng.choice(parts) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.5:
        path += "?" + "&".join(f"{rng.choice('xyz')}={rng.choice(['1', '%41', 'a b', ''])}"
                               for _ in range(rng.randint(0, 3)))
    return path


def _plan(rng: random.Random) -> dict[str, object]:
    plan: dict[str, object] = {"status": rng.choice(STATUSES)}
    for key, chance, value in (("sleep", 0.2, rng.choice([0.01, 0.4, 1.5, 3.0])),
                               ("raise", 0.15, rng.choice(["before", "after"])),
                               ("silent", 0.05, True), ("logvar", 0.1, "me"),
                               ("force", 0.05, True), ("repeat", 0.2, rng.randint(0, 4))):
        if rng.random() < chance:
            plan[key] = value
    return plan


def run(app_dir: str, variant: str, seed: int) -> dict[str, object]:
    """One random program under the options of ``variant``: what came out of it."""
    rng = random.Random(seed)
    options = ["--master", "--processes", "3", "--wsgi-file", "app.py", *VARIANTS[variant]]
    with Simulation(options, app_dir=app_dir, seed=seed) as sim:
        requests = []
        for _ in range(40):
            headers = [("X-Plan", json.dumps(_plan(rng)))]
            if rng.random() < 0.4:
                headers.append((rng.choice(["User-Agent", "Referer", "X-Other", "Host",
                                            "Transfer-Encoding"]),
                                rng.choice(["curl/8", "http://h/", "v a l", "v" * 300,
                                            "Chunked"])))
            body = rng.choice([b"", b"", b"data", b"x" * rng.randint(1, 300)])
            requests.append(sim.submit(rng.choice(["GET", "post", "PUT", "HEAD", "DELETE"]),
                                       _path(rng), body=body, at=rng.uniform(0, 6),
                                       headers=dict(headers) if rng.random() < 0.1 else headers))
        if variant in ("memory", "reload-rss"):
            sim.set_rss("worker1", 50_000_000, vsz=300_000_000)
        sim.advance(20)
        replies = [None if r.response is None else
                   [r.response.status, r.response.headers, r.response.body.decode("latin-1"),
                    r.response.reason, r.response.worker, r.response.started,
                    r.response.finished] for r in requests]
        workers = [{key: w[key] for key in ("requests", "exceptions", "tx", "avg_rt",
                                            "running_time", "status", "rss")}
                   for w in sim.stats()["workers"]]
        return {"replies": replies, "digest": sim.trace.digest(), "log": list(sim.log),
                "workers": workers}


def run_many(app_dir: str, variant: str, seed: int) -> dict[str, object]:
    """Enough requests for the log and the trace to spill chunks (a spool keeps 8,192
    rows), two workers: the log's lines, its digest and the trace's."""
    options = ["--master", "--processes", "2", "--wsgi-file", "app.py", *VARIANTS[variant]]
    with Simulation(options, app_dir=app_dir, seed=seed) as sim:
        requests = [sim.submit("GET", f"/{i % 7}?n={i}", at=i / 100) for i in range(8500)]
        sim.advance(100)
        assert all(r.response is not None for r in requests)
        log = list(sim.log)
        return {"lines": len(log), "log": hashlib.sha256("\n".join(log).encode()).hexdigest(),
                "digest": sim.trace.digest()}


def run_net(app_dir: str, variant: str, seed: int) -> dict[str, object]:
    """Requests that come over a cluster's network (``req.net``): an HTTP socket and a
    uwsgi one, with random plans."""
    rng = random.Random(seed)
    cluster = Cluster(seed=seed, app_dir=app_dir)
    for name, socket in (("a", ["--http-socket", "10.0.0.1:8080"]),
                         ("b", ["--socket", "10.0.0.2:3031"])):
        cluster.add(name, ["--master", "--processes", "2", *socket, "--wsgi-file", "app.py",
                           *VARIANTS[variant]], address=socket[1].partition(":")[0])
    with cluster:
        replies = []
        for _ in range(20):
            response = cluster.request(rng.choice(["a:8080", "b:3031"]),
                                       rng.choice(["GET", "POST", "PUT"]), _path(rng),
                                       headers=[("X-Plan", json.dumps(_plan(rng)))],
                                       body=rng.choice([b"", b"abc", b"x" * 90]))
            replies.append([response.status, response.body.decode("latin-1")])
        cluster.advance(5)
        return {"replies": replies, "digest": cluster.trace.digest(),
                "log": [line for line in cluster.log if app_dir not in line]}


#: option sets of the lifecycle programs: what replaces workers, apps and their counts
LIFECYCLE = {
    "respawn": ["--max-requests", "3", "--min-worker-lifetime", "1"],
    "cheaper": ["--cheaper", "1", "--cheaper-initial", "1", "--cheaper-step", "2",
                "--cheaper-overload", "1", "--log-date"],
    "threads": ["--threads", "2", "--max-requests", "4", "--min-worker-lifetime", "1",
                "--harakiri", "2"],
    "mount": ["--lazy-apps", "--mount", "/m=app.py", "--manage-script-name",
              "--max-requests", "5", "--min-worker-lifetime", "1", "--log-micros"],
}


def _lifecycle_event(sim: Simulation, step: int) -> None:
    """Between two rounds of requests: what replaces the objects a request reads."""
    if step == 1:
        sim.reload()
    elif step == 2:
        sim.kill("worker1")
    elif step == 3:
        sim.inst.request_brutal_reload()  # SIGTERM to the master
        sim.advance(0)
    elif step == 4:  # a class default the C path reads (the log's switch count)
        workers.Request.switches = 40
    elif step == 5:
        workers.Request.switches = 0


def run_lifecycle(app_dir: str, variant: str, seed: int) -> dict[str, object]:
    """Random requests to two simulations open at once (different start dates and time
    zones, served in turn), between graceful and brutal reloads, a killed worker,
    --max-requests respawns, cheaper spawns, harakiri (with --threads), a mounted app
    and a class default changed mid-run; submitted as the common case (no headers,
    bytes) and not (lower-case methods, a bytearray body, a time already past)."""
    rng = random.Random(seed)
    options = ["--master", "--processes", "3", "--wsgi-file", "app.py", *LIFECYCLE[variant]]
    sims = [Simulation(options, app_dir=app_dir, seed=seed),
            Simulation(options, app_dir=app_dir, seed=seed + 1, start="2031-06-15 23:59:50",
                       tz="Asia/Tokyo")]
    requests: list[workers.Request] = []
    try:
        for step in range(7):
            for sim in sims:
                for _ in range(6):
                    headers = None
                    if variant == "cheaper":  # busy workers: more are spawned, then cheaped
                        headers = [("X-Plan", json.dumps({"sleep": 1.5}))]
                    elif variant == "threads" and rng.random() < 0.15:  # past --harakiri
                        headers = [("X-Plan", json.dumps({"sleep": 3.0}))]
                    elif rng.random() < 0.3:
                        headers = [("X-Plan", json.dumps(_plan(rng)))]
                    body = rng.choice([b"", b"data", bytearray(b"ba"), b"y" * 50])
                    at = sim.now + rng.choice([-5.0, 0.0, rng.uniform(0, 3)])
                    path = ("/m" if rng.random() < 0.3 else "") + _path(rng)
                    requests.append(sim.submit(rng.choice(["GET", "post", "Put"]), path,
                                               headers=headers, body=bytes(body)
                                               if rng.random() < 0.8 else body, at=at))
                sim.advance(4)
                if sim is sims[0]:
                    _lifecycle_event(sim, step)
                elif step == 3:
                    sim.reload()
        replies = [None if r.response is None else
                   [r.response.status, r.response.body.decode("latin-1"), r.response.reason,
                    r.response.worker, r.response.finished] for r in requests]
        return {"replies": replies, "digests": [sim.trace.digest() for sim in sims],
                "logs": [list(sim.log) for sim in sims]}
    finally:
        workers.Request.switches = 0
        for sim in sims:
            sim.close()


def _pure_python(app_dir: Path, cases: list[tuple[str, str, int]]) -> list[dict[str, object]]:
    code = ("import json, sys; sys.path.insert(0, sys.argv[3]); import test_creq_accel as t; "
            "print(json.dumps([getattr(t, f)(sys.argv[1], v, s) "
            "for f, v, s in json.loads(sys.argv[2])]))")
    env = {**os.environ, "SIMUWSGI_PURE_PYTHON": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(app_dir), json.dumps(cases),
                          str(Path(__file__).parent)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(workers._c is None, reason="the C accelerator is off or not built")
def test_the_c_request_path_gives_what_the_python_path_gives(tmp_path):
    assert type(workers.handle_request).__name__ == "builtin_function_or_method"
    (tmp_path / "app.py").write_text(APP)
    cases = [("run", variant, seed) for variant in VARIANTS for seed in range(3)]
    cases += [("run_many", "plain", 0), ("run_many", "memory", 1)]
    cases += [("run_net", variant, seed) for variant in ("plain", "quiet", "threads")
              for seed in range(2)]
    expected = _pure_python(tmp_path, cases)
    for (func, variant, seed), want in zip(cases, expected):
        got = json.loads(json.dumps(globals()[func](str(tmp_path), variant, seed)))
        assert got == want, (func, variant, seed)
    # the programs reach what the variants are for
    log = "\n".join(line for case in expected[:3 * len(VARIANTS)]
                    for line in case["log"])  # type: ignore[union-attr]
    for needle in ("HARAKIRI", "The work of process", "address space usage", " micros ",
                   "RuntimeError", "POST /", " me ", "(HTTP/1.1 418)"):
        assert needle in log, needle


@pytest.mark.skipif(workers._c is None, reason="the C accelerator is off or not built")
def test_the_c_request_path_across_reloads_respawns_and_simulations(tmp_path):
    """_creq's, _cwsgi's and _cvfork's C across what replaces the objects they read."""
    (tmp_path / "app.py").write_text(APP)
    cases = [("run_lifecycle", variant, seed) for variant in LIFECYCLE for seed in range(2)]
    expected = _pure_python(tmp_path, cases)
    for (func, variant, seed), want in zip(cases, expected):
        got = json.loads(json.dumps(run_lifecycle(str(tmp_path), variant, seed)))
        assert got == want, (func, variant, seed)
    # the programs reach what they are for
    log = "\n".join(line for case in expected
                    for sim_log in case["logs"]  # type: ignore[union-attr]
                    for line in sim_log)
    for needle in ("binary reloading uWSGI", "brutally killing workers", "killed by signal 9",
                   "The work of process", "spawned uWSGI worker 2", "switches on core 1",
                   "43 switches", "Jun 15 23:59:59 2031", "Jun 16 00:00:00 2031",
                   "HARAKIRI ON WORKER", "|app: 1|"):
        assert needle in log, needle


@pytest.mark.skipif(workers._c is None, reason="the C accelerator is off or not built")
def test_submit_in_c_refuses_what_the_python_method_refuses(tmp_path, monkeypatch):
    """Simulation.submit with its steps in C and without: the same request, the same
    refusals (from app code, after close)."""
    (tmp_path / "app.py").write_text(
        "import uwsgi\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    try:\n"
        "        uwsgi.sim.submit('GET', '/inner')\n"
        "    except Exception as exc:\n"
        "        return [repr(exc).encode()]\n"
        "    return [b'accepted']\n")
    outcomes = []
    for fast in (workers.submit_request, None):
        monkeypatch.setattr(simulation, "submit_request", fast)
        with Simulation(["--master", "--processes", "1", "--wsgi-file", "app.py"],
                        app_dir=tmp_path) as sim:
            first = sim.submit("get", "/a", at=-3)  # starts the simulation; at: now
            sim.uwsgi.sim = sim  # the app calls the driving API
            inner = sim.get("/b").text
            sim.advance(1)
            outcome = [first.method, first.submitted, first.id, first.response.status, inner,
                       list(sim.log)[-2:], sim.trace.digest()]
        with pytest.raises(Exception) as closed:
            sim.submit("GET", "/c")
        outcomes.append([*outcome, repr(closed.value)])
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == "GET" and "called from app code" in outcomes[0][4]
    assert outcomes[0][-1] == "SimulationError('this simulation is closed')"


def test_the_c_request_path_is_used_unless_pure_python():
    assert (workers._c is None) == bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
