"""The trace: every event of a run, in one schema for all modes.

A record is ``(time, node, process, kind, fields)``: virtual (or real) seconds since the
start, the node name, the process name (``master``, ``worker1``, ``mule2``,
``spooler1``), an event kind (``spawn``, ``request.start``, ``signal.handler``, ...)
and a dict of plain values. Saved as msgpack; the digest is the SHA-256 of that
encoding, so two runs with the same seed and scenario give the same digest.

Times are rounded to the microsecond when encoded, so a digest does not depend on the
last bits of float arithmetic.

Memory is bounded: past ``memory_rows`` records, older ones are spilled to a temporary
file in compressed chunks with an index of their kinds (``simuwsgi._core._spool``);
queries, files and the digest read them back. A virtual day of a 1 s timer to 4
workers makes half a million records (~10 MB compressed on disk). A run can also keep
only some kinds (``Trace(kinds=["cron.*", "request.*"])``; a trailing ``*`` matches a
prefix): queries, files and the digest then cover the kept records only.

``Trace.add`` runs once per event; ``_ctrace.c`` (an optional build) is its C twin, step
for step (``Trace(...)`` makes a ``_CTrace`` when it is built; ``SIMUWSGI_PURE_PYTHON=1``
runs the Python code).
"""

from __future__ import annotations

import hashlib
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from ._spool import Borrowed, Spool, _ctrace

__all__ = ["Trace", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    """One event of a trace. Its ``fields`` are the dict the trace keeps: read-only
    (the C paths give the records of one kind with the very same values one dict)."""

    time: float
    node: str
    process: str
    kind: str
    fields: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def _plain(value: Any) -> Any:
    """A msgpack-encodable stand-in for ``value`` (reprs for anything exotic)."""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, (str, bytes)) else k: _plain(v)
                for k, v in value.items()}
    return repr(value)


#: How a string with lone surrogates is encoded: its original bytes, as ``os.fsencode``
#: gives them (a file or directory name that is not UTF-8, as the OS handed it over).
_UNICODE_ERRORS = "surrogateescape"

_SIMPLE = frozenset({str, int, float, bool, type(None), bytes})


def _encode(row: tuple[float, str, str, str, dict[str, Any]]) -> list[Any]:
    """A row as it is encoded: time rounded to the microsecond, fields plain."""
    t, node, proc, kind, fields = row
    return [round(t, 6), node, proc, kind, _plain(fields)]


