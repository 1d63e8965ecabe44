"""Upsert through the CRM client against the emulator: outcomes, chunking, budget, ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.crm import CrmClient
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.errors import BudgetExceeded, CrmFatalError
from syncd.model import CrmRecord, Outcome, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, ShiftedClock, crm_settings

DAY_AGO = timedelta(hours=24)


def _spent(store: StateStore) -> int:
    return store.credits_spent_since(datetime.now(UTC) - DAY_AGO)


def test_every_outcome_kind(client: CrmClient, fresh_emulator: EmulatorServer) -> None:
    """added, updated and skipped (code, field, message) come back per key, in one call."""
    client.upsert("Orders", "parent_id", [CrmRecord("k1", {"Name": "one"})])
    outcomes = client.upsert(
        "Orders",
        "parent_id",
        [
            CrmRecord("k1", {"Name": "one, again", "Quantity": 2}),
            CrmRecord("k2", {"Name": "two"}),
            CrmRecord("k3", {"Name": "three", "Quantity": "lots"}),
            CrmRecord("k4", {"Quantity": 1}),
        ],
    )
    by_key = {o.key: o for o in outcomes}
    assert by_key["k1"].kind is OutcomeKind.UPDATED
    assert by_key["k2"].kind is OutcomeKind.ADDED
    assert by_key["k1"].record_id and by_key["k2"].record_id
    assert (by_key["k3"].kind, by_key["k3"].code, by_key["k3"].field) == (
        OutcomeKind.SKIPPED,
        "INVALID_DATA",
        "Quantity",
    )
    assert (by_key["k4"].kind, by_key["k4"].code, by_key["k4"].field) == (
        OutcomeKind.SKIPPED,
        "MANDATORY_NOT_FOUND",
        "Name",
    )
    assert by_key["k4"].message
    records = {r["parent_id"]: r for r in fresh_emulator.admin.records("Orders")}
    assert sorted(records) == ["k1", "k2"]
    assert records["k1"]["Name"] == "one, again"
    assert records["k1"]["id"] == by_key["k1"].record_id


def test_chunks_of_100_and_last_version_wins(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """250 records with repeated keys go out as 3 calls; each key once, its last version."""
    records = [CrmRecord(f"k{i}", {"Name": f"v1-{i}"}) for i in range(250)]
    records += [CrmRecord(f"k{i}", {"Name": f"v2-{i}"}) for i in range(0, 250, 50)]
    outcomes = client.upsert("Orders", "parent_id", records)
    assert len(outcomes) == 250
    assert {o.kind for o in outcomes} == {OutcomeKind.ADDED}
    stats = fresh_emulator.admin.stats()
    assert stats["calls"]["POST /crm/v8/{module}/upsert"] == 3
    names = {r["parent_id"]: r["Name"] for r in fresh_emulator.admin.records("Orders")}
    assert names["k50"] == "v2-50" and names["k51"] == "v1-51"
    assert _spent(store) == stats["credits"]["used"] == 25


def test_request_level_error_is_fatal_and_not_retried(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """A wrong module is a CrmFatalError (INVALID_MODULE) after a single call."""
    with pytest.raises(CrmFatalError) as caught:
        client.upsert("Nope", "parent_id", [CrmRecord("a", {"Name": "x"})])
    assert caught.value.code == "INVALID_MODULE"
    assert fresh_emulator.admin.stats()["calls"]["POST /crm/v8/{module}/upsert"] == 1


def test_budget_refusal_before_the_call(fresh_emulator: EmulatorServer, store: StateStore) -> None:
    """A call that would cross daily_credit_budget is refused before it reaches Zoho."""
    settings = crm_settings(fresh_emulator.base_url, daily_credit_budget=9)
    with CrmClient(settings, store, store, ShiftedClock(), retry=FAST_RETRY) as crm:
        with pytest.raises(BudgetExceeded) as caught:
            crm.upsert(
                "Orders", "parent_id", [CrmRecord(str(i), {"Name": "x"}) for i in range(100)]
            )
        assert (caught.value.needed, caught.value.spent, caught.value.budget) == (10, 0, 9)
        crm.upsert("Orders", "parent_id", [CrmRecord(str(i), {"Name": "x"}) for i in range(90)])
    assert fresh_emulator.admin.stats()["calls"]["POST /crm/v8/{module}/upsert"] == 1
    assert _spent(store) == 9


def test_budget_rolls_over_after_24_hours(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Credits spent more than 24 h ago no longer count against the budget."""
    clock = ShiftedClock()
    settings = crm_settings(fresh_emulator.base_url, daily_credit_budget=10)
    batch = [CrmRecord(str(i), {"Name": "x"}) for i in range(100)]
    with CrmClient(settings, store, store, clock, retry=FAST_RETRY) as crm:
        crm.upsert("Orders", "parent_id", batch)
        with pytest.raises(BudgetExceeded):
            crm.upsert("Orders", "parent_id", batch)
        clock.offset = DAY_AGO + timedelta(seconds=1)
        assert {o.kind for o in crm.upsert("Orders", "parent_id", batch)} == {OutcomeKind.UPDATED}


def test_budget_running_out_mid_batch_returns_retry(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Chunks already answered keep their outcomes; the refused rest comes back as RETRY."""
    settings = crm_settings(fresh_emulator.base_url, daily_credit_budget=20)
    records = [CrmRecord(f"k{i:03}", {"Name": "x"}) for i in range(250)]
    with CrmClient(settings, store, store, ShiftedClock(), retry=FAST_RETRY) as crm:
        outcomes = crm.upsert("Orders", "parent_id", records)
    assert [o.key for o in outcomes] == [r.key for r in records]
    assert {o.kind for o in outcomes[:200]} == {OutcomeKind.ADDED}
    assert set(outcomes[200:]) == {
        Outcome(o.key, OutcomeKind.RETRY, code="BUDGET_EXCEEDED", message=o.message)
        for o in outcomes[200:]
    }
    assert len(fresh_emulator.admin.records("Orders")) == 200


def test_credits_remaining_header_is_read(tmp_path: Path) -> None:
    """X-API-CREDITS-REMAINING, once Zoho sends it, is exposed as credits_remaining."""
    with EmulatorServer(EmulatorSettings(daily_credits=20)) as server:
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        settings = crm_settings(server.base_url)
        with CrmClient(settings, state, state, ShiftedClock(), retry=FAST_RETRY) as crm:
            assert crm.credits_remaining is None
            crm.upsert(
                "Orders", "parent_id", [CrmRecord(str(i), {"Name": "x"}) for i in range(100)]
            )
            assert crm.credits_remaining == 10
        state.close()
