"""uWSGI sharedareas: ``--sharedarea``, ``--py-sharedarea`` and ``sharedarea_*``.

What it models (``core/sharedarea.c``, ``plugins/python/uwsgi_pymodule.c``,
``plugins/python/python_plugin.c``; ``shared/spec/api.md`` §11, ``semantics.md`` §9):

* ids: every ``--sharedarea`` in order, then every ``--py-sharedarea``. ``--sharedarea
  N`` is N pages of 4096 bytes; the keyval form takes ``pages=`` or ``size=`` (rounded
  up to whole pages); ``--py-sharedarea SIZE`` is a ``bytearray`` of exactly SIZE bytes,
  returned by ``sharedarea_object``. One ``bytearray`` backs each area, so the writable
  ``sharedarea_memoryview`` sees (and makes) the same changes as every process.
* bounds: id > last → error; ``pos`` > last byte → error; ``pos + size`` > area size →
  error, except the 64-bit inc/dec which check ``pos + 4`` (uWSGI's bug: they accept
  the last 4..7 bytes; the bytes past the end are lost here — in C they hit whatever
  follows the area). Errors are ``ValueError('error calling uwsgi_sharedarea_<op>()')``.
* reads are signed, native little-endian; ``write8`` takes ``b`` (0..255),
  ``write32`` masks to 32 bits, ``write64`` is int64, inc/dec wrap.
* ``write16`` parses ``I`` into a 16-bit variable in C (undefined behaviour); here the
  value is masked to 16 bits (the spec's recommendation, semantics.md §15).
* ``sharedarea_rlock/wlock/unlock`` take the area's rwlock: writers exclude everyone,
  readers share; a conflicting request parks the virtual process (FIFO). The same
  process re-locking does not block (observed: nested calls return at once). The
  accessors do not contend with explicit locks (UNSETTLED in the spec).

Left out: ``file=``/``fd=``/``offset=`` backed areas (refused with NotSimulatedError),
the update counter and ``sharedarea_wait`` (not exposed to Python in 2.0.30).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError, NotSimulatedError
from ..server._pyarg import no_kwargs, parser
from ..server.config import atoi
from ..server.processes import UProcess

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["SharedAreas"]

PAGE_SIZE = 4096
_U64 = 0xFFFFFFFFFFFFFFFF



class _Area:
    def __init__(self, ident: int, size: int, obj: bytearray | None = None) -> None:
        self.id = ident
        self.data = obj if obj is not None else bytearray(size)
        self.obj = obj
        self.max_pos = size - 1
        self.hits = 0
        self.updates = 0
        self.readers: dict[UProcess | None, int] = {}
        self.writer: UProcess | None = None
        self.waiters: deque[tuple[UProcess, str]] = deque()


class SharedAreas:
    """Every sharedarea of one instance (shared memory)."""

    @classmethod
    def create(cls, inst: Instance) -> SharedAreas | None:
        opts = inst.opts
        if not opts.strings("sharedarea") and not opts.strings("py-sharedarea"):
            return None
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.areas: list[_Area] = []
        for spec in inst.opts.strings("sharedarea"):
            self._add(self._size_of(spec))
        for spec in inst.opts.strings("py-sharedarea"):
            size = atoi(spec)
            self._add(size, bytearray(size))

    def _size_of(self, spec: str) -> int:
        if "=" not in spec:
            return atoi(spec) * PAGE_SIZE
        kv: dict[str, str] = {}
        for part in spec.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise ConfigError("invalid sharedarea keyval syntax")
            kv[key] = value
        if "file" in kv or "fd" in kv:
            raise NotSimulatedError(
                "file- or fd-backed sharedareas (--sharedarea file=/fd=) are not simulated: "
                "use pages= or size=")
        pages = 0
        if "size" in kv:
            s = kv["size"]
            length = int(s[2:], 16) if len(s) > 2 and s.startswith("0x") else atoi(s)
            pages = (length + PAGE_SIZE - 1) // PAGE_SIZE
        if "pages" in kv:
            pages = atoi(kv["pages"])
        if not pages:
            raise ConfigError(f"you need to set a size for a sharedarea !!! [{spec}]")
        return pages * PAGE_SIZE

    def _add(self, size: int, obj: bytearray | None = None) -> None:
        area = _Area(len(self.areas), size, obj)
        self.areas.append(area)
        pages = (size + PAGE_SIZE - 1) // PAGE_SIZE
        self.inst.log(f"sharedarea {area.id} created at 0x0 ({pages} pages, area at 0x0)")

    # -- access --------------------------------------------------------------------------
    def get(self, ident: int, pos: int) -> _Area | None:
        """``uwsgi_sharedarea_get_by_id``."""
        if ident > len(self.areas) - 1 or ident < 0:
            return None
        area = self.areas[ident]
        if pos > area.max_pos:
            return None
        return area

    def read(self, ident: int, pos: int, length: int) -> bytes | None:
        area = self.get(ident, pos)
        if area is None or pos + length > area.max_pos + 1:
            return None
        if length == 0:
            length = area.max_pos + 1 - pos
        area.hits += 1
        return bytes(area.data[pos:pos + length])

    def write(self, ident: int, pos: int, blob: bytes, check: int | None = None) -> bool:
        area = self.get(ident, pos)
        size = len(blob) if check is None else check
        if area is None or pos + size > area.max_pos + 1:
            return False
        end = min(pos + len(blob), area.max_pos + 1)
        area.data[pos:end] = blob[:end - pos]
        area.updates += 1
        return True

    # -- rwlock ---------------------------------------------------------------------------
    def rwlock(self, ident: int, mode: str) -> bool:
        area = self.get(ident, 0)
        if area is None:
            return False
        kernel = self.inst.kernel
        proc = kernel.current
        if mode == "u":
            self._unlock(area, proc)
            return True
        if self._can_take(area, proc, mode):
            self._take(area, proc, mode)
            return True
        area.waiters.append((proc, mode))
        holder = area.writer.name if area.writer is not None else "readers"
        kernel.park(f"sharedarea {ident} {'write' if mode == 'w' else 'read'} lock "
                    f"(held by {holder})")
        return True

    def _can_take(self, area: _Area, proc: UProcess | None, mode: str) -> bool:
        if area.writer is not None:
            return area.writer is proc
        if mode == "r":
            return not area.waiters
        others = [p for p in area.readers if p is not proc]
        return not others

    def _take(self, area: _Area, proc: UProcess | None, mode: str) -> None:
        if mode == "w":
            if area.writer is None:
                area.readers.pop(proc, None)
                area.writer = proc
        elif area.writer is None:
            area.readers[proc] = area.readers.get(proc, 0) + 1

    def _unlock(self, area: _Area, proc: UProcess | None) -> None:
        if area.writer is not None:
            if area.writer is proc or not area.writer.alive:
                area.writer = None
        elif proc in area.readers:
            del area.readers[proc]
        self._grant(area)

    def _grant(self, area: _Area) -> None:
        while area.waiters:
            proc, mode = area.waiters[0]
            if not proc.alive:
                area.waiters.popleft()
                continue
            if area.writer is not None or (mode == "w" and area.readers):
                return
            area.waiters.popleft()
            self._take(area, proc, mode)
            self.inst.kernel.wake(proc)

    def process_died(self, proc: UProcess) -> None:
        for area in self.areas:
            area.waiters = deque(w for w in area.waiters if w[0] is not proc)
            # a dead holder never releases a pthread rwlock: it stays taken

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        funcs: dict[str, Any] = {}

        def err(op: str) -> ValueError:
            return ValueError(f"error calling uwsgi_sharedarea_{op}()")

        p_read = parser("iL|L:sharedarea_read")

        def sharedarea_read(*args: Any, **kw: Any) -> bytes:
            no_kwargs("sharedarea_read", kw)
            v = p_read(args)
            ident, pos = v[0], v[1] & _U64
            length = v[2] & _U64 if len(v) > 2 else 0
            if not length:
                area = self.get(ident, pos)
                if area is None:
                    raise err("read")
                length = area.max_pos + 1 - pos
            if length >= 1 << 63:
                raise SystemError("Negative size passed to PyBytes_FromStringAndSize")
            if length > 1 << 40:
                raise MemoryError()
            out = self.read(ident, pos, length)
            if out is None:
                raise err("read")
            return out

        p_write = parser("iLs#:sharedarea_write")

        def sharedarea_write(*args: Any, **kw: Any) -> None:
            no_kwargs("sharedarea_write", kw)
            ident, pos, blob = p_write(args)
            if not self.write(ident, pos & _U64, blob):
                raise err("write")

        funcs["sharedarea_read"] = sharedarea_read
        funcs["sharedarea_write"] = sharedarea_write

        def reader(bits: int, op: str, fmt_name: str) -> Any:
            p = parser(f"iL:{fmt_name}")
            nbytes = bits // 8

            def fn(*args: Any, **kw: Any) -> int:
                no_kwargs(fmt_name, kw)
                ident, pos = p(args)
                raw = self.read(ident, pos & _U64, nbytes)
                if raw is None:
                    raise err(op)
                return int.from_bytes(raw, "little", signed=True)

            fn.__name__ = fmt_name
            return fn

        def writer(bits: int, code: str, op: str, fmt_name: str) -> Any:
            p = parser(f"iL{code}:{fmt_name}")
            nbytes = bits // 8
            mask = (1 << bits) - 1

            def fn(*args: Any, **kw: Any) -> None:
                no_kwargs(fmt_name, kw)
                ident, pos, value = p(args)
                raw = (value & mask).to_bytes(nbytes, "little")
                if not self.write(ident, pos & _U64, raw):
                    raise err(op)

            fn.__name__ = fmt_name
            return fn

        def incdec(bits: int, code: str, sign: int, op: str, fmt_name: str) -> Any:
            p = parser(f"iL|{code}:{fmt_name}")
            nbytes = bits // 8
            check = 4 if bits == 64 else nbytes  # uWSGI checks pos+4 for 64-bit ops
            mask = (1 << bits) - 1

            def fn(*args: Any, **kw: Any) -> None:
                no_kwargs(fmt_name, kw)
                v = p(args)
                ident, pos = v[0], v[1] & _U64
                amount = v[2] if len(v) > 2 else 1
                area = self.get(ident, pos)
                if area is None or pos + check > area.max_pos + 1:
                    raise err(op)
                avail = min(nbytes, area.max_pos + 1 - pos)
                cur = int.from_bytes(bytes(area.data[pos:pos + avail]) +
                                     bytes(nbytes - avail), "little")
                new = ((cur + sign * amount) & mask).to_bytes(nbytes, "little")
                area.data[pos:pos + avail] = new[:avail]
                area.updates += 1

            fn.__name__ = fmt_name
            return fn

        for name, aliases, bits in (("read8", ("readbyte",), 8), ("read16", (), 16),
                                    ("read32", (), 32), ("read64", ("readlong",), 64)):
            for n in (name, *aliases):
                funcs[f"sharedarea_{n}"] = reader(bits, name, f"sharedarea_{n}")
        for name, aliases, bits, code in (("write8", ("writebyte",), 8, "b"),
                                          ("write16", (), 16, "I"),
                                          ("write32", (), 32, "I"),
                                          ("write64", ("writelong",), 64, "L")):
            for n in (name, *aliases):
                funcs[f"sharedarea_{n}"] = writer(bits, code, name, f"sharedarea_{n}")
        for name, aliases, bits, code, sign in (
                ("inc64", ("inclong",), 64, "l", 1), ("dec64", (), 64, "l", -1),
                ("inc32", (), 32, "i", 1), ("dec32", (), 32, "i", -1)):
            for n in (name, *aliases):
                funcs[f"sharedarea_{n}"] = incdec(bits, code, sign, name, f"sharedarea_{n}")

        def locker(mode: str, op: str) -> Any:
            fmt_name = f"sharedarea_{op}"
            p = parser(f"i:{fmt_name}")

            def fn(*args: Any, **kw: Any) -> None:
                no_kwargs(fmt_name, kw)
                (ident,) = p(args)
                if not self.rwlock(ident, mode):
                    raise err(op)

            fn.__name__ = fmt_name
            return fn

        funcs["sharedarea_rlock"] = locker("r", "rlock")
        funcs["sharedarea_wlock"] = locker("w", "wlock")
        funcs["sharedarea_unlock"] = locker("u", "unlock")

        p_mv = parser("i:sharedarea_memoryview")

        def sharedarea_memoryview(*args: Any, **kw: Any) -> memoryview:
            no_kwargs("sharedarea_memoryview", kw)
            (ident,) = p_mv(args)
            area = self.get(ident, 0)
            if area is None:
                raise ValueError(f"cannot get a memoryview object from sharedarea {ident}")
            return memoryview(area.data)

        p_obj = parser("i:sharedarea_object")

        def sharedarea_object(*args: Any, **kw: Any) -> bytearray:
            no_kwargs("sharedarea_object", kw)
            (ident,) = p_obj(args)
            area = self.get(ident, 0)
            if area is None:
                raise ValueError(f"cannot get an object from sharedarea {ident}")
            if area.obj is None:
                raise SystemError("<built-in function sharedarea_object> returned NULL "
                                  "without setting an exception")
            return area.obj

        funcs["sharedarea_memoryview"] = sharedarea_memoryview
        funcs["sharedarea_object"] = sharedarea_object
        return funcs
