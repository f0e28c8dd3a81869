"""The optional C accelerator gives exactly what the pure-Python code gives."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simuwsgi.protocol import _vars

pairs_st = st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=5000)), max_size=30)


def outcome(fn, *args, **kw):
    try:
        return ("ok", fn(*args, **kw))
    except Exception as exc:  # noqa: BLE001 - compared, type and message
        return (type(exc).__name__, str(exc))


def pure(fn, *args, **kw):
    saved = _vars._c_tile, _vars._c_join, _vars._c_join_request
    _vars._c_tile = _vars._c_join = _vars._c_join_request = None
    try:
        return outcome(fn, *args, **kw)
    finally:
        _vars._c_tile, _vars._c_join, _vars._c_join_request = saved


def test_the_accelerator_is_built_here():
    # The machines this project runs on have a compiler: a silent fallback would hide
    # a broken build (SIMUWSGI_PURE_PYTHON=1 runs the Python twin on purpose).
    pure = bool(os.environ.get("SIMUWSGI_PURE_PYTHON"))
    assert (_vars._c_tile is None, _vars._c_join is None) == (pure, pure)


@settings(max_examples=300, deadline=None)
@given(pairs_st)
def test_encode_same_with_and_without_c(pairs):
    assert outcome(_vars.encode_vars, pairs) == pure(_vars.encode_vars, pairs)
    assert outcome(_vars.encode_vars, tuple(pairs)) == pure(_vars.encode_vars, tuple(pairs))
    assert outcome(_vars.encode_request_vars, pairs) == pure(_vars.encode_request_vars, pairs)


@settings(max_examples=300, deadline=None)
@given(pairs_st, st.integers(min_value=0, max_value=40), st.integers(min_value=0, max_value=9))
def test_decode_same_with_and_without_c(pairs, max_vars, cut):
    block = _vars.encode_vars(pairs)
    for data in (block, block[:-cut] if cut else block, block + b"\x00" * cut):
        assert outcome(_vars.decode_request_vars, data, max_vars=max_vars) == \
            pure(_vars.decode_request_vars, data, max_vars=max_vars)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_arbitrary_bytes_same_with_and_without_c(data):
    assert outcome(_vars.decode_request_vars, data) == pure(_vars.decode_request_vars, data)


@pytest.mark.parametrize("value", [b"x" * 65535, b"x" * 65536, bytearray(b"ab"), "str"])
def test_edges_fall_back_to_python(value):
    pairs = [(b"K", value)]
    assert outcome(_vars.encode_vars, pairs) == pure(_vars.encode_vars, pairs)
