"""One legacy row, one CRM record: the record-identity map and the take-over guard.

Zoho's upsert matches an existing record by the unique field and, failing that, by any other
unique field of the module (an e-mail marked "do not allow duplicates"), and unique fields may
ignore case (reference §4.3). Either way one legacy row can overwrite another row's record. So:

- rows are written by record id where the map knows it (an update by id falls back on nothing)
  and created by insert otherwise (an insert never matches: a value another record holds comes
  back as DUPLICATE_DATA naming that record);
- an insert refused because the key itself is already in the CRM adopts that record only after
  one GET shows it holds exactly this key (not a case variant of it);
- every answer (records API and bulk results) is checked against the map: a record id that
  another key owns, the same record named for two keys, or a match on another field is a
  take-over. The row becomes a reject that names the other key, the displaced key is sent
  again so its record is restored, and an error event is logged.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import cast

from syncd.crashpoints import crash_point
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import BudgetExceeded, CrmRetriableError
from syncd.model import (
    RECORD_GONE_CODE,
    ROW_KEY_TEXT,
    WRITTEN,
    Confirmation,
    CrmRecord,
    Identity,
    Outcome,
    OutcomeKind,
    PendingRow,
    fingerprints_of,
)
from syncd.ports import EngineState, Source

logger = logging.getLogger(__name__)

_KEY, _RECORD = operator.attrgetter("key"), operator.attrgetter("record_id")
_MATCHED_BY = operator.attrgetter("matched_by")
_KIND, _CODE = operator.attrgetter("kind"), operator.attrgetter("code")

TAKEOVER_CODE = "RECORD_OF_ANOTHER_KEY"
"""Code of a reject syncd raised: Zoho matched (or would match) the row to another key's record."""

OVERWRITTEN_CODE = "RECORD_OVERWRITTEN"
"""Outcome code of a row whose record another row overwrote in the same answer: sent again."""


# -- writing rows through the records API ---------------------------------------------------------


def write_records(rt: PipelineRuntime, records: Sequence[CrmRecord]) -> list[Outcome]:
    """Send ``records`` so that each can only ever write its own CRM record.

    Keys the map knows are updated by id; the rest are inserted. An update whose record was
    deleted in the CRM forgets the id and inserts instead; an insert refused because the key is
    already in the CRM adopts that record (once verified) and updates it. One outcome per key.
    """
    answers: dict[str, Outcome] = {}
    known = rt.state.record_ids(rt.name, [r.key for r in records])
    updates = [r for r in records if r.key in known]
    inserts = [r for r in records if r.key not in known]
    _guarded(answers, updates, lambda: rt.crm.update(rt.module, rt.unique_field, updates, known))
    crash_point("after_records_update_answer")
    gone = [r for r in updates if answers[r.key].code == RECORD_GONE_CODE]
    if gone:
        _forget_gone(rt.state, rt.name, [r.key for r in gone])
        inserts += gone
    _guarded(answers, inserts, lambda: rt.crm.insert(rt.module, rt.unique_field, inserts))
    crash_point("after_records_insert_answer")
    claimed = {
        r.key: holder
        for r in inserts
        if (holder := _key_holder(rt.unique_field, answers[r.key])) is not None
    }
    adopted = _adoptable(rt, claimed, answers)
    again = [r for r in inserts if r.key in adopted]
    _guarded(answers, again, lambda: rt.crm.update(rt.module, rt.unique_field, again, adopted))
    return [answers[r.key] for r in records if r.key in answers]


def _guarded(
    answers: dict[str, Outcome],
    records: Sequence[CrmRecord],
    send: Callable[[], list[Outcome]],
) -> None:
    """Run one step of a write; a temporary failure after earlier steps were answered keeps
    their outcomes and makes this step's records retries (the first step's failure is raised,
    as the client does for its first call)."""
    if not records:
        return
    try:
        outcomes = send()
    except (CrmRetriableError, BudgetExceeded) as exc:
        if not answers:
            raise
        code = exc.code if isinstance(exc, CrmRetriableError) else "BUDGET_EXCEEDED"
        outcomes = [Outcome(r.key, OutcomeKind.RETRY, code=code, message=str(exc)) for r in records]
    answers.update({o.key: o for o in outcomes})


def _forget_gone(state: EngineState, pipeline: str, keys: list[str]) -> None:
    state.forget_identities(pipeline, keys)
    logger.warning(
        "%d row(s) had CRM records that no longer exist (deleted in the CRM?); syncd creates "
        "them again",
        len(keys),
        extra={"event": "records_gone", "pipeline": pipeline, "rows": len(keys)},
    )


def _key_holder(unique_field: str, outcome: Outcome) -> str | None:
    """The record an insert was refused for because it already holds the key itself."""
    if outcome.code == "DUPLICATE_DATA" and outcome.field == unique_field:
        return outcome.holder_id
    return None


