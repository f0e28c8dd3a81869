"""Support code for the golden-vector tests of ``simuwsgi.protocol``.

* finds the golden vectors in ``tests/vectors`` (a copy of the project's ``shared/vectors``,
  captured from real uWSGI 2.0.30), or in ``$SIMUWSGI_VECTORS_DIR``;
* loads the capture app (``_fixtures/capture_app.py``) with a stub ``uwsgi`` module, so
  the replies "simuwsgi would send in the same situation" come from the very app the
  vectors were captured with, not from expectations written here;
* drives a server :class:`Connection` the way a uWSGI worker does (decode, let the app
  answer, encode), and maps client-side events to what uWSGI's Python client returns;
* knows every ``variable_fields`` placeholder the vector files document, and how the
  comparison treats it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simuwsgi.protocol import (
    CLIENT,
    NEED_DATA,
    SERVER,
    Ack,
    CacheDictGet,
    CacheDump,
    CacheGet,
    CacheGetStream,
    CacheMagicRequest,
    CacheMagicResponse,
    CacheValue,
    Connection,
    ConnectionClosed,
    Data,
    Echo,
    EndOfMessage,
    Event,
    HttpResponse,
    NoReply,
    Ping,
    Pong,
    RawResponse,
    RemoteProtocolError,
    Request,
    RequestEvent,
    RpcHttpRequest,
    RpcRequest,
    RpcResponse,
    SignalRequest,
    SpoolRequest,
    internal_error_response,
    not_found_response,
    rpc_http_call,
    rpc_http_response,
)

# -- locating the vectors ------------------------------------------------------------


def vectors_dir() -> Path:
    """``$SIMUWSGI_VECTORS_DIR`` or ``tests/vectors`` beside this package."""
    env = os.environ.get("SIMUWSGI_VECTORS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "vectors"


def load_vector(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


# -- representation placeholders inside "decoded" --------------------------------------

_REPEAT = re.compile(r"^'(.)' \* (\d+)$")


def expected_bytes(text: str) -> bytes:
    """Bytes meant by a ``decoded`` string (``"<36 NUL bytes>"``, ``"'x' * 70000"``)."""
    if text == "<36 NUL bytes>":
        return b"\x00" * 36
    match = _REPEAT.match(text)
    if match:
        return match.group(1).encode() * int(match.group(2))
    return text.encode("latin-1")


def expected_pairs(pairs: Iterable[list[str]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((expected_bytes(k), expected_bytes(v)) for k, v in pairs)


def header_dict(data: bytes) -> dict[str, int]:
    from simuwsgi.protocol import decode_header

    h = decode_header(data)
    return {"modifier1": h.modifier1, "pktsize": h.pktsize, "modifier2": h.modifier2}


# -- variable fields ---------------------------------------------------------------------

MASK = "mask"  # bytes at fixed offsets differ between runs: masked in both byte strings
CAPTURE = "capture"  # a value that differs between runs: the re-encoder takes it from the capture
IGNORE = "ignore"  # not part of any byte comparison

VARIABLE_FIELDS: dict[str, tuple[str, slice | None]] = {
    "response bytes 0..3": (MASK, slice(0, 4)),
    "response bytes 0..3 (heap address, differs per run/process)": (MASK, slice(0, 4)),
    "all 4 response bytes": (MASK, slice(0, 4)),
    "expires value in the response dict (absolute unix time)": (CAPTURE, None),
    "expires value": (CAPTURE, None),
    "hash / expiry fields inside the raw image": (CAPTURE, None),
    "listener port inside python_call_result messages": (MASK, None),
    "unix": (CAPTURE, None),
    "pid": (CAPTURE, None),
    "uuid": (CAPTURE, None),
    "lord (timestamp)": (CAPTURE, None),
    "checksum": (CAPTURE, None),
    "ciphertext (depends on all of these)": (CAPTURE, None),
    "all timestamps, pids, uuids, checksums": (CAPTURE, None),
    "load": (CAPTURE, None),
    "cores depend on the instance": (CAPTURE, None),
    "file name pid/counter/rand/tv_sec/tv_usec": (CAPTURE, None),
    "mtime when no 'at'": (IGNORE, None),
    "stats counters, last_check timestamps": (IGNORE, None),
    "worker pids": (CAPTURE, None),
    "rss": (CAPTURE, None),
    "vsz": (CAPTURE, None),
    "running_time": (CAPTURE, None),
    "last_spawn": (CAPTURE, None),
    "tx": (CAPTURE, None),
    "avg_rt": (CAPTURE, None),
    "requests counters": (CAPTURE, None),
    "listen_queue": (CAPTURE, None),
    "same as stats_server_output": (CAPTURE, None),
}


def masked(vec: dict[str, Any], data: bytes) -> bytes:
    """``data`` with the byte ranges the vector declares variable replaced by ``?``."""
    out = bytearray(data)
    for name in vec["variable_fields"]:
        kind, where = VARIABLE_FIELDS[name]
        if kind == MASK and where is not None:
            out[where] = b"?" * len(out[where])
    return bytes(out)


_NODE = re.compile(r"127\.0\.0\.1:\d+")


def masked_text(vec: dict[str, Any], text: str) -> str:
    if "listener port inside python_call_result messages" in vec["variable_fields"]:
        return _NODE.sub("<node>", text)
    return text


# -- the capture app, loaded with a stub uwsgi module -----------------------------------


@dataclass
class CaptureApp:
    application: Callable[..., Iterable[bytes]]
    rpc: dict[bytes, Callable[..., Any]]


_APP: CaptureApp | None = None


def capture_app() -> CaptureApp:
    global _APP
    if _APP is None:
        rpc: dict[bytes, Callable[..., Any]] = {}
        stub = types.ModuleType("uwsgi")
        stub.register_rpc = lambda name, fn: rpc.__setitem__(  # type: ignore[attr-defined]
            name.encode() if isinstance(name, str) else name, fn
        )
        stub.register_signal = lambda *args: None  # type: ignore[attr-defined]
        stub.SPOOL_OK, stub.SPOOL_RETRY, stub.SPOOL_IGNORE = -2, -1, 0  # type: ignore[attr-defined]
        path = vectors_dir() / "_fixtures" / "capture_app.py"
        spec = importlib.util.spec_from_file_location("simuwsgi_capture_app", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        saved = sys.modules.get("uwsgi")
        sys.modules["uwsgi"] = stub
        try:
            spec.loader.exec_module(module)
        finally:
            if saved is None:
                del sys.modules["uwsgi"]
            else:
                sys.modules["uwsgi"] = saved
        _APP = CaptureApp(application=module.application, rpc=rpc)
    return _APP


def run_wsgi(request: Request, body: bytes) -> tuple[HttpResponse, bytes]:
    """Call the capture app like uWSGI's Python plugin (latin-1 environ, last var wins)."""
    environ: dict[str, Any] = {k.decode("latin-1"): v.decode("latin-1") for k, v in request.vars}
    environ["wsgi.input"] = io.BytesIO(body)
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        started[:] = [status, headers]

    out = b"".join(capture_app().application(environ, start_response))
    status, headers = started
    head = HttpResponse(
        status=status.encode("latin-1"),
        headers=tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers),
    )
    return head, out


