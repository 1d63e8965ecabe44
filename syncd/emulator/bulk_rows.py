"""One bulk job's rows against the store, and the result file they make (reference 5.4, 5.7).

Per row: every mapped cell is converted (INVALID_DATA-<column> when it does not fit the field
or the column's date format), the ``find_by`` value picks the record (empty:
MANDATORY_NOT_FOUND-<column> unless ``bulk_empty_find_by = "insert"``), mandatory fields are
checked on insert (MANDATORY_NOT_FOUND), unique fields on every write (DUPLICATE_DATA). The
operation decides the rest: ``insert`` skips rows whose find_by value exists (DUPLICATE_DATA),
``update`` skips rows without a match (RESOURCE_NOT_FOUND), ``upsert`` updates or inserts.

The result CSV holds the first three mapped columns (by column index, with the uploaded
header names) plus STATUS, RECORD_ID and ERRORS; errors read
``MANDATORY_NOT_FOUND-Name,Amount:INVALID_DATA-Order_Date``.
"""

from __future__ import annotations

import csv
import io
import random
import struct
import zipfile
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from syncd.emulator.bulk_jobs import NO_DEFAULT, Job, Mapping
from syncd.emulator.settings import EmulatorSettings
from syncd.emulator.store import CREATED, ID, MODIFIED, IdSource, ModuleStore, Record
from syncd.emulator.values import csv_converter

STATUSES = ("ADDED", "UPDATED", "SKIPPED", "UNPROCESSED")
_INVALID = object()  # a cell that failed conversion: counts as given, is never stored

Column = tuple[
    int | None, int, Callable[[str], Any], str, Any
]  # index, slot, convert, header, default


