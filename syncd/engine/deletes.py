"""Deletes: legacy rows that are gone get their CRM records deleted or marked.

Finding them. The record-identity map knows every key that has a CRM record; a key the legacy
table no longer has was deleted there. The reconcile scan walks the map in key order, a chunk
at a time (keyset, never OFFSET), and asks the legacy table which keys of the chunk still
exist: one indexed query per chunk. The position is saved after every chunk, so a restart
continues where the last one stopped; a full pass starts at most every ``delete_scan_interval``.
Optionally a tombstone table, filled by an AFTER DELETE trigger, names deleted keys sooner.
Every key found waits in the state store as a pending delete.

The breaker. A truncated or mis-pointed legacy table looks like every row was deleted; it must
not empty the CRM. A round never deletes more than ``max_deletes`` records (default: the smaller
of 100 and 1 % of the known records) without approval: when more are pending and unapproved,
none of them go, and they wait for `syncd deletes approve`. Approved ones always go.

Acting. Before anything is sent, each pending key is checked once more against the legacy
table (a key that came back is no longer deleted). ``on_delete = "delete"`` calls the Delete
Records API by record id (100 a call, 1 credit each); ``"mark"`` updates the record by id,
setting ``mark_field`` to true. Either way the key's identity is then forgotten, so a key that
reappears in the legacy table is written again as a new row (its marked record adopted).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from syncd.engine.backoff import RECORD_BASE_DELAY, RECORD_MAX_DELAY, next_attempt
from syncd.engine.budget import ensure_affordable
from syncd.engine.planner import plan_deletes
from syncd.engine.runs import recorded
from syncd.engine.runtime import PipelineRuntime, ensure_may_send
from syncd.errors import BudgetExceeded
from syncd.model import (
    RECORD_GONE_CODE,
    CrmRecord,
    DeleteOutcome,
    OutcomeKind,
    PendingDelete,
    RunCounts,
    ScanPosition,
)
from syncd.ports import Crm

logger = logging.getLogger(__name__)

DELETES_SCOPE = "deletes"
"""Backoff scope of the delete calls of a pipeline: a failing delete is not repeated at once."""

SCAN_CHUNK = 1000
"""Identity keys compared with the legacy table per query."""

TOMBSTONES_PER_ROUND = 5000


class KeySource(Protocol):
    """The legacy table, as the reconcile sees it."""

    def existing_keys(self, keys: Sequence[str]) -> set[str]: ...


class TombstoneSource(Protocol):
    def read(self, limit: int) -> list[str]: ...

    def clear(self, keys: Sequence[str]) -> None: ...


class DeleteState(Protocol):
    """The state store's part for deletes (``syncd.state.deletes.DeleteStore``)."""

    def identity_page(
        self, pipeline: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]: ...

    def scan_position(self, pipeline: str) -> ScanPosition: ...

    def save_scan(self, pipeline: str, position: ScanPosition) -> None: ...

    def add_pending(
        self, pipeline: str, items: Sequence[tuple[str, str]], now: datetime
    ) -> None: ...

    def pending(self, pipeline: str, limit: int | None = None) -> list[PendingDelete]: ...

    def drop_pending(self, pipeline: str, keys: Sequence[str]) -> None: ...

    def note_failed(self, pipeline: str, failures: Sequence[tuple[str, str]]) -> None: ...

    def known_records(self, pipeline: str) -> int: ...


@dataclass(frozen=True)
class DeletePolicy:
    """A pipeline's delete settings."""

    on_delete: str  # "delete" | "mark"
    mark_field: str | None = None
    max_deletes: int | None = None  # None: min(100, 1 % of the known records)
    scan_interval: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class DeleteReport:
    """What one round did."""

    compared: int = 0  # identity keys compared with the legacy table
    found: int = 0  # keys newly found deleted (scan or tombstones)
    came_back: int = 0  # pending keys that are in the legacy table again
    done: int = 0  # records deleted or marked (or already gone)
    failed: int = 0
    held: int = 0  # pending deletes waiting for approval (the breaker)
    limit: int = 0  # max_deletes in force
    pass_finished: bool = False
    skipped_for_budget: bool = False


