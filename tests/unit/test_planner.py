"""The planner: Bulk Write or Upsert, by what each costs in credits, within the budget."""

from __future__ import annotations

import pytest

from syncd.engine.planner import plan_backlog
from syncd.model import Api


@pytest.mark.parametrize(
    ("rows", "api", "calls", "credits"),
    [
        (1, Api.RECORDS, 1, 1),
        (100, Api.RECORDS, 1, 10),
        (250, Api.RECORDS, 3, 25),
        (4_990, Api.RECORDS, 50, 499),
        (4_999, Api.RECORDS, 50, 500),  # a tie: upsert needs no upload, polls or download
        (5_000, Api.BULK, 1, 500),
        (25_000, Api.BULK, 1, 500),
        (25_001, Api.BULK, 2, 1_000),
        (80_000, Api.BULK, 4, 2_000),
    ],
)
def test_cheaper_api_wins_and_5000_rows_is_the_break_even(
    rows: int, api: Api, calls: int, credits: int
) -> None:
    """Upsert below 5,000 rows, Bulk Write from 5,000 on; calls and credits as Zoho prices them."""
    plan = plan_backlog(rows)
    assert (plan.api, plan.rows, plan.calls, plan.credits) == (api, rows, calls, credits)


def test_mass_update_of_80000_rows_is_4_bulk_jobs_not_800_upsert_calls() -> None:
    """The plan's reason names both prices, so the log shows why bulk was chosen."""
    plan = plan_backlog(80_000)
    assert plan.reason == "bulk write: 4 job(s) = 2000 credits <= records API 8000 credits"


def test_nothing_to_send_costs_nothing() -> None:
    """An empty backlog is a zero-credit upsert plan, never a 500-credit bulk job."""
    plan = plan_backlog(0)
    assert (plan.api, plan.calls, plan.credits) == (Api.RECORDS, 0, 0)
