"""Legion announces (modifier1 109, UDP) and their encryption.

Models ``core/legion.c`` (``uwsgi_legion_announce``, ``legion_loop``,
``uwsgi_parse_legion``, ``uwsgi_opt_legion``), cluster.md §3:

* datagram = clear header ``[109, len(plaintext) u16le, 0]`` + ciphertext; **pktsize is
  the plaintext length**;
* plaintext = uwsgi dict with keys in the order ``legion, valor, unix, lord, name,
  pid, uuid, checksum, lord_valor, lord_uuid[, scroll][, dead]``;
* encryption: OpenSSL EVP with the ``--legion`` cipher; key = secret right-padded with
  NUL to the key length, IV = the optional 5th word right-padded with ASCII ``'0'``;
  PKCS#7 padding for block modes; a fresh init per packet, so identical plaintexts
  give identical ciphertexts;
* receiver drops: fewer than 4 bytes, modifier1 != 109, decryption failure, decrypted
  length != pktsize, malformed dict. It reads at most 65499 bytes of a datagram. It
  ignores the ``lord`` key; ``uuid``/``lord_uuid`` other than 36 bytes leave 36 NULs;
  ``dead`` with any value means dead.

Left out: membership, election, hooks, skew and loopback checks (simulator business).
Ciphers: AES-128/192/256 in CBC, ECB, CTR, CFB and OFB; other OpenSSL names raise
:class:`LocalProtocolError`. Encrypting needs the ``cryptography`` package, an optional
dependency (``pip install 'simuwsgi[legion]'``) imported when a cipher is first used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._errors import LocalProtocolError, RemoteProtocolError
from ._header import Header, decode_header, encode_header
from ._numbers import format_signed, str_num
from ._vars import decode_dict, encode_vars

__all__ = [
    "LegionAnnounce",
    "LegionCipher",
    "decode_legion_announce",
    "decrypt_legion_datagram",
    "encode_legion_announce",
    "legion_plaintext",
    "parse_legion_plaintext",
]

MAX_DATAGRAM = 0xFFFF - 32 - 4  # UMAX16 - EVP_MAX_BLOCK_LENGTH - 4
NO_UUID = b"\x00" * 36

_MODE_NAMES = ("cbc", "ecb", "ctr", "cfb", "ofb")
_MODES: dict[str, Any] = {}  # mode name -> cryptography's mode class, filled on first use
_PADDED = {"cbc", "ecb"}


def _cipher_spec(name: str) -> tuple[int, str]:
    lowered = name.lower()
    aliases = {"aes128": "aes-128-cbc", "aes192": "aes-192-cbc", "aes256": "aes-256-cbc"}
    lowered = aliases.get(lowered, lowered)
    parts = lowered.split("-")
    if len(parts) == 3 and parts[0] == "aes" and parts[1] in ("128", "192", "256") and (
        parts[2] in _MODE_NAMES
    ):
        return int(parts[1]) // 8, parts[2]
    raise LocalProtocolError(
        f"unsupported Legion cipher {name!r}: use aes-128|192|256-cbc|ecb|ctr|cfb|ofb"
    )


def _crypto() -> tuple[Any, Any, Any]:
    """``cryptography``'s ``Cipher``, ``algorithms`` and ``padding``, imported on first
    use and kept: a simulation that imported them may drop its imports when it closes
    (``simuwsgi.isolation``), and classes of two imports must not meet."""
    if not _MODES:
        try:
            from cryptography.hazmat.primitives import padding
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        except ImportError:
            raise ModuleNotFoundError(
                "Legion encryption needs the 'cryptography' package, an optional "
                "dependency: pip install 'simuwsgi[legion]'", name="cryptography") from None
        try:  # cryptography >= 48 keeps the legacy feedback modes in "decrepit"
            from cryptography.hazmat.decrepit.ciphers import modes as legacy_modes
        except ImportError:  # pragma: no cover - older cryptography
            legacy_modes = modes
        _MODES.update(cbc=modes.CBC, ecb=modes.ECB, ctr=modes.CTR, cfb=legacy_modes.CFB,
                      ofb=legacy_modes.OFB, _=(Cipher, algorithms, padding))
    return _MODES["_"]  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True, slots=True)
class LegionCipher:
    """Key material of a legion, as derived from ``--legion NAME ADDR VALOR CIPHER:SECRET [IV]``."""

    cipher: str
    key: bytes
    iv: bytes

    @classmethod
    def from_option(cls, cipher: str, secret: bytes, iv: bytes | None = None) -> LegionCipher:
        """Pad/truncate ``secret`` and ``iv`` exactly like ``uwsgi_opt_legion``."""
        key_len, mode = _cipher_spec(cipher)
        iv_len = 0 if mode == "ecb" else 16
        key = secret.split(b"\0", 1)[0][:key_len].ljust(key_len, b"\0")
        raw_iv = (iv or b"").split(b"\0", 1)[0][:iv_len]
        return cls(cipher=cipher, key=key, iv=raw_iv.ljust(iv_len, b"0"))

    def _cipher(self) -> tuple[Any, bool]:
        _, mode = _cipher_spec(self.cipher)
        cipher_cls, algorithms, _padding = _crypto()
        mode_obj = _MODES[mode]() if mode == "ecb" else _MODES[mode](self.iv)
        return cipher_cls(algorithms.AES(self.key), mode_obj), mode in _PADDED

    def encrypt(self, plaintext: bytes) -> bytes:
        cipher, padded = self._cipher()
        if padded:
            padder = _crypto()[2].PKCS7(128).padder()
            plaintext = padder.update(plaintext) + padder.finalize()
        encryptor = cipher.encryptor()
        return encryptor.update(plaintext) + encryptor.finalize()

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Decrypt like ``EVP_DecryptUpdate``/``Final``; failure is a RemoteProtocolError."""
        cipher, padded = self._cipher()
        try:
            decryptor = cipher.decryptor()
            plain = decryptor.update(ciphertext) + decryptor.finalize()
            if padded:
                if not plain:
                    raise ValueError("no complete block")
                unpadder = _crypto()[2].PKCS7(128).unpadder()
                plain = unpadder.update(plain) + unpadder.finalize()
        except ValueError as exc:
            raise RemoteProtocolError(
                f"Legion datagram does not decrypt with {self.cipher} ({exc}): "
                "wrong secret/IV or corrupted packet"
            ) from None
        return plain


