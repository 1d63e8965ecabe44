"""Records in memory, indexed by id and by every field an upsert can match on.

A record is a tuple of slots (id, Created_Time, Modified_Time, then the module's fields in
schema order) rather than a dict: a million bulk rows must fit and be written quickly, and
tuples of plain values drop out of the garbage collector's scans. Updates store a new tuple.
Callers hold ``RecordStore.lock`` around any read-modify-write sequence.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from syncd.emulator.schema import FieldSpec, ModuleSchema, Schema

Record = tuple[Any, ...]
ID, CREATED, MODIFIED = 0, 1, 2
_SYSTEM = ("id", "Created_Time", "Modified_Time")


class IdSource:
    """19-digit numeric ids, like Zoho's, unique across records, files and jobs."""

    def __init__(self, prefix: str = "5725767") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1_000_001)

    def next_id(self) -> str:
        return f"{self._prefix}{next(self._counter):012d}"


class ModuleStore:
    """The records of one module."""

    def __init__(self, schema: ModuleSchema) -> None:
        self.schema = schema
        self.slot: dict[str, int] = {name: i for i, name in enumerate(_SYSTEM)}
        self.slot.update({f.api_name: len(_SYSTEM) + i for i, f in enumerate(schema.fields)})
        self._width = len(self.slot)
        self._records: dict[str, Record] = {}
        # folded value -> the first record holding it, for every field an upsert can match on;
        # system duplicate-check fields are not unique, so later holders queue up in _more.
        # Those are only consulted by some JSON upserts, so their index is built on first use.
        self._first: dict[str, dict[str, str]] = {}
        self._more: dict[str, dict[str, list[str]]] = {}
        self._indexed: list[tuple[FieldSpec, int]] = []
        self._specs = {f.api_name: f for f in schema.indexed_fields}
        for spec in schema.unique_fields:
            self._build_index(spec)

    def __len__(self) -> int:
        return len(self._records)

    def get(self, record_id: str) -> Record | None:
        return self._records.get(record_id)

    def find(self, api_name: str, value: object) -> Record | None:
        """The record whose ``api_name`` (an indexed field, or ``id``) holds ``value``."""
        if api_name == "id":
            return self._records.get(str(value))
        spec = self._specs[api_name]
        if api_name not in self._first:
            self._build_index(spec)
        found = self._first[api_name].get(spec.fold(value))
        return self._records[found] if found is not None else None

    def _build_index(self, spec: FieldSpec) -> None:
        slot = self.slot[spec.api_name]
        self._first[spec.api_name], self._more[spec.api_name] = {}, {}
        for record in self._records.values():  # insertion order: the oldest holder comes first
            self._index(spec, record[slot], record[ID], add=True)
        self._indexed.append((spec, slot))

    def blank(self) -> list[Any]:
        """Empty slots for a new record, to fill and ``put``."""
        return [None] * self._width

    def insert(self, record_id: str, values: Mapping[int, Any], now: str) -> Record:
        slots = self.blank()
        slots[ID], slots[CREATED], slots[MODIFIED] = record_id, now, now
        for slot, value in values.items():
            slots[slot] = value
        record = tuple(slots)
        self.put(record, None)
        return record

    def update(self, record: Record, values: Mapping[int, Any], now: str) -> Record:
        """Write ``values`` into ``record``; returns the record as now stored."""
        slots = list(record)
        for slot, value in values.items():
            slots[slot] = value
        slots[MODIFIED] = now
        new = tuple(slots)
        self.put(new, record)
        return new

    def put(self, record: Record, old: Record | None) -> None:
        """Store ``record`` (replacing ``old``, the same record before the write) and reindex."""
        record_id = record[ID]
        self._records[record_id] = record
        for spec, slot in self._indexed:
            if old is None:
                self._index(spec, record[slot], record_id, add=True)
            elif old[slot] != record[slot]:
                self._index(spec, old[slot], record_id, add=False)
                self._index(spec, record[slot], record_id, add=True)

    def delete(self, record_id: str) -> bool:
        """Remove the record (and free its unique values); False if there is none."""
        record = self._records.pop(record_id, None)
        if record is None:
            return False
        for spec, slot in self._indexed:
            self._index(spec, record[slot], record_id, add=False)
        return True

    def _index(self, spec: FieldSpec, value: Any, record_id: str, *, add: bool) -> None:
        if value is None or value == "":
            return
        key, first, more = spec.fold(value), self._first[spec.api_name], self._more[spec.api_name]
        if add:
            if key in first and first[key] != record_id:
                more.setdefault(key, []).append(record_id)
            else:
                first[key] = record_id
        elif first.get(key) == record_id:
            queued = more.get(key)
            if queued:
                first[key] = queued.pop(0)
            else:
                del first[key]
        elif record_id in more.get(key, ()):
            more[key].remove(record_id)

    def as_dict(self, record: Record, names: Iterable[str] | None = None) -> dict[str, Any]:
        """The record as the records API shows it: all fields, or ``id`` plus ``names``."""
        if names is None:
            return {name: record[slot] for name, slot in self.slot.items()}
        return {"id": record[ID]} | {name: record[self.slot[name]] for name in names}

    def records(self) -> Iterator[dict[str, Any]]:
        return (self.as_dict(r) for r in self._records.values())


class RecordStore:
    """Every module's records, behind one lock shared by the records API and the bulk worker."""

    def __init__(self, schema: Schema) -> None:
        self.lock = threading.RLock()
        self.ids = IdSource()
        self._schema = schema
        self._modules = {m.api_name: ModuleStore(m) for m in schema.modules}

    def module(self, api_name: str) -> ModuleStore | None:
        found = self._schema.module(api_name)
        return self._modules[found.api_name] if found is not None else None

    def counts(self) -> dict[str, int]:
        return {name: len(store) for name, store in self._modules.items()}
