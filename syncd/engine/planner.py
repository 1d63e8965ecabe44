"""The planner: which API sends a backlog, by credits. Pure.

Zoho's price list lives in ``syncd.crm.credits`` (a pure module with no I/O), so the planner
and the client's ledger can never disagree on a price.
"""

from __future__ import annotations

from syncd.crm.credits import BULK_MAX_ROWS, UPSERT_MAX_RECORDS, bulk_cost, upsert_cost
from syncd.model import Api, Plan


def plan_backlog(rows: int) -> Plan:
    """Bulk Write when it costs no more than Upsert (5,000 rows is the break-even), else Upsert."""
    by_bulk, by_upsert = bulk_cost(rows), upsert_cost(rows)
    if rows > 0 and by_bulk <= by_upsert:
        jobs = -(-rows // BULK_MAX_ROWS)
        reason = f"bulk write: {jobs} job(s) = {by_bulk} credits < upsert {by_upsert} credits"
        return Plan(Api.BULK, rows, jobs, by_bulk, reason)
    calls = -(-rows // UPSERT_MAX_RECORDS)
    reason = f"upsert: {calls} call(s) = {by_upsert} credits <= bulk write {by_bulk} credits"
    return Plan(Api.UPSERT, rows, calls, by_upsert, reason)


def affordable(plan: Plan, spent: int, budget: int) -> bool:
    """Whether the plan fits in what is left of the rolling 24 h budget."""
    return spent + plan.credits <= budget