def _adoptable(
    rt: PipelineRuntime, claimed: Mapping[str, str], answers: dict[str, Outcome]
) -> dict[str, str]:
    """key -> record id for the claimed records that hold exactly this key and no other key's.

    A record another key owns is never adopted (a case-insensitive unique field makes 'ab-1'
    collide with 'AB-1'); an unknown one is read once to compare its key exactly.
    """
    if not claimed:
        return {}
    owners = rt.state.record_owners(rt.name, sorted(set(claimed.values())))
    for key, holder in claimed.items():
        if holder in owners:
            answers[key] = _refused_case(rt.unique_field, key, owners[holder], holder)
    unowned = {k: h for k, h in claimed.items() if h not in owners}
    if not unowned:
        return {}
    held: dict[str, dict[str, object]] = {}
    ids = sorted(set(unowned.values()))
    try:
        held = rt.crm.records_by_id(rt.module, ids, [rt.unique_field])
    except (CrmRetriableError, BudgetExceeded) as exc:
        for key in unowned:
            answers[key] = Outcome(key, OutcomeKind.RETRY, code="LOOKUP_FAILED", message=str(exc))
        return {}
    adopted: dict[str, str] = {}
    for key, holder in unowned.items():
        values = held.get(holder)
        if values is None:
            answers[key] = Outcome(
                key,
                OutcomeKind.RETRY,
                code="NO_RESULT",
                message=f"Zoho named record {holder} as holding this key, then could not find it",
            )
        elif str(values.get(rt.unique_field)) == key:
            adopted[key] = holder
        else:
            answers[key] = _refused_case(
                rt.unique_field, key, str(values.get(rt.unique_field)), holder
            )
    if adopted:
        logger.info(
            "%d row(s) already had CRM records syncd did not know; it adopts them by id",
            len(adopted),
            extra={"event": "records_adopted", "pipeline": rt.name, "rows": len(adopted)},
        )
    return adopted


def _refused_case(unique_field: str, key: str, other: str, record_id: str) -> Outcome:
    return Outcome(
        key,
        OutcomeKind.SKIPPED,
        code=TAKEOVER_CODE,
        field=unique_field,
        message=(
            f"Zoho matched this row to the record of key {other!r} by {unique_field} "
            f"(record {record_id}): the field treats {key!r} and {other!r} as the same value, "
            "so syncd did not write this row. Give the rows keys that differ in more than case, "
            f"or make {unique_field} case-sensitive in Zoho."
        ),
    )


# -- checking every answer against the map ---------------------------------------------------------


@dataclass
class Claims:
    """Outcomes after the take-over guard, and what it found."""

    outcomes: list[Outcome]
    displaced: set[str] = field(default_factory=set)  # keys whose record another row overwrote
    takeovers: int = 0  # rows that overwrote another key's record
    collisions: int = 0  # rows Zoho refused rather than let them take another key's record


def claim_records(
    state: EngineState, pipeline: str, unique_field: str, outcomes: Sequence[Outcome]
) -> Claims:
    """Check each confirmed outcome's record against the map and the rest of the answer.

    The first claimant of a record keeps it: the key the map says owns it, else the row that
    created it (ADDED) or came first. Any other row naming that record, or matched by a field
    other than the unique field, took over a record that is not its own.
    """
    confirmed = [o for o in outcomes if o.record_id and o.kind in WRITTEN]
    holders = [o.holder_id for o in outcomes if o.holder_id and o.field != unique_field]
    ids = cast(list[str], [o.record_id for o in confirmed])  # each one is set (filtered above)
    # A record the answer reports ADDED was made by this job: Zoho never gives an id twice,
    # so the map cannot name an earlier owner for it. Only updated records are looked up (an
    # initial sync into an empty module looks up none).
    updated = [i for o, i in zip(confirmed, ids, strict=True) if o.kind is OutcomeKind.UPDATED]
    wanted = sorted(set(updated) | set(holders))
    owners = dict(state.record_owners(pipeline, wanted)) if wanted else {}
    if not holders and _all_own(confirmed, ids, owners, unique_field):
        return Claims(list(outcomes))
    for o in sorted(confirmed, key=lambda o: o.kind is not OutcomeKind.ADDED):
        if o.record_id and o.matched_by in (None, unique_field):
            owners.setdefault(o.record_id, o.key)
    claims = Claims([])
    for o in outcomes:
        claims.outcomes.append(_claimed(pipeline, unique_field, o, owners, claims))
    if claims.displaced:
        # A displaced row answered in this same batch must not be marked synced: its record
        # now holds the other row's content. It goes again (as a retry) and restores it.
        claims.outcomes = [
            Outcome(o.key, OutcomeKind.RETRY, code=OVERWRITTEN_CODE, record_id=o.record_id)
            if o.key in claims.displaced and o.confirmed
            else o
            for o in claims.outcomes
        ]
    return claims


