"""Deletes, the pure parts: the breaker, its default limit, the price, Zoho's per-id answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.settings import CONDITIONS, NotifyThresholds
from syncd.credits import delete_cost
from syncd.crm.deletes import parse_delete_response
from syncd.engine.deletes import DeletePolicy, breaker, delete_limit
from syncd.engine.planner import plan_deletes
from syncd.errors import CrmRetriableError
from syncd.model import PendingDelete
from syncd.notify.conditions import PipelineSnapshot, Snapshot, evaluate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pending(n: int, approved: int = 0) -> list[PendingDelete]:
    return [PendingDelete(str(i), f"id{i}", NOW, NOW if i < approved else None) for i in range(n)]


@pytest.mark.parametrize(
    ("known", "configured", "limit"),
    [
        (0, None, 1),
        (50, None, 1),
        (250, None, 2),
        (10_000, None, 100),
        (10**6, None, 100),
        (10**6, 5000, 5000),
        (10, 3, 3),
    ],
)
def test_the_default_limit_is_the_smaller_of_100_and_1_percent(
    known: int, configured: int | None, limit: int
) -> None:
    """max_deletes defaults to min(100, 1 % of the known records), at least 1."""
    assert delete_limit(DeletePolicy("delete", max_deletes=configured), known) == limit


def test_the_breaker_lets_a_few_go_and_holds_all_of_a_mass_delete() -> None:
    """Up to the limit unapproved deletes go; above it none does, approved ones always go."""
    assert breaker(pending(3), 3) == (pending(3), 0)
    going, held = breaker(pending(4), 3)
    assert (going, held) == ([], 4)
    going, held = breaker(pending(500, approved=2), 3)
    assert ([p.key for p in going], held) == (["0", "1"], 498)
    going, held = breaker(pending(5, approved=2), 3)
    assert (len(going), held) == (5, 0)


def test_a_delete_costs_one_credit_per_call_of_100() -> None:
    """1 credit per call of up to 100 ids; a mark is priced as an update by id."""
    assert [delete_cost(n) for n in (0, 1, 100, 101, 1000)] == [0, 1, 1, 2, 10]
    plan = plan_deletes(250, mark=False)
    assert (plan.calls, plan.credits) == (3, 3)
    marked = plan_deletes(250, mark=True)
    assert (marked.calls, marked.credits) == (3, 25)


def test_answers_are_matched_by_id_and_an_unknown_id_counts_as_gone() -> None:
    """details.id names the record (not the position); INVALID_DATA = already gone; a lock is
    a retry; an id without an answer is a retry; no data array is a temporary failure."""
    body = {
        "data": [
            {"code": "RECORD_LOCKED", "details": {"id": "b"}, "status": "error"},
            {"code": "SUCCESS", "details": {"id": "a"}, "status": "success"},
            {"code": "INVALID_DATA", "details": {"id": "c"}, "status": "error"},
        ]
    }
    a, b, c, d = parse_delete_response(["a", "b", "c", "d"], body)
    assert (a.gone, a.retry) == (True, False)
    assert (b.gone, b.retry, b.code) == (False, True, "RECORD_LOCKED")
    assert (c.gone, c.code) == (True, "INVALID_DATA")
    assert (d.gone, d.retry, d.code) == (False, True, "NO_RESULT")
    with pytest.raises(CrmRetriableError):
        parse_delete_response(["a"], {"code": "INTERNAL_ERROR"})


def test_a_refusal_that_is_not_temporary_is_neither_gone_nor_retried() -> None:
    """A code that is no lock or limit (a permission, say) is a failure that stays visible."""
    (only,) = parse_delete_response(
        ["a"], {"data": [{"code": "NO_PERMISSION", "details": {"id": "a"}, "status": "error"}]}
    )
    assert (only.gone, only.retry, only.code) == (False, False, "NO_PERMISSION")


def test_deletes_held_for_approval_are_a_notify_condition() -> None:
    """A pipeline whose deletes wait for approval raises deletes_waiting, naming the command."""
    pipeline = PipelineSnapshot("orders", NOW, timedelta(0), 0, 0, 0, 0, deletes_waiting=300)
    snap = Snapshot((pipeline,), spent_24h=0, budget=1000, org_remaining=None, reserve=0)
    found = evaluate(snap, NotifyThresholds(), frozenset(CONDITIONS), NOW)
    assert list(found) == ["deletes_waiting:orders"]
    assert "300 CRM record(s)" in found["deletes_waiting:orders"].summary
    assert "syncd deletes list" in found["deletes_waiting:orders"].summary
    quiet = Snapshot((PipelineSnapshot("orders", NOW, timedelta(0), 0, 0, 0, 0),), 0, 1000, None, 0)
    assert evaluate(quiet, NotifyThresholds(), frozenset(CONDITIONS), NOW) == {}