class RowEngine:
    """Applies rows of one job; the caller holds the store lock around ``apply``."""

    def __init__(
        self,
        job: Job,
        store: ModuleStore,
        settings: EmulatorSettings,
        zone: tzinfo,
        ids: IdSource,
        unprocessed_rate: float,
        modules: Callable[[str], ModuleStore | None] = lambda name: None,
    ) -> None:
        request = job.request
        self.op, self.store, self.ids = request.operation, store, ids
        self.ignore_empty = request.ignore_empty
        self.skip_empty_key = settings.bulk_empty_find_by == "skip" or self.op == "update"
        self.intra_duplicates = settings.intra_request_duplicates == "duplicate_data"
        self.unprocessed_rate, self.rng = unprocessed_rate, job.rng
        self.fast = settings.bulk_fast
        self.cell = {s: _cased(s, settings.bulk_status_case) for s in STATUSES}
        self.columns: list[Column] = [
            (
                m.index,
                store.slot[m.api_name],
                _converter(m, settings, zone, modules),
                m.header,
                m.default,
            )
            for m in request.mappings
            if m.spec is not None
        ]
        self.find_by = request.find_by
        self._plan_checks(request.mappings)
        self.echo = sorted({m.index for m in request.mappings if m.index is not None})[:3]
        self.header = [request.file.header[i] for i in self.echo]
        self.header += ["STATUS", "RECORD_ID", "ERRORS"]
        self.seen: set[str] = set()

    def _plan_checks(self, mappings: tuple[Mapping, ...]) -> None:
        """Which slots the mandatory and unique checks read, and the find_by column."""
        slot = self.store.slot
        header_of = {m.api_name: m.header for m in mappings}
        fields = self.store.schema.fields
        self.mandatory = [
            (slot[f.api_name], header_of.get(f.api_name, f.api_name)) for f in fields if f.mandatory
        ]
        key = next((m for m in mappings if m.api_name == self.find_by), None)
        self.key_index = key.index if key is not None else None
        self.key_header = key.header if key is not None else ""
        self.key_spec = key.spec if key is not None else None
        # the find_by field itself is settled by the lookup in _target
        self.unique = [
            (f.api_name, slot[f.api_name], header_of.get(f.api_name, f.api_name))
            for f in self.store.schema.unique_fields
            if f.api_name != self.find_by
        ]

    def apply(self, row: list[str], now: str) -> tuple[list[str], str]:
        """Process one CSV row: (result row, status)."""
        width = len(row)
        echo = [row[i] if i < width else "" for i in self.echo]
        if self.unprocessed_rate and self.rng.random() < self.unprocessed_rate:
            return [*echo, self.cell["UNPROCESSED"], "", ""], "UNPROCESSED"
        if self.fast:  # benchmarks: measure the client, not this emulator's record store
            return [*echo, self.cell["ADDED"], self.ids.next_id(), ""], "ADDED"
        errors: list[tuple[str, str]] = []
        target = self._target(row, width, errors)
        slots = self._slots(row, width, target, errors)
        self._check(slots, target, errors)
        if errors:
            return [*echo, self.cell["SKIPPED"], "", format_errors(errors)], "SKIPPED"
        slots[MODIFIED] = now
        if target is None:
            slots[ID], slots[CREATED] = self.ids.next_id(), now
        self.store.put(tuple(slots), target)
        if self.intra_duplicates and self.key_index is not None and self.key_index < width:
            self.seen.add(self._fold(row[self.key_index]))
        status = "ADDED" if target is None else "UPDATED"
        return [*echo, self.cell[status], slots[ID], ""], status

    def _slots(
        self, row: list[str], width: int, target: Record | None, errors: list[tuple[str, str]]
    ) -> list[Any]:
        """The record as the row leaves it: the target's slots (or blank slots) with the cells."""
        slots = list(target) if target is not None else self.store.blank()
        ignore_empty = self.ignore_empty
        for index, slot, convert, header, default in self.columns:
            cell = row[index] if index is not None and index < width else ""
            if cell == "":
                if default is not NO_DEFAULT:
                    slots[slot] = default
                elif not ignore_empty:
                    slots[slot] = None
                continue
            try:
                slots[slot] = convert(cell)
            except ValueError:
                slots[slot] = _INVALID
                errors.append(("INVALID_DATA", header))
        return slots

    def _target(self, row: list[str], width: int, errors: list[tuple[str, str]]) -> Record | None:
        if self.find_by is None or self.key_index is None:
            return None
        key = row[self.key_index] if self.key_index < width else ""
        if key == "":
            if self.skip_empty_key:
                errors.append(("MANDATORY_NOT_FOUND", self.key_header))
            return None
        if self.intra_duplicates and self._fold(key) in self.seen:
            errors.append(("DUPLICATE_DATA", self.key_header))
        found = self.store.find(self.find_by, key)
        if self.op == "insert" and found is not None:
            errors.append(("DUPLICATE_DATA", self.key_header))
            return None
        if self.op == "update" and found is None:
            errors.append(("RESOURCE_NOT_FOUND", self.key_header))
        return found

    def _check(
        self, slots: list[Any], target: Record | None, errors: list[tuple[str, str]]
    ) -> None:
        """Mandatory fields need a value; unique fields must not collide with another record."""
        for slot, header in self.mandatory:
            if slots[slot] is None or slots[slot] == "":
                errors.append(("MANDATORY_NOT_FOUND", header))
        for name, slot, header in self.unique:
            value = slots[slot]
            if value is None or value == "" or value is _INVALID:
                continue
            holder = self.store.find(name, value)
            if holder is not None and (target is None or holder[ID] != target[ID]):
                errors.append(("DUPLICATE_DATA", header))

    def _fold(self, key: str) -> str:
        return self.key_spec.fold(key) if self.key_spec is not None else key


def format_errors(errors: list[tuple[str, str]]) -> str:
    """``CODE-col1,col2:CODE2-col3``: one group per code in first-seen order (reference 5.4)."""
    groups: dict[str, list[str]] = {}
    for code, column in errors:
        columns = groups.setdefault(code, [])
        if column not in columns:
            columns.append(column)
    return ":".join(f"{code}-{','.join(columns)}" for code, columns in groups.items())