def delete_limit(policy: DeletePolicy, known: int) -> int:
    """Most unapproved deletes one round sends: configured, else min(100, 1 % of known)."""
    if policy.max_deletes is not None:
        return policy.max_deletes
    return min(100, max(1, known // 100))


def breaker(pending: Sequence[PendingDelete], limit: int) -> tuple[list[PendingDelete], int]:
    """(what may go now, how many wait for approval). Approved deletes always go; unapproved
    ones go only when there are no more of them than ``limit``, else none of them does."""
    approved = [p for p in pending if p.approved_at is not None]
    waiting = [p for p in pending if p.approved_at is None]
    if len(waiting) > limit:
        return approved, len(waiting)
    return approved + waiting, 0


# -- finding deleted rows ------------------------------------------------------------------------


def take_tombstones(
    rt: PipelineRuntime, state: DeleteState, source: KeySource, tombstones: TombstoneSource
) -> int:
    """Move the tombstones' keys that are really gone and have a record into pending deletes,
    then clear the tombstones read; how many were added."""
    keys = tombstones.read(TOMBSTONES_PER_ROUND)
    if not keys:
        return 0
    gone = [k for k in keys if k not in source.existing_keys(keys)]
    ids = rt.state.record_ids(rt.name, gone)
    state.add_pending(rt.name, [(k, ids[k]) for k in gone if k in ids], rt.clock.now())
    tombstones.clear(keys)  # after the state holds them: a crash in between reads them again
    return len([k for k in gone if k in ids])


def scan(
    rt: PipelineRuntime,
    state: DeleteState,
    source: KeySource,
    interval: timedelta,
    *,
    force: bool = False,
    chunk: int = SCAN_CHUNK,
    max_chunks: int | None = None,
) -> tuple[int, int, bool]:
    """Continue (or, when due, start) the reconcile pass, for at most ``max_chunks`` chunks
    (None: to its end); (compared, found, pass finished)."""
    position = state.scan_position(rt.name)
    now = rt.clock.now()
    between_passes = position.after_key is None and position.pass_started_at is None
    last = position.last_pass_at
    if between_passes and not force and last is not None and now - last < interval:
        return 0, 0, False
    if position.pass_started_at is None:
        position = replace(position, pass_started_at=now)
    compared = found = chunks = 0
    while not rt.stop.is_set() and (max_chunks is None or chunks < max_chunks):
        chunks += 1
        page = state.identity_page(rt.name, position.after_key, chunk)
        if not page:
            state.save_scan(rt.name, ScanPosition(None, None, rt.clock.now()))
            return compared, found, True
        existing = source.existing_keys([k for k, _ in page])
        missing = [(k, r) for k, r in page if k not in existing]
        state.add_pending(rt.name, missing, rt.clock.now())
        compared, found = compared + len(page), found + len(missing)
        position = replace(position, after_key=page[-1][0])
        state.save_scan(rt.name, position)
    return compared, found, False


# -- acting on them ---------------------------------------------------------------------------


def apply_pending(
    rt: PipelineRuntime, state: DeleteState, source: KeySource, policy: DeletePolicy
) -> DeleteReport:
    """Delete (or mark) what the breaker lets through; the rest waits for approval."""
    pending = state.pending(rt.name)
    if not pending:
        return DeleteReport()
    back = source.existing_keys([p.key for p in pending])
    if back:
        state.drop_pending(rt.name, sorted(back))
        pending = [p for p in pending if p.key not in back]
    limit = delete_limit(policy, state.known_records(rt.name))
    going, held = breaker(pending, limit)
    report = DeleteReport(came_back=len(back), held=held, limit=limit)
    if held:
        logger.warning(
            "%d legacy row(s) are gone, more than max_deletes (%d) in one round: their CRM "
            "records are kept until approved (`syncd deletes list`, `syncd deletes approve`)",
            held,
            limit,
            extra={"event": "deletes_held", "pipeline": rt.name, "rows": held, "limit": limit},
        )
    backoff = rt.state.backoff(rt.name, DELETES_SCOPE)
    if not going or (backoff is not None and backoff.blocks(rt.clock.now())):
        return report
    plan = plan_deletes(len(going), mark=policy.on_delete == "mark")
    try:
        ensure_affordable(rt.state, rt.clock, rt.tunables, plan.credits)
    except BudgetExceeded as exc:
        logger.warning(
            "deletes wait (%s): %s",
            plan.reason,
            exc,
            extra={"event": "deletes_budget", "pipeline": rt.name, "credits": plan.credits},
        )
        return replace(report, skipped_for_budget=True)

    def work(_run_id: int) -> tuple[DeleteReport, RunCounts, bool]:
        ensure_may_send(rt)
        done = _settle(
            rt, state, going, _send(rt.crm, rt.module, rt.unique_field, policy, going), report
        )
        counts = RunCounts(sent=len(going), confirmed=done.done, retried=done.failed)
        return done, counts, done.failed == 0

    return recorded(rt, "deletes", work)  # a run only when records are sent


def _send(
    crm: Crm,
    module: str,
    unique_field: str,
    policy: DeletePolicy,
    going: Sequence[PendingDelete],
) -> dict[str, DeleteOutcome]:
    """key -> Zoho's answer, by the Delete Records API or an update setting the mark."""
    if policy.on_delete == "mark":
        assert policy.mark_field is not None  # the config requires it with "mark"
        records = [CrmRecord(p.key, {policy.mark_field: True}) for p in going]
        ids = {p.key: p.record_id for p in going}
        answers = crm.update(module, unique_field, records, ids)
        return {
            o.key: DeleteOutcome(
                ids[o.key],
                gone=o.confirmed or o.code == RECORD_GONE_CODE,  # a record deleted in the CRM
                retry=o.kind == OutcomeKind.RETRY,
                code=o.code,
                message=o.message,
            )
            for o in answers
        }
    by_id = {p.record_id: p.key for p in going}
    answered = crm.delete_records(module, [p.record_id for p in going])
    return {by_id[o.record_id]: o for o in answered if o.record_id in by_id}


def _settle(
    rt: PipelineRuntime,
    state: DeleteState,
    going: Sequence[PendingDelete],
    outcomes: dict[str, DeleteOutcome],
    report: DeleteReport,
) -> DeleteReport:
    done = [p.key for p in going if (o := outcomes.get(p.key)) is not None and o.gone]
    failed = [(p.key, _reason(outcomes.get(p.key))) for p in going if p.key not in set(done)]
    rt.state.forget_identities(rt.name, done)
    state.drop_pending(rt.name, done)
    now = rt.clock.now()
    if failed:
        state.note_failed(rt.name, failed)
        before = rt.state.backoff(rt.name, DELETES_SCOPE)
        failures = (before.failures if before else 0) + 1
        later = next_attempt(failures, now, base=RECORD_BASE_DELAY, cap=RECORD_MAX_DELAY)
        rt.state.backoff_failed(rt.name, DELETES_SCOPE, failures, later, failed[0][1], now)
    else:
        rt.state.backoff_clear(rt.name, DELETES_SCOPE)
    logger.info(
        "%d CRM record(s) of deleted legacy rows done, %d failed",
        len(done),
        len(failed),
        extra={"event": "deletes_applied", "pipeline": rt.name, "rows": len(done)},
    )
    return replace(report, done=len(done), failed=len(failed))


def _reason(outcome: DeleteOutcome | None) -> str:
    if outcome is None:
        return "NO_RESULT: Zoho returned no answer for this record"
    return f"{outcome.code or 'UNKNOWN_ERROR'}: {outcome.message or ''}".strip()


# -- one round ---------------------------------------------------------------------------------


def reconcile(
    rt: PipelineRuntime,
    state: DeleteState,
    source: KeySource,
    policy: DeletePolicy,
    tombstones: TombstoneSource | None = None,
    *,
    force_scan: bool = False,
    max_chunks: int | None = None,
) -> DeleteReport:
    """One round: tombstones, the scan (when due), then the pending deletes (a recorded run
    of kind "deletes" when records are sent)."""

    found = take_tombstones(rt, state, source, tombstones) if tombstones else 0
    compared, scanned, finished = scan(
        rt, state, source, policy.scan_interval, force=force_scan, max_chunks=max_chunks
    )
    report = apply_pending(rt, state, source, policy)
    return replace(report, compared=compared, found=found + scanned, pass_finished=finished)
