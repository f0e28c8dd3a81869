"""uWSGI caches: ``--cache``/``--cache2``, the master's sweeper, the ``cache_*`` API.

What it models (``core/cache.c``, ``plugins/python/uwsgi_pymodule.c``;
``shared/spec/api.md`` §4, ``semantics.md`` §7):

* geometry: ``--cache N`` makes cache ``default`` first, then every ``--cache2`` in
  option order; the first cache serves unnamed calls. Item slot 0 is reserved, so
  ``items=N`` holds N-1 keys. Free slots form uWSGI's LIFO stack (the first key takes
  slot N-1), and each slot owns its data block(s): a value shorter than the previous
  one leaves the old bytes behind, which the math functions then read (``cache_set``
  ``b'10'`` then ``cache_inc`` gives ``b'20\\0...'`` only because the block was zero).
* ``bitmap=1`` caches: contiguous block runs found with uWSGI's bitmap scan (from the
  position after the last allocation, wrapping), so fragmentation fails as in uWSGI;
  an update of an existing key needs a new run before the old one is freed.
* keyval quirks: a ``--cache2`` flag is on when its key is present at all
  (``bitmap=0`` enables the bitmap, as ``uwsgi_kvlist_parse`` only checks presence).
* full cache: ``purge_lru`` drops the least recently used item (log ``LRU item will be
  purged``), ``sweep_on_full``, ``clear_on_full``, else ``*** DANGER cache "x" is FULL
  !!! ***`` (unless ``ignore_full``) and the set fails (None).
* expiry: absolute ``now + expires`` (uint64 arithmetic; negative values wrap to "already
  expired"); expired items stay readable until the master's sweeper deletes them
  (``--cache-expire-freq``, default 3 s; phase anchored at master start); ``lazy_expire``
  caches delete on lookup; ``purge_lru`` caches store ``expires`` unconverted and are
  never swept; ``no_expire`` caches are never swept; ``--cache-no-expire`` or no master
  means no sweeper. The sweeper is only scheduled while some cache has a pending
  ``next_scan``, so an idle simulation has no periodic event.
* math: signed int64 in the first 8 bytes of the item's block, little-endian, C
  wrap-around; division by 0 stores 0; existing keys keep their expiry.
* ``cache_keys`` order: djb33x hash (with C's signed ``char``) modulo ``hashsize``, then
  the collision chain in insertion order.
* ``name@host:port`` goes to ``inst.subsystems['net'].remote_cache(...)`` (math
  operations become a plain update whose value is the 8-byte delta, as uWSGI sends).

Replication (cluster.md §5, ``core/cache.c``): ``nodes=ADDR;ADDR`` (``--cache-udp-node``
for the ``--cache`` one) sends a datagram (``protocol._cache_udp``) to every node after
each successful set/update/math/delete that did not itself come from UDP, with the
expiry made absolute and, for math, the 8-byte delta as the value (as the C code sends
them); ``udp=ADDR`` (``--cache-udp-server``) binds a UDP port where the master's "udp
server" thread applies sets as updates with an absolute expiry and - as 2.0.30's length
check does - drops every delete, so replicas diverge on delete; ``sync=ADDR;ADDR``
(``--cache-sync``) asks the nodes in turn for a dump (modifier1 111, modifier2 6) as
the master starts, checks ``items``/``blocksize`` and copies the remote cache's image,
exits if none answers. Datagrams and connections go over a cluster's virtual network
(:mod:`simuwsgi.network`); a lone ``Simulation`` sends them nowhere.

Left out: ``store=``/``--cache-store`` persistence (the cache is anonymous memory,
lost on reload), hash algorithms other than djb33x (only key order
depends on it), the sub-second lag of the master's ``current_time`` (the sweeper reads
the exact virtual wall clock), ``last_modified_at`` (the ``lastmod`` option).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, NotSimulatedError, StartRefusedError
from ..protocol import (
    CacheUdpDelete,
    CacheUdpUpdate,
    RemoteProtocolError,
    decode_cache_udp_datagram,
    encode_cache_udp_datagram,
)
from ..server._pyarg import no_kwargs, parser
from .._core.accel import load

if TYPE_CHECKING:
    from ..server.interface import Instance

#: the optional C accelerator: the same fast paths (see _ccache.c)
_c = load(f"{__package__}._ccache")

#: Marks a positional argument that was not given (the fast paths bind positionally).
_ABSENT: Any = object()

__all__ = ["Cache", "Caches", "djb33x"]

_U64 = 0xFFFFFFFFFFFFFFFF
_U16 = 0xFFFF
#: ``sizeof(struct uwsgi_cache_item)`` on 64-bit 2.0.30 (the startup line's key size)
_ITEM_SIZE = 88
_I64_SIGN = 1 << 63

_UPDATE = 1
_MATH = 2
_FIXEXPIRE = 4
#: ``UWSGI_CACHE_FLAG_LOCAL``: a write that came by UDP is not sent on.
_LOCAL = 8
#: ``UWSGI_CACHE_FLAG_ABSEXPIRE``: ``expires`` is a unix time, not seconds from now.
_ABSEXPIRE = 16


def djb33x(key: bytes) -> int:
    """uWSGI's default cache hash (``core/hash.c``); ``char`` is signed on x86."""
    h = 5381
    for b in key:
        c = b if b < 128 else (b - 256) & 0xFFFFFFFF
        h = (((h << 5) + h) & 0xFFFFFFFF) ^ c
    return h


