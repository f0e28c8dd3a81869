"""Append-only row storage with bounded memory: the trace's and the log's backing store.

A long run records millions of rows (a virtual day of a 1 s timer to 4 workers makes
half a million trace records). Keeping them as Python objects costs ~300 bytes each,
so a ``Spool`` keeps only the newest ``limit`` rows in memory (the *tail*); when the
tail is full it is serialised with ``marshal`` (exact for the plain values rows hold,
and ~10x faster than msgpack from Python), compressed and appended to an anonymous
temporary file (a *chunk*), with a small index: how many rows, and a per-chunk
summary (the trace counts its kinds, so a query by kind skips the chunks without it).
Reading a row back decodes its chunk (the last one read is cached). A row holding
something ``marshal`` cannot write (an arbitrary object) is stored as ``plain(row)``.

The file has no name on disk and is closed when the spool is collected, so nothing
outlives the run.

When the optional C accelerator ``_ctrace.c`` is built, a spool's ``tail`` and ``limit``
are fields of its C base (``SpoolCore``), which the trace's C ``add`` appends to directly,
and a chunk is written by ``_ctrace.pack`` instead of marshal: the same values read
back, the recurring strings and a time repeated by the records of one instant written
once, a time a whole number of seconds after the one before as that step, a new string
as its edit of the one before (a log line as the few bytes that
differ from the line before), and a chunk's index entry counted in C: about half
marshal's time, a fifth of its bytes for the log, and so less for zlib to compress.
"""

from __future__ import annotations

import itertools
import marshal
import os
import tempfile
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from .accel import load

__all__ = ["Spool", "Borrowed", "LinesView"]

#: the optional C accelerator (see _ctrace.c), or None: pure Python
_ctrace = load(f"{__package__}._ctrace", "SpoolCore", "TraceCore", "pack", "packed",
               "count_kinds")

#: How a chunk's rows are written and read back: marshal, or its faster twin for rows
#: of plain values (``_ctrace.pack``: the recurring strings written once per chunk).
_dumps, _loads = (marshal.dumps, marshal.loads) if _ctrace is None else \
    (_ctrace.pack, _ctrace.unpack)

#: Rows kept in memory before a chunk is written (~2.5 MB of Python objects).
DEFAULT_LIMIT = 8192


class _Chunk:
    __slots__ = ("offset", "size", "count", "summary")

    def __init__(self, offset: int, size: int, count: int, summary: Any) -> None:
        self.offset = offset
        self.size = size
        self.count = count
        self.summary = summary


