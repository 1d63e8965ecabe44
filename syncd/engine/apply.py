"""Applying Zoho's per-record outcomes, and the row selection and encoding around a send."""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from typing import Any, TypeVar

from syncd.crashpoints import crash_point
from syncd.engine.confirm import confirm_and_remember
from syncd.engine.identity import claim_records, resend_displaced, write_records
from syncd.engine.lookups import ready_rows
from syncd.engine.parents import note_bulk_misses, resolve, selectable
from syncd.engine.runtime import PipelineRuntime, ensure_may_send
from syncd.errors import RowNotRepresentable
from syncd.model import (
    CHANGED,
    DELETED,
    OUTCOME_KEY,
    ROW_KEY_TEXT,
    WRITTEN,
    BulkRow,
    Confirmation,
    CrmRecord,
    Outcome,
    OutcomeKind,
    PendingRow,
    Reject,
    RunCounts,
    content_hash,
)
from syncd.ports import Clock, EngineState, Source

logger = logging.getLogger(__name__)

T = TypeVar("T")

LOCAL_REJECT_CODE = "NOT_REPRESENTABLE"
"""Code of a reject syncd itself raised: the value cannot be written to its CRM field."""

NOT_CONVERGING_CODE = "NOT_CONVERGING"
"""Code of a reject syncd itself raised: the row never stays confirmed (promise 1's safety net)."""

NOT_CONVERGING_AFTER = 3


def sendable(rt: PipelineRuntime, rows: Sequence[PendingRow]) -> list[PendingRow]:
    """Drop rows that are rejects with unchanged content: re-sending them burns credits.
    With lookup fields, rows whose parent has no CRM record yet wait (stay pending) too."""
    if not rows:
        return []
    rejected = rt.state.reject_hashes(rt.name, [r.key_text for r in rows])
    if rejected:  # rare: only then is every row fingerprinted
        rows = [r for r in rows if r.key_text not in rejected or changed(rejected[r.key_text], r)]
    if rt.encoder.parent_fields:  # a value known to have no parent waits (no call till due)
        rows = selectable(rt, rows)
    if rt.encoder.lookups:
        return ready_rows(rt.state, rt.encoder.lookups, rows)[0]
    return list(rows)


def changed(fingerprint: str, row: PendingRow) -> bool:
    """Whether ``row`` no longer holds what was fingerprinted as ``fingerprint`` (a reject's).

    A row read from PostgreSQL carries the database's fingerprint, but a reject recorded by a
    release that fingerprinted in Python holds ``content_hash`` of the values: that is tried
    too (only for a reject whose fingerprint differs), so an upgrade does not send every
    unchanged reject once more."""
    return fingerprint != row.fingerprint and fingerprint != content_hash(row.values)


def sendable_pages(rt: PipelineRuntime, size: int) -> Iterator[list[PendingRow]]:
    """Pending rows minus unchanged rejects, in key order, in pages of ``size`` sendable rows.

    Keyset pages are read until a page is full, so any number of rejects (which stay pending)
    never hides a sendable row behind them and never thins a batch.
    """
    rows = SendableRows(rt, size)
    while page := rows.take(size):
        yield page


class SendableRows:
    """The sendable pending rows (``sendable``) in key order, read ``read`` rows at a time as
    they are taken: ``sendable_pages`` in pieces of any size.

    It holds only the rows read and not yet taken: the caller lets the rows it took go once
    they are written and sent, so memory holds one piece (promise 7).
    """

    def __init__(self, rt: PipelineRuntime, read: int) -> None:
        self._rt, self._read = rt, read
        self._after: Any = None
        self._left: list[PendingRow] = []
        self._done = False

    def take(self, size: int, *, more: bool = False) -> list[PendingRow]:
        """The next ``size`` sendable rows; fewer only when none are left after them.
        ``more``: more rows are taken right after these (the source may read them ahead)."""
        while len(self._left) < size and not self._done:
            batch = self._rt.source.pending_batch(self._after, self._read, ahead=more)
            if not batch:
                self._done = True
                break
            self._after = batch[-1].key
            self._left.extend(sendable(self._rt, batch))
            del batch
        return _take(self._left, size)


