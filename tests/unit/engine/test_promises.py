"""Promises 1, 3 and 4 of design.md §3, on the engine's own functions.

The legacy table and the state are the in-memory adapters, the CRM is the bundled emulator
behind the real client (see ``conftest.py``). A crash is ``Pipeline.restart()``: the worker's
memory is gone, the legacy table and the state store are not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from syncd.engine.apply import apply_outcomes, encode_bulk_rows, encode_records
from syncd.engine.drain import BulkBatch, InFlight, drain, finish_job
from syncd.engine.identity import write_records
from syncd.engine.realtime import realtime_tick
from syncd.errors import CrmRetriableError, LeaseLost
from syncd.model import JobState
from tests.unit.engine.conftest import Pipeline

MakePipeline = Callable[..., Pipeline]

INSERT = "POST /crm/v8/{module}"
UPDATE = "PUT /crm/v8/{module}"
CREATE_JOB = "POST /crm/bulk/v8/write"
UPLOAD = "POST /crm/v8/upload"


def start_bulk_job(p: Pipeline) -> InFlight:
    """Send every pending row as one bulk job, as the drain does with a batch: the file is
    written and journaled, the job created and its id journaled. Nobody waits for it yet."""
    rows = p.table.pending_batch(None, 100)
    encoded, bulk_rows = encode_bulk_rows(p.rt, rows)
    return BulkBatch(p.rt, None, [r.lean() for r in encoded.rows], bulk_rows).start_next()


# -- promise 1: no lost update, and convergence ---------------------------------------------------


def test_rows_nobody_touched_are_always_confirmed(make_pipeline: MakePipeline) -> None:
    """Promise 1: a drain flags every unmodified row synced, its content in its one record."""
    p = make_pipeline([1, 2, 3])

    result = drain(p.rt, None)

    assert (result.counts.confirmed, result.left_pending) == (3, 0)
    assert p.table.count_pending() == 0
    assert {k: r["Name"] for k, r in p.crm().items()} == {
        "1": "SO-0000001",
        "2": "SO-0000002",
        "3": "SO-0000003",
    }


def test_a_row_changed_while_its_records_were_sent_goes_again(make_pipeline: MakePipeline) -> None:
    """Promise 1: a row changed between its read and its confirmation keeps flag false; the
    next round sends its new content and confirms it."""
    p = make_pipeline([1, 2])
    rows = p.table.pending_batch(None, 10)  # syncd reads the rows,
    _, records = encode_records(p.rt, rows)
    outcomes = write_records(p.rt, records)  # Zoho writes them,
    p.table.update(2, status="Refunded")  # the legacy application changes row 2 meanwhile,

    counts = apply_outcomes(p.rt, rows, outcomes)  # and the compare-and-set runs.

    assert (counts.confirmed, counts.stale) == (1, 1)
    assert p.table.flag(1) and not p.table.flag(2)
    assert p.crm()["2"]["Status"] == "Shipped"  # the content that was sent
    drain(p.rt, None)
    assert p.table.flag(2)
    assert p.crm()["2"]["Status"] == "Refunded"


def test_a_row_changed_while_its_bulk_job_ran_goes_again(make_pipeline: MakePipeline) -> None:
    """Promise 1 for Bulk Write: only fingerprints wait with a job, and a row whose content
    changed while the job ran is not flagged synced; it goes again."""
    p = make_pipeline([1, 2, 3])
    job = start_bulk_job(p)
    p.table.update(3, quantity=42)

    counts = finish_job(p.rt, job)

    assert (counts.confirmed, counts.stale) == (2, 1)
    assert [r.key for r in p.table.pending_batch(None, 10)] == [3]
    drain(p.rt, None)
    assert p.table.count_pending() == 0
    assert p.crm()["3"]["Quantity"] == 42


def test_the_map_knows_the_record_of_a_row_changed_meanwhile_but_not_as_confirmed(
    make_pipeline: MakePipeline,
) -> None:
    """A row Zoho wrote whose content changed meanwhile owns its record (it goes again by that
    id), but nothing is recorded as confirmed there; a confirmed row's identity holds the
    fingerprint of what was sent and when it was confirmed."""
    p = make_pipeline([1, 2])
    job = start_bulk_job(p)
    sent = {r.key_text: r.fingerprint for r in job.rows}
    p.table.update(2, quantity=42)

    finish_job(p.rt, job)

    records = {k: r["id"] for k, r in p.crm().items()}
    one, two = p.state.identity("orders", "1"), p.state.identity("orders", "2")
    assert one is not None and two is not None
    assert (one.record_id, one.confirmed_at, one.content_hash) == (
        records["1"],
        p.clock.now(),
        sent["1"],
    )
    assert (two.record_id, two.seen_at, two.confirmed_at, two.content_hash) == (
        records["2"],
        p.clock.now(),
        None,
        None,
    )


def test_a_write_zoho_answered_without_a_record_id_is_confirmed_but_not_mapped(
    make_pipeline: MakePipeline,
) -> None:
    """An answer that says a row was written but names no record (a reply cut short of its
    details.id): the row is confirmed, and the map learns nothing it could not use."""
    p = make_pipeline([1, 2])
    rows = p.table.pending_batch(None, 10)
    _, records = encode_records(p.rt, rows)
    outcomes = [
        o._replace(record_id=None) if o.key == "2" else o for o in write_records(p.rt, records)
    ]

    counts = apply_outcomes(p.rt, rows, outcomes)

    assert counts.confirmed == 2 and p.table.flag(2)
    assert p.state.identity("orders", "2") is None
    assert p.state.record_ids("orders", ["1", "2"]) == {"1": p.crm()["1"]["id"]}
    spent, writes = p.credits_spent(), p.calls(INSERT)
    drain(p.rt, None)  # nothing is pending: the cut answer costs nothing more
    assert (p.credits_spent(), p.calls(INSERT)) == (spent, writes) and writes == 1


# -- promise 3: crash safety ------------------------------------------------------------------


def test_a_job_created_before_a_crash_is_applied_after_restart_not_paid_again(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 3: a bulk job journaled as created is polled and applied by the next start,
    never created (and paid for) a second time."""
    p = make_pipeline([1, 2, 3])
    start_bulk_job(p)
    p.restart()  # kill -9 while Zoho runs the job
    assert [(e.state, len(e.manifest)) for e in p.state.journal_open("orders")] == [
        (JobState.CREATED, 3)
    ]

    result = drain(p.rt, None)

    assert result.counts.confirmed == 3
    assert p.table.count_pending() == 0
    assert p.state.journal_open("orders") == []
    assert p.calls(CREATE_JOB) == 1
    assert p.calls(INSERT) + p.calls(UPDATE) == 0  # confirmed from the job's own result
    assert len(p.crm()) == 3