def call_rpc(function: bytes, args: tuple[bytes, ...]) -> bytes:
    """uWSGI's Python RPC glue: only a non-empty ``bytes`` result counts."""
    fn = capture_app().rpc.get(function)
    if fn is None:
        return b""
    result = fn(*args)
    return result if isinstance(result, bytes) else b""


# -- the situation of a server-role capture ------------------------------------------------


_WHEEL_PLUGINS = re.compile(r"request plugins: ([^;)]*)")
_NAMED_PLUGINS = {"python": (0, 30), "spooler": (17,), "symcall": (18,), "ping": (100,),
                  "echo": (101,), "signal": (110,), "cache": (111,), "rpc": (173,)}


def served_modifiers(vec: dict[str, Any]) -> set[int]:
    """modifier1 values the captured instance had a request plugin for."""
    build = vec["captured_with"]["build"]
    match = _WHEEL_PLUGINS.search(build)
    if match:
        numbers = {int(item.split()[0]) for item in match.group(1).split(",")}
        return numbers | ({30} if 0 in numbers else set())
    mods: set[int] = set()
    for name, plugin_mods in _NAMED_PLUGINS.items():
        if re.search(rf"\b{name}\b", build):
            mods.update(plugin_mods)
    return mods


def option_values(vec: dict[str, Any], name: str) -> list[str]:
    opts = vec["captured_with"]["options"]
    return [opts[i + 1] for i, o in enumerate(opts[:-1]) if o == name]


