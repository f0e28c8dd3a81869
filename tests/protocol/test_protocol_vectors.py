"""Golden vectors: every exchange captured from a real uWSGI 2.0.30 (``tests/vectors``).

One test per vector file. Each test

1. decodes what was captured with :mod:`simuwsgi.protocol` and checks every field the
   vector's ``decoded`` section documents (an undocumented key fails the test);
2. re-encodes what simuwsgi would send in the same situation - the reply of the very
   capture app, the request uWSGI's client would write, the datagram or file uWSGI
   would produce - and compares bytes, after substituting the ``variable_fields`` the
   vector documents (an unknown placeholder fails the test).

Nothing expected is written here: every expected value comes from the vector files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from protocol_harness import (
    CAPTURE,
    VARIABLE_FIELDS,
    Situation,
    client_exchange,
    connection_options,
    expected_bytes,
    expected_pairs,
    header_dict,
    load_vector,
    masked,
    masked_text,
    option_values,
    python_result,
    reply_of,
    serve,
    served_modifiers,
    vectors_dir,
)

from simuwsgi.protocol import (
    CLIENT,
    CacheDump,
    CacheDumpResponse,
    CacheGet,
    CacheGetStream,
    CacheMagicRequest,
    CacheMagicResponse,
    CacheUdpDelete,
    CacheUdpUpdate,
    CacheValue,
    Connection,
    HttpResponse,
    LegionAnnounce,
    LegionCipher,
    NoReply,
    Pong,
    RemoteProtocolError,
    Request,
    RpcRequest,
    SignalRequest,
    SpoolFileName,
    SpoolRequest,
    Subscription,
    decode_cache_udp_datagram,
    decode_dict,
    decode_header,
    decode_legion_announce,
    decode_spool_file,
    decode_stats,
    decode_stats_http,
    decode_subscription,
    decrypt_legion_datagram,
    encode_array,
    encode_cache_udp_datagram,
    encode_legion_announce,
    encode_packet,
    encode_spool_file,
    encode_stats,
    encode_stats_http,
    encode_subscription,
    encode_vars,
    last_value,
    parse_spool_file_name,
    spool_file_name,
    spool_options,
    subscription_hash,
)

VECTORS = vectors_dir()
VECTOR_FILES = sorted(VECTORS.glob("*.json")) if VECTORS.is_dir() else []

INFORMATIONAL = {"note"}  # decoded keys that carry prose, not data


def _params() -> list[Any]:
    if not VECTOR_FILES:
        return [pytest.param(None, id="vectors-missing")]
    return [pytest.param(path, id=path.name) for path in VECTOR_FILES]


@pytest.mark.parametrize("path", _params())
def test_vector(path: Path | None) -> None:
    if path is None:
        pytest.fail(
            f"golden vectors not found at {VECTORS} (expected tests/vectors "
            "or $SIMUWSGI_VECTORS_DIR); they are required, not optional"
        )
    vec = load_vector(path)
    unknown = [f for f in vec["variable_fields"] if f not in VARIABLE_FIELDS]
    assert not unknown, f"undocumented variable_fields placeholder(s): {unknown}"
    facts = handler_for(vec)(vec)
    check_decoded(vec, facts)


def check_decoded(vec: dict[str, Any], facts: dict[str, Any]) -> None:
    """Every documented ``decoded`` field must have been computed and must match."""
    for key, expected in vec["decoded"].items():
        if key in INFORMATIONAL:
            continue
        assert key in facts, f"decoded field {key!r} of {vec['id']} is not checked"
        assert normalise(facts[key]) == normalise_expected(expected), key


def normalise(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    return value


def normalise_expected(value: Any) -> Any:
    if isinstance(value, str):
        return expected_bytes(value)
    if isinstance(value, list):
        return [normalise_expected(v) for v in value]
    if isinstance(value, dict):
        return {k: v if not isinstance(v, str) else expected_bytes(v) for k, v in value.items()}
    return value


def handler_for(vec: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    vid = vec["id"]
    for prefix, handler in HANDLERS:
        if vid.startswith(prefix):
            return handler
    if vec["real_uwsgi_role"] == "client":
        return check_client
    if vec["real_uwsgi_role"] == "server":
        return check_server
    raise AssertionError(f"no handler for vector {vid} (role {vec['real_uwsgi_role']!r})")


# -- server-role captures: real uWSGI answered a request ----------------------------------


def _request_stream(request: Any, raw: bytes) -> bytes:
    """The bytes of the raw request that travel after the pktsize payload."""
    header = decode_header(raw)
    return raw[4 + header.pktsize :]


def _cache_situation(vec: dict[str, Any], request: Any, raw: bytes, response: bytes) -> Any:
    """How the real cache answered (decoded by a client), rebuilt the way simuwsgi sends it."""
    if not isinstance(request, (CacheGet, CacheGetStream, CacheMagicRequest, CacheDump)):
        return None
    stream = _request_stream(request, raw)[: getattr(request, "stream_length", 0)]
    _, events = client_exchange(request, stream, response)
    head, data = reply_of(events)
    if isinstance(head, NoReply):
        return None
    if isinstance(head, CacheValue):
        return CacheValue(), data  # simuwsgi's own 4 bytes; the capture's are masked
    if isinstance(head, CacheDumpResponse):
        geometry = dict(
            item.split("=", 1) for item in option_values(vec, "--cache2")[-1].split(",")
        )
        built = CacheDumpResponse.of(int(geometry["items"]), int(geometry.get("blocksize", 65536)))
        return built, data  # the image itself is opaque (captured)
    assert isinstance(head, CacheMagicResponse) and isinstance(request, CacheMagicRequest)
    if request.command == b"get":
        return CacheMagicResponse.ok(size=len(data), expires=head.expires), data
    return CacheMagicResponse.ok(), b""


def check_server(vec: dict[str, Any]) -> dict[str, Any]:
    raw = bytes.fromhex(vec["request_hex"])
    response = bytes.fromhex(vec["response_hex"])
    chunks = [bytes.fromhex(h) for h in vec.get("request_writes_hex", [])] or [raw]
    decoded = vec["decoded"]
    situation = Situation(
        served=served_modifiers(vec),
        spoolers=option_values(vec, "--spooler"),
        warning_message=expected_bytes(decoded.get("response_body", "")),
    )
    options = connection_options(vec)
    probe = serve(chunks, situation, **options)
    if probe.requests:
        first, _ = probe.requests[0]
        situation.cache_reply = _cache_situation(vec, first, raw, response)
    ex = serve(chunks, situation, **options)
    assert masked(vec, ex.output) == masked(vec, response)

    facts: dict[str, Any] = {
        "request_header": header_dict(raw),
        "request": header_dict(raw),
    }
    if len(response) >= 4:
        facts["response_first4_as_header"] = facts["response_header"] = header_dict(response)
        facts["response"] = header_dict(response)
        facts["response_dict"] = list(_response_dict(response))
    if not ex.requests:
        assert ex.error is not None and not response
        return facts
    request, body = ex.requests[0]
    facts["request_body"] = body
    facts["request_stream"] = body
    if isinstance(request, (Request,)):
        facts["request_vars"] = list(request.vars)
    if isinstance(request, CacheMagicRequest):
        facts["request_dict"] = list(request.pairs)
    if isinstance(request, SpoolRequest):
        facts["request_dict"] = list(request.vars)
        assert request.raw == raw[4 : 4 + decode_header(raw).pktsize]
    if isinstance(request, CacheGet):
        facts["request_key"] = request.key
    if isinstance(request, RpcRequest):
        facts["function_saw_args"] = list(request.args)
        if "request_array" in decoded:
            items = [expected_bytes(x) for x in decoded["request_array"]]
            assert encode_array(items) == raw[4:], "request_array does not encode to the payload"
            facts["request_array"] = items
            assert [i for i in items if i] == [request.function, *request.args]
    if response:
        _, events = client_exchange(request, body, response)
        head, data = reply_of(events)
        facts["response_body"] = head.message if isinstance(head, Pong) else data
        facts["response_stream"] = data
        facts["response_value_after_4_bytes"] = data
        facts["raw_image_bytes"] = len(data)
    return facts


def _response_dict(response: bytes) -> tuple[tuple[bytes, bytes], ...]:
    header = decode_header(response)
    try:
        return decode_dict(response[4 : 4 + header.pktsize])
    except RemoteProtocolError:
        return ()


def check_http_socket(vec: dict[str, Any]) -> dict[str, Any]:
    """--http-socket: uWSGI's HTTP parser turns the request line into vars."""
    raw = bytes.fromhex(vec["request_hex"])
    response = bytes.fromhex(vec["response_hex"])
    line, *header_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    method, uri, protocol = line.split(b" ")
    path, _, query = uri.partition(b"?")
    pairs = [
        (b"REQUEST_METHOD", method),
        (b"REQUEST_URI", uri),
        (b"PATH_INFO", path),
        (b"QUERY_STRING", query),
        (b"SERVER_PROTOCOL", protocol),
    ]
    for h in header_lines:
        name, _, value = h.partition(b": ")
        pairs.append((b"HTTP_" + name.upper().replace(b"-", b"_"), value))
    request = Request(vars=tuple(pairs))
    situation = Situation(served=served_modifiers(vec), spoolers=[])
    wire = Connection(CLIENT).send_message(request)
    ex = serve([wire], situation)
    assert ex.output == response
    _, events = client_exchange(request, b"", response)
    head, _ = reply_of(events)
    assert isinstance(head, HttpResponse) and head.protocol == protocol
    return {}


