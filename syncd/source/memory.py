"""A legacy table held in memory (implements ``syncd.ports.Source``).

It keeps the promises of ``syncd.source.LegacyTable`` (the same contract tests run against
both: ``tests/contract/test_source_contract.py``) so the engine can be run and read without a
database: keyset pages in the order of the native key, the compare-and-set of the flag against
the values that were sent, keys given as text or native. The legacy application is played
through ``insert``, ``update`` and ``delete``; with ``trigger=True`` the flag behaves as under
the trigger ``syncd`` prints (``LegacyTable.trigger_ddl``): false on every insert and on every
change of a mapped column, and left alone by syncd's own flag-only update.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from syncd.model import CHANGED, DELETED, Confirmation, FieldType, PendingRow, TableSpec


class MemoryTable:
    """One pipeline's legacy table as a dict of rows by native key."""

    def __init__(
        self,
        spec: TableSpec,
        column_types: Mapping[str, FieldType],
        *,
        key_type: type[int] | type[str] = int,
        trigger: bool = True,
        confirms_concurrently: bool = False,
    ) -> None:
        """``column_types`` are the CRM types of the mapped columns (what
        ``LegacyTable.column_types`` derives from SQL types); ``key_type`` is the key column's:
        keys are ordered and bound as it. Without ``trigger`` only the application's own
        writes change the flag (it sets it false itself, as ``syncd`` documents). Every method
        takes one lock, so the engine may confirm rows on a thread of its own; it does only
        with ``confirms_concurrently`` (there is no wait to overlap, but the path is run)."""
        self.spec = spec
        self.confirms_concurrently = confirms_concurrently
        self._types = dict(column_types)
        self._key_type = key_type
        self._trigger = trigger
        self._compared = list(spec.columns)
        if spec.version_column and spec.version_column not in self._compared:
            self._compared.append(spec.version_column)
        self._rows: dict[Any, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- the legacy application at work -----------------------------------------------------------

    def insert(self, row: Mapping[str, Any]) -> None:
        """Insert one row (it holds the key column); the trigger makes it pending."""
        values = dict(row)
        values.setdefault(self.spec.flag, False)
        if self._trigger:
            values[self.spec.flag] = False
        with self._lock:
            key = self._key_value(values[self.spec.key])
            if key in self._rows:
                raise KeyError(f"duplicate key {key!r} in {self.spec.table}")
            self._rows[key] = values

    def update(self, key: Any, **values: Any) -> None:
        """Change columns of one row (the flag too, when given); the trigger makes the row
        pending when a mapped column now holds another value."""
        with self._lock:
            row = self._rows[self._key_value(key)]
            changed = any(
                c in self.spec.columns and repr(v) != repr(row.get(c)) for c, v in values.items()
            )
            row.update(values)
            if self._trigger and changed:
                row[self.spec.flag] = False

    def delete(self, key: Any) -> None:
        with self._lock:
            del self._rows[self._key_value(key)]

    def flag(self, key: Any) -> bool:
        """The row's flag as the legacy database holds it."""
        with self._lock:
            return bool(self._rows[self._key_value(key)][self.spec.flag])

    # -- ports.Source ------------------------------------------------------------------------------

    def pending_batch(
        self, after_key: Any | None, limit: int, *, ahead: bool = False
    ) -> list[PendingRow]:
        """(Nothing is read ahead: there is no wait to overlap.)"""
        del ahead
        with self._lock:
            keys = sorted(k for k, row in self._rows.items() if not row[self.spec.flag])
            if after_key is not None:
                after = self._key_value(after_key)
                keys = [k for k in keys if k > after]
            return [self._pending_row(k) for k in keys[:limit]]

    def count_pending(self) -> int:
        with self._lock:
            return sum(1 for row in self._rows.values() if not row[self.spec.flag])

    def fetch_rows(self, keys: Sequence[Any], *, pending_only: bool = False) -> list[PendingRow]:
        with self._lock:
            wanted = {self._key_value(k) for k in keys}
            found = sorted(k for k in wanted if k in self._rows)
            if pending_only:
                found = [k for k in found if not self._rows[k][self.spec.flag]]
            return [self._pending_row(k) for k in found]

    def mark_synced(self, rows: Sequence[PendingRow]) -> Confirmation:
        """Set the flag true only where the row still holds exactly what was sent (one lock:
        the legacy application cannot write between the compare and the set)."""
        with self._lock:
            changed: dict[str, tuple[str, ...]] = {}
            marked: set[str] = set()
            for sent in rows:
                key = self._key_value(sent.key)
                now = self._pending_row(key) if key in self._rows else None
                differs = self._differs(sent, now)
                if differs:
                    changed[sent.key_text] = differs
                else:
                    self._rows[key][self.spec.flag] = True  # changes no mapped column
                    marked.add(sent.key_text)
        return Confirmation(frozenset(marked), changed, frozenset(), self.spec.flag)

    def column_types(self) -> dict[str, FieldType]:
        return {c: self._types.get(c, FieldType.TEXT) for c in self.spec.columns}

    def unflag(self, keys: Sequence[Any]) -> int:
        """Flag := false for these keys (text or native); how many rows there were."""
        with self._lock:
            found = [k for k in {self._key_value(k) for k in keys} if k in self._rows]
            for key in found:
                self._rows[key][self.spec.flag] = False
            return len(found)

    # -- internals ------------------------------------------------------------------------------

    def _key_value(self, key: Any) -> Any:
        """Keys come back from the journal and the buffer as text: bound as the key's type."""
        return self._key_type(key) if isinstance(key, str) else key

    def _pending_row(self, key: Any) -> PendingRow:
        row = self._rows[key]
        return PendingRow(key, {c: row.get(c) for c in self._compared})

    def _differs(self, sent: PendingRow, now: PendingRow | None) -> tuple[str, ...]:
        """The compared columns whose value changed, as ``LegacyTable`` names them."""
        if now is None:
            return (DELETED,)
        if not sent.values:  # a lean row: only its fingerprint was kept
            return () if now.fingerprint == sent.fingerprint else (CHANGED,)
        if self.spec.version_column:
            name = self.spec.version_column
            return () if sent.values[name] == now.values[name] else (name,)
        return tuple(c for c in sent.values if repr(sent.values[c]) != repr(now.values.get(c)))
