"""Fault injection (at start and at run time) and the admin API (reference 8.6)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import Faults

if TYPE_CHECKING:
    from conftest import Zoho

Start = Callable[..., EmulatorServer]
MakeZoho = Callable[[EmulatorServer], "Zoho"]
Order = Callable[..., dict[str, Any]]


def test_error_rate_answers_500_and_writes_nothing(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """error_rate=1: every call is 500 INTERNAL_ERROR and nothing is processed."""
    zoho.login()  # mint before the fault
    emulator.admin.set_faults(error_rate=1.0)
    response = zoho.upsert([order()])
    assert response.status_code == 500
    assert response.json() == {
        "code": "INTERNAL_ERROR",
        "details": {},
        "message": "Internal Server Error",
        "status": "error",
    }
    assert emulator.admin.records("Orders") == []
    assert emulator.admin.stats()["faults"] == {"error": 1}


def test_rate_limit_rate_answers_429(zoho: Zoho, emulator: EmulatorServer) -> None:
    """rate_limit_rate=1: every call is 429 TOO_MANY_REQUESTS."""
    zoho.login()
    emulator.admin.set_faults(rate_limit_rate=1.0)
    response = zoho.get("/crm/v8/org")
    assert (response.status_code, response.json()["code"]) == (429, "TOO_MANY_REQUESTS")


def test_drop_rate_breaks_the_connection_before_processing(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """drop_rate=1: the client sees a broken connection and nothing was written."""
    zoho.login()
    emulator.admin.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        zoho.upsert([order()])
    emulator.admin.set_faults(drop_rate=0.0)
    assert emulator.admin.records("Orders") == []
    assert emulator.admin.stats()["faults"] == {"drop": 1}
    assert zoho.get("/crm/v8/org").status_code == 200  # the client recovers with a new connection


def test_drop_after_processing_loses_only_the_reply(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """drop_after_rate=1: the write happens but its response never arrives."""
    zoho.login()
    emulator.admin.set_faults(drop_after_rate=1.0)
    with pytest.raises(httpx.TransportError):
        zoho.upsert([order()])
    assert [r["parent_id"] for r in emulator.admin.records("Orders")] == ["A-1"]


def test_latency_delays_every_call(zoho: Zoho, emulator: EmulatorServer) -> None:
    """latency_ms adds that much time to a call."""
    zoho.login()
    emulator.admin.set_faults(latency_ms=150)
    began = time.monotonic()
    assert zoho.get("/crm/v8/org").status_code == 200
    assert time.monotonic() - began >= 0.15


def test_faults_can_be_set_at_start(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """EmulatorSettings.faults hold from the first call; the token endpoint is faulted too."""
    zoho = make_zoho(start_emulator(faults=Faults(error_rate=1.0)))
    assert zoho.token_response().status_code == 500


def test_seeded_faults_repeat(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """Two emulators with the same seed fail the same calls."""
    patterns = []
    for _ in range(2):
        server = start_emulator(seed=42)
        zoho = make_zoho(server)
        zoho.login()
        server.admin.set_faults(error_rate=0.5)
        patterns.append([zoho.get("/crm/v8/org").status_code for _ in range(20)])
    assert patterns[0] == patterns[1]
    assert {200, 500} == set(patterns[0])


@pytest.mark.parametrize("faults", [{"explode": 1}, {"error_rate": 2.0}, {"error_rate": "x"}])
def test_bad_faults_are_refused(emulator: EmulatorServer, faults: dict[str, Any]) -> None:
    """Unknown fault names and out-of-range values answer 400 and change nothing."""
    with pytest.raises(httpx.HTTPStatusError) as caught:
        emulator.admin.set_faults(**faults)
    assert caught.value.response.status_code == 400
    assert emulator.admin.faults()["error_rate"] == 0.0


def test_expire_tokens_fault(zoho: Zoho, emulator: EmulatorServer) -> None:
    """set_faults(expire_tokens=True) invalidates every live token."""
    assert zoho.get("/crm/v8/org").status_code == 200
    emulator.admin.set_faults(expire_tokens=True)
    assert zoho.get("/crm/v8/org").json()["code"] == "INVALID_TOKEN"


def test_reset_forgets_everything(zoho: Zoho, emulator: EmulatorServer, order: Order) -> None:
    """reset clears records, tokens, credits, stats and run-time faults."""
    zoho.upsert([order()])
    emulator.admin.set_faults(latency_ms=5)
    emulator.admin.reset()
    stats = emulator.admin.stats()
    assert emulator.admin.records("Orders") == []
    assert stats["credits"]["used"] == 0 and stats["calls"] == {} and stats["tokens"]["minted"] == 0
    assert emulator.admin.faults()["latency_ms"] == 0
    assert zoho.get("/crm/v8/org").json()["code"] == "INVALID_TOKEN"


def test_stats_count_calls_statuses_and_tokens(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """Stats count calls per endpoint, statuses, tokens minted and records per module."""
    zoho.upsert([order()])
    zoho.upsert([order(Quantity="x")])
    stats = emulator.admin.stats()
    assert stats["calls"] == {"POST /oauth/v2/token": 1, "POST /crm/v8/{module}/upsert": 2}
    assert stats["statuses"] == {"200": 2, "400": 1}
    assert stats["tokens"] == {"minted": 1, "live": 1}
    assert stats["records"] == {"Orders": 1}
    assert stats["concurrency"]["peak"] == 1


def test_admin_lists_jobs_and_records(zoho: Zoho, emulator: EmulatorServer) -> None:
    """The admin API lists bulk jobs with their details and a module's records."""
    details = zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    (job,) = emulator.admin.jobs()
    assert (job["id"], job["status"]) == (details["id"], "COMPLETED")
    (record,) = emulator.admin.records("orders")
    assert record["parent_id"] == "K1" and len(record["id"]) == 19
    with pytest.raises(httpx.HTTPStatusError):
        emulator.admin.records("Nope")