# -- client-role captures: bytes uWSGI itself sent ------------------------------------------


def check_client(vec: dict[str, Any]) -> dict[str, Any]:
    raw = bytes.fromhex(vec["request_hex"])
    response = bytes.fromhex(vec["response_hex"])
    decoded = vec["decoded"]
    stream = b""
    signum = 0
    if "request_array" in decoded:
        items = [expected_bytes(x) for x in decoded["request_array"]]
        request: Any = RpcRequest(function=items[0], args=tuple(items[1:]))
        kind = "rpc"
    elif "request_dict" in decoded:
        pairs = expected_pairs(decoded["request_dict"])
        if "request_stream_after_dict_hex" in decoded:
            stream = bytes.fromhex(decoded["request_stream_after_dict_hex"])
        else:
            stream = expected_bytes(decoded.get("request_stream_after_dict", ""))
        cmd = last_value(pairs, b"cmd")
        key = last_value(pairs, b"key") or b""
        cache = last_value(pairs, b"cache")
        expires = int(last_value(pairs, b"expires") or b"0")
        if cmd == b"get":
            request = CacheMagicRequest.get(key, cache)
        elif cmd == b"exists":
            request = CacheMagicRequest.exists(key, cache)
        elif cmd == b"del":
            request = CacheMagicRequest.delete(key, cache)
        elif cmd == b"clear":
            request = CacheMagicRequest.clear(cache)
        elif cmd == b"set":
            request = CacheMagicRequest.set(key, len(stream), expires, cache)
        else:
            assert cmd == b"update", cmd
            request = CacheMagicRequest.update(key, len(stream), expires, cache)
        kind = cmd.decode() if cmd == b"get" else "status"
    else:
        signum = decoded["request_header"]["modifier2"]
        request = SignalRequest(signum=signum)
        kind = "signal"
    sent, events = client_exchange(request, stream, response)
    assert sent == raw
    result = python_result(kind, events, signum=signum)
    assert masked_text(vec, result) == masked_text(vec, vec["python_call_result"])
    header = decode_header(sent)
    facts: dict[str, Any] = {"request_header": header_dict(sent)}
    if "request_dict" in decoded:
        facts["request_dict"] = list(decode_dict(sent[4 : 4 + header.pktsize]))
        facts["request_stream_after_dict"] = sent[4 + header.pktsize :]
        facts["request_stream_after_dict_hex"] = sent[4 + header.pktsize :].hex()
    if "request_array" in decoded:
        assert encode_array([expected_bytes(x) for x in decoded["request_array"]]) == sent[4:]
        facts["request_array"] = [expected_bytes(x) for x in decoded["request_array"]]
    return facts


