"""API limits: credit ledger, rolling budget, concurrency, 429s and headers (reference 6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

Start = Callable[..., EmulatorServer]
MakeZoho = Callable[[EmulatorServer], "Zoho"]


def records(count: int, order: Callable[..., dict[str, Any]]) -> list[dict[str, Any]]:
    return [order(parent_id=f"K{i}") for i in range(count)]


def test_credits_follow_the_documented_costs(
    zoho: Zoho, emulator: EmulatorServer, order: Callable[..., Any]
) -> None:
    """1 credit per call, 1 per 10 records on writes, 500 per bulk job; tokens cost nothing."""
    zoho.get("/crm/v8/org")  # 1 (minting the token is free: it is an Accounts call)
    zoho.upsert(records(25, order))  # 3
    zoho.upsert(records(100, order))  # 10
    file_id = zoho.file_id([["K1", "SO-1"]], ["parent_id", "Name"])  # 1
    job_id = zoho.create_job(file_id, None).json()["details"]["id"]  # 500
    zoho.get(f"/crm/bulk/v8/write/{job_id}")  # 1
    assert emulator.admin.stats()["credits"]["used"] == 1 + 3 + 10 + 1 + 500 + 1


def test_exhausted_budget_answers_429(
    start_emulator: Start, make_zoho: MakeZoho, order: Callable[..., Any]
) -> None:
    """A call that does not fit the rolling budget is 429 TOO_MANY_REQUESTS; smaller ones pass."""
    zoho = make_zoho(start_emulator(daily_credits=12))
    assert zoho.upsert(records(100, order)).status_code == 200  # 10 of 12
    response = zoho.upsert(records(30, order))  # needs 3
    assert response.status_code == 429
    assert response.json()["code"] == "TOO_MANY_REQUESTS"
    assert response.json()["status"] == "error"
    assert zoho.get("/crm/v8/org").status_code == 200  # needs 1
    stats = zoho.server.admin.stats()
    assert stats["throttled"] == {"credits": 1} and stats["too_many_requests"] == 1


def test_credit_window_rolls(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """Credits spent longer ago than the window are available again."""
    zoho = make_zoho(start_emulator(daily_credits=2, credit_window_seconds=0.3))
    assert [zoho.get("/crm/v8/org").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.35)
    assert zoho.get("/crm/v8/org").status_code == 200


def test_credits_remaining_header_appears_past_half(
    start_emulator: Start, make_zoho: MakeZoho
) -> None:
    """X-API-CREDITS-REMAINING is sent once 50 % of the daily credits are used."""
    zoho = make_zoho(start_emulator(daily_credits=10))
    headers = [zoho.get("/crm/v8/org").headers.get("X-API-CREDITS-REMAINING") for _ in range(6)]
    assert headers == [None, None, None, None, "5", "4"]


@pytest.mark.parametrize(("setting", "header"), [(None, None), (30, "30")])
def test_retry_after_is_a_setting(
    start_emulator: Start, make_zoho: MakeZoho, setting: int | None, header: str | None
) -> None:
    """Retry-After is absent on 429 unless retry_after_seconds is set."""
    zoho = make_zoho(start_emulator(daily_credits=1, retry_after_seconds=setting))
    zoho.get("/crm/v8/org")
    response = zoho.get("/crm/v8/org")
    assert response.status_code == 429
    assert response.headers.get("Retry-After") == header


def test_throttle_message_is_a_setting(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """throttle_message replaces the per-cause 429 messages with one text."""
    zoho = make_zoho(start_emulator(daily_credits=1, throttle_message="Too many requests"))
    zoho.get("/crm/v8/org")
    assert zoho.get("/crm/v8/org").json()["message"] == "Too many requests"


def parallel(calls: list[Callable[[], httpx.Response]]) -> list[int]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return sorted(f.result().status_code for f in [pool.submit(c) for c in calls])


def test_concurrency_limit_answers_429(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """More concurrent calls than `concurrency` get 429; peak concurrency is reported."""
    server = start_emulator(concurrency=2)
    zoho = make_zoho(server)
    headers = zoho.login()
    server.admin.set_faults(latency_ms=300)
    statuses = parallel([lambda: httpx.get(server.base_url + "/crm/v8/org", headers=headers)] * 3)
    stats = server.admin.stats()
    assert statuses == [200, 200, 429]
    assert stats["concurrency"]["peak"] == 2 and stats["throttled"] == {"concurrency": 1}


def test_sub_concurrency_limits_large_writes_only(
    start_emulator: Start, make_zoho: MakeZoho, order: Callable[..., Any]
) -> None:
    """Writes of more than 10 records share `sub_concurrency` slots; small writes do not."""
    server = start_emulator(sub_concurrency=1)
    zoho = make_zoho(server)
    headers = zoho.login()
    server.admin.set_faults(latency_ms=300)

    def write(count: int, start: int) -> Callable[[], httpx.Response]:
        body = {"data": [order(parent_id=f"K{start + i}") for i in range(count)]}
        return lambda: httpx.post(
            server.base_url + "/crm/v8/Orders/upsert", headers=headers, json=body
        )

    assert parallel([write(11, 0), write(11, 100)]) == [200, 429]
    assert parallel([write(10, 200), write(10, 300)]) == [200, 200]
    assert server.admin.stats()["throttled"] == {"sub_concurrency": 1}
