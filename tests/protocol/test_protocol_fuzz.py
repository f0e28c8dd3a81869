"""Bad input: arbitrary and mutated bytes never crash the codec.

Whatever arrives, decoders yield events, ``NEED_DATA`` or a ``ProtocolError`` (never
``struct.error``, ``IndexError``, ``UnicodeDecodeError``...), and a connection never
buffers more than its limit plus a header. See ``fuzz_codec.py`` for the shared driver
(also an atheris entry point).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from fuzz_codec import HEAD_LIMIT, SAMPLE_REQUESTS, drain, feed, fuzz_one
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_harness import vectors_dir

from simuwsgi.protocol import (
    CLIENT,
    SERVER,
    CacheMagicRequest,
    Connection,
    ProtocolError,
    Request,
    RpcRequest,
    decode_array,
    decode_dict,
    decode_request_vars,
    decode_spool_file,
    encode_spool_file,
    parse_spool_file_name,
    str_num,
)
from simuwsgi.protocol._spoolfile import decode_spool_task

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _seeds() -> list[bytes]:
    """Real captured bytes, as mutation seeds."""
    import json

    out = []
    for path in sorted(vectors_dir().glob("*.json")):
        vec = json.loads(Path(path).read_text())
        for key in ("request_hex", "response_hex", "file_hex"):
            value = vec.get(key)
            if isinstance(value, str) and 0 < len(value) <= 8192:
                out.append(bytes.fromhex(value))
    return out or [b"\x00\x05\x00\x00\x01\x00a\x00\x00"]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 3))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[pos:pos] = draw(st.binary(max_size=8))
        elif op == 2:
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data = data[:pos]
    return bytes(data)


chunked = st.lists(st.binary(max_size=64), max_size=12)


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_every_decoder(data: bytes) -> None:
    fuzz_one(data)


@FUZZ
@given(mutated())
def test_mutated_captures_every_decoder(data: bytes) -> None:
    fuzz_one(b"\x06" + data)  # chunks of 7 bytes
    fuzz_one(b"\x00" + data)  # byte by byte


@FUZZ
@given(
    chunked,
    st.integers(0, 300),
    st.integers(0, 10),
    st.booleans(),
)
def test_server_bounded_buffer(
    chunks: list[bytes], buffer_size: int, max_vars: int, persistent: bool
) -> None:
    conn = Connection(SERVER, buffer_size=buffer_size, max_vars=max_vars, persistent=persistent)
    feed(conn, chunks, buffer_size + 4)


@FUZZ
@given(st.sampled_from(SAMPLE_REQUESTS), chunked)
def test_client_any_reply(request: object, chunks: list[bytes]) -> None:
    conn = Connection(CLIENT)
    conn.send_message(request)  # type: ignore[arg-type]
    feed(conn, chunks, HEAD_LIMIT)


@FUZZ
@given(st.sampled_from(SAMPLE_REQUESTS), mutated())
def test_client_mutated_reply(request: object, data: bytes) -> None:
    conn = Connection(CLIENT)
    conn.send_message(request)  # type: ignore[arg-type]
    feed(conn, [data[i : i + 5] for i in range(0, len(data), 5)], HEAD_LIMIT)


@FUZZ
@given(st.binary(max_size=600))
def test_block_parsers(data: bytes) -> None:
    for parse in (
        lambda b: decode_request_vars(b, max_vars=8, limit_post=3),
        decode_dict,
        lambda b: decode_array(b, max_items=3),
    ):
        with contextlib.suppress(ProtocolError):
            parse(data)
    assert 0 <= str_num(data[:25]) < 1 << 64


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=50))
def test_spool_file_decoder(vars_block: bytes, body: bytes) -> None:
    try:
        content = encode_spool_file(vars_block, body)
    except ProtocolError:
        return
    for cut in (0, 3, 4, len(content) // 2, len(content)):
        try:
            spool = decode_spool_file(content[:cut])
        except ProtocolError as exc:
            assert getattr(exc, "disposition", None) in ("skip", "delete")
            continue
        assert spool.vars_block == vars_block[: max(0, cut - 4)] or cut == len(content)
    spool = decode_spool_file(content)
    assert (spool.vars_block, spool.body) == (vars_block, body)
    assert (spool.modifier1, spool.modifier2) == (17, 0)
    # the spooler's lighter decoder: the same three fields, the same errors
    for data in (content, content[:3], content[:len(content) // 2]):
        try:
            expected: object = decode_spool_file(data)
        except ProtocolError as exc:
            expected = (type(exc), str(exc), getattr(exc, "disposition", None))
        else:
            expected = (expected.vars, expected.body, expected.valid)  # type: ignore[attr-defined]
        try:
            got: object = decode_spool_task(data)
        except ProtocolError as exc:
            got = (type(exc), str(exc), getattr(exc, "disposition", None))
        assert got == expected


@FUZZ
@given(st.text(max_size=80))
def test_spool_file_names(name: str) -> None:
    with contextlib.suppress(ProtocolError):
        parse_spool_file_name(name)


def test_drain_asserts_the_bound() -> None:
    """The bound check in the driver is live: a server refuses oversize packets."""
    conn = Connection(SERVER, buffer_size=10)
    conn.receive_data(b"\x00\x0b\x00\x00")
    with pytest.raises(ProtocolError, match="invalid request block size: 11"):
        drain(conn, 14)


def test_samples_are_requests() -> None:
    assert any(isinstance(r, Request) for r in SAMPLE_REQUESTS)
    assert any(isinstance(r, RpcRequest) for r in SAMPLE_REQUESTS)
    assert any(isinstance(r, CacheMagicRequest) for r in SAMPLE_REQUESTS)