def _take(page: list[PendingRow], size: int) -> list[PendingRow]:
    """The first ``size`` rows, removed from ``page``."""
    taken = page[:size]
    del page[:size]
    return taken


def prune_rejects(source: Source, state: EngineState, pipeline: str) -> int:
    """Forget rejects of rows that are no longer pending (deleted, or synced some other way),
    so counts and backlog estimates see live rejects only."""
    gone: list[str] = []
    for keys in state.reject_key_pages(pipeline, 1000):
        live = {r.key_text for r in source.fetch_rows(keys, pending_only=True)}
        gone.extend(k for k in keys if k not in live)
    if gone:
        state.release_rejects(pipeline, gone)
        logger.info(
            "forgot %d reject(s) of rows that are no longer pending",
            len(gone),
            extra={"event": "rejects_pruned", "pipeline": pipeline, "rows": len(gone)},
        )
    return len(gone)


@dataclass(frozen=True)
class Encoded:
    rows: list[PendingRow]  # the rows that could be encoded, in order
    counts: RunCounts  # local rejects


def _encode(
    state: EngineState,
    clock: Clock,
    pipeline: str,
    rows: Sequence[PendingRow],
    encode: Callable[[PendingRow], T],
) -> tuple[Encoded, list[T]]:
    """Encode each row; a row whose value cannot be represented becomes a local reject."""
    encoded: list[T] = []
    kept: list[PendingRow] = []
    failed: list[tuple[PendingRow, RowNotRepresentable]] = []
    for row in rows:
        try:
            encoded.append(encode(row))
            kept.append(row)
        except RowNotRepresentable as exc:
            failed.append((row, exc))
    return Encoded(kept, _record_local_rejects(state, clock, pipeline, failed)), encoded


def encode_records(
    rt: PipelineRuntime, rows: Sequence[PendingRow]
) -> tuple[Encoded, list[CrmRecord]]:
    if not rt.encoder.lookups and not rt.encoder.parent_fields:
        return _encode(rt.state, rt.clock, rt.name, rows, rt.encoder.record)
    # the parents' record ids; a row whose parent lost its record since selection waits
    ready, ids = ready_rows(rt.state, rt.encoder.lookups, rows)
    ambiguous = RunCounts()
    if rt.encoder.parent_fields:  # found by Search Records; two parents: a reject
        ready, found, rejects = resolve(rt, ready)
        ids = {**ids, **found}
        rt.state.record_rejects(rejects)
        ambiguous = RunCounts(rejected=len(rejects))
    encoded, records = _encode(
        rt.state, rt.clock, rt.name, ready, lambda row: rt.encoder.record(row, ids)
    )
    return Encoded(encoded.rows, encoded.counts + ambiguous), records


def encode_bulk_rows(
    rt: PipelineRuntime, rows: Sequence[PendingRow]
) -> tuple[Encoded, list[BulkRow]]:
    whole = rt.encoder.bulk_rows(rows)  # column by column: the usual, fast case
    if whole is not None:
        return Encoded(list(rows), RunCounts()), whole
    return _encode(rt.state, rt.clock, rt.name, rows, rt.encoder.bulk_row)


def _record_local_rejects(
    state: EngineState,
    clock: Clock,
    pipeline: str,
    failed: Sequence[tuple[PendingRow, RowNotRepresentable]],
) -> RunCounts:
    if not failed:
        return RunCounts()
    now = clock.now()
    state.record_rejects(
        [
            Reject(
                pipeline,
                row.key_text,
                LOCAL_REJECT_CODE,
                exc.api_name,
                str(exc),  # "column placed_at -> Placed_At: ...": names the legacy column too
                row.fingerprint,
                now,
            )
            for row, exc in failed
        ]
    )
    logger.warning(
        "%d row(s) cannot be represented in the CRM; see `syncd rejects list`",
        len(failed),
        extra={"event": "rows_not_representable", "pipeline": pipeline, "rows": len(failed)},
    )
    return RunCounts(rejected=len(failed))


_KIND = operator.attrgetter("kind")
_IS_WRITTEN = WRITTEN.__contains__


