"""Zoho's credit price list and the one budget rule: domain rules, pure, no I/O.

The client checks every call against them, the planner uses the same prices to choose between
Upsert and Bulk Write, and the engine refuses a whole send up front with the same rule, so a
price or the rule can never differ between them.
"""

from __future__ import annotations

import math
from datetime import timedelta

from syncd.errors import BudgetExceeded, CreditReserveReached

UPSERT_MAX_RECORDS = 100
"""Zoho's cap on records in one Insert/Update/Upsert call."""

UPSERT_RECORDS_PER_CREDIT = 10
"""Record writes cost 1 credit per 10 records, rounded up per call (reference §6.1)."""

BULK_JOB_CREDITS = 500
"""Creating one Bulk Write job costs 500 credits, whatever its size (reference §6.1)."""

BULK_MAX_ROWS = 25_000
"""Most rows Zoho accepts in one Bulk Write CSV (reference §5.1)."""

OTHER_CALL_CREDITS = 1
"""Upload, job status, result download, org and field metadata calls.

UNCONFIRMED (reference §9 #17): Zoho does not say whether upload and status polls are charged.
We count them at the "all other APIs" price so the budget errs on the safe side.
"""

DELETE_MAX_RECORDS = 100
"""Zoho's cap on record ids in one Delete Records call (``?ids=``, Delete Records API)."""

DELETE_CALL_CREDITS = 1
"""One Delete Records call, whatever its number of ids: Zoho lists no special price for it, so
it costs what "all other APIs" do (reference §6.1)."""

BUDGET_WINDOW = timedelta(hours=24)
"""Zoho frees credits 24 h after they were spent (rolling window, reference §6.2)."""

ORG_REMAINING_FRESH = timedelta(hours=1)
"""How long Zoho's X-API-CREDITS-REMAINING is trusted. The org's credits roll off over 24 h and
syncd only learns the new figure from its next call, so after an hour without one it sends
again (and so reads the header afresh) instead of waiting on a stale figure for ever."""


class CallKind:
    """Ledger ``kind`` of each call the client makes."""

    UPSERT = "upsert"
    INSERT = "insert"
    UPDATE = "update"
    RECORD_WRITES = ("insert", "update", "upsert")  # every records-API write
    BULK_JOB = "bulk_job"
    UPLOAD = "upload"
    BULK_STATUS = "bulk_status"
    DOWNLOAD = "download"
    ORG = "org"
    FIELDS = "fields"
    GET_RECORDS = "get_records"
    DELETE = "delete"
    SEARCH = "search"


def upsert_call_cost(records: int) -> int:
    """Credits of one Upsert call carrying ``records`` records (at most 100)."""
    if not 0 < records <= UPSERT_MAX_RECORDS:
        raise ValueError(f"an upsert call carries 1..{UPSERT_MAX_RECORDS} records, got {records}")
    return math.ceil(records / UPSERT_RECORDS_PER_CREDIT)


def upsert_cost(records: int) -> int:
    """Credits to upsert ``records`` distinct records in calls of 100.

    Chunks of 100 are multiples of 10, so the per-call rounding adds up to one rounding overall.
    """
    return math.ceil(max(records, 0) / UPSERT_RECORDS_PER_CREDIT)


def bulk_cost(rows: int) -> int:
    """Credits of the Bulk Write jobs needed for ``rows`` rows (500 per started 25,000)."""
    return BULK_JOB_CREDITS * math.ceil(max(rows, 0) / BULK_MAX_ROWS)


def delete_cost(records: int) -> int:
    """Credits to delete ``records`` records by id, in calls of 100."""
    return DELETE_CALL_CREDITS * math.ceil(max(records, 0) / DELETE_MAX_RECORDS)


def check_budget(
    *, needed: int, spent: int, budget: int, org_left: int | None = None, reserve: int = 0
) -> None:
    """The budget rule: raise when spending ``needed`` credits now is not allowed.

    ``BudgetExceeded`` when syncd's own rolling 24 h spend (``spent``) plus ``needed`` would
    cross ``budget``; ``CreditReserveReached`` when it would leave the whole org fewer than
    ``reserve`` credits for the company's other integrations. ``org_left`` None: Zoho has not
    said (it only does once half the org's credits are used), so only the budget applies.
    """
    if spent + needed > budget:
        raise BudgetExceeded(needed=needed, spent=spent, budget=budget)
    if reserve and org_left is not None and org_left - needed < reserve:
        raise CreditReserveReached(needed, org_left, reserve)