def result_zip(
    job: Job,
    header: list[str],
    rows: list[list[str]],
    settings: EmulatorSettings,
    rng: random.Random,
) -> bytes:
    """The zip ``download_url`` serves: one CSV named ``<Module>-<uploaded CSV name>``."""
    if settings.bulk_result_order == "shuffled":
        rng.shuffle(rows)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    name = job.request.file.csv_name.rsplit("/", 1)[-1]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"{job.request.module.api_name}-{name}", text.getvalue())
    return buffer.getvalue()


def broken_result_zip(job: Job, header: list[str], rows: list[list[str]], kind: str) -> bytes:
    """A result file Zoho (or a cache in front of it) got wrong (``Faults.broken_result``).

    no_csv: the zip holds a log file and no CSV. other_columns: a CSV of the uploaded columns
    only, without STATUS, RECORD_ID and ERRORS. foreign_keys: the true result plus a row for a
    key that was not in the file (as when another job's result is mixed in). damaged_stream:
    the true result, its compressed bytes damaged three quarters of the way in (a proxy or a
    disk garbling the download): it unzips until there, then fails.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "no_csv":
            archive.writestr("errors.log", f"job {job.id}: result file could not be written\n")
        else:
            text = io.StringIO()
            writer = csv.writer(text)
            if kind == "other_columns":
                writer.writerow(header[:-3])
                writer.writerows(row[:-3] for row in rows)
            else:
                writer.writerow(header)
                writer.writerows(rows)
                if kind == "foreign_keys":
                    stranger = ["NOT-SENT-1", *[""] * (len(header) - 4), "ADDED", "1", ""]
                    writer.writerow(stranger)
            archive.writestr(f"{job.request.module.api_name}-result.csv", text.getvalue())
    return _damaged(buffer.getvalue()) if kind == "damaged_stream" else buffer.getvalue()


def _damaged(data: bytes) -> bytes:
    """``data`` (a zip of one member) with up to 16 bytes of the member's compressed stream
    zeroed from three quarters of the way in; the archive's own records stay whole."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        member = archive.infolist()[0]
    local = member.header_offset
    name_length, extra_length = struct.unpack("<HH", data[local + 26 : local + 30])
    into = member.compress_size * 3 // 4
    at = local + 30 + name_length + extra_length + into
    width = max(1, min(16, member.compress_size - into))
    return data[:at] + bytes(width) + data[at + width :]


def _cased(status: str, case: str) -> str:
    return {"upper": status, "title": status.title(), "lower": status.lower()}[case]


def _parent_finder(
    mapping: Mapping, modules: Callable[[str], ModuleStore | None]
) -> Callable[[str], Any]:
    """A lookup cell -> the id of the parent record whose ``find_by`` field holds it; a cell no
    parent matches fails the row as INVALID_DATA-<column> (Zoho's answer: UNCONFIRMED)."""
    assert mapping.spec is not None and mapping.spec.lookup_module is not None
    parents = modules(mapping.spec.lookup_module)
    find_by = str(mapping.echo.get("find_by") or "id")

    def find(cell: str) -> Any:
        try:
            record = parents.find(find_by, cell) if parents is not None else None
        except KeyError:  # find_by is not a unique field of the parent module
            record = None
        if record is None:
            raise ValueError(cell)
        return record[ID]

    return find


def _converter(
    mapping: Mapping,
    settings: EmulatorSettings,
    zone: tzinfo,
    modules: Callable[[str], ModuleStore | None],
) -> Callable[[str], Any]:
    assert mapping.spec is not None  # the record-id mapping has no converter
    if mapping.spec.lookup_module is not None:
        return _parent_finder(mapping, modules)
    return csv_converter(mapping.spec, mapping.format, zone, settings.strict_picklists)
