"""Lookups by a unique field of the parent module (``lookup = { module, field }``).

The records API takes a lookup only as the parent's record id, so the ids of the parents a
batch names are found with the Search Records API: one call per 10 distinct non-NULL values
of the batch, none for a batch without values. Bulk Write needs no search: Zoho finds the
parent itself (``find_by`` = the field).

A value no parent record holds makes its rows wait (pending, not rejects) and is remembered
in the backoff table (scope ``parent:<hash>``, surviving a restart): until its ``next_at``
the rows wait without any call, then one search looks again (shared with up to 9 other
values), the wait doubling from ``MISS_BASE_DELAY`` to ``MISS_MAX_DELAY``. A value Bulk Write
could not match is remembered the same way, so a waiting row never goes to a second bulk
job blind. A value two parent records hold makes its rows rejects: syncd never guesses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from syncd.engine.backoff import next_attempt
from syncd.engine.runtime import PipelineRuntime
from syncd.model import Backoff, FieldMap, ParentField, PendingRow, Reject
from syncd.ports import Crm, EngineState, RowEncoder

logger = logging.getLogger(__name__)

MISS_BASE_DELAY = timedelta(minutes=1)
MISS_MAX_DELAY = timedelta(minutes=30)
"""A value no parent holds is looked up again after 1, 2, 4 ... at most 30 minutes (less up to
half of it by jitter): at most about 100 searches a day however long its rows wait, each
shared with up to 9 other values."""

AMBIGUOUS_PARENT_CODE = "AMBIGUOUS_PARENT"
"""Code of a reject syncd itself raised: two or more parent records hold the row's value."""

ParentIds = dict[str, dict[str, str]]
"""``Module.Field`` -> (value -> the one parent record id holding it)."""


def miss_scope(parent: ParentField, value: str) -> str:
    """The backoff scope remembering that no ``parent`` record holds ``value`` (fits 100)."""
    digest = hashlib.sha256(f"{parent.key}\0{value}".encode()).hexdigest()[:40]
    return f"parent:{digest}"


def _values(fields: Sequence[FieldMap], rows: Sequence[PendingRow]) -> dict[str, set[str]]:
    """``Module.Field`` -> the distinct non-NULL values ``rows`` name there."""
    wanted: dict[str, set[str]] = {}
    for item in fields:
        assert item.parent_field is not None
        values = wanted.setdefault(item.parent_field.key, set())
        values.update(str(v) for r in rows if (v := r.values[item.column]) is not None)
    return wanted


def _parents(fields: Sequence[FieldMap]) -> dict[str, ParentField]:
    return {f.parent_field.key: f.parent_field for f in fields if f.parent_field is not None}


def _misses(
    state: EngineState, name: str, fields: Sequence[FieldMap], wanted: dict[str, set[str]]
) -> dict[tuple[str, str], Backoff]:
    """(``Module.Field``, value) -> its miss record, for the values known to have no parent."""
    parents = _parents(fields)
    scopes = {
        miss_scope(parents[key], value): (key, value)
        for key, values in wanted.items()
        for value in values
    }
    found = state.backoffs(name, list(scopes)) if scopes else {}
    return {scopes[scope]: backoff for scope, backoff in found.items()}


def _waits(row: PendingRow, fields: Sequence[FieldMap], missing: set[tuple[str, str]]) -> bool:
    for item in fields:
        assert item.parent_field is not None
        value = row.values[item.column]
        if value is not None and (item.parent_field.key, str(value)) in missing:
            return True
    return False


def selectable(rt: PipelineRuntime, rows: Sequence[PendingRow]) -> list[PendingRow]:
    """``rows`` minus those waiting for a parent: a value known missing waits without a call
    until its backoff passes, then one search per 10 such values looks again."""
    fields = rt.encoder.parent_fields
    wanted = _values(fields, rows)
    misses = _misses(rt.state, rt.name, fields, wanted)
    if not misses:
        return list(rows)
    now = rt.clock.now()
    due: dict[str, set[str]] = {}
    for (key, value), backoff in misses.items():
        if not backoff.blocks(now):
            due.setdefault(key, set()).add(value)
    still = {pair for pair, backoff in misses.items() if backoff.blocks(now)}
    if due:
        found = _search(rt.crm, rt.encoder, due)
        still |= _note_search(rt, due, found, misses, now)
    return [r for r in rows if not _waits(r, fields, still)]