# -- datagrams ---------------------------------------------------------------------------


def _subscription_fields(pairs: tuple[tuple[bytes, bytes], ...], command: int) -> Subscription:
    values = dict(pairs)
    return Subscription(
        command=command,
        key=values[b"key"],
        address=values[b"address"],
        modifier1=int(values[b"modifier1"]),
        modifier2=int(values[b"modifier2"]),
        cores=int(values[b"cores"]),  # CAPTURE: depends on the instance
        load=int(values[b"load"]),  # CAPTURE
        weight=int(values[b"weight"]),
    )


def check_subscription_datagram(vec: dict[str, Any]) -> dict[str, Any]:
    datagram = bytes.fromhex(vec["request_hex"])
    decoded = decode_subscription(datagram)
    pairs = expected_pairs(vec["decoded"]["dict"])
    rebuilt = _subscription_fields(pairs, vec["decoded"]["header"]["modifier2"])
    assert decoded == rebuilt
    assert encode_subscription(rebuilt) == datagram
    return {"header": header_dict(datagram), "dict": list(decode_dict(datagram[4:]))}


def check_subscription_router(vec: dict[str, Any]) -> dict[str, Any]:
    sub_dgram = bytes.fromhex(vec["subscribe_datagram_hex"])
    sub = decode_subscription(sub_dgram)
    assert sub.command == 0 and sub.valid
    assert encode_subscription(sub) == sub_dgram
    unsub_dgram = bytes.fromhex(vec["unsubscribe_datagram_hex"])
    unsub = decode_subscription(unsub_dgram)
    assert unsub.command != 0 and (unsub.key, unsub.address) == (sub.key, sub.address)
    pairs = decode_dict(unsub_dgram[4:])
    assert encode_packet(224, unsub.command, encode_vars(pairs)) == unsub_dgram
    for stats in vec["fastrouter_stats_subscriptions"]:
        assert subscription_hash(stats["key"].encode()) == stats["hash"]
        assert [n["name"].encode() for n in stats["nodes"]] == [sub.address]
    # the router's routing key is UWSGI_FASTROUTER_KEY, else HTTP_HOST, else SERVER_NAME
    situation = Situation(served=served_modifiers(vec), spoolers=[])
    for req_hex, resp_hex in (
        (vec["request_hex"], vec["response_hex"]),
        (vec["unknown_key_request_hex"], vec["unknown_key_response_hex"]),
    ):
        ex = serve([bytes.fromhex(req_hex)], situation)
        request, _ = ex.requests[0]
        assert isinstance(request, Request)
        routed = next(
            v for k in (b"UWSGI_FASTROUTER_KEY", b"HTTP_HOST", b"SERVER_NAME")
            if (v := request.get(k)) is not None
        )
        expected = bytes.fromhex(resp_hex)
        if routed == sub.key:
            assert ex.output == expected
        else:
            assert expected == b"", "an unknown key is closed without a byte"
    assert bytes.fromhex(vec["after_unsubscribe_response_hex"]) == b""
    return {}


