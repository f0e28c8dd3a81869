"""uwsgi vars blocks (``u16le klen, key, u16le vlen, value``...) and uwsgi arrays.

Three parsers of uWSGI are reproduced, because they accept different inputs
(``core/protocol.c``, protocol.md §2):

* :func:`decode_request_vars` - ``uwsgi_parse_vars``, used for requests (modifier1 0,
  the language plugins, RPC modifier2 2). Zero-length key, value overrunning the block,
  1 or 2 stray trailing bytes, more than ``max_vars`` pairs: rejected. A *key* whose
  length overruns the block is not an error there: the parser steps over the two
  length bytes and keeps parsing from the key's first byte (faithfully reproduced).
  A ``CONTENT_LENGTH`` above ``limit_post`` is rejected too (the one proto hook that
  can refuse a request).
* :func:`decode_dict` / :func:`decode_dict_prefix` - ``uwsgi_hooked_parse``, used for
  cache magic, spool content, subscription, Legion and RPC replies: fewer than 3 bytes
  at the start of a pair, a zero-length key or an overrun is an error; no pair limit.
  The hooks have already acted on the pairs before the error, which is why
  :func:`decode_dict_prefix` returns them.
* :func:`decode_array` - ``uwsgi_parse_array`` (RPC, simple cache set): at most
  ``max_items`` items (then the rest is ignored), an empty item is skipped, but a
  packet needs more than 2 bytes left to start an item, so an empty *last* item
  invalidates the whole array.

Left out: the per-key side effects of uWSGI's proto hooks (``UWSGI_SETENV``,
``UWSGI_FILE``...), which belong to the server, not to the codec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._errors import LocalProtocolError, RemoteProtocolError
from ._numbers import content_length
from .._core.accel import load

__all__ = [
    "Pairs",
    "decode_array",
    "decode_dict",
    "decode_dict_prefix",
    "decode_request_vars",
    "encode_array",
    "encode_request_vars",
    "encode_vars",
    "last_value",
]

Pairs = tuple[tuple[bytes, bytes], ...]

# the optional C accelerator (same results, well-formed input only); without it the
# pure-Python paths below do everything
_cvars = load(f"{__package__}._cvars", "join", "join_request", "tile")
_c_join = _cvars.join if _cvars else None
_c_join_request = _cvars.join_request if _cvars else None
_c_tile = _cvars.tile if _cvars else None

# Pre-built little-endian u16 length prefixes: indexing a list beats struct.pack.
_U16 = [i.to_bytes(2, "little") for i in range(4096)]


def _u16(n: int) -> bytes:
    return _U16[n] if n < 4096 else n.to_bytes(2, "little")


def encode_vars(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Encode ``(key, value)`` pairs as a vars block (order and duplicates kept).

    Only the format is checked (each key/value at most 65535 bytes). Whether uWSGI
    would accept the block (e.g. an empty key) is the sender's business.
    """
    if not isinstance(pairs, (tuple, list)):
        pairs = list(pairs)  # it may be iterated twice
    if _c_join is not None:
        block = _c_join(pairs)
        if block is not None:
            return block
    t = _U16
    parts: list[bytes] = []
    extend = parts.extend
    try:
        # hot path: one flat join (no per-pair intermediate bytes objects)
        for k, v in pairs:
            extend((t[len(k)], k, t[len(v)], v))
        return b"".join(parts)
    except (IndexError, TypeError, ValueError):  # e.g. a length of 4096 or more
        pass
    try:
        return b"".join([_u16(len(k)) + k + _u16(len(v)) + v for k, v in pairs])
    except (OverflowError, TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"vars must be (bytes, bytes) pairs of at most 65535 bytes each: {exc}"
        ) from None