class Spool(object if _ctrace is None else _ctrace.SpoolCore):  # type: ignore[misc]
    """A sequence of rows that spills old rows to a temporary file in compressed chunks.

    ``plain(row)`` is the stand-in stored for a row that ``marshal`` cannot write;
    ``summarize(rows)`` (optional) computes a chunk's index entry from its rows.
    ``limit`` is how many rows stay in memory (default: ``DEFAULT_LIMIT``).
    """

    def __init__(self, plain: Callable[[Any], Any],
                 summarize: Callable[[list[Any]], Any] | None = None,
                 limit: int | None = None) -> None:
        if limit is None:
            limit = DEFAULT_LIMIT
        if limit < 1:
            raise ValueError(f"a spool's limit must be at least 1 row, not {limit}")
        self.tail: list[Any] = []
        self.limit = limit
        self._plain = plain
        self._summarize = summarize
        self._chunks: list[_Chunk] = []
        self._spilled = 0
        self._fd = -1
        self._end = 0
        self._cached: tuple[int, list[Any]] | None = None

    # -- writing ----------------------------------------------------------------------
    def append(self, row: Any) -> None:
        tail = self.tail
        tail.append(row)
        if len(tail) >= self.limit:
            self.spill()

    def spill(self) -> None:
        """Write the tail as a chunk (a new list: an iterator of the old one goes on)."""
        rows = self.tail
        if not rows:
            return
        if self._fd < 0:
            self._fd, path = tempfile.mkstemp(prefix="simuwsgi-", suffix=".spool")
            os.unlink(path)  # anonymous: the space is freed when the descriptor closes
            weakref.finalize(self, os.close, self._fd)
        try:
            data = _dumps(rows)
        except ValueError:  # an object marshal cannot write: that row is stored plain
            data = _dumps([row if _marshallable(row) else self._plain(row) for row in rows])
        data = zlib.compress(data, 1)
        os.pwrite(self._fd, data, self._end)
        summary = self._summarize(rows) if self._summarize is not None else None
        self._chunks.append(_Chunk(self._end, len(data), len(rows), summary))
        self._end += len(data)
        self._spilled += len(rows)
        self.tail = []

    def clear(self) -> None:
        """Forget every row (the file's space is reused)."""
        if self._fd >= 0 and self._end:  # (serve clears the log after each request)
            os.ftruncate(self._fd, 0)
        self.tail = []
        self._chunks.clear()
        self._spilled = 0
        self._end = 0
        self._cached = None

    # -- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._spilled + len(self.tail)

    def _rows_of(self, index: int) -> list[Any]:
        cached = self._cached
        if cached is not None and cached[0] == index:
            return cached[1]
        chunk = self._chunks[index]
        rows: list[Any] = _loads(zlib.decompress(os.pread(self._fd, chunk.size, chunk.offset)))
        self._cached = (index, rows)
        return rows

    def chunks(self) -> list[tuple[int, Any]]:
        """``(row count, summary)`` of each spilled chunk, oldest first."""
        return [(c.count, c.summary) for c in self._chunks]

    def scan(self, wanted: Callable[[Any], bool] | None = None) -> Iterator[Any]:
        """Every row, oldest first; with ``wanted``, only the chunks whose summary it
        accepts (the tail is always scanned)."""
        for index, chunk in enumerate(self._chunks):
            if wanted is None or wanted(chunk.summary):
                yield from self._rows_of(index)
        yield from self.tail

    def __iter__(self) -> Iterator[Any]:
        return self.scan()

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step == 1:
                return list(self._range(start, stop))
            return [self[i] for i in range(start, stop, step)]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("spool index out of range")
        if index >= self._spilled:
            return self.tail[index - self._spilled]
        for number, chunk in enumerate(self._chunks):
            if index < chunk.count:
                return self._rows_of(number)[index]
            index -= chunk.count
        raise AssertionError("unreachable: the chunk counts add up to _spilled")

    def _range(self, start: int, stop: int) -> Iterator[Any]:
        first = 0
        for number, chunk in enumerate(self._chunks):
            last = first + chunk.count
            if start < last and stop > first:
                rows = self._rows_of(number)
                yield from rows[max(start - first, 0):stop - first]
            first = last
        if stop > first:
            yield from self.tail[max(start - first, 0):stop - first]


class Borrowed(Spool):
    """A spool whose rows are also appended, in the same order, to ``source`` (a
    spool of several writers' rows, ``mine(row)`` telling this one's): its tail is its
    own, but a spill writes no chunk, only the index; the spilled rows are read back
    from ``source``. (A cluster's node and the cluster keep the same rows: compressed
    once.)"""

    def __init__(self, source: Spool, mine: Callable[[Any], bool],
                 plain: Callable[[Any], Any],
                 summarize: Callable[[list[Any]], Any] | None = None,
                 limit: int | None = None) -> None:
        super().__init__(plain, summarize, limit)
        self._source = source
        self._mine = mine

    def spill(self) -> None:
        rows = self.tail
        if not rows:
            return
        summary = self._summarize(rows) if self._summarize is not None else None
        self._chunks.append(_Chunk(0, 0, len(rows), summary))
        self._spilled += len(rows)
        self.tail = []

    def scan(self, wanted: Callable[[Any], bool] | None = None) -> Iterator[Any]:
        # one pass over the source (the chunks' summaries are the caller's to test
        # again on each row, as Trace does)
        if self._spilled:
            yield from itertools.islice(filter(self._mine, self._source.scan()),
                                        self._spilled)
        yield from self.tail

    def _rows_of(self, index: int) -> list[Any]:
        cached = self._cached
        if cached is not None and cached[0] == index:
            return cached[1]
        first = sum(chunk.count for chunk in self._chunks[:index])
        rows = list(itertools.islice(self.scan(), first, first + self._chunks[index].count))
        self._cached = (index, rows)
        return rows


def _marshallable(row: Any) -> bool:
    try:
        marshal.dumps(row)
    except ValueError:
        return False
    return True


class LinesView(Sequence[str]):
    """A read-only sequence of the log's lines over a spool of ``(time, process, line)``
    rows: indexing, slicing, ``in``, ``count``, iteration, and ``==`` with a list."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    def __len__(self) -> int:
        return len(self._spool)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [row[2] for row in self._spool[index]]
        return self._spool[index][2]

    def __iter__(self) -> Iterator[str]:
        for row in self._spool:
            yield row[2]

    def __contains__(self, line: object) -> bool:
        return any(text == line for text in self)

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (LinesView, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return f"<log: {len(self)} lines>"