def check_subscription_wrr(vec: dict[str, Any]) -> dict[str, Any]:
    for datagrams in vec["subscribe_datagrams_hex"].values():
        for hexed in datagrams:
            datagram = bytes.fromhex(hexed)
            sub = decode_subscription(datagram)
            assert sub.valid and sub.command == 0
            assert encode_subscription(sub) == datagram
    return {}


def check_cache_udp(vec: dict[str, Any]) -> dict[str, Any]:
    datagram = bytes.fromhex(vec["request_hex"])
    facts: dict[str, Any] = {"header": header_dict(datagram)}
    header = decode_header(datagram)
    if header.modifier2 == 11:
        with pytest.raises(RemoteProtocolError, match="drops every delete"):
            decode_cache_udp_datagram(datagram)
        event = decode_cache_udp_datagram(datagram, drop_deletes=False)
        assert isinstance(event, CacheUdpDelete)
        assert encode_cache_udp_datagram(CacheUdpDelete(key=event.key)) == datagram
        assert vec["response_hex"] == ""
        return facts
    update = decode_cache_udp_datagram(datagram)
    assert isinstance(update, CacheUdpUpdate)
    rebuilt = CacheUdpUpdate(key=update.key, value=update.value, expires=update.expires)
    assert encode_cache_udp_datagram(rebuilt) == datagram
    facts["udp_expires_sent"] = str(update.expires).encode()
    response = bytes.fromhex(vec["response_hex"])
    if response:  # a magic get over TCP after the datagram was applied
        request = CacheMagicRequest.get(update.key)
        _, events = client_exchange(request, b"", response)
        head, value = reply_of(events)
        assert isinstance(head, CacheMagicResponse)
        assert (value, head.expires) == (update.value, update.expires)
        reply = CacheMagicResponse.ok(size=len(update.value), expires=update.expires)
        wire = Connection(CLIENT).send_message(request)
        situation = Situation(served={111}, spoolers=[], cache_reply=(reply, update.value))
        assert serve([wire], situation).output == response
    return facts


def _legion_cipher(vec: dict[str, Any]) -> LegionCipher:
    crypto = vec["crypto"]
    cipher = LegionCipher.from_option(crypto["cipher"], crypto["secret_option"].encode())
    assert cipher.key.hex() == crypto["key_hex"] and cipher.iv.hex() == crypto["iv_hex"]
    return cipher


def _announce(pairs: tuple[tuple[bytes, bytes], ...]) -> LegionAnnounce:
    """Rebuild an announce from plaintext values (all CAPTURE placeholders)."""
    v = dict(pairs)
    return LegionAnnounce(
        legion=v[b"legion"],
        valor=int(v[b"valor"]),
        unix=int(v[b"unix"]),
        lord=int(v[b"lord"]),
        name=v[b"name"],
        pid=int(v[b"pid"]),
        uuid=v[b"uuid"],
        checksum=int(v[b"checksum"]),
        lord_valor=int(v[b"lord_valor"]),
        lord_uuid=v[b"lord_uuid"],
        scroll=v.get(b"scroll", b""),
        dead=b"dead" in v,
    )


