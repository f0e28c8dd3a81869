"""Interop on loopback between simuwsgi.net and real peers (``@pytest.mark.real``).

* simuwsgi's client against a real uWSGI 2.0.30 node, and the same calls against a
  served simulation of the same app and options: identical answers;
* the same raw bytes (WSGI, ping, RPC, cache, signal, spool, malformed packets, the
  ``--http-socket`` protocol) sent to both servers: identical bytes back (the 4
  garbage bytes of cache modifier2 0/5 excepted);
* real uWSGI as a *client* (``uwsgi.rpc('127.0.0.1:PORT', ...)``, ``cache_*(...,
  'name@127.0.0.1:PORT')``, ``uwsgi.signal(n, '127.0.0.1:PORT')``) against the served
  simulation, and the simulation's ``net`` subsystem against the real node, both ways
  giving the same results;
* nginx (Debian's package) proxying with ``uwsgi_pass`` to ``simuwsgi serve`` and, with
  the same configuration, to real uWSGI: identical HTTP responses (``Date`` aside).

A missing ``uwsgi`` is a failure. nginx is a system package, not a Python one: on a
developer's machine without it the nginx test is skipped with the command that installs
it; under CI (``$CI`` set, as ``.ci/run`` runs) a missing nginx is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _net_apps import NODE_APP

from simuwsgi import Simulation
from simuwsgi.net import NodeClient
from simuwsgi.serve import ServedSimulation
from simuwsgi.protocol import (
    CacheMagicRequest,
    encode_array,
    encode_header,
    encode_packet,
    encode_vars,
)
from simuwsgi.modes.real import RealUwsgi, free_port
from simuwsgi.modes.real.pytest_helpers import require_real_uwsgi

pytestmark = pytest.mark.real

HOSTNAME = socket.gethostname()


def node_options(spool: Path, uport: int) -> list[str]:
    return ["--master", "--processes", "2", "--socket", f"127.0.0.1:{uport}",
            "--cache2", "name=default,items=20", "--cache2", "name=other,items=5",
            "--spooler", str(spool), "--spooler-frequency", "1", "--wsgi-file", "app.py"]


def make_dir(base: Path, name: str) -> Path:
    d = base / name
    (d / "spool").mkdir(parents=True)
    (d / "app.py").write_text(NODE_APP)
    return d


def events(d: Path) -> list[dict]:
    path = d / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(pred, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def raw(port: int, data: bytes, *, chunk: int = 0, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if chunk:
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])
                time.sleep(0.002)
        else:
            s.sendall(data)
        out = b""
        try:
            while True:
                got = s.recv(65536)
                if not got:
                    return out
                out += got
        except (ConnectionResetError, BrokenPipeError):
            return out


def ports(served: ServedSimulation) -> tuple[int, int]:
    """The (uwsgi, http) ports a served simulation bound (options say port 0)."""
    return tuple(int(served.address(p).rpartition(":")[2]) for p in ("uwsgi", "http"))


@pytest.fixture(scope="module")
def real_node(tmp_path_factory) -> Iterator[tuple[RealUwsgi, Path, int]]:
    require_real_uwsgi()
    d = make_dir(tmp_path_factory.mktemp("real"), "node")
    uport = free_port()
    with RealUwsgi(node_options(d / "spool", uport), app_dir=d, max_lifetime=120) as real:
        yield real, d, uport


# -- the same client calls against both servers -----------------------------------------------
def exercise(client: NodeClient, d: Path) -> dict:
    out: dict = {}
    out["ping"] = client.ping()
    out["rpc"] = client.rpc(b"hello", b"a", b"b")
    out["rpc_big"] = len(client.rpc(b"big") or b"")
    out["rpc_none"] = [client.rpc(b"nope"), client.rpc(b"empty"), client.rpc(b"retstr")]
    out["signal"] = client.signal(17)
    out["signal_seen"] = wait_for(lambda: {"signal": 17} in events(d))
    out["signal_unregistered"] = client.signal(200)  # still acked: the ack is not a handler
    out["cache"] = [
        client.cache_set(b"ek", b"v1"), client.cache_set(b"ek", b"v2"),
        client.cache_update(b"ek", b"v3"), client.cache_get(b"ek"),
        client.cache_exists(b"ek"), client.cache_del(b"ek"), client.cache_del(b"ek"),
        client.cache_get(b"ek"), client.cache_exists(b"ek"),
        client.cache_set(b"eo", b"1", cache=b"other"), client.cache_get(b"eo", b"other"),
        client.cache_get(b"eo"), client.cache_set(b"x", b"1", cache=b"nosuch"),
        client.cache_clear(b"other"), client.cache_get(b"eo", b"other"),
        client.cache_set(b"zero", b""),
    ]
    out["spool"] = client.spool([(b"task", b"from-client")])
    out["spool_seen"] = wait_for(lambda: {"spooled": [["task", "from-client"]]} in events(d), 6)
    out["spool_unknown_spooler"] = client.spool([(b"spooler", b"/nonexistent"), (b"a", b"b")])
    return out


def test_client_against_real_uwsgi_and_the_simulation(real_node, tmp_path) -> None:
    _real, real_dir, real_port = real_node
    expected = exercise(NodeClient(f"127.0.0.1:{real_port}"), real_dir)
    assert expected == {
        "ping": b"", "rpc": b"hello a|b", "rpc_big": 70000, "rpc_none": [None, None, None],
        "signal": True, "signal_seen": True, "signal_unregistered": True,
        "cache": [True, False, True, b"v3", True, True, False, None, False, True, b"1", None,
                  False, True, None, False],
        "spool": True, "spool_seen": True, "spool_unknown_spooler": False,
    }
    d = make_dir(tmp_path, "sim")
    with ServedSimulation(node_options(d / "spool", 0), app_dir=d,
                          hostname=HOSTNAME) as served:
        got = exercise(NodeClient(served.address("uwsgi")), d)
    assert served.error is None
    assert got == expected


# -- the same bytes to both servers -----------------------------------------------------------
BASIC = [(b"REQUEST_METHOD", b"GET"), (b"REQUEST_URI", b"/"), (b"PATH_INFO", b"/"),
         (b"QUERY_STRING", b""), (b"SERVER_PROTOCOL", b"HTTP/1.1"),
         (b"HTTP_HOST", b"example.test")]


def wsgi(path: bytes = b"/", *extra: tuple[bytes, bytes], m1: int = 0, m2: int = 0,
         body: bytes = b"", protocol: bytes = b"HTTP/1.1") -> bytes:
    pairs = [(k, path if k in (b"REQUEST_URI", b"PATH_INFO") else v) for k, v in BASIC]
    pairs = [(k, protocol if k == b"SERVER_PROTOCOL" else v) for k, v in pairs] + list(extra)
    if body:
        pairs.append((b"CONTENT_LENGTH", b"%d" % len(body)))
    return encode_packet(m1, m2, encode_vars(pairs)) + body


def magic(request: CacheMagicRequest, value: bytes = b"") -> bytes:
    return encode_packet(111, 17, encode_vars(request.pairs)) + value


def _exact_4096() -> bytes:
    base = len(encode_vars(BASIC)) + 2 + 8 + 2
    return wsgi(b"/", (b"HTTP_PAD", b"p" * (4096 - base)))


UWSGI_CASES: list[tuple[str, bytes]] = [
    ("wsgi_basic", wsgi()),
    ("wsgi_no_protocol", wsgi(protocol=b"")),
    ("wsgi_body", wsgi(b"/body", body=b"hello")),
    ("wsgi_raise", wsgi(b"/raise")),
    ("wsgi_uwsgi_send", wsgi(b"/send")),
    ("wsgi_env", wsgi(b"/env", (b"HTTP_X", b"1"), (b"HTTP_X", b"2"),
                      (b"UWSGI_SCHEME", b"https"), (b"EMPTY", b""))),
    ("wsgi_pipelined", wsgi() + wsgi(b"/body", body=b"zz")),
    ("wsgi_modifier1_30", wsgi(m1=30)),
    ("wsgi_modifier2_ignored", wsgi(m2=77)),
    ("wsgi_zero_key", encode_packet(0, 0, b"\x00\x00\x01\x00x")),
    ("wsgi_value_overflow", encode_packet(0, 0, b"\x01\x00a\x09\x00xy")),
    ("wsgi_empty", b"\x00\x00\x00\x00"),
    ("wsgi_oversize", encode_header(0, 5000, 0) + b"x" * 5000),
    ("wsgi_exactly_buffer_size", _exact_4096()),
    ("wsgi_128_vars", wsgi(b"/", *[(b"HTTP_V%d" % i, b"v") for i in range(122)])),
    ("wsgi_129_vars", wsgi(b"/", *[(b"HTTP_V%d" % i, b"v") for i in range(123)])),
    ("unknown_modifier1", encode_packet(222, 0, b"abc")),
    ("subscription_224", encode_packet(224, 0, encode_vars(((b"key", b"k"),)))),
    ("ping", b"\x64\x00\x00\x00"),
    ("rpc_framed", encode_packet(173, 0, encode_array((b"hello", b"a", b"b")))),
    ("rpc_raw", encode_packet(173, 1, encode_array((b"hello", b"a")))),
    ("rpc_modifier2_4", encode_packet(173, 4, encode_array((b"hello",)))),
    ("rpc_big", encode_packet(173, 0, encode_array((b"big",)))),
    ("rpc_unknown", encode_packet(173, 0, encode_array((b"nope",)))),
    ("rpc_empty_result", encode_packet(173, 0, encode_array((b"empty",)))),
    ("rpc_str_result", encode_packet(173, 0, encode_array((b"retstr",)))),
    ("rpc_trailing_empty_arg", encode_packet(173, 0, b"\x05\x00hello\x01\x00a\x00\x00")),
    ("rpc_middle_empty_arg", encode_packet(173, 0, b"\x05\x00hello\x00\x00\x01\x00b")),
    ("rpc_empty", b"\xad\x00\x00\x00"),
    ("rpc_http_bridge", encode_packet(173, 2, encode_vars(
        ((b"PATH_INFO", b"/hello/x//y"), (b"SERVER_PROTOCOL", b"HTTP/1.1"))))),
    ("rpc_http_bridge_accept", encode_packet(173, 2, encode_vars(
        ((b"PATH_INFO", b"/hello"), (b"HTTP_ACCEPT", b"text/plain"))))),
    ("rpc_http_bridge_notfound", encode_packet(173, 2, encode_vars(((b"PATH_INFO", b"/nope"),)))),
    ("rpc_http_bridge_no_path", encode_packet(173, 2, encode_vars(((b"PATH_INFO", b"/"),)))),
    ("signal_17", b"\x6e\x00\x00\x11"),
    ("signal_unregistered", b"\x6e\x00\x00\xc8"),
    ("cache17_set", magic(CacheMagicRequest.set(b"bk", 2, cache=b""), b"bv")),
    ("cache17_set_existing", magic(CacheMagicRequest.set(b"bk", 2, cache=b""), b"bw")),
    ("cache17_get", magic(CacheMagicRequest.get(b"bk", b""))),
    ("cache17_exists", magic(CacheMagicRequest.exists(b"bk", b""))),
    ("cache17_update", magic(CacheMagicRequest.update(b"bk", 3, cache=b""), b"new")),
    ("cache17_del", magic(CacheMagicRequest.delete(b"bk", b""))),
    ("cache17_del_missing", magic(CacheMagicRequest.delete(b"bk", b""))),
    ("cache17_named", magic(CacheMagicRequest.set(b"nk", 1, cache=b"other"), b"n")),
    ("cache17_unknown_cache", magic(CacheMagicRequest.set(b"uk", 1, cache=b"nosuch"), b"u")),
    ("cache17_clear", magic(CacheMagicRequest.clear(b"other"))),
    ("cache17_zero_size", magic(CacheMagicRequest.set(b"zk", 0, cache=b""))),
    ("cache_m1_set", encode_packet(111, 1, encode_array((b"sk", b"sv")))),
    ("cache_m0_get", encode_packet(111, 0, b"sk")),
    ("cache_m0_missing", encode_packet(111, 0, b"nokey")),
    ("cache_m3_dict", encode_packet(111, 3, encode_vars(((b"key", b"sk"),)))),
    ("cache_m4_dict", encode_packet(111, 4, encode_vars(((b"get", b"sk"),)))),
    ("cache_m5_get", encode_packet(111, 5, b"sk")),
    ("cache_m5_missing", encode_packet(111, 5, b"nope")),
    ("cache_m2_del", encode_packet(111, 2, b"sk")),
    ("cache_m0_after_del", encode_packet(111, 0, b"sk")),
    ("cache_unknown_m2", encode_packet(111, 99, b"sk")),
    ("spool", encode_packet(17, 0, encode_vars(((b"task", b"raw"),)))),
    ("spool_unknown_spooler", encode_packet(17, 0, encode_vars(((b"spooler", b"/none"),)))),
]
HTTP_CASES: list[tuple[str, bytes]] = [
    ("http_basic", b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"),
    ("http_10", b"GET / HTTP/1.0\r\n\r\n"),
    ("http_env", (b"GET /env?a=1&b=%41 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 \r\n"
                  b"Content-Type: text/x\r\nX-Long: a\r\n b\r\n\r\n")),
    ("http_env_dots", b"GET /a/./b/../../env%3f HTTP/1.1\r\n\r\n"),
    ("http_body", b"POST /body HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
    ("http_no_space_method", b"GARBAGE\r\nno colon here\r\n\r\n"),
    ("http_invalid_header", b"GET / HTTP/1.1\r\nnocolon\r\n\r\n"),
    ("http_oversize", b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"),
    ("http_raise", b"GET /raise HTTP/1.1\r\n\r\n"),
]
#: cache modifier2 0/5 replies start with 4 bytes of a heap address
GARBAGE_PREFIX = {"cache_m0_get", "cache_m5_get", "cache_m5_missing"}


def replies(uport: int, hport: int) -> dict[str, bytes]:
    out = {}
    for name, data in UWSGI_CASES:
        out[name] = raw(uport, data)
    out["wsgi_split_writes"] = raw(uport, wsgi(b"/body", body=b"split"), chunk=7)
    for name, data in HTTP_CASES:
        out[name] = raw(hport, data)
    for name in GARBAGE_PREFIX:
        assert len(out[name]) >= 4, name
        out[name] = b"????" + out[name][4:]
    return out


def test_same_bytes_from_both_servers(real_node, tmp_path) -> None:
    real, _real_dir, real_port = real_node
    expected = replies(real_port, real.port)
    assert expected["wsgi_basic"].startswith(b"HTTP/1.1 200 OK\r\n")  # sanity
    d = make_dir(tmp_path, "sim")
    with ServedSimulation([*node_options(d / "spool", 0), "--http-socket", "127.0.0.1:0"],
                          app_dir=d, hostname=HOSTNAME) as served:
        got = replies(*ports(served))
    assert served.error is None
    different = {k: (expected[k], got[k]) for k in expected if expected[k] != got[k]}
    assert not different


# -- real uWSGI as a client, and the simulation as a client of real uWSGI ----------------------
EXPECTED_REMOTE = {
    "rpc": "hello a|b", "rpc_big": 70000, "rpc_unknown": None, "rpc_empty": None,
    "set": True, "set_again": None, "update": True, "get": "v3", "exists": True,
    "del": True, "get_missing": None, "exists_missing": None, "other_set": True,
    "other_get": "o", "unknown_cache": None, "clear": True, "other_get_cleared": None,
    "signal": None, "rpc_unreachable": None,
    "signal_unreachable": "OSError: unable to deliver signal 17 to node 127.0.0.1:1",
}


def http_json(port: int, path: str) -> dict:
    reply = raw(port, f"GET {path} HTTP/1.0\r\n\r\n".encode(), timeout=30)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), reply
    return json.loads(body)


def test_real_uwsgi_as_client_of_the_simulation_and_back(real_node, tmp_path) -> None:
    real, real_dir, real_port = real_node
    # a plain simulation (blocking network mode) calls the real node
    d0 = make_dir(tmp_path, "plain")
    with Simulation(["--master", "--wsgi-file", "app.py"], app_dir=d0, network="real") as sim:
        assert sim.get(f"/remote?127.0.0.1:{real_port}").json() == EXPECTED_REMOTE
    d = make_dir(tmp_path, "sim")
    with ServedSimulation([*node_options(d / "spool", 0), "--http-socket", "127.0.0.1:0"],
                          app_dir=d, hostname=HOSTNAME) as served:
        uport, hport = ports(served)
        # real uWSGI's own clients against the served simulation
        assert http_json(real.port, f"/remote?127.0.0.1:{uport}") == EXPECTED_REMOTE
        assert wait_for(lambda: {"signal": 17} in events(d))
        # the served simulation's net subsystem (hosted mode) against real uWSGI
        assert http_json(hport, f"/remote?127.0.0.1:{real_port}") == EXPECTED_REMOTE
        assert wait_for(lambda: events(real_dir).count({"signal": 17}) >= 2)
    assert served.error is None


# -- nginx ---------------------------------------------------------------------------------------
NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{sim_http};
        location / {{ include {params}; uwsgi_pass 127.0.0.1:{sim_uwsgi}; }}
    }}
    server {{
        listen 127.0.0.1:{real_http};
        location / {{ include {params}; uwsgi_pass 127.0.0.1:{real_uwsgi}; }}
    }}
}}
"""


