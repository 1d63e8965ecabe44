"""The credit cost model and budget rule (syncd.credits)."""

from __future__ import annotations

import pytest

from syncd.credits import bulk_cost, check_budget, upsert_call_cost, upsert_cost
from syncd.errors import BudgetExceeded, CreditReserveReached


def test_upsert_costs_one_credit_per_ten_records() -> None:
    """Upsert is priced per started 10 records, and calls of 100 add up to the same total."""
    assert upsert_call_cost(1) == 1
    assert upsert_call_cost(10) == 1
    assert upsert_call_cost(11) == 2
    assert upsert_call_cost(100) == 10
    assert upsert_cost(0) == 0
    assert upsert_cost(4999) == 500
    assert upsert_cost(250) == upsert_call_cost(100) * 2 + upsert_call_cost(50)
    with pytest.raises(ValueError):
        upsert_call_cost(101)


def test_bulk_costs_500_per_started_25000_rows() -> None:
    """Bulk Write is priced per job of up to 25,000 rows."""
    assert bulk_cost(0) == 0
    assert bulk_cost(1) == 500
    assert bulk_cost(25_000) == 500
    assert bulk_cost(80_000) == 2000


def test_budget_allows_reaching_but_not_crossing() -> None:
    """A call may spend the budget exactly; one credit more is refused with the numbers."""
    check_budget(needed=10, spent=90, budget=100)
    with pytest.raises(BudgetExceeded) as caught:
        check_budget(needed=11, spent=90, budget=100)
    assert (caught.value.needed, caught.value.spent, caught.value.budget) == (11, 90, 100)
    assert "90 of 100" in str(caught.value)


@pytest.mark.parametrize(
    ("spent", "budget", "fits"),
    [(0, 500, True), (490, 500, True), (491, 500, False), (500, 500, False)],
)
def test_a_plan_fits_only_within_the_rolling_budget(spent: int, budget: int, fits: bool) -> None:
    """10 credits fit while spent + 10 <= budget; one more credit spent and they do not."""
    try:
        check_budget(needed=10, spent=spent, budget=budget)
    except BudgetExceeded:
        assert not fits
    else:
        assert fits


def test_the_org_reserve_is_kept_only_when_zoho_said_what_is_left() -> None:
    """The reserve binds on Zoho's figure: leaving exactly the reserve is fine, one less is
    refused as CreditReserveReached; without the figure, or without a reserve, only the budget
    applies."""
    check_budget(needed=100, spent=0, budget=10_000, org_left=1_100, reserve=1_000)
    with pytest.raises(CreditReserveReached) as caught:
        check_budget(needed=101, spent=0, budget=10_000, org_left=1_100, reserve=1_000)
    assert caught.value.org_left == 1_100
    check_budget(needed=5_000, spent=0, budget=10_000, org_left=None, reserve=1_000)
    check_budget(needed=5_000, spent=0, budget=10_000, org_left=10, reserve=0)
    with pytest.raises(BudgetExceeded) as over:  # the budget is checked first
        check_budget(needed=5_000, spent=6_000, budget=10_000, org_left=10, reserve=1_000)
    assert type(over.value) is BudgetExceeded
