"""Lookup fields: a row goes only once every parent it names has a record in the CRM.

A child row names its parent by the parent's legacy key; the parent pipeline's identity map
gives the parent's record id. A row whose parent has no record yet is not a reject: it stays
pending, costs no CRM call, and goes at the first selection after the parent is confirmed.
One identity lookup per parent pipeline per batch, and none for pipelines without lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from syncd.engine.parents import count_missing
from syncd.model import FieldMap, PendingRow
from syncd.ports import EngineState, Source

ParentIds = dict[str, dict[str, str]]
"""Parent pipeline name -> (parent legacy key text -> the parent's CRM record id)."""


def parent_ids(
    state: EngineState, lookups: Sequence[FieldMap], rows: Sequence[PendingRow]
) -> ParentIds:
    """The record ids of the parents ``rows`` name, one identity lookup per parent pipeline."""
    wanted: dict[str, set[str]] = {}
    for item in lookups:
        assert item.lookup is not None
        keys = wanted.setdefault(item.lookup.pipeline, set())
        keys.update(str(v) for r in rows if (v := r.values[item.column]) is not None)
    return {parent: state.record_ids(parent, sorted(keys)) for parent, keys in wanted.items()}


def waiting_for(row: PendingRow, lookups: Sequence[FieldMap], ids: ParentIds) -> str | None:
    """The parent pipeline ``row`` waits for (its parent has no record yet), or None."""
    for item in lookups:
        assert item.lookup is not None
        parent = row.values[item.column]
        if parent is not None and str(parent) not in ids[item.lookup.pipeline]:
            return item.lookup.pipeline
    return None


def ready_rows(
    state: EngineState, lookups: Sequence[FieldMap], rows: Sequence[PendingRow]
) -> tuple[list[PendingRow], ParentIds]:
    """The rows whose parents all have a record (a NULL parent clears the field), and the ids."""
    ids = parent_ids(state, lookups, rows)
    return [r for r in rows if waiting_for(r, lookups, ids) is None], ids


def lookup_fields(fields: Sequence[FieldMap]) -> list[FieldMap]:
    """The mapped fields that look up a parent, in either form (a pipeline, or a module's
    unique field): what ``count_waiting`` counts."""
    return [f for f in fields if f.lookup is not None or f.parent_field is not None]


def waits_for(parent: str) -> tuple[str, str]:
    """What rows counted under ``parent`` (a key of ``count_waiting``) wait for, and why, in
    words: ``Module.Field`` for a lookup by a field, else a parent pipeline's name."""
    if "." in parent:  # pipeline names cannot hold a dot (config), Module.Field always does
        return parent, "no CRM record had their value when last looked up"
    return f"pipeline {parent}", "their parent has no CRM record yet"


def count_waiting(
    source: Source,
    state: EngineState,
    lookups: Sequence[FieldMap],
    page: int = 5000,
    pipeline: str | None = None,
) -> dict[str, int]:
    """Pending rows waiting, by the parent pipeline they wait for (for `syncd status`). With
    ``pipeline`` (its name), lookups by a field count too, by ``Module.Field``: rows whose
    value no parent record held when last looked up (``syncd.engine.parents``)."""
    by_pipeline = [f for f in lookups if f.lookup is not None]
    by_field = [f for f in lookups if f.parent_field is not None]
    waiting: dict[str, int] = {}
    for rows in _pending_pages(source, page):
        ids = parent_ids(state, by_pipeline, rows)
        for row in rows:
            if (parent := waiting_for(row, by_pipeline, ids)) is not None:
                waiting[parent] = waiting.get(parent, 0) + 1
        if by_field and pipeline is not None:
            for key, rows_waiting in count_missing(state, pipeline, by_field, rows).items():
                waiting[key] = waiting.get(key, 0) + rows_waiting
    return waiting


def _pending_pages(source: Source, size: int) -> Iterable[list[PendingRow]]:
    after = None
    while batch := source.pending_batch(after, size):
        yield batch
        after = batch[-1].key
