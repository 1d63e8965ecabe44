"""Get Records by id: ids and fields, values as stored, 204, errors, scopes, credits."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

Order = Callable[..., dict[str, Any]]
FIELDS = "parent_id,Amount,Order_Date,Ordered_At,Paid,Quantity,Notes"


def insert(zoho: Zoho, *records: dict[str, Any]) -> list[str]:
    response = zoho.post("/crm/v8/Orders", json={"data": list(records)})
    assert response.status_code == 201, response.text
    return [entry["details"]["id"] for entry in response.json()["data"]]


def test_ids_answer_the_requested_fields_as_stored(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """?ids=&fields= answers id plus exactly those fields, in the order of the ids asked."""
    first, second = insert(zoho, order(), order(parent_id="A-2", Notes=None, Paid=False))
    response = zoho.get("/crm/v8/Orders", params={"ids": f"{second},{first}", "fields": FIELDS})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    stored = {r["id"]: r for r in emulator.admin.records("Orders")}
    assert [entry["id"] for entry in data] == [second, first]
    for entry in data:
        assert set(entry) == {"id", *FIELDS.split(",")}
        assert entry == {name: stored[entry["id"]][name] for name in entry}
    assert data[1]["Ordered_At"] == "2024-01-05T08:00:00+00:00"  # normalized to the org zone
    assert (data[0]["Notes"], data[0]["Paid"], data[1]["Amount"]) == (None, False, 12.5)


def test_unknown_ids_are_left_out_and_none_found_is_204(zoho: Zoho, order: Order) -> None:
    """An id Zoho does not know is missing from data; when none is known: 204, no body."""
    (known,) = insert(zoho, order())
    unknown = "5725767999999999999"
    some = zoho.get("/crm/v8/Orders", params={"ids": f"{unknown},{known}", "fields": "Name"})
    assert [entry["id"] for entry in some.json()["data"]] == [known]
    none = zoho.get("/crm/v8/Orders", params={"ids": unknown, "fields": "Name"})
    assert (none.status_code, none.content) == (204, b"")
    single = zoho.get(f"/crm/v8/Orders/{unknown}", params={"fields": "Name"})
    assert (single.status_code, single.content) == (204, b"")


def test_single_record_form(zoho: Zoho, order: Order, emulator: EmulatorServer) -> None:
    """GET /{module}/{id} answers one entry; fields narrows it, without fields it is whole."""
    (record_id,) = insert(zoho, order())
    narrow = zoho.get(f"/crm/v8/Orders/{record_id}", params={"fields": "Name,Status"})
    assert narrow.json() == {"data": [{"id": record_id, "Name": "SO-0001", "Status": "Paid"}]}
    whole = zoho.get(f"/crm/v8/Orders/{record_id}")
    assert whole.json() == {"data": emulator.admin.records("Orders")}


@pytest.mark.parametrize(
    ("path", "params", "code", "details"),
    [
        ("/crm/v8/Orders", {"ids": "1"}, "REQUIRED_PARAM_MISSING", {"param_name": "fields"}),
        ("/crm/v8/Orders", {"ids": "1", "fields": " , "}, "REQUIRED_PARAM_MISSING", None),
        ("/crm/v8/Orders", {"fields": "Name"}, "REQUIRED_PARAM_MISSING", {"param_name": "ids"}),
        (
            "/crm/v8/Orders",
            {"ids": ",".join(str(i) for i in range(101)), "fields": "Name"},
            "LIMIT_EXCEEDED",
            {"limit": 100, "param_name": "ids"},
        ),
        (
            "/crm/v8/Orders",
            {"ids": "1", "fields": ",".join(["Name"] + [f"F{i}" for i in range(50)])},
            "LIMIT_EXCEEDED",
            {"limit": 50, "param_name": "fields"},
        ),
        (
            "/crm/v8/Orders",
            {"ids": "1", "fields": "Name,Colour"},
            "INVALID_DATA",
            {"param_name": "fields", "api_name": "Colour"},
        ),
        ("/crm/v8/Orders/1", {"fields": "Colour"}, "INVALID_DATA", None),
        ("/crm/v8/Invoices", {"ids": "1", "fields": "Name"}, "INVALID_MODULE", None),
    ],
)
def test_request_errors_are_400_and_free(
    zoho: Zoho,
    emulator: EmulatorServer,
    path: str,
    params: dict[str, str],
    code: str,
    details: dict[str, Any] | None,
) -> None:
    """Missing fields or ids, too many of either, an unknown field or module: 400, no credit."""
    response = zoho.get(path, params=params)
    body = response.json()
    assert (response.status_code, body["code"], body["status"]) == (400, code, "error")
    if details is not None:
        assert body["details"] == details
    assert emulator.admin.stats()["credits"]["total"] == 0


def test_100_ids_are_one_call_for_one_credit(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """A read costs 1 credit whatever it finds, 204 included."""
    ids = insert(zoho, *(order(parent_id=f"K{i}") for i in range(100)))
    before = emulator.admin.stats()["credits"]["total"]
    full = zoho.get("/crm/v8/Orders", params={"ids": ",".join(ids), "fields": "parent_id"})
    empty = zoho.get("/crm/v8/Orders", params={"ids": "1", "fields": "parent_id"})
    assert (full.status_code, len(full.json()["data"]), empty.status_code) == (200, 100, 204)
    stats = emulator.admin.stats()
    assert stats["credits"]["total"] - before == 2
    assert stats["calls"]["GET /crm/v8/{module}"] == 2


@pytest.mark.parametrize(
    ("scope", "status"),
    [
        ("ZohoCRM.modules.ALL", 204),
        ("ZohoCRM.modules.READ", 204),
        ("ZohoCRM.modules.Orders.READ", 204),
        ("ZohoCRM.modules.Orders.ALL", 204),
        ("ZohoCRM.modules.Orders.CREATE ZohoCRM.modules.Leads.READ", 401),
    ],
)
def test_reading_needs_a_read_scope(
    scope: str,
    status: int,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """The all-modules or the module's own ALL/READ scope reads; a write scope does not."""
    zoho = make_zoho(start_emulator(scope=scope))
    response = zoho.get("/crm/v8/Orders", params={"ids": "1", "fields": "Name"})
    assert response.status_code == status
    if status == 401:
        assert response.json()["code"] == "OAUTH_SCOPE_MISMATCH"


def test_admin_deletes_a_record_as_a_person_would(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """The admin delete removes the record and frees its unique value for a new record."""
    (record_id,) = insert(zoho, order())
    emulator.admin.delete_record("Orders", record_id)
    assert emulator.admin.records("Orders") == []
    gone = zoho.get(f"/crm/v8/Orders/{record_id}", params={"fields": "Name"})
    assert gone.status_code == 204
    again = zoho.upsert([order()], duplicate_check_fields=["parent_id"]).json()["data"][0]
    assert again["action"] == "insert" and again["details"]["id"] != record_id
    with pytest.raises(httpx.HTTPStatusError) as caught:
        emulator.admin.delete_record("Orders", record_id)
    assert caught.value.response.status_code == 404