@dataclass(frozen=True, kw_only=True, slots=True)
class LegionAnnounce:
    """The plaintext dict of a Legion announce."""

    legion: bytes
    valor: int
    unix: int
    lord: int
    name: bytes
    pid: int
    uuid: bytes
    checksum: int = 0
    lord_valor: int = 0
    lord_uuid: bytes = NO_UUID
    scroll: bytes = b""
    dead: bool = False


def legion_plaintext(announce: LegionAnnounce) -> bytes:
    """The dict ``uwsgi_legion_announce`` builds (an empty scroll is omitted)."""
    pairs = [
        (b"legion", announce.legion),
        (b"valor", format_signed(announce.valor)),
        (b"unix", format_signed(announce.unix)),
        (b"lord", format_signed(announce.lord)),
        (b"name", announce.name),
        (b"pid", format_signed(announce.pid)),
        (b"uuid", announce.uuid),
        (b"checksum", format_signed(announce.checksum)),
        (b"lord_valor", format_signed(announce.lord_valor)),
        (b"lord_uuid", announce.lord_uuid),
    ]
    if announce.scroll:
        pairs.append((b"scroll", announce.scroll))
    if announce.dead:
        pairs.append((b"dead", b"1"))
    return encode_vars(pairs)


def encode_legion_announce(announce: LegionAnnounce, cipher: LegionCipher) -> bytes:
    """The UDP datagram sent to every ``--legion-node``."""
    if len(announce.uuid) != 36 or len(announce.lord_uuid) != 36:
        raise LocalProtocolError(
            f"uuid and lord_uuid are 36 bytes, got {announce.uuid!r}/{announce.lord_uuid!r}"
        )
    plain = legion_plaintext(announce)
    return encode_header(109, len(plain) & 0xFFFF, 0) + cipher.encrypt(plain)


def decrypt_legion_datagram(datagram: bytes, cipher: LegionCipher) -> tuple[Header, bytes]:
    """Header and plaintext of a datagram, with the receiver's framing checks."""
    buf = datagram[:MAX_DATAGRAM]
    if len(buf) < 4:
        raise RemoteProtocolError(f"invalid Legion packet size: {len(buf)} byte(s)")
    header = decode_header(buf)
    if header.modifier1 != 109:
        raise RemoteProtocolError(f"invalid modifier1 {header.modifier1} for a Legion packet")
    plain = cipher.decrypt(buf[4:])
    if len(plain) != header.pktsize:
        raise RemoteProtocolError(
            f"invalid Legion packet size: decrypted {len(plain)} bytes, header says "
            f"{header.pktsize}"
        )
    return header, plain


def _s64(num: int) -> int:
    return num - (1 << 64) if num >= 1 << 63 else num


def _s32(num: int) -> int:
    num &= 0xFFFFFFFF
    return num - (1 << 32) if num >= 1 << 31 else num


def decode_legion_announce(datagram: bytes, cipher: LegionCipher) -> LegionAnnounce:
    """Decode a datagram as ``legion_loop`` does (raises for every dropped packet)."""
    _, plain = decrypt_legion_datagram(datagram, cipher)
    return parse_legion_plaintext(plain)


def parse_legion_plaintext(plain: bytes) -> LegionAnnounce:
    """The announce in a decrypted dict (``uwsgi_parse_legion``); RemoteProtocolError
    for a malformed dict."""
    fields: dict[str, Any] = {
        "legion": b"", "valor": 0, "unix": 0, "lord": 0, "name": b"", "pid": 0,
        "uuid": NO_UUID, "checksum": 0, "lord_valor": 0, "lord_uuid": NO_UUID,
        "scroll": b"", "dead": False,
    }
    for key, value in decode_dict(plain, what="Legion packet"):
        if key in (b"legion", b"name", b"scroll"):
            fields[key.decode()] = value
        elif key in (b"valor", b"checksum", b"lord_valor"):
            fields[key.decode()] = str_num(value)
        elif key in (b"unix", b"lord"):
            fields[key.decode()] = _s64(str_num(value))
        elif key == b"pid":
            fields["pid"] = _s32(str_num(value))
        elif key in (b"uuid", b"lord_uuid"):
            if len(value) == 36:
                fields[key.decode()] = value
        elif key == b"dead":
            fields["dead"] = True
    return LegionAnnounce(**fields)
