"""uWSGI's shared queue: ``--queue N``, ``--queue-blocksize`` and ``queue_*``.

What it models (``core/queue.c``, ``plugins/python/uwsgi_pymodule.c``;
``shared/spec/api.md`` §5, ``semantics.md`` §8):

* one flat shared memory region laid out as uWSGI's: N slots of ``blocksize`` bytes,
  each a 16-byte header (``size``, ``ts``) followed by the message; two cursors, ``pos``
  (push/pop) and ``pull_pos`` (pull). ``N * blocksize`` must be a multiple of the page
  size (uWSGI refuses to start otherwise).
* push writes slot ``pos`` unconditionally (overwriting) then advances; pop moves
  ``pos`` back **first** and takes the slot (None if empty, the cursor moved anyway);
  pull stalls on an empty slot; get/last/slot/pull_slot never change state; set writes
  a slot without moving a cursor. ``queue_last(n)`` walks back from ``pos - 1`` and
  does not remove anything.
* ``queue_set`` accepts messages up to ``blocksize + 16`` bytes (uWSGI's bug): the extra
  32 bytes run over the next slot's header and data, exactly as in the flat memory.
* ``queue_last(n)`` with n < 0 makes uWSGI ``malloc`` a negative size: the calling
  process logs ``!!! tried memory allocation ...`` and exits (it is respawned).

Left out: ``--queue-store`` (the queue is anonymous memory, lost on reload).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import ConfigError
from ..server._pyarg import no_kwargs, parser

if TYPE_CHECKING:
    from ..server.interface import Instance

__all__ = ["Queue"]

_HDR = 16
_PAGE = 4096
_U64 = 0xFFFFFFFFFFFFFFFF


class Queue:
    """The queue of one instance (shared memory)."""

    @classmethod
    def create(cls, inst: Instance) -> Queue | None:
        if inst.opts.int("queue", 0) <= 0:
            return None
        return cls(inst)

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.size = inst.opts.int("queue", 0)
        self.blocksize = inst.opts.int("queue-blocksize", 0) or 8192
        if (self.blocksize * self.size) % _PAGE:
            raise ConfigError(
                f"invalid queue size/blocksize {self.blocksize}: must be a multiple of "
                f"memory page size ({_PAGE} bytes)")
        total = self.size * self.blocksize + _HDR
        self.mem = bytearray((total + _PAGE - 1) // _PAGE * _PAGE)
        self.pos = 0
        self.pull_pos = 0
        inst.log(f"*** Queue subsystem initialized: "
                 f"{self.blocksize * self.size // (1024 * 1024)}MB preallocated ***")

    # -- slot memory ----------------------------------------------------------------------
    def _off(self, index: int) -> int:
        return _HDR + index * self.blocksize

    def _size(self, index: int) -> int:
        off = self._off(index)
        return int.from_bytes(self.mem[off:off + 8], "little")

    def _message(self, index: int) -> bytes | None:
        size = self._size(index)
        if not size:
            return None
        off = self._off(index) + _HDR
        return bytes(self.mem[off:off + size])

    def _clear(self, index: int) -> None:
        off = self._off(index)
        self.mem[off:off + 8] = bytes(8)

    def _store(self, index: int, message: bytes) -> None:
        off = self._off(index)
        ts = int(self.inst.wall()) & _U64
        blob = len(message).to_bytes(8, "little") + ts.to_bytes(8, "little") + message
        end = min(off + len(blob), len(self.mem))
        self.mem[off:end] = blob[:end - off]

    # -- operations -------------------------------------------------------------------------
    def push(self, message: bytes) -> bool:
        if len(message) > self.blocksize - _HDR or not message:
            return False
        self._store(self.pos, message)
        self.pos = (self.pos + 1) % self.size
        return True

    def pop(self) -> bytes | None:
        self.pos = self.size - 1 if self.pos == 0 else self.pos - 1
        msg = self._message(self.pos)
        if msg is not None:
            self._clear(self.pos)
        return msg

    def pull(self) -> bytes | None:
        msg = self._message(self.pull_pos)
        if msg is None:
            return None
        self._clear(self.pull_pos)
        self.pull_pos = (self.pull_pos + 1) % self.size
        return msg

    def get(self, index: int) -> bytes | None:
        if index >= self.size:
            return None
        return self._message(index)

    def set(self, index: int, message: bytes) -> bool:
        if len(message) > self.blocksize + _HDR or not message or index >= self.size:
            return False
        self._store(index, message)
        return True

    def last(self, num: int) -> Any:
        base = self.pos - 1 if self.pos > 0 else self.size - 1
        if num == 0:
            return self._message(base)
        num = min(num, self.size)
        out: list[bytes | None] = []
        for _ in range(num):
            out.append(self._message(base))
            base = base - 1 if base > 0 else self.size - 1
        return out

    # -- the uwsgi module ------------------------------------------------------------------
    def facade_functions(self) -> dict[str, Any]:
        p_push = parser("s#:queue_push")
        p_set = parser("ls#:queue_set")
        p_get = parser("l:queue_get")
        p_last = parser("|l:queue_last")

        def queue_push(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("queue_push", kw)
            (msg,) = p_push(args)
            return True if self.push(msg) else None

        def queue_set(*args: Any, **kw: Any) -> bool | None:
            no_kwargs("queue_set", kw)
            index, msg = p_set(args)
            return True if self.set(index & _U64, msg) else None

        def queue_get(*args: Any, **kw: Any) -> bytes | None:
            no_kwargs("queue_get", kw)
            (index,) = p_get(args)
            return self.get(index & _U64)

        def queue_pop(*_args: Any, **kw: Any) -> bytes | None:
            no_kwargs("queue_pop", kw)
            return self.pop()

        def queue_pull(*_args: Any, **kw: Any) -> bytes | None:
            no_kwargs("queue_pull", kw)
            return self.pull()

        def queue_last(*args: Any, **kw: Any) -> Any:
            no_kwargs("queue_last", kw)
            v = p_last(args)
            num = v[0] if v else 0
            if num < 0:
                from ..server.containment import c_exit

                inst = self.inst
                inst.log("malloc(): Cannot allocate memory [core/utils.c line 1780]")
                inst.log(f"!!! tried memory allocation of {(8 * num) & _U64} bytes !!!")
                c_exit(inst, "exit(1) in uwsgi_malloc", 1)
            return self.last(num)

        def queue_slot(*_args: Any, **kw: Any) -> int:
            no_kwargs("queue_slot", kw)
            return self.pos

        def queue_pull_slot(*_args: Any, **kw: Any) -> int:
            no_kwargs("queue_pull_slot", kw)
            return self.pull_pos

        return {"queue_push": queue_push, "queue_set": queue_set, "queue_get": queue_get,
                "queue_pop": queue_pop, "queue_pull": queue_pull, "queue_last": queue_last,
                "queue_slot": queue_slot, "queue_pull_slot": queue_pull_slot,
                "queue_size": self.size}