def apply_outcomes(
    rt: PipelineRuntime, rows: Sequence[PendingRow], outcomes: Sequence[Outcome]
) -> RunCounts:
    """Mark confirmed rows synced (compare-and-set), record skipped ones, count the rest.

    A row with no outcome at all counts as a retry: it keeps flag false and goes again.
    """
    claims = claim_records(rt.state, rt.name, rt.unique_field, outcomes)
    crash_point("after_claims_checked")
    outcomes = claims.outcomes
    # Rows and outcomes are picked with C-level selections (compress over a map), not a
    # Python step per row: an initial sync applies 1,000,000 outcomes.
    written = set(compress(map(OUTCOME_KEY, outcomes), map(_IS_WRITTEN, map(_KIND, outcomes))))
    confirmed = list(compress(rows, map(written.__contains__, map(ROW_KEY_TEXT, rows))))
    confirmation = confirm_and_remember(rt, rows, outcomes, confirmed)
    crash_point("after_identities_written")
    if claims.displaced:
        resend_displaced(rt.source, claims.displaced, set(map(ROW_KEY_TEXT, rows)))
    if confirmation.marked:
        # Unsorted: the store orders what it deletes, and usually has nothing to (a sort of a
        # job's 25,000 keys cost 4 ms, for two tables that are mostly empty).
        marked = list(confirmation.marked)
        rt.state.release_rejects(rt.name, marked)
        rt.state.clear_unconfirmed(rt.name, marked)
    now = rt.clock.now()
    # Only the skipped outcomes are looked up by key: usually none of a batch's 25,000.
    kinds = map(operator.is_, map(_KIND, outcomes), repeat(OutcomeKind.SKIPPED))
    skipped = {o.key: o for o in compress(outcomes, kinds)}
    waiting = _parent_missing(rt, rows, skipped)
    rejects = [
        Reject(
            rt.name,
            r.key_text,
            o.code or "SKIPPED",
            o.field,
            o.message,
            r.fingerprint,
            now,
        )
        for r in (rows if skipped else ())
        if (o := skipped.get(r.key_text)) is not None and r.key_text not in waiting
    ]
    rt.state.record_rejects(rejects)
    crash_point("after_rejects_recorded")
    parked = _park_non_converging(rt.state, rt.clock, rt.name, confirmed, confirmation)
    retried = len(rows) - len(confirmed) - len(rejects)
    counts = RunCounts(
        sent=len(rows),
        confirmed=len(confirmation.marked),
        rejected=len(rejects) + parked,
        retried=retried,
        stale=confirmation.stale,
        takeovers=claims.takeovers,
        collisions=claims.collisions,
    )
    logger.info(
        "applied %d outcomes: %d confirmed, %d rejected, %d to retry, %d changed meanwhile",
        len(rows),
        counts.confirmed,
        counts.rejected,
        counts.retried,
        counts.stale,
        extra={
            "event": "outcomes_applied",
            "pipeline": rt.name,
            "confirmed": counts.confirmed,
            "rejected": counts.rejected,
            "retried": counts.retried,
            "stale": counts.stale,
            "takeovers": counts.takeovers,
            "collisions": counts.collisions,
        },
    )
    return counts


def _parent_missing(
    rt: PipelineRuntime, rows: Sequence[PendingRow], skipped: dict[str, Outcome]
) -> set[str]:
    """Keys of rows Zoho skipped on a lookup-by-field column (Bulk Write's find_by matched no
    parent, or the parent found by search is gone): not rejects, they wait for the parent.
    Any error code is taken (Zoho's for an unmatched find_by is UNCONFIRMED). ``skipped``:
    the skipped outcomes by key."""
    fields = {f.api_name: f.column for f in rt.encoder.parent_fields}
    if not fields or not skipped:
        return set()
    missed = [
        r.key_text for r in rows if (o := skipped.get(r.key_text)) is not None and o.field in fields
    ]
    if not missed:
        return set()
    # a bulk job's rows carry no values (only key and fingerprint): read the current ones
    waiting = [
        r
        for r in rt.source.fetch_rows(missed, pending_only=True)
        if r.values.get(fields[str(skipped[r.key_text].field)]) is not None
    ]
    for api_name in {skipped[r.key_text].field for r in waiting}:
        assert api_name is not None
        note_bulk_misses(
            rt, [r for r in waiting if skipped[r.key_text].field == api_name], api_name
        )
    return {r.key_text for r in waiting}


