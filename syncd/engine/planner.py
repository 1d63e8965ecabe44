"""The planner: which API sends a backlog, by credits. Pure.

Zoho's price list lives in ``syncd.credits`` (a pure module with no I/O), so the planner
and the client's ledger can never disagree on a price.
"""

from __future__ import annotations

from syncd.credits import (
    BULK_JOB_CREDITS,
    BULK_MAX_ROWS,
    DELETE_MAX_RECORDS,
    UPSERT_MAX_RECORDS,
    UPSERT_RECORDS_PER_CREDIT,
    bulk_cost,
    delete_cost,
    upsert_cost,
)
from syncd.model import Api, Plan

BREAK_EVEN = BULK_JOB_CREDITS * UPSERT_RECORDS_PER_CREDIT
"""5,000 rows: there 50 upsert calls cost 500 credits, as one bulk job does."""


def plan_backlog(rows: int) -> Plan:
    """Bulk Write from 5,000 rows on (the break-even), the records API below.

    From 4,991 rows records calls already cost 500 credits too; at such a tie they win: they
    are answered at once and need no upload, status polls or result download (1 credit each).
    """
    by_bulk, by_upsert = bulk_cost(rows), upsert_cost(rows)
    if rows >= BREAK_EVEN:
        jobs = -(-rows // BULK_MAX_ROWS)
        reason = f"bulk write: {jobs} job(s) = {by_bulk} credits <= records API {by_upsert} credits"
        return Plan(Api.BULK, rows, jobs, by_bulk, reason)
    calls = -(-rows // UPSERT_MAX_RECORDS)
    reason = f"records API: {calls} call(s) = {by_upsert} credits <= bulk write {by_bulk} credits"
    return Plan(Api.RECORDS, rows, calls, by_upsert, reason)


def plan_deletes(records: int, *, mark: bool) -> Plan:
    """Deleting records by id (Delete Records API, 1 credit per call of 100 ids), or marking
    them (an update by id, priced as any records write)."""
    calls = -(-records // DELETE_MAX_RECORDS)
    if mark:
        credits = upsert_cost(records)
        return Plan(Api.RECORDS, records, calls, credits, f"mark: {calls} update call(s)")
    credits = delete_cost(records)
    reason = f"delete: {calls} call(s) = {credits} credits"
    return Plan(Api.RECORDS, records, calls, credits, reason)
