"""Delete Records: DELETE /crm/v8/{module}?ids=..: per-id answers, statuses, limits, credits."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

Order = Callable[..., dict[str, Any]]
DELETE_CALL = "DELETE /crm/v8/{module}"


def insert(zoho: Zoho, *records: dict[str, Any]) -> list[str]:
    response = zoho.post("/crm/v8/Orders", json={"data": list(records)})
    assert response.status_code == 201, response.text
    return [entry["details"]["id"] for entry in response.json()["data"]]


def delete(zoho: Zoho, ids: list[str], **params: str) -> httpx.Response:
    response: httpx.Response = zoho.http.delete(
        "/crm/v8/Orders", headers=zoho.auth, params={"ids": ",".join(ids), **params}
    )
    return response


def test_deleted_records_are_gone_and_each_id_is_answered(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """Every id gets a SUCCESS entry naming it; the records and their unique values are gone."""
    ids = insert(zoho, *(order(parent_id=f"K{i}", Name=f"SO-{i}") for i in range(3)))
    response = delete(zoho, ids[:2])
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [
        {"code": "SUCCESS", "details": {"id": i}, "message": "record deleted", "status": "success"}
        for i in ids[:2]
    ]
    assert [r["id"] for r in emulator.admin.records("Orders")] == [ids[2]]
    again = zoho.post("/crm/v8/Orders", json={"data": [order(parent_id="K0", Name="SO-0")]})
    assert again.status_code == 201  # the unique value K0 is free again


def test_unknown_ids_are_invalid_data_entries_207_or_400(zoho: Zoho, order: Order) -> None:
    """An id naming no record (or one already deleted) is INVALID_DATA; some: 207, all: 400."""
    (known,) = insert(zoho, order())
    mixed = delete(zoho, ["5725767999999999999", known])
    assert mixed.status_code == 207
    first, second = mixed.json()["data"]
    assert (first["code"], first["status"], first["details"]) == (
        "INVALID_DATA",
        "error",
        {"id": "5725767999999999999"},
    )
    assert second["code"] == "SUCCESS"
    repeated = delete(zoho, [known])  # a repeat after a lost reply
    assert repeated.status_code == 400
    assert repeated.json()["data"][0]["code"] == "INVALID_DATA"


def test_a_locked_record_is_not_deleted(zoho: Zoho, order: Order, emulator: EmulatorServer) -> None:
    """A record the locked_records fault names answers RECORD_LOCKED and stays."""
    (record_id,) = insert(zoho, order(parent_id="LOCK-1"))
    emulator.admin.set_faults(locked_records=["LOCK-1"])
    response = delete(zoho, [record_id])
    assert response.json()["data"][0]["code"] == "RECORD_LOCKED"
    assert len(emulator.admin.records("Orders")) == 1


@pytest.mark.parametrize(
    ("ids", "code"),
    [([], "REQUIRED_PARAM_MISSING"), ([str(i) for i in range(101)], "LIMIT_EXCEEDED")],
)
def test_no_ids_or_more_than_100_is_a_request_error_without_credit(
    zoho: Zoho, emulator: EmulatorServer, ids: list[str], code: str
) -> None:
    """ids is mandatory and holds at most 100 ids: 400, nothing charged."""
    response = delete(zoho, ids)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert emulator.admin.stats()["credits"]["total"] == 0


def test_a_call_of_100_ids_costs_one_credit_and_wf_trigger_is_counted(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """One credit per call whatever its size; wf_trigger=false is seen as such."""
    ids = insert(zoho, *(order(parent_id=f"K{i}", Name=f"SO-{i}") for i in range(100)))
    before = emulator.admin.stats()["credits"]["total"]
    assert delete(zoho, ids, wf_trigger="false").status_code == 200
    stats = emulator.admin.stats()
    assert stats["credits"]["total"] - before == 1
    assert stats["calls"][DELETE_CALL] == 1
    assert stats["deletes"] == {"no_wf_trigger": 1}
    assert emulator.admin.records("Orders") == []


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("ZohoCRM.modules.ALL", 400),
        ("ZohoCRM.modules.Orders.DELETE", 400),
        ("ZohoCRM.modules.Orders.ALL", 400),
        ("ZohoCRM.modules.Orders.WRITE ZohoCRM.modules.READ", 401),
    ],
)
def test_deleting_needs_a_delete_scope(
    scope: str,
    status: int,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """The all-modules scope or the module's own ALL/DELETE scope deletes; WRITE does not."""
    zoho = make_zoho(start_emulator(scope=scope))
    response = delete(zoho, ["5725767999999999999"])
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "OAUTH_SCOPE_MISMATCH"