def _park_non_converging(
    state: EngineState,
    clock: Clock,
    pipeline: str,
    confirmed: Sequence[PendingRow],
    confirmation: Confirmation,
) -> int:
    """Stop re-sending rows that keep coming back "changed meanwhile" with the same content.

    A row Zoho confirmed that did not end up synced is normally a real change, sent again with
    its new content. The same content sent and not sticking ``NOT_CONVERGING_AFTER`` times in a
    row is a defect signal instead (a trigger resetting the flag, a value that reads differently
    each time): logged once, parked as a reject until its content changes, never re-sent blind.
    """
    if len(confirmation.marked) == len(confirmed):  # the usual job: every row stayed synced
        return 0  # (marked keys are some of confirmed's, which are distinct)
    marked = map(confirmation.marked.__contains__, map(ROW_KEY_TEXT, confirmed))
    stale = list(compress(confirmed, map(operator.not_, marked)))
    stale = [r for r in stale if confirmation.changed.get(r.key_text) != (DELETED,)]
    if not stale:
        return 0
    why = {r.key_text: confirmation.columns(r.key_text) for r in stale}
    hashes = {r.key_text: r.fingerprint for r in stale}
    counts = state.note_unconfirmed(
        pipeline, [(k, hashes[k], ", ".join(why[k])) for k in why], clock.now()
    )
    looping = [k for k, n in counts.items() if n >= NOT_CONVERGING_AFTER]
    if not looping:
        return 0
    now = clock.now()
    state.record_rejects(
        [
            Reject(
                pipeline,
                k,
                NOT_CONVERGING_CODE,
                None,
                _loop_reason(k, why[k], confirmation),
                hashes[k],
                now,
            )
            for k in looping
        ]
    )
    state.clear_unconfirmed(pipeline, looping)
    for key in looping:
        logger.error(
            "row %s: Zoho confirmed it %d times with the same content, yet it never stayed "
            "synced (columns involved: %s); syncd stops re-sending it until its content changes",
            key,
            NOT_CONVERGING_AFTER,
            ", ".join(why[key]),
            extra={
                "event": "row_not_converging",
                "pipeline": pipeline,
                "key": key,
                "columns": list(why[key]),
            },
        )
    return len(looping)


def _loop_reason(key: str, columns: tuple[str, ...], confirmation: Confirmation) -> str:
    shown = ", ".join(columns)
    if key in confirmation.unflagged:
        return (
            f"syncd set the flag column {shown} true {NOT_CONVERGING_AFTER} times and it read "
            "false again at once (does a trigger reset it on every UPDATE?); the CRM has the "
            "row's current content. Fix the cause, then `syncd rejects retry`."
        )
    if columns == (CHANGED,):  # a bulk job's row: only its fingerprint was kept
        shown = "its content"
    return (
        f"the row read back different in {shown} after each of {NOT_CONVERGING_AFTER} sends of "
        "the same content (a value that changes whenever it is read?); fix the mapping or the "
        "column, then `syncd rejects retry`."
    )


def send_records(rt: PipelineRuntime, rows: Sequence[PendingRow]) -> tuple[RunCounts, set[str]]:
    """Send rows through the records API (each to its own record) and apply the result.

    Returns the counts and the keys to try again soon (transient outcomes).
    """
    encoded, records = encode_records(rt, rows)
    if not records:
        return encoded.counts, set()
    ensure_may_send(rt)
    outcomes = write_records(rt, records)
    crash_point("after_records_sent")
    counts = apply_outcomes(rt, encoded.rows, outcomes)
    retry = {o.key for o in outcomes if o.kind is OutcomeKind.RETRY}
    retry |= {r.key_text for r in encoded.rows} - {o.key for o in outcomes}
    return encoded.counts + counts, retry
