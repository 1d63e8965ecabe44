"""Get Records by id through the CRM client against the emulator: values, chunks, ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.credits import CallKind
from syncd.crm import CrmClient, read
from syncd.emulator.server import EmulatorServer
from syncd.errors import CrmFatalError
from syncd.model import CrmRecord, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)

FIELDS = ["parent_id", "Name", "Amount", "Order_Date", "Paid", "Notes"]


def _create(client: CrmClient, count: int) -> dict[str, str]:
    """``count`` records k0..; key -> record id."""
    records = [
        CrmRecord(f"k{i}", {"Name": f"SO-{i}", "Amount": i + 0.5, "Order_Date": "2025-01-02"})
        for i in range(count)
    ]
    outcomes = client.upsert("Orders", "parent_id", records)
    assert {o.kind for o in outcomes} == {OutcomeKind.ADDED}
    return {o.key: str(o.record_id) for o in outcomes}


def _get_calls(store: StateStore) -> tuple[int, int]:
    since = datetime.now(UTC) - timedelta(hours=1)
    return store.calls_since(since).get(CallKind.GET_RECORDS, (0, 0))


def test_values_are_what_the_crm_holds(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Each id maps to the requested fields' values exactly as the emulator stored them."""
    ids = _create(client, 3)
    found = client.records_by_id("Orders", [ids["k2"], ids["k0"]], FIELDS)
    stored = {r["id"]: r for r in fresh_emulator.admin.records("Orders")}
    assert found == {rid: {f: stored[rid][f] for f in FIELDS} for rid in (ids["k2"], ids["k0"])}
    assert found[ids["k2"]]["Amount"] == 2.5 and found[ids["k2"]]["Notes"] is None
    assert _get_calls(store) == (1, 1)


def test_ids_go_100_a_call_once_each_and_deleted_records_are_missing(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """201 distinct ids (some asked twice) take 3 calls; a record deleted in the CRM is left out."""
    ids = list(_create(client, 201).values())
    fresh_emulator.admin.delete_record("Orders", ids[7])
    found = client.records_by_id("Orders", ids[:50] + ids + ids[150:], ["parent_id"])
    assert set(found) == set(ids) - {ids[7]}
    assert found[ids[0]] == {"parent_id": "k0"}
    assert fresh_emulator.admin.stats()["calls"]["GET /crm/v8/{module}"] == 3
    assert _get_calls(store) == (3, 3)


def test_fields_beyond_the_call_limit_are_split_and_merged(
    client: CrmClient, fresh_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zoho takes 50 fields a call: more are read in several calls and merged per record."""
    monkeypatch.setattr(read, "GET_RECORDS_MAX_FIELDS", 2)
    ids = list(_create(client, 2).values())
    found = client.records_by_id("Orders", ids, ["Name", "parent_id", "Name", "Amount"])
    assert found[ids[1]] == {"Name": "SO-1", "parent_id": "k1", "Amount": 1.5}
    assert fresh_emulator.admin.stats()["calls"]["GET /crm/v8/{module}"] == 2


def test_none_found_is_empty_and_nothing_asked_is_no_call(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """204 (no record exists) reads as {}; no ids make no call at all."""
    assert client.records_by_id("Orders", ["5725767999999999999"], ["Name"]) == {}
    assert client.records_by_id("Orders", [], ["Name"]) == {}
    assert _get_calls(store) == (1, 1)


def test_unknown_module_is_fatal(client: CrmClient) -> None:
    """A module Zoho does not know is INVALID_MODULE, not retried."""
    with pytest.raises(CrmFatalError) as caught:
        client.records_by_id("Nope", ["1"], ["Name"])
    assert caught.value.code == "INVALID_MODULE"