def resolve(
    rt: PipelineRuntime, rows: Sequence[PendingRow]
) -> tuple[list[PendingRow], ParentIds, list[Reject]]:
    """The rows whose parents were all found (a NULL clears the field), their parents' ids, and
    rejects for rows whose value several parents hold. Rows whose value no parent holds wait."""
    fields = rt.encoder.parent_fields
    wanted = _values(fields, rows)
    misses = _misses(rt.state, rt.name, fields, wanted)
    now = rt.clock.now()
    blocked = {pair for pair, backoff in misses.items() if backoff.blocks(now)}
    asked = {key: {v for v in values if (key, v) not in blocked} for key, values in wanted.items()}
    found = _search(rt.crm, rt.encoder, asked)
    missing = blocked | _note_search(rt, asked, found, misses, now)
    ids: ParentIds = {key: {} for key in wanted}
    ambiguous: dict[tuple[str, str], tuple[str, ...]] = {}
    for key, by_value in found.items():
        for value, holders in by_value.items():
            if len(holders) == 1:
                ids[key][value] = holders[0]
            else:
                ambiguous[(key, value)] = holders
    ready: list[PendingRow] = []
    rejects: list[Reject] = []
    for row in rows:
        if _waits(row, fields, missing):
            continue
        reject = _ambiguity(rt.name, row, fields, ambiguous, now)
        if reject is not None:
            rejects.append(reject)
        else:
            ready.append(row)
    return ready, ids, rejects


def _search(
    crm: Crm, encoder: RowEncoder, wanted: dict[str, set[str]]
) -> dict[str, dict[str, tuple[str, ...]]]:
    """``Module.Field`` -> (value -> the ids holding it), one search per 10 values."""
    parents = _parents(encoder.parent_fields)
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for key, values in wanted.items():
        parent = parents[key]
        found[key] = (
            crm.search_records(parent.module, parent.field, sorted(values)) if values else {}
        )
    return found


def _note_search(
    rt: PipelineRuntime,
    asked: dict[str, set[str]],
    found: dict[str, dict[str, tuple[str, ...]]],
    misses: dict[tuple[str, str], Backoff],
    now: datetime,
) -> set[tuple[str, str]]:
    """Remember the asked values no parent holds (backoff doubled); forget found ones. Returns
    the missing (``Module.Field``, value) pairs."""
    missing: set[tuple[str, str]] = set()
    for key, values in asked.items():
        for value in values:
            if value in found.get(key, {}):
                if (key, value) in misses:
                    rt.state.backoff_clear(rt.name, _scope(rt.encoder, key, value))
            else:
                missing.add((key, value))
                previous = misses.get((key, value))
                note_missing(rt, key, value, (previous.failures if previous else 0) + 1, now)
    return missing


def note_missing(rt: PipelineRuntime, key: str, value: str, failures: int, now: datetime) -> None:
    """Remember that no parent record holds ``value``: its rows wait, and it is not looked up
    again before the backoff passes."""
    later = next_attempt(failures, now, base=MISS_BASE_DELAY, cap=MISS_MAX_DELAY)
    reason = f"no {key.split('.')[0]} record has {key.split('.', 1)[1]} = {value!r} yet"
    rt.state.backoff_failed(rt.name, _scope(rt.encoder, key, value), failures, later, reason, now)
    logger.info(
        "rows of %s wait: %s",
        rt.name,
        reason,
        extra={"event": "lookup_parent_missing", "pipeline": rt.name, "parent": key},
    )


def note_bulk_misses(rt: PipelineRuntime, rows: Sequence[PendingRow], api_name: str) -> None:
    """Zoho found no parent for these rows' values of the lookup field ``api_name``: remember
    each value as missing, as a failed search would."""
    items = [f for f in rt.encoder.parent_fields if f.api_name == api_name]
    wanted = _values(items, rows)
    misses = _misses(rt.state, rt.name, items, wanted)
    now = rt.clock.now()
    for key, values in wanted.items():
        for value in values:
            previous = misses.get((key, value))
            if previous is None or not previous.blocks(now):
                note_missing(rt, key, value, (previous.failures if previous else 0) + 1, now)


def _scope(encoder: RowEncoder, key: str, value: str) -> str:
    return miss_scope(_parents(encoder.parent_fields)[key], value)


def _ambiguity(
    pipeline: str,
    row: PendingRow,
    fields: Sequence[FieldMap],
    ambiguous: dict[tuple[str, str], tuple[str, ...]],
    now: datetime,
) -> Reject | None:
    for item in fields:
        assert item.parent_field is not None
        value = row.values[item.column]
        holders = None if value is None else ambiguous.get((item.parent_field.key, str(value)))
        if holders is not None:
            parent = item.parent_field
            message = (
                f"{len(holders)} {parent.module} records have {parent.field} = {str(value)!r} "
                f"(ids {', '.join(holders)}): syncd does not guess which one {item.api_name} "
                f"points at; make {parent.field} unique in the CRM, then `syncd rejects retry`"
            )
            return Reject(
                pipeline,
                row.key_text,
                AMBIGUOUS_PARENT_CODE,
                item.api_name,
                message,
                row.fingerprint,
                now,
            )
    return None


def count_missing(
    state: EngineState, name: str, fields: Sequence[FieldMap], rows: Sequence[PendingRow]
) -> dict[str, int]:
    """Rows of ``rows`` whose value is known to have no parent, by ``Module.Field`` (status)."""
    wanted = _values(fields, rows)
    misses = _misses(state, name, fields, wanted)
    counts: dict[str, int] = {}
    for row in rows:
        for item in fields:
            assert item.parent_field is not None
            value = row.values[item.column]
            key = item.parent_field.key
            if value is not None and (key, str(value)) in misses:
                counts[key] = counts.get(key, 0) + 1
                break
    return counts