def encode_request_vars(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    """:func:`encode_vars` for a request: an empty key is refused, as uWSGI would."""
    if _c_join_request is not None:
        block = _c_join_request(pairs)
        if block is not None:
            return block
    t = _U16
    parts: list[bytes] = []
    extend = parts.extend
    try:
        for k, v in pairs:
            if not k:
                break
            extend((t[len(k)], k, t[len(v)], v))
        else:
            return b"".join(parts)
    except (IndexError, TypeError, ValueError):
        encoded = [encode_vars((pair,)) for pair in pairs]  # raises for a bad pair
        if all(p[:2] != b"\x00\x00" for p in encoded):
            return b"".join(encoded)
    raise LocalProtocolError(
        "a request var with an empty key is refused by uWSGI (uwsgi_parse_vars): "
        f"{[p for p in pairs if not p[0]][:1]!r}"
    )


def encode_array(items: Iterable[bytes]) -> bytes:
    """Encode a uwsgi array (``u16le len, bytes`` items)."""
    try:
        return b"".join([_u16(len(item)) + item for item in items])
    except (OverflowError, TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"array items must be bytes of at most 65535 bytes each: {exc}"
        ) from None


def decode_request_vars(
    data: bytes, *, max_vars: int = 128, limit_post: int = 0
) -> Pairs:
    """Parse a request vars block with ``uwsgi_parse_vars``'s acceptance rules.

    ``max_vars`` is the maximum number of *pairs* (uWSGI's ``--max-vars N`` allows
    ``2*N`` pairs; the default 64 gives 128). ``limit_post`` is ``--limit-post``
    (0 = unlimited).
    """
    # Fast path for well-formed blocks: no bounds checks, no error messages. When the
    # pairs tile the block exactly with no empty key, every one of uwsgi_parse_vars'
    # checks holds (each pair ends inside the block, so its key and value lengths fit);
    # anything else (an overrun raises IndexError or misses the end) takes the exact
    # path below, which reproduces uWSGI's quirks and errors.
    if _c_tile is not None:
        pairs = _c_tile(data)
        if pairs is not None and len(pairs) <= max_vars:
            if limit_post:
                _check_limit_post(pairs, limit_post)
            return pairs  # type: ignore[no-any-return]
    end = len(data)
    pos = 0
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    try:
        while pos < end:
            ks = pos + 2
            ke = ks + (data[pos] | data[pos + 1] << 8)
            if ke == ks:
                break
            vs = ke + 2
            pos = vs + (data[ke] | data[ke + 1] << 8)
            append((data[ks:ke], data[vs:pos]))
    except IndexError:
        pos = -1
    if pos == end and len(out) <= max_vars:
        if limit_post:
            _check_limit_post(out, limit_post)
        return tuple(out)
    return _decode_request_vars_exact(data, max_vars=max_vars, limit_post=limit_post)


def _check_limit_post(pairs: Sequence[tuple[bytes, bytes]], limit_post: int) -> None:
    cl = last_value(pairs, b"CONTENT_LENGTH")
    if cl is not None and content_length(cl) > limit_post:
        raise RemoteProtocolError(
            f"Invalid (too big) CONTENT_LENGTH: {cl!r} exceeds --limit-post {limit_post}"
        )


def _decode_request_vars_exact(data: bytes, *, max_vars: int, limit_post: int) -> Pairs:
    end = len(data)
    pos = 0
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    while pos < end:
        ks = pos + 2
        if ks >= end:
            raise RemoteProtocolError(
                f"invalid uwsgi request: {end - pos} stray byte(s) at offset {pos} of the "
                f"vars block ({data[pos:]!r}); a pair needs at least 3 bytes"
            )
        klen = data[pos] | data[pos + 1] << 8
        if not klen:
            raise RemoteProtocolError(
                f"uwsgi key cannot be null: zero-length key at offset {pos} of the vars block"
            )
        ke = ks + klen
        if ke >= end:
            # uwsgi_parse_vars has no else-branch here: it silently resumes parsing
            # at the first byte of the (overrunning) key.
            pos = ks
            continue
        vs = ke + 2
        if vs > end:
            raise RemoteProtocolError(
                f"invalid uwsgi request: key {data[ks:ke]!r} is not followed by a "
                "2-byte value length"
            )
        pos = vs + (data[ke] | data[ke + 1] << 8)
        if pos > end:
            raise RemoteProtocolError(
                f"invalid uwsgi request: value of {data[ks:ke]!r} announces "
                f"{pos - vs} bytes, only {end - vs} left in the vars block"
            )
        append((data[ks:ke], data[vs:pos]))
    if len(out) > max_vars:
        raise RemoteProtocolError(
            f"max vec size reached: {len(out)} vars, uWSGI accepts at most {max_vars} "
            "(2 x --max-vars)"
        )
    if limit_post:
        _check_limit_post(out, limit_post)
    return tuple(out)


def decode_dict_prefix(data: bytes) -> tuple[Pairs, str | None]:
    """``uwsgi_hooked_parse``: the pairs delivered before the first error, and the error.

    The error is ``None`` when the whole block is valid, else a sentence stating the
    violated rule (uWSGI's hooks have already seen the returned pairs).
    """
    end = len(data)
    pos = 0
    out: list[tuple[bytes, bytes]] = []
    while pos < end:
        if pos + 2 >= end:
            return tuple(out), (
                f"{end - pos} stray byte(s) at offset {pos} ({data[pos:]!r}); "
                "a pair needs at least 3 bytes"
            )
        klen = data[pos] | data[pos + 1] << 8
        if not klen:
            return tuple(out), f"zero-length key at offset {pos}"
        ks = pos + 2
        ke = ks + klen
        if ke + 2 > end:
            return tuple(out), (
                f"key length {klen} at offset {pos} overruns the block ({end} bytes)"
            )
        vs = ke + 2
        ve = vs + (data[ke] | data[ke + 1] << 8)
        if ve > end:
            return tuple(out), (
                f"value of {data[ks:ke]!r} announces {ve - vs} bytes, "
                f"only {end - vs} left"
            )
        out.append((data[ks:ke], data[vs:ve]))
        pos = ve
    return tuple(out), None


def decode_dict(data: bytes, *, what: str = "uwsgi dict") -> Pairs:
    """``uwsgi_hooked_parse`` with all-or-nothing semantics (raises on any error)."""
    pairs, error = decode_dict_prefix(data)
    if error is not None:
        raise RemoteProtocolError(f"invalid {what}: {error}")
    return pairs


def decode_array(data: bytes, *, max_items: int = 255) -> tuple[bytes, ...]:
    """``uwsgi_parse_array``: items in order, empty items skipped, at most ``max_items``."""
    end = len(data)
    pos = 0
    out: list[bytes] = []
    while pos < end and len(out) < max_items:
        if pos + 2 >= end:
            raise RemoteProtocolError(
                f"invalid uwsgi array: {end - pos} byte(s) left at offset {pos} "
                f"({data[pos:]!r}); an item needs more than 2 bytes - a trailing "
                "empty item invalidates the whole array"
            )
        size = data[pos] | data[pos + 1] << 8
        pos += 2
        if not size:
            continue
        if pos + size > end:
            raise RemoteProtocolError(
                f"invalid uwsgi array: item at offset {pos - 2} announces {size} bytes, "
                f"only {end - pos} left"
            )
        out.append(data[pos : pos + size])
        pos += size
    return tuple(out)


def last_value(pairs: Sequence[tuple[bytes, bytes]], key: bytes) -> bytes | None:
    """The value of the last pair named ``key`` (uWSGI's ``uwsgi_get_var`` and hooks)."""
    for k, v in reversed(pairs):
        if k == key:
            return v
    return None
