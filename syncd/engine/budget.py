"""Whether the engine may start a send now: the budget rule (``syncd.credits``) applied to
what the state store knows of syncd's spend and the org's credits left."""

from __future__ import annotations

from syncd.credits import BUDGET_WINDOW, ORG_REMAINING_FRESH, check_budget
from syncd.model import Tunables
from syncd.ports import Clock, EngineState


def ensure_affordable(state: EngineState, clock: Clock, tunables: Tunables, credits: int) -> None:
    """Refuse a send of ``credits`` before any of it is sent: ``BudgetExceeded`` or
    ``CreditReserveReached`` (the daemon waits, quietly, until credits roll off)."""
    now = clock.now()
    spent = state.credits_spent_since(now - BUDGET_WINDOW)
    org_left = None
    org = state.org_remaining()
    if tunables.credit_reserve and org is not None and org[1] > now - ORG_REMAINING_FRESH:
        # Zoho's figure, less what syncd spent since (the others' spend shows in the next one).
        org_left = org[0] - state.credits_spent_since(org[1])
    check_budget(
        needed=credits,
        spent=spent,
        budget=tunables.daily_credit_budget,
        org_left=org_left,
        reserve=tunables.credit_reserve,
    )