def _packed(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """The concatenated msgpack encodings of ``_encode(row)`` for ``rows``."""
    packer = msgpack.Packer(use_bin_type=True, autoreset=False,
                            unicode_errors=_UNICODE_ERRORS)
    pack = packer.pack
    simple = _SIMPLE
    for t, node, proc, kind, fields in rows:
        for key, value in fields.items():  # fields of plain values need no copy
            if type(value) not in simple or type(key) is not str:
                fields = _plain(fields)
                break
        pack([round(t, 6), node, proc, kind, fields])
    return packer.bytes()


def _pack_rows(rows: Iterable[tuple[Any, ...]]) -> bytes:
    """``_packed(rows)``, by its C twin when it is built (``_ctrace.packed``, which hands
    ``_packed`` the rows it does not encode itself)."""
    if _ctrace is None:
        return _packed(rows)
    return _ctrace.packed(rows, _packed)  # type: ignore[no-any-return]


def _stored(row: tuple[float, str, str, str, dict[str, Any]]) -> tuple[Any, ...]:
    """What a spilled row holding an arbitrary object keeps: its encoded values."""
    encoded = msgpack.packb(_encode(row), use_bin_type=True, unicode_errors=_UNICODE_ERRORS)
    return tuple(msgpack.unpackb(encoded, raw=False, strict_map_key=False,
                                 unicode_errors=_UNICODE_ERRORS))


def _array_header(count: int) -> bytes:
    """The msgpack header of an array of ``count`` items."""
    if count < 16:
        return bytes([0x90 | count])
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _py_count_kinds(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """How many rows of each kind, kinds in the order they first come (a spilled
    chunk's index entry)."""
    return dict(Counter(map(_kind_of, rows)))


_kind_of = operator.itemgetter(3)

#: ``_py_count_kinds``, by its C twin when it is built (the kinds counted by pointer:
#: ~1.5 ns a row instead of ~35).
_count_kinds: Callable[[list[tuple[Any, ...]]], dict[str, int]] = \
    _py_count_kinds if _ctrace is None else _ctrace.count_kinds


def _kind_test(kind: str | None) -> Callable[[str], bool] | None:
    """A predicate for a kind pattern (a trailing ``*`` matches a prefix)."""
    if kind is None:
        return None
    if kind.endswith("*"):
        prefix = kind[:-1]
        return lambda k: k.startswith(prefix)
    return kind.__eq__


class Trace:
    """An append-only sequence of records with queries, msgpack I/O and a digest.

    Records beyond ``memory_rows`` (default ``simuwsgi._core._spool.DEFAULT_LIMIT``) are
    spilled to a temporary file in compressed chunks (``simuwsgi._core._spool``), so memory
    does not grow with the length of the run; queries read them back unchanged (a
    record holding an arbitrary object comes back with its encoded, plain values). The
    digest and the saved bytes do not depend on what was spilled.
    """

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Trace:
        if cls is Trace and _c_trace is not None:
            return _c_trace.__new__(_c_trace)
        return super().__new__(cls)

    def __init__(self, node: str = "node0", kinds: Iterable[str] | None = None, *,
                 memory_rows: int | None = None) -> None:
        self.node = node
        self._spool = Spool(_stored, _count_kinds, memory_rows)
        #: The kinds kept (patterns as given), or None: every kind.
        self.kinds_kept: tuple[str, ...] | None = None
        #: The kinds filter: the exact kinds kept (None: every kind) and the prefixes.
        self._keep_exact: frozenset[str] | None = None
        self._keep_prefixes: tuple[str, ...] = ()
        #: The spool every kept record is also appended to (``tee``), or None.
        self._tee: Spool | None = None
        if kinds is not None:
            self._keep_only(kinds)

    def add(self, time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
        exact = self._keep_exact
        if exact is not None and kind not in exact and not kind.startswith(self._keep_prefixes):
            return
        row = (time, self.node, process, kind, fields)
        spool = self._spool
        tail = spool.tail
        tail.append(row)
        if len(tail) >= spool.limit:
            spool.spill()
        if self._tee is not None:
            self._tee.append(row)

    def spill(self) -> None:
        """Move the records held in memory to the file (a closed run keeps none)."""
        self._spool.spill()

    def _keep_only(self, kinds: Iterable[str]) -> None:
        patterns = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"trace kinds must be strings, not {type(pattern).__name__}")
        self.kinds_kept = patterns
        self._keep_exact = frozenset(p for p in patterns if not p.endswith("*"))
        self._keep_prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def tee(self, into: Trace) -> None:
        """Also append every record kept here to ``into`` (a cluster's one trace, in
        the order the records happen on every node). Keeping every kind, this trace
        spills no chunk of its own: it reads its spilled records back from ``into``'s."""
        spool = self._spool
        shared = into._spool
        if self.kinds_kept is None and not spool and self.node != into.node:
            node = self.node
            self._spool = Borrowed(shared, lambda row: row[1] == node, _stored, _count_kinds,
                                   spool.limit)
        self._tee = shared

    def __len__(self) -> int:
        return len(self._spool)

    def __iter__(self) -> Iterator[Record]:
        for row in self._spool:
            yield Record(*row)

    def __getitem__(self, index: int) -> Record:
        return Record(*self._spool[index])

    def select(self, kind: str | None = None, process: str | None = None,
               **fields: Any) -> list[Record]:
        """Records matching a kind (a trailing ``*`` matches a prefix), a process and
        field values."""
        return [Record(*row) for row in self._matching(kind, process, fields)]

    def _matching(self, kind: str | None, process: str | None,
                  fields: dict[str, Any]) -> Iterator[Any]:
        test = _kind_test(kind)
        wanted = None if test is None else (lambda counts: any(map(test, counts)))
        for row in self._spool.scan(wanted):
            if test is not None and not test(row[3]):
                continue
            if process is not None and row[2] != process:
                continue
            if fields and any(row[4].get(k) != v for k, v in fields.items()):
                continue
            yield row

    def count(self, kind: str | None = None, process: str | None = None, **fields: Any) -> int:
        if process is None and not fields:
            # the chunks' index answers without reading them
            test = _kind_test(kind)
            total = 0
            for rows, counts in self._spool.chunks():
                total += rows if test is None else sum(n for k, n in counts.items() if test(k))
            return total + sum(1 for row in self._spool.tail if test is None or test(row[3]))
        return sum(1 for _row in self._matching(kind, process, fields))

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _rows, chunk_counts in self._spool.chunks():
            for kind, n in chunk_counts.items():
                counts[kind] = counts.get(kind, 0) + n
        for kind, n in _count_kinds(self._spool.tail).items():
            counts[kind] = counts.get(kind, 0) + n
        return dict(sorted(counts.items()))

    # -- encoding -------------------------------------------------------------
    def rows(self) -> list[list[Any]]:
        return [_encode(row) for row in self._spool]

    def _encoded(self) -> Iterator[bytes]:
        """The msgpack array of every row, in pieces of a few thousand rows."""
        spool = self._spool
        yield _array_header(len(spool))
        rows = iter(spool)
        while True:
            piece = _pack_rows(itertools.islice(rows, 8192))
            if not piece:
                return
            yield piece

    def dumps(self) -> bytes:
        return b"".join(self._encoded())

    def digest(self) -> str:
        sha = hashlib.sha256()
        for piece in self._encoded():
            sha.update(piece)
        return sha.hexdigest()

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as out:
            for piece in self._encoded():
                out.write(piece)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        trace = cls()
        with open(path, "rb") as source:
            unpacker = msgpack.Unpacker(source, raw=False, strict_map_key=False,
                                     unicode_errors=_UNICODE_ERRORS)
            count = unpacker.read_array_header()
            for _ in range(count):
                t, node, proc, kind, fields = next(unpacker)
                trace._spool.append((t, node, proc, kind, fields))
        return trace

    def format(self, limit: int | None = None) -> str:
        """A human-readable listing."""
        lines = []
        for t, _node, proc, kind, fields in itertools.islice(self._spool, limit):
            detail = " ".join(f"{k}={v!r}" for k, v in fields.items())
            lines.append(f"{t:12.6f} {proc:<10} {kind:<18} {detail}")
        return "\n".join(lines)


if _ctrace is not None:
    class _CTrace(_ctrace.TraceCore, Trace):
        """``Trace`` with ``add`` and the fields it reads in C (``_ctrace.c``)."""

    _c_trace: type[Trace] | None = _CTrace
else:
    _c_trace = None
