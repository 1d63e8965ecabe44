"""Search Records by a field through the CRM client against the emulator: escaping, chunks of
10 values, 204 for no match, one ledgered credit per call (reference §7.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.credits import CallKind
from syncd.crm import CrmClient
from syncd.crm.search import criteria, match_values
from syncd.emulator.server import EmulatorServer
from syncd.model import CrmRecord, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)

SEARCH = "GET /crm/v8/{module}/search"
ODD_KEYS = ["a(b)", "c,d", "e\\f", "g:h", "plain"]


def _create(client: CrmClient, keys: list[str]) -> dict[str, str]:
    records = [CrmRecord(key, {"Name": f"SO-{i}"}) for i, key in enumerate(keys)]
    outcomes = client.upsert("Orders", "parent_id", records)
    assert {o.kind for o in outcomes} == {OutcomeKind.ADDED}
    return {o.key: str(o.record_id) for o in outcomes}


def _searches(server: EmulatorServer) -> int:
    return int(server.admin.stats()["calls"].get(SEARCH, 0))


def _ledger(store: StateStore) -> tuple[int, int]:
    return store.calls_since(datetime.now(UTC) - timedelta(hours=1)).get(CallKind.SEARCH, (0, 0))


def test_values_with_parentheses_commas_and_backslashes_are_found(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Escaped values reach the emulator intact; each maps to its own record id, an unknown
    value is left out; one call, one credit."""
    ids = _create(client, ODD_KEYS)
    found = client.search_records("Orders", "parent_id", [*ODD_KEYS, "nobody"])
    assert found == {key: (ids[key],) for key in ODD_KEYS}
    assert _searches(fresh_emulator) == 1
    assert _ledger(store) == (1, 1)


def test_one_call_per_ten_distinct_values_and_none_without_values(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """25 distinct values (asked twice over) take 3 calls; no values take none."""
    keys = [f"k{i}" for i in range(25)]
    ids = _create(client, keys)
    assert client.search_records("Orders", "parent_id", keys + keys) == {k: (ids[k],) for k in keys}
    assert client.search_records("Orders", "parent_id", []) == {}
    assert _searches(fresh_emulator) == 3
    assert _ledger(store) == (3, 3)


def test_no_match_is_an_empty_answer(client: CrmClient, fresh_emulator: EmulatorServer) -> None:
    """Zoho's 204 (nothing matches) is no record for any value, and still one call."""
    assert client.search_records("Orders", "parent_id", ["x1", "x2"]) == {}
    assert _searches(fresh_emulator) == 1


def test_criteria_escape_and_join() -> None:
    """One value is one condition; several are joined by or; ( ) , and \\ are escaped."""
    assert criteria("F", ["a"]) == "(F:equals:a)"
    assert criteria("F", ["a(b)", "c,d", "e\\f"]) == (
        "((F:equals:a\\(b\\))or(F:equals:c\\,d)or(F:equals:e\\\\f))"
    )


def test_loose_equals_answers_are_matched_exactly() -> None:
    """Zoho's multi-condition equals may answer "ABC Inc" for "ABC": only exact holders count
    (then holders in another case); two holders of one value are both kept."""
    records = [
        {"id": "1", "F": "ABC Inc"},
        {"id": "2", "F": "ABC"},
        {"id": "3", "F": "xyz"},
        {"id": "4", "F": "Dup"},
        {"id": "5", "F": "Dup"},
    ]
    assert match_values(["ABC", "XYZ", "Dup", "none"], "F", records) == {
        "ABC": ("2",),
        "XYZ": ("3",),
        "Dup": ("4", "5"),
    }