def find_nginx() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                     else None)
    if path is None:
        why = ("nginx is required by this interop test but was not found: install Debian's "
               "package (apt-get install nginx-light), as .ci/run does")
        if os.environ.get("CI"):
            pytest.fail(f"{why}; under CI it is never skipped", pytrace=False)
        pytest.skip(why)
    return path


def start_group(cmd: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(["timeout", "-s", "KILL", "60", *cmd], cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited early:\n{log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"port {port} never opened:\n{log.read_text(errors='replace')}")


def served_port(proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> int:
    """The port ``simuwsgi serve`` bound for ``--socket 127.0.0.1:0`` (from its log)."""
    marker = "simuwsgi: serving uwsgi on 127.0.0.1:"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith(marker):
                return int(line[len(marker):].split()[0])
        if proc.poll() is not None:
            pytest.fail(f"simuwsgi serve exited early:\n{text}")
        time.sleep(0.05)
    pytest.fail(f"simuwsgi serve never said where it serves:\n{log.read_text()}")


NGINX_REQUESTS = [
    b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n",
    b"GET /env?q=1 HTTP/1.0\r\nHost: example.test\r\nX-Custom: yes\r\n\r\n",
    (b"POST /body HTTP/1.0\r\nHost: example.test\r\nContent-Length: 7\r\n"
     b"Content-Type: text/plain\r\n\r\npayload"),
    b"GET /raise HTTP/1.0\r\nHost: example.test\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
]


def without_date(reply: bytes) -> bytes:
    head, sep, body = reply.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + sep + body


def test_nginx_uwsgi_pass_to_simuwsgi_serve_and_to_real_uwsgi(real_node, tmp_path) -> None:
    nginx = find_nginx()
    _real, _real_dir, real_port = real_node
    d = make_dir(tmp_path, "served")
    serve = start_group([sys.executable, "-m", "simuwsgi.cli", "serve", "--for", "50", "--",
                         *node_options(d / "spool", 0)], d, tmp_path / "serve.log")
    try:
        sim_uwsgi = served_port(serve, tmp_path / "serve.log")
    except BaseException:
        stop_group(serve)
        raise
    sim_http, real_http = free_port(), free_port()
    ng = tmp_path / "nginx"
    ng.mkdir()
    (ng / "nginx.conf").write_text(NGINX_CONF.format(
        d=ng, params="/etc/nginx/uwsgi_params", sim_http=sim_http, sim_uwsgi=sim_uwsgi,
        real_http=real_http, real_uwsgi=real_port))
    proxy = start_group([nginx, "-p", str(ng), "-c", str(ng / "nginx.conf"), "-e",
                         str(ng / "error.log")], ng, tmp_path / "nginx.log")
    try:
        wait_port(sim_http, proxy, tmp_path / "nginx.log")
        wait_port(real_http, proxy, tmp_path / "nginx.log")
        for request in NGINX_REQUESTS:
            expected = without_date(raw(real_http, request))
            got = without_date(raw(sim_http, request))
            assert expected.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 "), expected
            assert got == expected, request
    finally:
        stop_group(proxy)
        stop_group(serve)
    log = (tmp_path / "serve.log").read_text()
    assert "simuwsgi: serving uwsgi on 127.0.0.1:" in log
    assert "GET /env?q=1 => generated" in log