def _all_own(
    confirmed: Sequence[Outcome], ids: list[str], owners: Mapping[str, str], unique_field: str
) -> bool:
    """Whether every confirmed outcome names a record of its own (the usual answer): no record
    named twice, none matched by another field, none another key owns. Then the guard changes
    nothing, and an initial sync checks its 25,000 outcomes a job without a call each."""
    if len(set(ids)) < len(ids):
        return False
    if not {None, unique_field}.issuperset(map(_MATCHED_BY, confirmed)):
        return False
    return not owners or all(
        owners.get(i, o.key) == o.key for i, o in zip(ids, confirmed, strict=True)
    )


def _claimed(
    pipeline: str, unique_field: str, o: Outcome, owners: Mapping[str, str], claims: Claims
) -> Outcome:
    if o.holder_id and o.field != unique_field:
        claims.collisions += 1
        return _collision(pipeline, o, owners.get(o.holder_id))
    if not (o.confirmed and o.record_id):
        return o
    owner = owners.get(o.record_id)
    other_field = o.matched_by not in (None, unique_field)
    if owner == o.key and not other_field:
        return o
    claims.takeovers += 1
    if owner is not None and owner != o.key:
        claims.displaced.add(owner)
    return _takeover(pipeline, unique_field, o, owner if owner != o.key else None)


def _collision(pipeline: str, o: Outcome, owner: str | None) -> Outcome:
    whose = f"the CRM record of key {owner!r}" if owner else "a CRM record syncd did not write"
    message = (
        f"{o.field} has the same value as {whose} (record {o.holder_id}), and {o.field} does not "
        "allow duplicates: Zoho refused this row rather than let it take over that record. "
        f"Make the rows' {o.field} differ (or stop mapping it); the row goes again once it "
        "changes."
    )
    logger.warning(
        "row %s: %s collides with %s; refused, nothing overwritten",
        o.key,
        o.field,
        whose,
        extra={
            "event": "record_collision",
            "pipeline": pipeline,
            "key": o.key,
            "other_key": owner,
            "field": o.field,
            "record_id": o.holder_id,
        },
    )
    return Outcome(
        o.key, o.kind, code=o.code, field=o.field, message=message, holder_id=o.holder_id
    )


def _takeover(pipeline: str, unique_field: str, o: Outcome, owner: str | None) -> Outcome:
    by = o.matched_by if o.matched_by not in (None, unique_field) else unique_field
    whose = f"the record of key {owner!r}" if owner else f"record {o.record_id}"
    repair = (
        f"syncd sends key {owner!r} again to restore its record"
        if owner
        else "the record's earlier owner is not known to syncd: check the record in the CRM"
    )
    message = (
        f"Zoho matched this row to {whose} by {by} (record {o.record_id}) and overwrote it; "
        f"{repair}. This row stays out until it changes: make its {by} differ from the other "
        "row's."
    )
    logger.error(
        "row %s took over %s (matched by %s); %s",
        o.key,
        whose,
        by,
        repair,
        extra={
            "event": "record_takeover",
            "pipeline": pipeline,
            "key": o.key,
            "other_key": owner,
            "field": by,
            "record_id": o.record_id,
        },
    )
    return Outcome(o.key, OutcomeKind.SKIPPED, code=TAKEOVER_CODE, field=by, message=message)


def resend_displaced(source: Source, keys: set[str], in_batch: set[str]) -> None:
    """Flag the displaced rows that are not in this batch as pending, so they go again."""
    elsewhere = sorted(keys - in_batch)
    if elsewhere:
        source.unflag(elsewhere)


def remember(
    rt: PipelineRuntime,
    rows: Sequence[PendingRow],
    outcomes: Sequence[Outcome],
    confirmation: Confirmation,
) -> None:
    """Record each confirmed row's record id, and what was confirmed there.

    A row whose record another row overwrote keeps it too: it goes again by that id. The
    identities are made column by column: an initial sync remembers 1,000,000 rows, and a
    loop with calls per row cost 2.6 µs a row (BENCHMARKS.md).
    """
    now = rt.clock.now()
    sent = dict(zip(map(ROW_KEY_TEXT, rows), rows, strict=True))
    # Selections made in C (compress over a map), as in apply_outcomes: the written outcomes,
    # then the rare ones whose record another row overwrote (kind RETRY, so not among them).
    owning = [
        *compress(outcomes, map(WRITTEN.__contains__, map(_KIND, outcomes))),
        *compress(outcomes, map(operator.eq, map(_CODE, outcomes), repeat(OVERWRITTEN_CODE))),
    ]
    owning = list(compress(owning, map(_RECORD, owning)))  # a record id is set
    owning = list(compress(owning, map(sent.__contains__, map(_KEY, owning))))
    is_marked = list(map(confirmation.marked.__contains__, map(_KEY, owning)))
    done = list(compress(owning, is_marked))
    seen = list(compress(owning, map(operator.not_, is_marked)))
    fingerprints = fingerprints_of(map(sent.__getitem__, map(_KEY, done)))
    items = Identity.many(map(_KEY, done), map(_RECORD, done), now, now, fingerprints)
    items += Identity.many(map(_KEY, seen), map(_RECORD, seen), now, None, repeat(None))
    rt.state.record_identities(rt.name, items)
