"""Unit and property tests of ``simuwsgi.protocol`` beyond the golden vectors.

Each rule tested here is cited from protocol.md / spoolfile.md / cluster.md or the
uWSGI source the module docstrings name.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simuwsgi.protocol as proto
from simuwsgi._errors import SimuwsgiError
from simuwsgi.protocol import (
    CLIENT,
    NEED_DATA,
    SERVER,
    Ack,
    CacheDictGet,
    CacheGet,
    CacheGetStream,
    CacheMagicRequest,
    CacheMagicResponse,
    CacheSet,
    CacheUdpDelete,
    CacheUdpUpdate,
    CacheValue,
    Connection,
    ConnectionClosed,
    Data,
    Echo,
    EndOfMessage,
    HttpResponse,
    LegionAnnounce,
    LegionCipher,
    LocalProtocolError,
    NoReply,
    Ping,
    Pong,
    ProtocolError,
    RawResponse,
    RemoteProtocolError,
    Request,
    RpcHttpRequest,
    RpcRequest,
    RpcResponse,
    SignalRequest,
    SpoolFileError,
    SpoolFileName,
    SpoolRequest,
    State,
    Subscription,
    UnknownRequest,
    content_length,
    decode_array,
    decode_cache_udp_datagram,
    decode_dict,
    decode_dict_prefix,
    decode_header,
    decode_legion_announce,
    decode_request_vars,
    decode_spool_file,
    decode_stats,
    decode_subscription,
    encode_array,
    encode_cache_udp_datagram,
    encode_header,
    encode_legion_announce,
    encode_packet,
    encode_spool_file,
    encode_stats,
    encode_subscription,
    encode_vars,
    escape_json,
    not_found_response,
    parse_spool_file_name,
    rpc_http_call,
    rpc_http_response,
    spool_file_name,
    spool_options,
    str_num,
    subscription_hash,
)

# -- helpers -------------------------------------------------------------------------------


def events_of(conn: Connection, data: bytes = b"", eof: bool = True) -> list[object]:
    """Feed ``data`` (and EOF) and collect events until NEED_DATA / ConnectionClosed."""
    if data:
        conn.receive_data(data)
    if eof:
        conn.receive_data(b"")
    out: list[object] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out


def request_bytes(vars: tuple[tuple[bytes, bytes], ...], body: bytes = b"", m1: int = 0) -> bytes:
    return encode_packet(m1, 0, encode_vars(vars)) + body


# -- public surface --------------------------------------------------------------------------


def test_all_is_sorted_and_complete() -> None:
    assert proto.__all__ == sorted(proto.__all__)
    for name in proto.__all__:
        assert hasattr(proto, name), name
    public = {n for n in dir(proto) if not n.startswith(("_", "@"))}
    assert public - set(proto.__all__) <= {"annotations"}


def test_events_are_frozen_keyword_only() -> None:
    event = RpcRequest(function=b"f", args=(b"a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.function = b"g"  # type: ignore[misc]
    with pytest.raises(TypeError):
        RpcRequest(b"f")  # type: ignore[misc]
    for name in proto.__all__:
        obj = getattr(proto, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            params = obj.__dataclass_params__  # type: ignore[attr-defined]
            assert params.frozen, name
            assert all(f.kw_only for f in dataclasses.fields(obj)), name


def test_error_hierarchy() -> None:
    assert issubclass(ProtocolError, ValueError)
    assert issubclass(ProtocolError, SimuwsgiError)
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    assert issubclass(SpoolFileError, RemoteProtocolError)
    assert repr(NEED_DATA) == "NEED_DATA"


# -- header, numbers -------------------------------------------------------------------------


def test_header_roundtrip_and_limits() -> None:
    assert encode_header(173, 0x1234, 5) == b"\xad\x34\x12\x05"
    assert tuple(decode_header(b"\xad\x34\x12\x05")) == (173, 0x1234, 5)
    with pytest.raises(LocalProtocolError, match="u16"):
        encode_header(0, 65536, 0)
    with pytest.raises(LocalProtocolError, match="single bytes"):
        encode_header(256, 0, 0)
    with pytest.raises(RemoteProtocolError, match="4 bytes"):
        decode_header(b"\x00\x01")


def test_str_num_has_no_validation() -> None:
    assert str_num(b"70000") == 70000
    assert str_num(b"") == 0
    assert str_num(b"1a") == 10 + (ord("a") - 48)  # garbage, not an error
    assert str_num(b"-1") == ((ord("-") - 48) * 10 + 1) % (1 << 64)
    assert str_num(b"\xff") == (-1 - 48) % (1 << 64)  # signed char
    assert str_num(b"1" * 20) == 0  # pow(10, 20) overflows the uint64_t conversion
    assert content_length(b"12abc") == 12
    assert content_length(b"abc") == 0


# -- vars / dict / array rules ---------------------------------------------------------------


def test_request_vars_rules() -> None:
    ok = encode_vars([(b"A", b"1"), (b"A", b"2"), (b"B", b"")])
    assert decode_request_vars(ok) == ((b"A", b"1"), (b"A", b"2"), (b"B", b""))
    with pytest.raises(RemoteProtocolError, match="key cannot be null"):
        decode_request_vars(b"\x00\x00\x01\x00a")
    with pytest.raises(RemoteProtocolError, match="announces"):
        decode_request_vars(b"\x01\x00a\x09\x00b")
    for stray in (b"\x01", b"\x01\x00"):
        with pytest.raises(RemoteProtocolError, match="stray"):
            decode_request_vars(ok + stray)
    with pytest.raises(RemoteProtocolError, match="value length"):
        decode_request_vars(b"\x01\x00a\x00")


def test_request_vars_key_overrun_resyncs_like_uwsgi() -> None:
    # uwsgi_parse_vars has no else-branch for an overrunning key: it re-parses the
    # key bytes as pairs, so this block is accepted with one var.
    assert decode_request_vars(b"\xff\x00" + encode_vars([(b"a", b"b")])) == ((b"a", b"b"),)


def test_request_vars_limits() -> None:
    block = encode_vars([(b"K%d" % i, b"v") for i in range(129)])
    with pytest.raises(RemoteProtocolError, match="max vec size"):
        decode_request_vars(block)
    assert len(decode_request_vars(block, max_vars=129)) == 129
    cl = encode_vars([(b"CONTENT_LENGTH", b"100")])
    assert decode_request_vars(cl, limit_post=100)
    with pytest.raises(RemoteProtocolError, match="limit-post"):
        decode_request_vars(cl, limit_post=99)


def test_generic_dict_rules() -> None:
    assert decode_dict(encode_vars([(b"k", b"")])) == ((b"k", b""),)
    with pytest.raises(RemoteProtocolError):
        decode_dict(b"\xff\x00" + encode_vars([(b"a", b"b")]))  # no resync here
    pairs, error = decode_dict_prefix(encode_vars([(b"a", b"b")]) + b"\x00\x00\x01\x00x")
    assert pairs == ((b"a", b"b"),) and error and "zero-length key" in error


def test_array_rules() -> None:
    assert decode_array(b"\x05\x00nargs\x00\x00\x01\x00b") == (b"nargs", b"b")
    with pytest.raises(RemoteProtocolError, match="trailing empty"):
        decode_array(b"\x05\x00nargs\x01\x00a\x00\x00")
    assert decode_array(encode_array([b"a", b"b", b"c", b"d"]), max_items=3) == (b"a", b"b", b"c")
    assert decode_array(encode_array([b"k", b"v"]) + b"junk", max_items=2) == (b"k", b"v")


def test_encoders_take_iterators_long_values_and_refuse_bad_input() -> None:
    pairs = [(b"a", b"x" * 5000), (b"b", b"")]
    assert decode_dict(encode_vars(iter(pairs))) == tuple(pairs)
    assert decode_array(encode_array(iter([b"y" * 35_000]))) == (b"y" * 35_000,)
    for bad in ([(b"a", b"b", b"c")], [("a", b"b")], [1], [(b"k", b"v" * 65536)]):
        with pytest.raises(LocalProtocolError, match="pairs"):
            encode_vars(bad)  # type: ignore[arg-type]
    client = Connection(CLIENT)
    client.send(Request(vars=((b"CONTENT_LENGTH", b"1"),)))
    with pytest.raises(LocalProtocolError, match="must be bytes"):
        client.send(Data(data="x"))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=20)), max_size=40
    )
)
def test_vars_roundtrip(pairs: list[tuple[bytes, bytes]]) -> None:
    block = encode_vars(pairs)
    assert decode_request_vars(block, max_vars=40) == tuple(pairs)
    assert decode_dict(block) == tuple(pairs)


# -- WSGI requests over a connection ---------------------------------------------------------


def test_server_request_with_body_in_fragments() -> None:
    vars = ((b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5xyz"))
    wire = request_bytes(vars, b"12345" + b"IGNORED")
    conn = Connection(SERVER)
    events = []
    for i in range(len(wire)):
        conn.receive_data(wire[i : i + 1])
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    assert events[0] == Request(vars=vars)
    assert b"".join(e.data for e in events if isinstance(e, Data)) == b"12345"
    assert events[-1] == EndOfMessage()
    assert conn.trailing_data == (b"", False)  # the extra bytes are never read


def test_server_refuses_oversize_as_soon_as_the_header_is_known() -> None:
    conn = Connection(SERVER, buffer_size=100)
    conn.receive_data(b"\x00\x65\x00\x00")
    with pytest.raises(RemoteProtocolError, match=r"invalid request block size: 101 \(max 100\)"):
        conn.next_event()
    assert conn.their_state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.send(NoReply()) == b""
    exact = Connection(SERVER, buffer_size=6)
    assert isinstance(events_of(exact, request_bytes(((b"AB", b""),)) + b"\x00")[0], Request)


def test_server_empty_request_and_eof_cases() -> None:
    with pytest.raises(RemoteProtocolError, match="empty request"):
        events_of(Connection(SERVER), b"\x00\x00\x00\x00")
    assert events_of(Connection(SERVER)) == [ConnectionClosed()]
    with pytest.raises(RemoteProtocolError, match="header"):
        events_of(Connection(SERVER), b"\x00\x05")
    with pytest.raises(RemoteProtocolError, match="before the end"):
        events_of(Connection(SERVER), b"\x00\x05\x00\x00\x01")
    body = request_bytes(((b"CONTENT_LENGTH", b"4"),), b"12")
    with pytest.raises(RemoteProtocolError, match="2 byte"):
        events_of(Connection(SERVER), body)


def test_http_reply_protocol_comes_from_server_protocol() -> None:
    for vars, proto_line in (
        (((b"SERVER_PROTOCOL", b"HTTP/1.0"), (b"SERVER_PROTOCOL", b"HTTP/1.1")), b"HTTP/1.1"),
        (((b"SERVER_PROTOCOL", b""),), b"HTTP/1.0"),
        (((b"PATH_INFO", b"/"),), b"HTTP/1.0"),
    ):
        conn = Connection(SERVER)
        events_of(conn, request_bytes(vars), eof=False)
        out = conn.send(HttpResponse(status=b"200 OK", headers=((b"X", b"y"), (b"", b"raw"))))
        assert out == proto_line + b" 200 OK\r\nX: y\r\nraw\r\n\r\n"
        out = conn.send(Data(data=b"body")) + conn.send(EndOfMessage())
        assert out == b"body"


def test_client_reads_http_reply_until_close() -> None:
    client = Connection(CLIENT)
    wire = client.send_message(Request(vars=((b"PATH_INFO", b"/"),)))
    assert wire == request_bytes(((b"PATH_INFO", b"/"),))
    events = events_of(client, b"HTTP/1.1 404 Nope\r\nA:  b\r\n\r\nxy")
    head = events[0]
    assert isinstance(head, HttpResponse)
    assert (head.protocol, head.status, head.status_code, head.headers) == (
        b"HTTP/1.1", b"404 Nope", 404, ((b"A", b"b"),)
    )
    assert events[1:] == [Data(data=b"xy"), EndOfMessage(), ConnectionClosed()]


def test_client_no_reply_and_early_data() -> None:
    client = Connection(CLIENT)
    client.send_message(Ping())
    assert events_of(client) == [NoReply(), ConnectionClosed()]
    fresh = Connection(CLIENT)
    with pytest.raises(RemoteProtocolError, match="before any request"):
        events_of(fresh, b"x")


def test_send_state_machine_errors() -> None:
    server = Connection(SERVER)
    with pytest.raises(LocalProtocolError, match="before a request head"):
        server.send(Pong())
    server = Connection(SERVER)
    events_of(server, b"\x64\x00\x00\x00", eof=False)
    with pytest.raises(LocalProtocolError, match="cannot answer a Ping"):
        server.send(Ack())
    with pytest.raises(LocalProtocolError):
        server.send(Pong())  # the connection is in ERROR after a local error
    client = Connection(CLIENT)
    with pytest.raises(LocalProtocolError, match="client sends request events"):
        client.send(Pong())
    client = Connection(CLIENT)
    client.send(Request(vars=((b"CONTENT_LENGTH", b"3"),)))
    with pytest.raises(LocalProtocolError, match="exceeds the 3"):
        client.send(Data(data=b"1234"))
    client = Connection(CLIENT)
    client.send(Request(vars=((b"CONTENT_LENGTH", b"3"),)))
    client.send(Data(data=b"12"))
    with pytest.raises(LocalProtocolError, match="still unsent"):
        client.send(EndOfMessage())
    with pytest.raises(LocalProtocolError, match="empty key"):
        Connection(CLIENT).send(Request(vars=((b"", b"x"),)))
    with pytest.raises(LocalProtocolError, match="only a server"):
        Connection(CLIENT).send(NoReply())
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn = Connection(SERVER)
        conn.receive_data(b"")
        conn.receive_data(b"x")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=12), st.binary(max_size=12)),
        min_size=1,
        max_size=20,
    ),
    st.binary(max_size=40),
    st.sampled_from([0, 5, 30]),
    st.integers(1, 9),
)
def test_request_roundtrip_through_both_roles(
    pairs: list[tuple[bytes, bytes]], body: bytes, m1: int, step: int
) -> None:
    vars = (
        *(p for p in pairs if p[0] != b"CONTENT_LENGTH"),
        (b"CONTENT_LENGTH", b"%d" % len(body)),
    )
    request = Request(vars=vars, modifier1=m1)
    wire = Connection(CLIENT).send_message(request, body)
    server = Connection(SERVER)
    events: list[object] = []
    for i in range(0, len(wire), step):
        server.receive_data(wire[i : i + step])
        while (event := server.next_event()) is not NEED_DATA:
            events.append(event)
    assert events[0] == request
    assert b"".join(e.data for e in events if isinstance(e, Data)) == body
    assert events[-1] == EndOfMessage()


# -- other modifiers -----------------------------------------------------------------------


def test_ping_signal_spool_echo_unknown() -> None:
    for request, reply, expected in (
        (Ping(), Pong(message=b"degraded"), b"\x64\x08\x00\x01degraded"),
        (SignalRequest(signum=200), Ack(status=1), b"\xff\x00\x00\x01"),
        (SpoolRequest(vars=((b"a", b"b"),)), Ack(status=0), b"\xff\x00\x00\x00"),
    ):
        server = Connection(SERVER)
        received = events_of(server, Connection(CLIENT).send_message(request), eof=False)[0]
        if isinstance(received, SpoolRequest):
            assert received.raw == encode_vars(request.vars)  # type: ignore[union-attr]
            received = dataclasses.replace(received, raw=None)
        assert received == request
        assert server.send_message(reply) == expected
        client = Connection(CLIENT)
        client.send_message(request)
        assert events_of(client, expected)[0] == reply
    echo = Connection(SERVER)
    events_of(echo, b"\x65\x02\x00\x07hi", eof=False)
    assert echo.send_message(RawResponse(), b"hi") == b"hi"
    unknown = events_of(Connection(SERVER), b"\xe0\x01\x00\x00x")
    assert unknown[0] == UnknownRequest(modifier1=224, payload=b"x")
    assert Connection(CLIENT).send_message(Echo(payload=b"x", modifier2=3)) == b"\x65\x01\x00\x03x"


def test_spool_request_keeps_invalid_payload_verbatim() -> None:
    payload = encode_vars([(b"a", b"b")]) + b"\x00\x00zz"
    event = events_of(Connection(SERVER), encode_packet(17, 0, payload) + b"BODY")[0]
    assert isinstance(event, SpoolRequest)
    assert (event.vars, event.raw, event.valid) == (((b"a", b"b"),), payload, False)
    assert encode_spool_file(event.payload) == encode_packet(17, 0, payload)


def test_rpc_framing() -> None:
    request = RpcRequest(function=b"big", args=())
    server = Connection(SERVER)
    events_of(server, Connection(CLIENT).send_message(request), eof=False)
    big = b"x" * 70000
    wire = server.send_message(RpcResponse(length=len(big)), big)
    assert wire[:4] == b"\xad\x17\x00\x05" and wire.endswith(big)
    client = Connection(CLIENT)
    client.send_message(request)
    events = events_of(client, wire)
    assert events[0] == RpcResponse(length=70000)
    assert b"".join(e.data for e in events if isinstance(e, Data)) == big
    raw = Connection(SERVER)
    events_of(raw, encode_packet(173, 4, encode_array([b"f"])), eof=False)
    assert raw.send_message(RpcResponse(length=2), b"ok") == b"ok"
    with pytest.raises(LocalProtocolError, match="empty"):
        Connection(SERVER).send  # noqa: B018
        server2 = Connection(SERVER)
        events_of(server2, encode_packet(173, 0, encode_array([b"f"])), eof=False)
        server2.send(RpcResponse(length=0))
    with pytest.raises(RemoteProtocolError, match="Empty RPC"):
        events_of(Connection(SERVER), b"\xad\x00\x00\x00")


def test_rpc_http_bridge_helpers() -> None:
    assert rpc_http_call(RpcHttpRequest(vars=((b"PATH_INFO", b"//f//a/b/"),))) == (
        b"f", (b"a", b"b"),
    )
    assert rpc_http_call(RpcHttpRequest(vars=((b"PATH_INFO", b"/"),))) is None
    assert rpc_http_call(RpcHttpRequest(vars=())) is None
    assert rpc_http_call(RpcHttpRequest(vars=((b"PATH_INFO", b"/f/a\x00b/c"),))) == (
        b"f", (b"a",),
    )
    head = rpc_http_response(b"abc", http_accept=b"*/*")
    assert head.headers == ((b"Content-Length", b"3"), (b"Content-Type", b"application/binary"))
    assert rpc_http_response(b"abc", http_accept=b"text/x").headers[1] == (
        b"Content-Type", b"text/x",
    )


def test_cache_commands() -> None:
    assert events_of(Connection(SERVER), b"\x6f\x02\x00\x00k1")[0] == CacheGet(key=b"k1")
    assert events_of(Connection(SERVER), b"\x6f\x02\x00\x05k1")[0] == CacheGetStream(key=b"k1")
    set_wire = encode_packet(111, 1, encode_array([b"k", b"v", b"x", b"ignored"]))
    assert events_of(Connection(SERVER), set_wire)[0] == CacheSet(key=b"k", value=b"v")
    with pytest.raises(RemoteProtocolError, match="key, value"):
        events_of(Connection(SERVER), encode_packet(111, 1, encode_array([b"k"])))
    dict_wire = encode_packet(111, 3, encode_vars([(b"get", b"k")]))
    assert events_of(Connection(SERVER), dict_wire)[0] == CacheDictGet(
        pairs=((b"get", b"k"),), modifier2=3
    )
    with pytest.raises(RemoteProtocolError, match="empty cache request"):
        events_of(Connection(SERVER), b"\x6f\x00\x00\x11")
    assert events_of(Connection(SERVER), b"\x6f\x00\x00\x0a")[0] == UnknownRequest(
        modifier1=111, modifier2=10
    )
    server = Connection(SERVER)
    events_of(server, b"\x6f\x02\x00\x05k1", eof=False)
    assert server.send_message(CacheValue()) == b"\x00\x00\x00\x00"
    with pytest.raises(LocalProtocolError, match="4 bytes"):
        server2 = Connection(SERVER)
        events_of(server2, b"\x6f\x02\x00\x00k1", eof=False)
        server2.send(CacheValue(prefix=b"\x00"))


def test_cache_magic_set_and_get_streams() -> None:
    request = CacheMagicRequest.set(b"k", 3, expires=60, cache=b"")
    assert [k for k, _ in request.pairs] == [b"cmd", b"key", b"size", b"expires", b"size", b"cache"]
    assert (request.command, request.size, request.expires, request.cache) == (b"set", 3, 60, b"")
    wire = Connection(CLIENT).send_message(request, b"abc")
    events = events_of(Connection(SERVER), wire + b"junk")
    assert events[:3] == [request, Data(data=b"abc"), EndOfMessage()]
    get = CacheMagicRequest.get(b"k")
    server = Connection(SERVER)
    events_of(server, Connection(CLIENT).send_message(get), eof=False)
    reply = server.send_message(CacheMagicResponse.ok(size=3, expires=99), b"abc")
    client = Connection(CLIENT)
    client.send_message(get)
    events = events_of(client, reply)
    head = events[0]
    assert isinstance(head, CacheMagicResponse)
    assert (head.status, head.size, head.expires) == (b"ok", 3, 99)
    assert events[1] == Data(data=b"abc")
    zero = CacheMagicRequest(pairs=((b"cmd", b"set"), (b"key", b"z"), (b"size", b"0")))
    assert events_of(Connection(SERVER), encode_packet(111, 17, encode_vars(zero.pairs)))[:2] == [
        zero, EndOfMessage(),
    ]


def test_not_found_page() -> None:
    head, body = not_found_response()
    server = Connection(SERVER)
    events_of(server, encode_packet(111, 4, encode_vars([(b"get", b"k")])), eof=False)
    assert server.send_message(head, body) == (
        b"HTTP/1.0 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\nNot Found"
    )


# -- puwsgi ---------------------------------------------------------------------------------


def test_puwsgi_keeps_wsgi_closes_after_rpc() -> None:
    wsgi = request_bytes(((b"PATH_INFO", b"/"), (b"CONTENT_LENGTH", b"3")))
    rpc = encode_packet(173, 0, encode_array([b"hello", b"a"]))
    conn = Connection(SERVER, persistent=True)
    conn.receive_data(wsgi + wsgi + rpc)
    for _ in range(2):
        assert isinstance(conn.next_event(), Request)
        assert conn.next_event() == EndOfMessage()  # no body support in puwsgi
        conn.send_message(HttpResponse(status=b"200 OK"))
        assert conn.keep_alive
        conn.start_next_cycle()
    assert isinstance(conn.next_event(), RpcRequest)
    conn.next_event()
    conn.send_message(RpcResponse(length=7), b"hello a")
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError, match="rewrote"):
        conn.start_next_cycle()
    same = Connection(SERVER, persistent=True)
    events_of(same, rpc, eof=False)
    same.send_message(RpcResponse(length=len(rpc) - 4), b"x" * (len(rpc) - 4))
    assert same.keep_alive  # equal pktsize: uWSGI keeps it too


def test_puwsgi_zero_pktsize_and_misuse() -> None:
    with pytest.raises(RemoteProtocolError, match="pktsize-0"):
        events_of(Connection(SERVER, persistent=True), b"\x64\x00\x00\x00")
    with pytest.raises(LocalProtocolError, match="persistent"):
        Connection(SERVER).start_next_cycle()
    with pytest.raises(LocalProtocolError, match="client"):
        Connection(CLIENT, persistent=True)


# -- datagrams ------------------------------------------------------------------------------


def test_cache_udp_receiver_rules() -> None:
    update = CacheUdpUpdate(key=b"k", value=b"v", expires=5)
    assert decode_cache_udp_datagram(encode_cache_udp_datagram(update)) == update
    delete = encode_cache_udp_datagram(CacheUdpDelete(key=b"k"))
    with pytest.raises(RemoteProtocolError, match="drops every delete"):
        decode_cache_udp_datagram(delete)
    assert decode_cache_udp_datagram(delete, drop_deletes=False) == CacheUdpDelete(key=b"k")
    no_expiry = encode_packet(111, 10, encode_array([b"k", b"v"]))
    assert decode_cache_udp_datagram(no_expiry) == CacheUdpUpdate(key=b"k", value=b"v")
    bad_datagrams = (
        b"",
        b"\x6e\x00\x00\x0a",
        b"\x6f\x09\x00\x0a",
        encode_packet(111, 12, b"\x01\x00k1"),
    )
    for bad in bad_datagrams:
        with pytest.raises(RemoteProtocolError, match="dropped"):
            decode_cache_udp_datagram(bad)


@settings(max_examples=100, deadline=None)
@given(
    st.binary(max_size=40),
    st.binary(max_size=40),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 10**6),
    st.integers(0, 255),
)
def test_subscription_roundtrip(
    key: bytes, address: bytes, m1: int, m2: int, weight: int, cmd: int
) -> None:
    sub = Subscription(
        key=key, address=address, modifier1=m1, modifier2=m2, weight=weight, command=cmd,
        cores=4, load=1, notify=b"/tmp/n",
    )
    assert decode_subscription(encode_subscription(sub)) == sub


def test_subscription_receiver_quirks() -> None:
    wire = encode_subscription(Subscription(key=b"k", address=b"a", modifier1=300))
    assert decode_subscription(wire).modifier1 == 300 & 0xFF
    truncated = decode_subscription(wire[:-3])
    assert not truncated.valid and truncated.key == b"k"
    assert subscription_hash(b"example.com") == 30778
    assert 0 <= subscription_hash(bytes(range(256))) < 0xFFFF
    with pytest.raises(RemoteProtocolError):
        decode_subscription(b"\xe0")


def test_legion_roundtrip_and_drops() -> None:
    announce = LegionAnnounce(
        legion=b"L", valor=90, unix=1, lord=0, name=b"h", pid=1, uuid=b"u" * 36,
        scroll=b"s", dead=True,
    )
    for cipher_name in ("aes-128-cbc", "aes-256-ecb", "aes-192-ctr", "aes256"):
        cipher = LegionCipher.from_option(cipher_name, b"secret", b"iv")
        datagram = encode_legion_announce(announce, cipher)
        assert decode_legion_announce(datagram, cipher) == announce
    cipher = LegionCipher.from_option("aes-128-cbc", b"secret")
    datagram = encode_legion_announce(announce, cipher)
    with pytest.raises(RemoteProtocolError, match="decrypt"):
        decode_legion_announce(datagram, LegionCipher.from_option("aes-128-cbc", b"other"))
    with pytest.raises(RemoteProtocolError, match="modifier1"):
        decode_legion_announce(b"\x6e" + datagram[1:], cipher)
    with pytest.raises(RemoteProtocolError, match="size"):
        decode_legion_announce(datagram[:3], cipher)
    with pytest.raises(RemoteProtocolError, match="header says"):
        decode_legion_announce(datagram[:1] + b"\x01\x00" + datagram[3:], cipher)
    with pytest.raises(LocalProtocolError, match="unsupported"):
        LegionCipher.from_option("bf-cbc", b"x")
    short_uuid = encode_vars([(b"legion", b"L"), (b"uuid", b"short")])
    odd = encode_header(109, len(short_uuid), 0) + cipher.encrypt(short_uuid)
    assert decode_legion_announce(odd, cipher).uuid == b"\x00" * 36


# -- spool files and stats ---------------------------------------------------------------------


def test_spool_file_rules() -> None:
    content = encode_spool_file([(b"a", b"1"), (b"at", b"42.9")], b"BODY")
    spool = decode_spool_file(content)
    assert spool.vars == ((b"a", b"1"), (b"at", b"42.9")) and spool.body == b"BODY"
    assert spool_options(spool.vars) == (None, None, 42)
    with pytest.raises(SpoolFileError) as short:
        decode_spool_file(content[:3])
    assert short.value.disposition == "skip"
    with pytest.raises(SpoolFileError) as cut:
        decode_spool_file(content[:8])
    assert cut.value.disposition == "delete"
    bad = decode_spool_file(encode_spool_file(b"\x00\x00xx"))
    assert not bad.valid and bad.vars == ()
    with pytest.raises(LocalProtocolError, match="64k"):
        encode_spool_file([(b"k", b"v" * 65535)])


def test_spool_file_names() -> None:
    name = SpoolFileName(
        hostname="my_host", pid=1, counter=2, rand=3, sec=4, usec=5, priority="10"
    )
    path = spool_file_name(name)
    assert path == "10/uwsgi_spoolfile_on_my_host_1_2_3_4_5"
    assert parse_spool_file_name(path) == name
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(LocalProtocolError, match="refusing"):
            spool_file_name(dataclasses.replace(name, priority=bad))
    with pytest.raises(RemoteProtocolError):
        parse_spool_file_name("uwsgi_spoolfile_on_host_1_2_x_4_5")


def test_stats_writer_layout() -> None:
    doc = {"a": 1, "l": [], "o": {"k": "v"}, "s": ["x", "y"], "objs": [{"n": 1}, {"n": 2}]}
    pretty = encode_stats(doc).decode()
    assert pretty == (
        '{\n\t"a":1,\n\t"l":[\n\n\t],\n\t"o":\t{\n\t\t"k":"v"\n\t},\n\t"s":[\n"x",\n"y"\n\t],\n'
        '\t"objs":[\n\t\t{\n\t\t\t"n":1\n\t\t},\n\t\t{\n\t\t\t"n":2\n\t\t}\n\t]\n}'
    )
    assert encode_stats(doc, minified=True) == (
        b'{"a":1,"l":[],"o":{"k":"v"},"s":["x","y"],"objs":[{"n":1},{"n":2}]}'
    )
    assert decode_stats(encode_stats(doc)) == doc
    assert escape_json('a"b\\c\td\n') == 'a\\"b\\\\c\\td\\n'
    with pytest.raises(LocalProtocolError):
        encode_stats({"bad": 1.5})
    with pytest.raises(RemoteProtocolError):
        decode_stats(encode_stats({"cwd": 'has"quote'}))
    with pytest.raises(RemoteProtocolError):
        decode_stats(b"\xff\xfe[1]")