def connection_options(vec: dict[str, Any]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if option_values(vec, "--buffer-size"):
        opts["buffer_size"] = int(option_values(vec, "--buffer-size")[-1])
    if option_values(vec, "--max-vars"):
        opts["max_vars"] = 2 * int(option_values(vec, "--max-vars")[-1])
    if option_values(vec, "--puwsgi-socket"):
        opts["persistent"] = True
    return opts


@dataclass
class Situation:
    """Everything the server's answer depends on besides the request itself."""

    served: set[int]
    spoolers: list[str]
    warning_message: bytes = b""
    #: for cache commands: how the real server answered (decoded by a client connection)
    cache_reply: tuple[Any, bytes] | None = None


@dataclass
class Exchange:
    events: list[Event] = field(default_factory=list)
    requests: list[tuple[RequestEvent, bytes]] = field(default_factory=list)
    output: bytes = b""
    error: RemoteProtocolError | None = None


def answer(request: RequestEvent, body: bytes, situation: Situation) -> tuple[Any, bytes]:
    """What simuwsgi's server sends for ``request``: ``(head or NoReply(), body)``."""
    served = situation.served
    if isinstance(request, Request):
        if request.modifier1 not in served:
            return NoReply(), b""
        return run_wsgi(request, body)
    if isinstance(request, (RpcRequest, RpcHttpRequest)) and 173 not in served:
        return NoReply(), b""
    if isinstance(request, RpcRequest):
        result = call_rpc(request.function, request.args)
        return (RpcResponse(length=len(result)), result) if result else (NoReply(), b"")
    if isinstance(request, RpcHttpRequest):
        call = rpc_http_call(request)
        if call is None:
            return internal_error_response()
        result = call_rpc(*call)
        if not result:
            return not_found_response()
        return rpc_http_response(result, http_accept=request.get(b"HTTP_ACCEPT")), result
    if isinstance(request, Ping) and 100 in served:
        return Pong(message=situation.warning_message), b""
    if isinstance(request, SignalRequest) and 110 in served:
        return Ack(status=1), b""
    if isinstance(request, SpoolRequest) and 17 in served:
        from simuwsgi.protocol import spool_options

        spooler, _, _ = spool_options(request.vars)
        ok = bool(situation.spoolers) and (
            spooler is None or spooler.decode("latin-1") in situation.spoolers
        )
        return Ack(status=1 if ok else 0), b""
    if isinstance(request, Echo) and 101 in served:
        return RawResponse(), request.payload
    if isinstance(request, CacheDictGet) and 111 in served:
        # 2.0.30: a shadowed length makes every lookup miss; "get" answers the 404 page
        for key, value in request.pairs:
            if value and key == b"get":
                return not_found_response()
        return NoReply(), b""
    if isinstance(request, (CacheGet, CacheGetStream, CacheMagicRequest, CacheDump)):
        if 111 in served and situation.cache_reply is not None:
            return situation.cache_reply
        if isinstance(request, CacheGetStream) and 111 in served:
            return CacheValue(), b""  # the 4 bytes are written even for a missing key
    return NoReply(), b""


def serve(
    chunks: Iterable[bytes], situation: Situation, **options: Any
) -> Exchange:
    """Feed a server connection the request bytes and let the capture app answer."""
    conn = Connection(SERVER, **options)
    ex = Exchange()
    pending = [bytes([b]) for chunk in chunks for b in chunk] + [b""]
    head: RequestEvent | None = None
    body = b""
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError as exc:
            ex.error = exc
            ex.output += conn.send(NoReply())
            return ex
        if event is NEED_DATA:
            if not pending:
                return ex
            conn.receive_data(pending.pop(0))
            continue
        ex.events.append(event)
        if isinstance(event, ConnectionClosed):
            return ex
        if isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            assert head is not None
            ex.requests.append((head, body))
            reply, reply_body = answer(head, body, situation)
            if isinstance(reply, NoReply):
                ex.output += conn.send(reply)
            else:
                ex.output += conn.send_message(reply, reply_body)
            if not conn.persistent or not conn.keep_alive:
                return ex
            conn.start_next_cycle()
            head, body = None, b""
        else:
            head = event  # type: ignore[assignment]


# -- the client side ---------------------------------------------------------------------------


def client_exchange(
    request: RequestEvent, stream: bytes, reply: bytes
) -> tuple[bytes, list[Event]]:
    """Send ``request`` (+ its stream) from a client connection, then feed ``reply`` + EOF.

    Returns the request bytes and every event up to ``ConnectionClosed``.
    """
    conn = Connection(CLIENT)
    sent = conn.send_message(request, stream)
    pending = [bytes([b]) for b in reply] if len(reply) < 4096 else [reply]
    pending.append(b"")
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(pending.pop(0))
            continue
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return sent, events


def reply_of(events: list[Event]) -> tuple[Any, bytes]:
    """The reply head (or NoReply) and the concatenated stream from client events."""
    head = events[0]
    data = b"".join(e.data for e in events if isinstance(e, Data))
    return head, data


def python_result(kind: str, events: list[Event], *, signum: int = 0) -> str:
    """``repr`` of what uWSGI's Python client returns for these reply events.

    Models ``uwsgi.rpc``, ``uwsgi.cache_*`` with a remote target and ``uwsgi.signal``
    (api.md / protocol.md §5.7-5.9), ``<node>`` standing for the remote address.
    """
    head, data = reply_of(events)
    if kind == "signal":
        if isinstance(head, NoReply):
            return f"EXC OSError: unable to deliver signal {signum} to node <node>"
        assert isinstance(head, Ack)
        if head.status == 0:
            return f"EXC ValueError: node <node> rejected signal {signum}"
        return "None"
    if kind == "rpc":
        return repr(data) if isinstance(head, RpcResponse) and data else "None"
    if not isinstance(head, CacheMagicResponse) or head.status != b"ok":
        return "None"
    if kind == "get":
        return repr(data) if head.size else "None"
    return "True"