def _n64(text: str) -> int:
    digits = ""
    for ch in text.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else 0


def _strtol(text: str) -> int:
    text = text.strip()
    sign = -1 if text.startswith("-") else 1
    return sign * _n64(text.lstrip("+-"))


def _kvlist(arg: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in arg.split(","):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise ConfigError(f"unable to parse cache definition: {arg!r}")
        out[key] = value
    return out


def _to_i64(value: int) -> int:
    value &= _U64
    return value - (1 << 64) if value & _I64_SIGN else value


#: A live item is its key in parallel dicts (``Cache.items``: its value; ``slots``; the
#: sparse ``expires``; ``firsts`` for bitmap caches): ``cache_set`` stores two dict
#: entries and builds no object per item. A value is the
#: item's bytes or, after the inc/dec fast path, its unsigned 64-bit counter not yet
#: encoded (``Cache.value`` encodes it when something reads the bytes). The dicts'
#: insertion order is uWSGI's collision-chain order.


@functools.lru_cache(maxsize=65536)
def _hash(key: bytes) -> int:
    return djb33x(key)


class Cache:
    """One uWSGI cache: slots, blocks, expiry and LRU state (shared memory)."""

    def __init__(self, owner: Caches, name: str, max_items: int, *, blocksize: int = 65536,
                 blocks: int | None = None, keysize: int = 2048, hashsize: int = 65536,
                 bitmap: bool = False, purge_lru: bool = False, lazy_expire: bool = False,
                 sweep_on_full: int = 0, clear_on_full: bool = False,
                 ignore_full: bool = False, no_expire: bool = False,
                 math_initial: int = 0) -> None:
        self.owner = owner
        self.name = name
        self.max_items = max_items
        self.blocksize = blocksize
        self.blocks = max_items if blocks is None else blocks
        self.keysize = keysize
        self.hashsize = hashsize
        self.bitmap = bitmap
        self.purge_lru = purge_lru
        self.lazy_expire = lazy_expire
        self.sweep_on_full = sweep_on_full
        self.clear_on_full = clear_on_full
        self.ignore_full = ignore_full
        self.no_expire = no_expire
        self.math_initial = _to_i64(math_initial)
        self.max_item_size = blocksize * self.blocks if bitmap else blocksize
        #: ``nodes=`` (written to), ``udp=`` (listened on), ``sync=`` (dumped at start).
        self.nodes: list[str] = []
        self.udp_servers: list[str] = []
        self.sync_nodes: list[str] = []
        self.items: dict[bytes, bytes | int] = {}
        self.slots: dict[bytes, int] = {}
        #: expiry of the items that have one (absent = 0)
        self.expires: dict[bytes, int] = {}
        #: first data block of each item of a bitmap cache (else its slot)
        self.firsts: dict[bytes, int] = {}
        #: uWSGI's unused-slot stack: the top (list end) is taken first.
        self.free_slots: list[int] = list(range(1, max_items))
        self.lru: dict[bytes, None] = {}
        self.next_scan = 0
        self.full = 0
        #: ``uwsgi_cache_get*`` lookups that found the key, and that did not (the stats
        #: server shows them)
        self.hits = 0
        self.miss = 0
        #: data blocks, sparse: block index -> bytes (shorter = zeros beyond)
        self._data: dict[int, bytearray] = {}
        self._fast_mem = not bitmap and blocksize >= 8
        if bitmap:
            size = (self.blocks + 7) // 8
            self._used = bytearray(size * 8)
            for i in range(self.blocks, size * 8):
                self._used[i] = 1
            self._bitmap_pos = 0

    # -- raw block memory ------------------------------------------------------------
    # Only math reads block memory (8 bytes at the item's first block); values are
    # returned from ``Cache.items``. In the common geometry (no bitmap, blocks of at
    # least 8 bytes) a block is kept as the bytes object last written plus the stale
    # tail of its first 8 bytes, and written lazily: the block of a live item is its
    # value over what ``_data`` holds for the slot. So ``cache_set`` and
    # ``cache_update`` write no block; ``_spill`` writes the value out before the
    # value changes to a shorter one, before math reads the block, and when the slot
    # is freed (writing it twice changes nothing).
    def _write(self, block: int, value: bytes) -> None:
        if self._fast_mem:
            self._spill(block, value)
            return
        bs = self.blocksize
        data = self._data
        n = len(value)
        if n <= bs:
            buf = data.get(block)
            if buf is None:
                data[block] = bytearray(value)
            elif len(buf) <= n:
                buf[:] = value
            else:
                buf[:n] = value
            return
        for i in range(0, n, bs):
            self._write(block + i // bs, value[i:i + bs])

    def _spill(self, slot: int, value: bytes | int) -> None:
        """Write a live item's value to its block (fast memory: see above)."""
        if type(value) is int:
            value = value.to_bytes(8, "little")
        n = len(value)  # type: ignore[arg-type]
        data = self._data
        if n < 8:
            old = data.get(slot)
            if old is not None and len(old) > n:
                value = value + bytes(old[n:8])  # type: ignore[operator]
        data[slot] = value  # type: ignore[assignment]

    def counter(self, key: bytes) -> int:
        """The first 8 bytes of a live item's block, as an unsigned number."""
        v = self.items[key]
        if type(v) is int:
            return v
        if len(v) >= 8:  # type: ignore[arg-type]
            return int.from_bytes(v[:8], "little")  # type: ignore[index]
        block = self.first_block(key)
        if self._fast_mem:
            self._spill(block, v)
        return int.from_bytes(self._read(block, 8), "little")

    def _read(self, block: int, n: int) -> bytes:
        if self._fast_mem:
            raw = bytes(self._data.get(block, b"")[:n])
            return raw + bytes(n - len(raw))
        bs = self.blocksize
        out = bytearray()
        while n > 0:
            take = min(n, bs)
            buf = self._data.get(block, b"")
            chunk = bytes(buf[:take])
            out += chunk + bytes(take - len(chunk))
            n -= take
            block += 1
        return bytes(out)

    # -- lookup --------------------------------------------------------------------------
    def lookup(self, key: bytes) -> bool:
        """``uwsgi_cache_get_index`` (with ``check_lazy``): is ``key`` live?"""
        if key not in self.items:
            return False
        if self.lazy_expire:
            expires = self.expires.get(key)
            if expires and expires <= int(self.owner.inst.wall()):
                self.delete_key(key)
                return False
        return True

    def first_block(self, key: bytes) -> int:
        return self.firsts[key] if self.bitmap else self.slots[key]

    def value(self, key: bytes) -> bytes:
        """The item's bytes, encoding (and writing to its block) a pending counter."""
        v = self.items[key]
        if type(v) is int:  # only in fast memory, where the block is the value
            v = self.items[key] = v.to_bytes(8, "little")
        return v  # type: ignore[return-value]

    def get(self, key: bytes) -> bytes | None:
        if not self.lookup(key):
            self.miss += 1
            return None
        self.hits += 1
        if self.purge_lru:
            lru = self.lru
            del lru[key]
            lru[key] = None
        return self.value(key)

    def keys(self) -> list[bytes]:
        hs = self.hashsize
        # sorted() is stable: within one bucket, keys keep the dict's insertion order
        return sorted(self.items, key=lambda key: _hash(key) % hs)

    def by_slot(self) -> list[bytes]:
        """Live keys in slot order (the order uWSGI's loops over the item array see)."""
        return sorted(self.items, key=self.slots.__getitem__)

    def _set_expires(self, key: bytes, expires: int) -> None:
        if expires:
            self.expires[key] = expires
        else:
            self.expires.pop(key, None)

    # -- delete ----------------------------------------------------------------------------
    def delete_key(self, key: bytes) -> None:
        """``uwsgi_cache_del2`` on a live item."""
        value = self.items.pop(key)
        slot = self.slots.pop(key)
        if self._fast_mem:
            self._spill(slot, value)  # the block keeps these bytes for the slot's next user
        self.free_slots.append(slot)
        if self.expires:
            self.expires.pop(key, None)
        if self.bitmap:
            self._unmark(self.firsts.pop(key), len(value))  # type: ignore[arg-type]
        if self.purge_lru:
            self.lru.pop(key, None)

    def delete(self, key: bytes) -> bool:
        """``uwsgi_cache_del2`` of a local call: also sent to the ``nodes=``."""
        if not self.lookup(key):
            return False
        self.delete_key(key)
        if self.nodes:
            self.owner.replicate(self, CacheUdpDelete(key=key))
        return True

    def copy_image(self, other: Cache) -> None:
        """``sync=``: this cache becomes a copy of ``other``'s memory (same geometry)."""
        # in place: the uwsgi module's fast paths hold these dicts
        for name in ("items", "slots", "expires", "firsts", "lru", "_data"):
            mine = getattr(self, name)
            mine.clear()
            mine.update({k: (bytearray(v) if isinstance(v, bytearray) else v)
                         for k, v in getattr(other, name).items()})
        self.free_slots[:] = other.free_slots
        self.next_scan = other.next_scan
        if self.bitmap:
            self._used = bytearray(other._used)
            self._bitmap_pos = other._bitmap_pos

    def clear(self) -> None:
        for key in self.by_slot():
            self.delete_key(key)

    # -- bitmap ------------------------------------------------------------------------
    def _needed(self, n: int) -> int:
        return (n + self.blocksize - 1) // self.blocksize

    def _find_free_blocks(self, n: int) -> int | None:
        """``uwsgi_cache_find_free_blocks``, bit for bit."""
        needed = self._needed(n)
        used = self._used
        size = len(used) // 8
        pos = self._bitmap_pos
        bitmap_byte, bitmap_bit = (pos // 8, pos % 8) if pos > 0 else (0, 0)
        need_to_scan = size + (1 if bitmap_bit > 0 else 0)
        j = bitmap_byte
        base = -1
        found = 0
        while need_to_scan:
            start = bitmap_bit if j == bitmap_byte else 0
            for bit in range(start, 8):
                block = j * 8 + bit
                if used[block]:
                    found = 0
                    base = -1
                else:
                    if base < 0:
                        base = block
                    found += 1
                    if found == needed:
                        return base
            j += 1
            need_to_scan -= 1
            if j >= size:
                j = 0
                found = 0
                base = -1
                bitmap_bit = 0
        return None

    def _mark(self, first: int, n: int) -> None:
        needed = self._needed(n)
        for i in range(first, first + needed):
            self._used[i] = 1
        self._bitmap_pos = 0 if first + needed >= self.blocks else first + needed

    def _unmark(self, first: int, n: int) -> None:
        for i in range(first, first + self._needed(n)):
            self._used[i] = 0

    # -- full -----------------------------------------------------------------------------
    def _cache_full(self) -> None:
        inst = self.owner.inst
        if not self.ignore_full:
            if self.purge_lru:
                inst.log(f'LRU item will be purged from cache "{self.name}"')
            else:
                inst.log(f'*** DANGER cache "{self.name}" is FULL !!! ***')
        self.full += 1
        inst.record("cache.full", None, cache=self.name)
        if self.purge_lru and self.lru:
            victim = next(iter(self.lru))
            inst.record("cache.lru_purge", None, cache=self.name, key=victim.hex())
            self.delete_key(victim)
        clear = self.clear_on_full
        if self.sweep_on_full:
            removed = 0
            now = int(inst.wall())
            if self.next_scan <= now:
                self.next_scan = now + self.sweep_on_full
                self.owner.arm()
                for key in self.by_slot():
                    if 0 < self.expires.get(key, 0) <= now:
                        self.delete_key(key)
                        removed += 1
            if removed:
                clear = False
        if clear:
            self.clear()

    # -- set ------------------------------------------------------------------------------
    def _expiry(self, expires: int, flags: int = 0) -> int:
        if self.purge_lru or not expires:
            return expires
        if not flags & _ABSEXPIRE:
            expires = (expires + int(self.owner.inst.wall())) & _U64
        if not self.next_scan or self.next_scan > expires:
            self.next_scan = expires
            self.owner.arm()
        return expires

    def set(self, key: bytes, value: bytes, expires: int, flags: int = 0,
            op: int = 0) -> bool:
        """``uwsgi_cache_set2``: True on success. ``op`` is the math operator
        (1 inc, 2 dec, 3 mul, 4 div) when ``flags`` has ``_MATH``; a success is sent
        to the ``nodes=`` unless ``_LOCAL``."""
        ok = self._set2(key, value, expires, flags, op)
        if ok and self.nodes and not flags & _LOCAL:
            if expires and not (flags & (_ABSEXPIRE | _FIXEXPIRE) or self.purge_lru):
                expires = (expires + int(self.owner.inst.wall())) & _U64
            self.owner.replicate(self, CacheUdpUpdate(key=key, value=value, expires=expires))
        return ok

    def _set2(self, key: bytes, value: bytes, expires: int, flags: int, op: int) -> bool:
        n = len(value)
        if not key or not n or len(key) > self.keysize or n > self.max_item_size:
            return False
        faults = self.owner.inst.faults
        if faults is not None and faults.active("cache_full", self.name):
            self._cache_full()
            return False
        live = self.lookup(key) if self.lazy_expire else key in self.items
        if not live:
            return self._insert(key, value, expires, flags, op)
        if not flags & _UPDATE:
            return False
        old = self.value(key)
        if not flags & _FIXEXPIRE:
            if self.purge_lru:
                lru = self.lru
                del lru[key]
                lru[key] = None
                self._set_expires(key, expires)
            else:
                self._set_expires(key, self._expiry(expires, flags))
        if self.bitmap:
            first = self._find_free_blocks(n)
            if first is None:
                self._cache_full()
                return False
            self._mark(first, n)
            self._unmark(self.firsts[key], len(old))
            self.firsts[key] = first
        first = self.first_block(key)
        if self._fast_mem:
            self._spill(first, old)
        if flags & _MATH:
            value = self._math(first, None, value, op)
        self._write(first, value)
        self.items[key] = value
        return True

    def _insert(self, key: bytes, value: bytes, expires: int, flags: int, op: int) -> bool:
        free = self.free_slots
        if not free:
            self._cache_full()
            if not free:
                return False
        slot = free.pop()
        first = slot
        if self.bitmap:
            found = self._find_free_blocks(len(value))
            if found is None:
                free.append(slot)
                self._cache_full()
                return False
            first = found
            self._mark(first, len(value))
        if self.purge_lru:
            self.lru[key] = None
        elif expires:
            expires = self._expiry(expires, flags)
        if flags & _MATH:
            value = self._math(first, self.math_initial, value, op)
        self._write(first, value)
        self.items[key] = value
        self.slots[key] = slot
        if self.bitmap:
            self.firsts[key] = first
        if expires:
            self.expires[key] = expires
        return True

    def _math(self, block: int, start: int | None, delta_raw: bytes, op: int) -> bytes:
        if start is None:
            start = int.from_bytes(self._read(block, 8), "little", signed=True)
        delta = int.from_bytes(delta_raw, "little", signed=True)
        if op == 1:
            num = start + delta
        elif op == 2:
            num = start - delta
        elif op == 3:
            num = start * delta
        elif delta == 0:
            num = 0
        else:
            q = abs(start) // abs(delta)  # C truncates toward zero
            num = q if (start < 0) == (delta < 0) else -q
        return (num & _U64).to_bytes(8, "little")

    # -- sweeper -----------------------------------------------------------------------
    @property
    def sweepable(self) -> bool:
        return not (self.no_expire or self.purge_lru or self.lazy_expire)

    def sweep(self, now: int) -> int:
        """``cache_sweeper_free_items``: returns the number of items freed."""
        if not self.sweepable or not self.next_scan or self.next_scan > now:
            return 0
        self.next_scan = 0
        freed = 0
        for key in self.by_slot():
            expires = self.expires.get(key, 0)
            if expires:
                if expires <= now:
                    self.delete_key(key)
                    freed += 1
                elif not self.next_scan or self.next_scan > expires:
                    self.next_scan = expires
        return freed


_MATH_OPS = {"cache_inc": (1, 1), "cache_dec": (2, 1), "cache_mul": (3, 2),
             "cache_div": (4, 2)}


class Caches:
    """Every cache of one instance, the sweeper, and the ``cache_*`` functions."""

    @classmethod
    def create(cls, inst: Instance) -> Caches:
        # The cache functions always exist (they fail without a cache).
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        opts = inst.opts
        self.caches: list[Cache] = []
        self.by_name: dict[str, Cache] = {}
        items = opts.int("cache", 0)
        if items > 0:
            bs = opts.int("cache-blocksize", 0) or 65536
            cache = Cache(self, "default", items, blocksize=bs, blocks=items)
            cache.nodes = list(opts.strings("cache-udp-node"))
            cache.udp_servers = list(opts.strings("cache-udp-server"))
            cache.sync_nodes = list(opts.strings("cache-sync"))[-1:]
            self._add(cache)
        for spec in opts.strings("cache2"):
            self._add(self._from_keyval(spec))
        self.default: Cache | None = self.caches[0] if self.caches else None
        self.expire_freq = opts.int("cache-expire-freq", 0) or 3
        self.sweeper_enabled = (inst.has_master and not opts.flag("cache-no-expire")
                                and any(c.sweepable for c in self.caches))
        self._anchor: float | None = None
        self._timer: Any = None
        #: Not empty once a ``CacheFull`` fault is planned (before a reload too): the
        #: ``cache_*`` fast paths (which do not look for fault windows) then leave every
        #: call to ``Cache.set``.
        faults = inst.faults
        self.faulted: list[Any] = (
            [faults] if faults is not None and faults.windows.get("cache_full") else [])

    def _add(self, cache: Cache) -> None:
        self.caches.append(cache)
        self.by_name.setdefault(cache.name, cache)
        key = _ITEM_SIZE + cache.keysize
        bitmap = ((cache.blocks + 7) // 8) if cache.bitmap else 0
        filesize = key * cache.max_items + cache.blocksize * cache.blocks  # no bitmap
        self.inst.log(f'*** Cache "{cache.name}" initialized: {filesize // (1024 * 1024)}MB '
                      f'(key: {key} bytes, keys: {key * cache.max_items} bytes, data: '
                      f'{cache.blocksize * cache.blocks} bytes, bitmap: {bitmap} bytes) '
                      'preallocated ***')
        for node in cache.nodes:  # uwsgi_cache_setup_nodes
            if ":" not in node:
                line = f"[cache-udp-node] invalid udp address: {node}"
                self.inst.log(line)
                raise StartRefusedError(line)
            self.inst.log(f'added udp node {node} for cache "{cache.name}"')

    def _from_keyval(self, spec: str) -> Cache:
        kv = _kvlist(spec)

        def pick(*names: str) -> str | None:
            found = None
            for n in names:
                if n in kv:
                    found = kv[n]
            return found

        name = pick("name")
        if name is None:
            raise ConfigError("you have to specify a cache name")
        raw_items = pick("max_items", "maxitems", "items")
        max_items = _n64(raw_items) if raw_items is not None else 0
        if not max_items:
            raise ConfigError("you have to specify the maximum number of cache items")
        blocksize = _n64(pick("blocksize") or "65536")
        if not blocksize:
            raise ConfigError(f'invalid cache blocksize for "{name}"')
        raw_blocks = pick("blocks")
        blocks = _n64(raw_blocks) if raw_blocks is not None else max_items
        if not blocks:
            raise ConfigError(f'invalid cache blocks for "{name}"')
        hashsize = _n64(pick("hashsize", "hash_size") or "65536")
        if not hashsize:
            raise ConfigError(f'invalid cache hashsize for "{name}"')
        keysize = _n64(pick("keysize", "key_size") or "2048")
        if not keysize or keysize >= 65536:
            raise ConfigError(f'invalid cache keysize for "{name}"')
        if blocks < max_items:
            raise ConfigError(f'invalid number of cache blocks for "{name}", must be higher '
                              f"than max_items ({max_items})")
        has = lambda *names: any(n in kv for n in names)
        cache = Cache(
            self, name, max_items, blocksize=blocksize, blocks=blocks, keysize=keysize,
            hashsize=hashsize, bitmap=has("bitmap"), purge_lru=has("purge_lru", "lru"),
            lazy_expire=has("lazy_expire", "lazy"),
            sweep_on_full=_n64(pick("sweep_on_full") or "0"),
            clear_on_full=has("clear_on_full"), ignore_full=has("ignore_full"),
            no_expire=has("no_expire"),
            math_initial=_strtol(pick("math_initial") or "0"))
        addresses = lambda *names: [a for a in (pick(*names) or "").split(";") if a]
        cache.nodes = addresses("node", "nodes")
        cache.udp_servers = addresses("udp", "udp_servers", "udp_server", "udpservers",
                                      "udpserver")
        cache.sync_nodes = addresses("sync")
        return cache

    # -- replication (nodes=, udp=, sync=) ------------------------------------------------
    @property
    def _network(self) -> Any:
        return getattr(self.inst, "cluster_network", None)

    def replicate(self, cache: Cache, event: CacheUdpUpdate | CacheUdpDelete) -> None:
        """``cache_send_udp_command``: one datagram to each of the cache's nodes."""
        net = self._network
        if net is None:
            return
        datagram = encode_cache_udp_datagram(event)
        for node in cache.nodes:
            net.send_datagram(self.inst.node, node, datagram)

    def master_boot(self) -> None:
        """``uwsgi_cache_sync_from_nodes`` for every ``sync=`` cache, in the master as it
        starts (it blocks: a dump request per node until one answers)."""
        for cache in self.caches:
            if cache.sync_nodes:
                self._sync(cache)

    def _sync(self, cache: Cache) -> None:
        from ..protocol import CacheDump, CacheDumpResponse

        inst = self.inst
        net = inst.subsystems.get("net")
        for i, node in enumerate(cache.sync_nodes):
            inst.log(f"[cache-sync] getting cache dump from {node} ...")
            reply = None
            try:
                if net is None:
                    raise OSError("no network")
                reply = net.exchange(node, CacheDump(cache=cache.name.encode()))
            except OSError:
                inst.log("[cache-sync] unable to connect to the cache server")
            head = getattr(reply, "head", None) if reply is not None else None
            if reply is not None and not isinstance(head, CacheDumpResponse):
                inst.log("[cache-sync] unable to read from the cache server")
            elif isinstance(head, CacheDumpResponse):
                for what, mine, theirs in (("size", cache.max_items, head.items),
                                           ("block size", cache.blocksize, head.blocksize)):
                    if mine != theirs:
                        line = (f"[cache-sync] invalid cache {what}, expected {mine} "
                                f"received {theirs}")
                        inst.log(line)
                        raise StartRefusedError(line)
                remote, _port = self._network.resolve(inst.node, node)
                cache.copy_image(remote.inst.subsystems["cache"].local(cache.name))
                inst.record("cache.sync", inst.master, cache=cache.name, node=node,
                            items=len(cache.items))
                return
            if i == len(cache.sync_nodes) - 1:
                line = f'[cache-sync] no node answered for cache "{cache.name}": exit(1)'
                inst.record("instance.refused", inst.master, reason=line)
                raise StartRefusedError(line)
            inst.log("[cache-sync] trying with the next sync node...")

    def _start_udp_servers(self) -> None:
        """``uwsgi_cache_start_sync_servers``: a thread per ``udp=`` cache, reading
        datagrams on its ports."""
        inst = self.inst
        net = self._network
        for cache in self.caches:
            if not cache.udp_servers:
                continue
            for address in cache.udp_servers:
                host, colon, port = address.rpartition(":")
                if not colon:
                    continue  # a UNIX socket: not bound, as the C loop skips it
                if net is not None and port.isdigit():
                    net.bind_udp(inst.node, int(port),
                                 lambda data, _src, cache=cache: self._udp_received(cache, data))
                inst.log(f'*** udp server for cache "{cache.name}" running on {address} ***',
                         inst.master)
            inst.log(f'udp server thread enabled for cache "{cache.name}"', inst.master)

    def _udp_received(self, cache: Cache, datagram: bytes) -> None:
        """``cache_udp_server_loop``: apply a set as an update with an absolute
        expiry; a delete never passes the length check (2.0.30)."""
        try:
            event = decode_cache_udp_datagram(datagram)
        except RemoteProtocolError:
            self.inst.record("cache.udp.drop", self.inst.master, cache=cache.name,
                             size=len(datagram))
            return
        assert isinstance(event, CacheUdpUpdate)
        ok = cache.set(event.key, event.value, event.expires, _UPDATE | _LOCAL | _ABSEXPIRE)
        self.inst.record("cache.udp", self.inst.master, cache=cache.name, key=event.key,
                         ok=ok)
        if not ok:
            self.inst.log("[cache-udp-server] unable to update cache", self.inst.master)

    # -- the sweeper ------------------------------------------------------------------
    def master_loop_started(self) -> None:
        self._anchor = self.inst.kernel.now
        if self.sweeper_enabled:
            self.inst.log("cache sweeper thread enabled", self.inst.master)
        self._start_udp_servers()
        self.arm()

    def arm(self) -> None:
        """Schedule the next sweeper wake-up if some cache has a pending scan."""
        if not self.sweeper_enabled or self._anchor is None or self._timer is not None:
            return
        if not any(c.next_scan and c.sweepable for c in self.caches):
            return
        kernel = self.inst.kernel
        freq = float(self.expire_freq)
        k = int((kernel.now - self._anchor) // freq) + 1
        self._timer = kernel.at(self._anchor + k * freq, self._tick)

    def _tick(self) -> None:
        self._timer = None
        inst = self.inst
        if inst.stopped:
            return
        now = int(inst.wall())
        for cache in self.caches:
            freed = cache.sweep(now)
            if freed:
                inst.record("cache.sweep", inst.master, cache=cache.name, freed=freed)
                if inst.opts.flag("cache-report-freed-items"):
                    inst.log(f'freed {freed} items for cache "{cache.name}"', inst.master)
        self.arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- lookup by name ------------------------------------------------------------------
    def local(self, name: str | None) -> Cache | None:
        if not name:
            return self.default
        return self.by_name.get(name)

    def _net(self, what: str) -> Any:
        net = self.inst.subsystems.get("net")
        if net is None:
            raise NotSimulatedError(
                f"{what} with a remote cache ('name@host:port') needs the virtual network "
                "of a multi-node simulation; this instance has none")
        return net

    def remote(self, spec: str, what: str, cmd: str, key: bytes = b"",
               value: bytes = b"", expires: int = 0) -> Any:
        name, _, server = spec.partition("@")
        return self._net(what).remote_cache(server, name, cmd, key, value, expires)

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_get = parser("s#|s:cache_get")
        p_set = parser("s#s#|ls:cache_set")
        p_update = parser("s#s#|ls:cache_update")
        p_del = parser("s#|s:cache_del")
        p_exists = parser("s#|s:cache_exists")
        p_clear = parser("|s:cache_clear")
        p_keys = parser("|s:cache_keys")
        p_num = parser("s#|s:cache_num")
        local = self.local

        def key_of(key: bytes) -> bytes:
            return key[:len(key) & _U16] if len(key) > _U16 else key

        default = self.default
        #: the default cache needs no per-lookup work (no lazy expiry, no LRU, no nodes to
        #: send its writes to)
        plain = default is not None and not default.lazy_expire and not default.purge_lru \
            and not default.nodes
        d_items: dict[bytes, Any] = default.items if default is not None else {}
        d_slots: dict[bytes, int] = default.slots if default is not None else {}
        d_expires: dict[bytes, int] = default.expires if default is not None else {}
        plain_insert = plain and default is not None and default._fast_mem
        d_free = default.free_slots if default is not None else []
        # The fast paths take keys as given: a key over 64 KiB goes the slow way, which
        # truncates its length to 16 bits as the C API does.
        keymax = min(default.keysize, _U16) if default is not None else 0
        maxsize = default.max_item_size if default is not None else 0
        faulted = self.faulted

        def cache_get(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bytes | None:
            # The common call binds positionally (no tuple to unpack): cache_get(b"k").
            if type(key) is bytes and plain and not rest and not kw:
                value = d_items.get(key)
                if value is not None:
                    default.hits += 1
                    return value if type(value) is bytes else default.value(key)
                if len(key) <= _U16:
                    default.miss += 1
                    return None
            args = rest if key is _ABSENT else (key, *rest)
            no_kwargs("cache_get", kw)
            v = p_get(args)
            key = key_of(v[0])
            if len(v) > 1 and "@" in v[1]:
                return self.remote(v[1], "cache_get", "get", key)
            uc = local(v[1] if len(v) > 1 else None)
            if uc is None:
                return None
            return uc.get(key)

        def _store(name: str, p: Any, flags: int, args: tuple[Any, ...]) -> bool | None:
            v = p(args)
            key, value = key_of(v[0]), v[1]
            expires = v[2] & _U64 if len(v) > 2 else 0
            if len(v) > 3 and "@" in v[3]:
                ok = self.remote(v[3], name, "update" if flags else "set", key, value,
                                 expires)
                return True if ok else None
            uc = local(v[3] if len(v) > 3 else None)
            if uc is None:
                return None
            return True if uc.set(key, value, expires, flags) else None

        def cache_set(key: Any = _ABSENT, value: Any = _ABSENT, /, *rest: Any,
                      **kw: Any) -> bool | None:
            if type(key) is bytes and type(value) is bytes and not rest and not kw \
                    and not faulted:
                if plain_insert:
                    # ``_insert`` inlined for the common case (no bitmap, LRU, expiry)
                    if key in d_items:
                        return None
                    if key and value and len(key) <= keymax and len(value) <= maxsize:
                        if d_free:
                            slot = d_free.pop()
                            d_items[key] = value
                            d_slots[key] = slot
                            return True
                        ok = default._insert(key, value, 0, 0, 0)  # type: ignore[union-attr]
                        return True if ok else None
                    if len(key) <= _U16:
                        return None
                elif default is not None:
                    if len(key) <= _U16:
                        return True if default.set(key, value, 0, 0) else None
            args = tuple(a for a in (key, value) if a is not _ABSENT) + rest
            no_kwargs("cache_set", kw)
            return _store("cache_set", p_set, 0, args)

        def cache_update(key: Any = _ABSENT, value: Any = _ABSENT, /, *rest: Any,
                         **kw: Any) -> bool | None:
            if (type(key) is bytes and type(value) is bytes and not rest and not kw
                    and plain_insert and not faulted):
                old = d_items.get(key)
                if old is not None:
                    if value and len(value) <= maxsize:  # the key fitted when it was set
                        if len(value) < 8:  # a shorter value lies over the old bytes
                            default._spill(d_slots[key], old)  # type: ignore[union-attr]
                        if d_expires:
                            d_expires.pop(key, None)
                        d_items[key] = value
                        return True
                    return None
                if len(key) <= _U16:  # a missing key: update is a set
                    return cache_set(key, value)
            args = tuple(a for a in (key, value) if a is not _ABSENT) + rest
            no_kwargs("cache_update", kw)
            return _store("cache_update", p_update, _UPDATE, args)

        def cache_del(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bool | None:
            if type(key) is bytes and plain and not rest and not kw:
                if key in d_items:
                    default.delete_key(key)
                    return True
                if len(key) <= _U16:
                    return None
            args = rest if key is _ABSENT else (key, *rest)
            no_kwargs("cache_del", kw)
            v = p_del(args)
            key = key_of(v[0])
            if len(v) > 1 and "@" in v[1]:
                return True if self.remote(v[1], "cache_del", "del", key) else None
            uc = local(v[1] if len(v) > 1 else None)
            return True if uc is not None and uc.delete(key) else None

        def cache_exists(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bool | None:
            if type(key) is bytes and plain and not rest and not kw:
                if key in d_items:
                    return True
                if len(key) <= _U16:
                    return None
            args = rest if key is _ABSENT else (key, *rest)
            no_kwargs("cache_exists", kw)
            v = p_exists(args)
            key = key_of(v[0])
            if len(v) > 1 and "@" in v[1]:
                return True if self.remote(v[1], "cache_exists", "exists", key) else None
            uc = local(v[1] if len(v) > 1 else None)
            return True if uc is not None and uc.lookup(key) else None

        def cache_clear(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("cache_clear", kw)
            v = p_clear(args)
            if v and "@" in v[0]:
                return True if self.remote(v[0], "cache_clear", "clear") else None
            uc = local(v[0] if v else None)
            if uc is None:
                return None
            uc.clear()
            return True

        def cache_keys(*args: Any, **kw: Any) -> list[bytes]:
            no_kwargs("cache_keys", kw)
            v = p_keys(args)
            uc = local(v[0] if v else None)
            if uc is None:
                raise ValueError("no local uWSGI cache available")
            return uc.keys()

        def cache_num(*args: Any, **kw: Any) -> int:
            no_kwargs("cache_num", kw)
            v = p_num(args)
            key = key_of(v[0])
            if len(v) > 1 and "@" in v[1]:
                raw = self.remote(v[1], "cache_num", "get", key)
                if raw is None or len(raw) != 8:
                    return 0
                return int.from_bytes(raw, "little", signed=True)
            uc = local(v[1] if len(v) > 1 else None)
            raw = uc.get(key) if uc is not None else None
            if raw is None or len(raw) != 8:
                return 0
            return int.from_bytes(raw, "little", signed=True)

        d_cache = default

        def math(name: str) -> Any:
            op, default = _MATH_OPS[name]
            p = parser(f"s#|lls:{name}")

            default_raw = (default & _U64).to_bytes(8, "little")
            flags = _UPDATE | _MATH | _FIXEXPIRE

            def fn(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bool | None:
                if type(key) is bytes and plain and not rest and not kw:  # cache_inc(b"k")
                    ok = d_cache.set(key_of(key), default_raw, 0, flags, op)
                    return True if ok else None
                args = rest if key is _ABSENT else (key, *rest)
                no_kwargs(name, kw)
                v = p(args)
                key = key_of(v[0])
                delta = v[1] if len(v) > 1 else default
                expires = v[2] & _U64 if len(v) > 2 else 0
                raw = (delta & _U64).to_bytes(8, "little")
                if len(v) > 3 and "@" in v[3]:
                    ok = self.remote(v[3], name, "update", key, raw, expires)
                    return True if ok else None
                uc = local(v[3] if len(v) > 3 else None)
                if uc is None:
                    return None
                ok = uc.set(key, raw, expires, flags, op)
                return True if ok else None

            fn.__name__ = name
            # cache_inc(b"k")/cache_dec(b"k") on an existing key of the plain default
            # cache add 1 or 2**64-1 to the item's counter kept as an int (no bytes
            # decoded or encoded per call, as uWSGI's C adds in place). A function of
            # its own: a call copies every variable its closure holds.
            step = {1: 1, 2: _U64}.get(op) if plain_insert else None
            if step is None:
                return fn
            if _c is not None:  # the same function in C (no frame per call)
                return _c.counter(name, (d_items, step, d_cache.counter, faulted, fn))

            def counter(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bool | None:
                if type(key) is bytes and not rest and not kw and not faulted:
                    num = d_items.get(key)
                    if num is not None:
                        if type(num) is not int:
                            num = d_cache.counter(key)
                        d_items[key] = (num + step) & _U64
                        return True
                return fn(key, *rest, **kw)

            counter.__name__ = name
            return counter

        del_function = cache_del
        if plain:
            delete_key = default.delete_key  # type: ignore[union-attr]

            def del_present(key: Any = _ABSENT, /, *rest: Any, **kw: Any) -> bool | None:
                # cache_del(b"k") of a present key, in a function whose closure holds
                # three variables (a call copies them all)
                if type(key) is bytes and not rest and not kw and key in d_items:
                    delete_key(key)
                    return True
                return cache_del(key, *rest, **kw)

            del_present.__name__ = "cache_del"
            del_function = del_present

        funcs: dict[str, Any] = {
            "cache_get": cache_get, "cache_set": cache_set, "cache_update": cache_update,
            "cache_del": del_function, "cache_exists": cache_exists,
            "cache_clear": cache_clear, "cache_keys": cache_keys, "cache_num": cache_num,
        }
        for name in _MATH_OPS:
            funcs[name] = math(name)
        if _c is not None and plain_insert:  # the same fast paths in C (see _ccache.c)
            funcs["cache_set"] = _c.setter((d_items, d_slots, d_free, faulted, keymax,
                                            maxsize, cache_set))
            funcs["cache_update"] = _c.updater((d_items, d_slots, default._data, d_expires,
                                                faulted, maxsize, default._spill,
                                                cache_update))
            funcs["cache_del"] = _c.deleter((d_items, d_slots, default._data, d_free,
                                             d_expires, default._spill, del_function))
        return funcs