def test_a_resumed_job_does_not_confirm_a_row_changed_while_syncd_was_down(
    make_pipeline: MakePipeline,
) -> None:
    """Promises 1 and 3: a journaled job applied after a restart confirms only the rows that
    still hash to what its file holds; a row changed meanwhile goes again with its content."""
    p = make_pipeline([1, 2, 3])
    start_bulk_job(p)
    p.restart()
    p.table.update(3, quantity=42)  # written while no syncd ran

    drain(p.rt, None)

    assert p.table.count_pending() == 0
    assert p.crm()["3"]["Quantity"] == 42
    assert p.calls(CREATE_JOB) == 1


def test_a_job_journaled_but_never_created_costs_nothing_and_its_rows_go_again(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 3: a worker stopped between journaling a file and creating its job leaves a
    PREPARED entry; the next start closes it and the rows go out, with no job at Zoho."""
    p = make_pipeline([1, 2, 3])
    p.may_send = lambda: not p.state.journal_open("orders")  # it dies once the file is journaled
    with pytest.raises(LeaseLost):
        start_bulk_job(p)
    p.restart()

    result = drain(p.rt, None)

    assert result.counts.confirmed == 3
    assert p.state.journal_open("orders") == []
    assert (p.calls(UPLOAD), p.calls(CREATE_JOB)) == (0, 0)
    assert p.table.count_pending() == 0


def test_a_lost_reply_to_a_create_call_is_counted_and_its_rows_go_again(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 3: when the reply to a create call is lost, Zoho may have the job; syncd says so
    (UNCERTAIN, its credits booked), sends the rows again and ends with one record per key."""
    p = make_pipeline([1, 2, 3])
    p.emulator.admin.set_faults(lose_job_create_replies=1)
    with pytest.raises(CrmRetriableError):
        start_bulk_job(p)
    assert p.state.count_uncertain("orders", p.clock.now()) == 1
    assert p.credits_spent() >= 500
    assert p.table.count_pending() == 3

    drain(p.rt, None)

    assert p.table.count_pending() == 0
    assert p.calls(CREATE_JOB) == 1  # never created again
    assert sorted(p.crm()) == ["1", "2", "3"]  # one record per key (asserted in crm())


def test_rows_zoho_wrote_before_a_crash_stay_pending_and_update_their_records(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 3: rows written by Zoho but not confirmed before a crash are still flag false;
    the next start sends them again onto the same records."""
    p = make_pipeline([1, 2, 3])
    _, records = encode_records(p.rt, p.table.pending_batch(None, 10))
    write_records(p.rt, records)
    p.restart()  # kill -9 before the compare-and-set
    assert p.table.count_pending() == 3

    drain(p.rt, None)

    assert p.table.count_pending() == 0
    assert sorted(p.crm()) == ["1", "2", "3"]
    assert p.calls(INSERT) == 2  # the first send, and the one refused as duplicates
    assert p.calls(UPDATE) == 1  # the rows went onto the records they had


# -- promise 4: skipped rows are visible, not hot-looped; transient failures back off ----------


def test_a_skipped_row_is_a_reject_that_is_not_resent_until_it_changes(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 4: a row Zoho refuses keeps flag false and is a reject with Zoho's reason; the
    next rounds spend no call and no credit on it; once fixed, it goes out."""
    p = make_pipeline([1, 2])
    p.table.update(2, status="Lost")  # not a value of the Status picklist

    drain(p.rt, None)

    reject = p.state.get_reject("orders", "2")
    assert reject is not None and (reject.code, reject.field) == ("INVALID_DATA", "Status")
    assert p.table.flag(1) and not p.table.flag(2)
    writes, credits = p.calls(INSERT) + p.calls(UPDATE), p.credits_spent()

    again = drain(p.rt, None)

    assert again.counts.sent == 0
    assert (p.calls(INSERT) + p.calls(UPDATE), p.credits_spent()) == (writes, credits)
    p.table.update(2, status="Cancelled")  # someone fixes the row in the legacy database
    drain(p.rt, None)
    assert p.table.flag(2)
    assert p.state.get_reject("orders", "2") is None
    assert p.crm()["2"]["Status"] == "Cancelled"


def test_a_transient_failure_is_retried_after_its_backoff_not_at_every_poll(
    make_pipeline: MakePipeline,
) -> None:
    """Promise 4: a record Zoho reports locked stays buffered and pending; polls within its
    backoff (at least 15 s after the first failure) send nothing; after it, it goes again."""
    p = make_pipeline([1], max_delay=timedelta(0))  # a buffered change is due at once
    drain(p.rt, None)
    p.emulator.admin.set_faults(locked_records=["1"])  # an approval process locks the record
    p.table.update(1, status="Refunded")

    realtime_tick(p.rt)

    assert not p.table.flag(1)
    assert p.state.buffer_keys("orders") == ["1"]
    writes = p.calls(UPDATE)
    p.clock.advance(timedelta(seconds=10))
    realtime_tick(p.rt)
    assert p.calls(UPDATE) == writes  # within the backoff: not sent
    p.emulator.admin.set_faults(locked_records=[])
    p.clock.advance(timedelta(seconds=25))
    realtime_tick(p.rt)
    assert p.calls(UPDATE) == writes + 1
    assert p.table.flag(1)
    assert p.state.buffer_keys("orders") == []
    assert p.crm()["1"]["Status"] == "Refunded"
