"""The trace: every event of a run, in one schema for all modes.

A record is ``(time, node, process, kind, fields)``: virtual (or real) seconds since the
start, the node name, the process name (``master``, ``worker1``, ``mule2``,
``spooler1``), an event kind (``spawn``, ``request.start``, ``signal.handler``, ...)
and a dict of plain values. Saved as msgpack; the digest is the SHA-256 of that
encoding, so two runs with the same seed and scenario give the same digest.

Times are rounded to the microsecond when encoded, so a digest does not depend on the
last bits of float arithmetic.

A long run can keep only some kinds (``Trace(kinds=["cron.*", "request.*"])``; a
trailing ``*`` matches a prefix): a virtual day of a 1 s timer to 4 workers makes half
a million records (~180 MB), a week seven times that. Queries, files and the digest
then cover the kept records only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

__all__ = ["Trace", "Record"]


@dataclass(frozen=True, slots=True)
class Record:
    """One event of a trace."""

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


class Trace:
    """An append-only list of records with queries, msgpack I/O and a digest."""

    def __init__(self, node: str = "node0", kinds: Iterable[str] | None = None) -> None:
        self.node = node
        self._rows: list[tuple[float, str, str, str, dict[str, Any]]] = []
        #: The kinds kept (patterns as given), or None: every kind.
        self.kinds_kept: tuple[str, ...] | None = None
        if kinds is not None:
            self._keep_only(kinds)

    def add(self, time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
        self._rows.append((time, self.node, process, kind, fields))

    def _keep_only(self, kinds: Iterable[str]) -> None:
        patterns = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        for pattern in patterns:
            if not isinstance(pattern, str):
                raise TypeError(f"trace kinds must be strings, not {type(pattern).__name__}")
        self.kinds_kept = patterns
        exact = frozenset(p for p in patterns if not p.endswith("*"))
        prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))
        rows = self._rows

        def add(time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
            if kind in exact or kind.startswith(prefixes):
                rows.append((time, self.node, process, kind, fields))

        self.add = add  # type: ignore[method-assign]  # the filter costs nothing when unset

    def tee(self, into: Trace) -> None:
        """Also append every record kept here to ``into`` (a cluster's one trace, in
        the order the records happen on every node)."""
        add = self.add
        rows = self._rows
        shared = into._rows

        def both(time: float, process: str, kind: str, fields: dict[str, Any]) -> None:
            kept = len(rows)
            add(time, process, kind, fields)
            if len(rows) != kept:
                shared.append(rows[-1])

        self.add = both  # type: ignore[method-assign]

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Record]:
        for row in self._rows:
            yield Record(*row)

    def __getitem__(self, index: int) -> Record:
        return Record(*self._rows[index])

    def select(self, kind: str | None = None, process: str | None = None,
               **fields: Any) -> list[Record]:
        """Records matching a kind (a trailing ``*`` matches a prefix), a process and
        field values."""
        prefix = kind[:-1] if kind and kind.endswith("*") else None
        out = []
        for row in self._rows:
            if kind is not None:
                if prefix is not None:
                    if not row[3].startswith(prefix):
                        continue
                elif row[3] != kind:
                    continue
            if process is not None and row[2] != process:
                continue
            if fields and any(row[4].get(k) != v for k, v in fields.items()):
                continue
            out.append(Record(*row))
        return out

    def count(self, kind: str | None = None, process: str | None = None, **fields: Any) -> int:
        return len(self.select(kind, process, **fields))

    def kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self._rows:
            counts[row[3]] = counts.get(row[3], 0) + 1
        return dict(sorted(counts.items()))

    # -- encoding -------------------------------------------------------------
    def rows(self) -> list[list[Any]]:
        return [[round(t, 6), node, proc, kind, _plain(fields)]
                for t, node, proc, kind, fields in self._rows]

    def dumps(self) -> bytes:
        return msgpack.packb(self.rows(), use_bin_type=True)

    def digest(self) -> str:
        return hashlib.sha256(self.dumps()).hexdigest()

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.dumps())

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        trace = cls()
        for t, node, proc, kind, fields in msgpack.unpackb(Path(path).read_bytes(), raw=False):
            trace._rows.append((t, node, proc, kind, fields))
        return trace

    def format(self, limit: int | None = None) -> str:
        """A human-readable listing."""
        lines = []
        for t, _node, proc, kind, fields in self._rows[:limit]:
            detail = " ".join(f"{k}={v!r}" for k, v in fields.items())
            lines.append(f"{t:12.6f} {proc:<10} {kind:<18} {detail}")
        return "\n".join(lines)