def check_legion(vec: dict[str, Any]) -> dict[str, Any]:
    cipher = _legion_cipher(vec)
    datagram = bytes.fromhex(vec["request_hex"])
    header, plain = decrypt_legion_datagram(datagram, cipher)
    assert plain.hex() == vec["plaintext_hex"]
    expected = expected_pairs(vec["decoded"]["plaintext_dict"])
    announce = decode_legion_announce(datagram, cipher)
    assert announce == _announce(expected)
    assert encode_legion_announce(announce, cipher) == datagram
    return {"header": header._asdict(), "plaintext_dict": list(decode_dict(plain))}


def check_legion_timeline(vec: dict[str, Any]) -> dict[str, Any]:
    cipher = _legion_cipher(vec)
    for entry in vec["timeline"]:
        pairs = expected_pairs(entry["plaintext_dict"])
        announce = _announce(pairs)
        datagram = encode_legion_announce(announce, cipher)
        assert header_dict(datagram) == entry["header"]
        assert decode_legion_announce(datagram, cipher) == announce
        assert encode_vars(pairs) == decrypt_legion_datagram(datagram, cipher)[1]
    return {}


# -- files and documents -------------------------------------------------------------------


def check_spoolfile(vec: dict[str, Any]) -> dict[str, Any]:
    content = bytes.fromhex(vec["file_hex"])
    spool = decode_spool_file(content)
    assert spool.valid
    assert encode_spool_file(spool.vars, spool.body) == content
    fields = vec["file_name_fields"]  # CAPTURE: pid/counter/rand/sec/usec
    assert fields["prefix"] + "_" == "uwsgi_spoolfile_on_"
    _, priority, at = spool_options(spool.vars)
    name = SpoolFileName(
        hostname=fields["hostname"],
        pid=int(fields["pid"]),
        counter=int(fields["counter"]),
        rand=int(fields["rand"]),
        sec=int(fields["tv_sec"]),
        usec=int(fields["tv_usec"]),
        priority=priority.decode() if priority else None,
    )
    assert spool_file_name(name) == vec["file_relative_path"]
    assert parse_spool_file_name(vec["file_relative_path"]) == name
    if at:
        assert vec["file_mtime"] == at
    return {
        "header": header_dict(content),
        "vars": list(spool.vars),
        "body": spool.body,
    }


def check_stats(vec: dict[str, Any]) -> dict[str, Any]:
    response = bytes.fromhex(vec["response_hex"])
    http = response.startswith(b"HTTP/")
    doc = decode_stats_http(response) if http else decode_stats(response)
    # values are CAPTURE placeholders; keys, order and layout are the builder's
    assert (encode_stats_http(doc) if http else encode_stats(doc)) == response
    assert decode_stats(encode_stats(doc, minified=True)) == doc
    worker = doc["workers"][0]
    return {
        "top_level_keys": list(doc),
        "worker_keys": list(worker),
        "core_keys": list(worker["cores"][0]),
        "app_keys": list(worker["apps"][0]),
        "socket_keys": list(doc["sockets"][0]),
        "cache_keys": list(doc["caches"][0]),
        "locks": doc["locks"],
        "http_headers": response.split(b"\r\n\r\n", 1)[0] if http else None,
    }


HANDLERS: list[tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("stats_server_", check_stats),
    ("spoolfile_", check_spoolfile),
    ("legion_election_timeline", check_legion_timeline),
    ("legion_", check_legion),
    ("cache_udp_", check_cache_udp),
    ("subscription_server_accepts_and_routes", check_subscription_router),
    ("subscription_wrr_balancing", check_subscription_wrr),
    ("subscription_subscribe", check_subscription_datagram),
    ("subscription_unsubscribe", check_subscription_datagram),
    ("http_socket_", check_http_socket),
]


def test_every_variable_field_rule_is_used() -> None:
    """The placeholder table documents exactly what the vector files use."""
    used = {f for p in VECTOR_FILES for f in load_vector(p)["variable_fields"]}
    assert used, f"no vectors found in {VECTORS}"
    assert set(VARIABLE_FIELDS) == used
    assert all(kind in ("mask", CAPTURE, "ignore") for kind, _ in VARIABLE_FIELDS.values())


def test_every_vector_has_a_handler() -> None:
    assert VECTOR_FILES, f"no vectors found in {VECTORS}"
    for path in VECTOR_FILES:
        handler_for(load_vector(path))

