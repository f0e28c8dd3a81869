"""Subscription datagrams (modifier1 224) between a backend and a router.

Models ``core/subscription.c`` (sender, ``uwsgi_subscription_ub``: ``[224, len, cmd]``
+ dict with keys in this order: ``key``, ``address``, ``modifier1``, ``modifier2``,
``cores``, ``load``, ``weight``, then optional ``sni_key``, ``sni_crt``, ``sni_ca``,
``notify``, and for signed packets ``unix`` and ``sign``) and the receiver in
``plugins/corerouter/cr_common.c`` / ``corerouter.c``: it reads at most 4096 bytes,
ignores bytes 0-2 of the header (neither modifier1 nor pktsize is checked), takes byte
3 as the command (0 subscribe, anything else unsubscribe) and uses every pair its
dict parser delivered before an error (the error itself is ignored). Numbers are read
with ``uwsgi_str_num``; ``modifier1``/``modifier2`` are stored in a byte. Routers
hash keys with djb33x into 65535 slots (:func:`subscription_hash`). See protocol.md
§5.10 and cluster.md §4.

Left out: node tables, wrr/lrc selection, liveness, and RSA signing itself
(:func:`subscription_signed_part` gives the bytes a signer must sign). A datagram
shorter than 4 bytes is refused here; uWSGI computes ``len - 4`` as a huge ``size_t``
there (undefined behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import encode_header
from ._numbers import format_signed, str_num
from ._vars import decode_dict_prefix, encode_vars

__all__ = [
    "Subscription",
    "decode_subscription",
    "encode_subscription",
    "subscription_hash",
    "subscription_signed_part",
]

MAX_DATAGRAM = 4096


@dataclass(frozen=True, kw_only=True, slots=True)
class Subscription:
    """A subscribe (``command`` 0) or unsubscribe (anything else) announcement.

    On receipt, absent keys decode as ``b""``/0/``None`` and ``valid`` tells whether
    the whole dict parsed (the router uses the parsed prefix either way).
    """

    key: bytes
    address: bytes
    command: int = 0
    modifier1: int = 0
    modifier2: int = 0
    cores: int = 0
    load: int = 0
    weight: int = 0
    sni_key: bytes | None = None
    sni_crt: bytes | None = None
    sni_ca: bytes | None = None
    notify: bytes | None = None
    unix: int | None = None
    sign: bytes | None = None
    valid: bool = True


def _pairs(sub: Subscription) -> list[tuple[bytes, bytes]]:
    pairs = [
        (b"key", sub.key),
        (b"address", sub.address),
        (b"modifier1", format_signed(sub.modifier1)),
        (b"modifier2", format_signed(sub.modifier2)),
        (b"cores", format_signed(sub.cores)),
        (b"load", format_signed(sub.load)),
        (b"weight", format_signed(sub.weight)),
    ]
    for name, value in (
        (b"sni_key", sub.sni_key),
        (b"sni_crt", sub.sni_crt),
        (b"sni_ca", sub.sni_ca),
        (b"notify", sub.notify),
    ):
        if value is not None:
            pairs.append((name, value))
    if sub.unix is not None:
        pairs.append((b"unix", format_signed(sub.unix)))
    return pairs


def subscription_signed_part(sub: Subscription) -> bytes:
    """The dict bytes (through ``unix``) that ``--subscribe-to ...,DIGEST:keyfile`` signs."""
    if sub.unix is None:
        raise LocalProtocolError("a signed subscription needs unix (time + command)")
    return encode_vars(_pairs(sub))


def encode_subscription(sub: Subscription) -> bytes:
    """The datagram a backend master sends (``sign`` is appended when given)."""
    pairs = _pairs(sub)
    if sub.sign is not None:
        if sub.unix is None:
            raise LocalProtocolError("sign without unix: uWSGI signs the dict including unix")
        pairs.append((b"sign", sub.sign))
    payload = encode_vars(pairs)
    return encode_header(224, len(payload), sub.command) + payload


_TEXT_KEYS = {b"key", b"address", b"sni_key", b"sni_crt", b"sni_ca", b"notify", b"sign"}
_NUM_KEYS = {b"modifier1", b"modifier2", b"cores", b"load", b"weight", b"unix"}


def decode_subscription(datagram: bytes) -> Subscription:
    """Decode a datagram as a router's subscription server does."""
    if len(datagram) < 4:
        raise RemoteProtocolError(
            f"subscription datagram of {len(datagram)} byte(s): a header is 4 bytes"
        )
    buf = datagram[:MAX_DATAGRAM]
    pairs, error = decode_dict_prefix(buf[4:])
    fields: dict[str, object] = {"key": b"", "address": b""}
    for name, value in pairs:
        if name in _TEXT_KEYS:
            fields[name.decode()] = value
        elif name in _NUM_KEYS:
            num = str_num(value)
            if name in (b"modifier1", b"modifier2"):
                num &= 0xFF
            elif name == b"unix" and num >= 1 << 63:
                num -= 1 << 64
            fields[name.decode()] = num
    return Subscription(command=buf[3], valid=error is None, **fields)  # type: ignore[arg-type]


def subscription_hash(key: bytes) -> int:
    """The router's hash slot of ``key``: djb33x (signed chars, as on x86) % 65535."""
    h = 5381
    for byte in key:
        h = ((h << 5) + h) ^ (byte | 0xFFFFFF00 if byte > 127 else byte)
        h &= 0xFFFFFFFF
    return h % 0xFFFF
