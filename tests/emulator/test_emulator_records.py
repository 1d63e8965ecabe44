"""Insert / update / upsert records: entries, statuses, validation, duplicates (reference 4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

Order = Callable[..., dict[str, Any]]


def test_insert_answers_201_with_one_success_entry_per_record(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """POST /crm/v8/{module} inserts: 201, entries with SUCCESS, 'record added', a 19-digit id."""
    response = zoho.post("/crm/v8/Orders", json={"data": [order(), order(parent_id="A-2")]})
    entries = response.json()["data"]
    assert response.status_code == 201
    assert [e["message"] for e in entries] == ["record added", "record added"]
    assert all(e["code"] == "SUCCESS" and e["status"] == "success" for e in entries)
    details = entries[0]["details"]
    assert len(details["id"]) == 19 and details["id"].isdigit()
    assert details["$approval_state"] == "approved"
    assert set(details) >= {"Created_Time", "Modified_Time", "Created_By", "Modified_By"}
    stored = {r["parent_id"]: r for r in emulator.admin.records("Orders")}
    assert stored["A-1"]["id"] == details["id"]
    assert stored["A-1"]["Created_Time"] == details["Created_Time"]
    assert stored["A-1"]["Ordered_At"] == "2024-01-05T08:00:00+00:00"  # org time zone is UTC


def test_update_by_id_answers_200(zoho: Zoho, order: Order, emulator: EmulatorServer) -> None:
    """PUT /crm/v8/{module} updates records named by id; PUT .../{id} updates one."""
    record_id = zoho.post("/crm/v8/Orders", json={"data": [order()]}).json()["data"][0]["details"][
        "id"
    ]
    many = zoho.put("/crm/v8/Orders", json={"data": [{"id": record_id, "Status": "Shipped"}]})
    one = zoho.put(f"/crm/v8/Orders/{record_id}", json={"data": [{"Quantity": 7}]})
    assert (many.status_code, one.status_code) == (200, 200)
    assert many.json()["data"][0]["message"] == "record updated"
    (stored,) = emulator.admin.records("Orders")
    assert (stored["Status"], stored["Quantity"], stored["Name"]) == ("Shipped", 7, "SO-0001")


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"Status": "Paid"}, "MANDATORY_NOT_FOUND"),
        ({"id": "5725767000000000000", "Status": "Paid"}, "INVALID_DATA"),
    ],
)
def test_update_needs_an_existing_id(zoho: Zoho, record: dict[str, Any], code: str) -> None:
    """An update entry without id, or with an unknown id, is refused with json_path $.data[0].id."""
    response = zoho.put("/crm/v8/Orders", json={"data": [record]})
    (entry,) = response.json()["data"]
    assert response.status_code == 400
    assert (entry["code"], entry["details"]["json_path"]) == (code, "$.data[0].id")


def test_upsert_matches_the_unique_field_case_insensitively(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """Upsert inserts a new key, then updates it when the key comes back in another case."""
    first = zoho.upsert([order(parent_id="ab-1")], duplicate_check_fields=["parent_id"]).json()[
        "data"
    ][0]
    second = zoho.upsert(
        [order(parent_id="AB-1", Name="SO-9")], duplicate_check_fields=["parent_id"]
    )
    entry = second.json()["data"][0]
    assert (first["action"], first["duplicate_field"], first["message"]) == (
        "insert",
        None,
        "record added",
    )
    assert second.status_code == 200
    assert (entry["action"], entry["duplicate_field"], entry["message"]) == (
        "update",
        "parent_id",
        "record updated",
    )
    assert entry["details"]["id"] == first["details"]["id"]
    assert [r["Name"] for r in emulator.admin.records("Orders")] == ["SO-9"]


@pytest.mark.parametrize("status", [200, 201])
def test_all_insert_upsert_status_is_a_setting(
    status: int,
    order: Order,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """An upsert that only inserted answers upsert_all_insert_status (200 by default)."""
    zoho = make_zoho(start_emulator(upsert_all_insert_status=status))
    assert zoho.upsert([order()]).status_code == status


def test_mixed_results_are_207_in_input_order(zoho: Zoho, order: Order) -> None:
    """One good and two bad records: 207, entries in input order, json_path names the index."""
    response = zoho.upsert(
        [
            order(parent_id="X-1"),
            order(parent_id="X-2", Quantity="3"),
            order(parent_id="X-3", Name=None),
        ]
    )
    entries = response.json()["data"]
    assert response.status_code == 207
    assert [e["status"] for e in entries] == ["success", "error", "error"]
    assert entries[1] == {
        "code": "INVALID_DATA",
        "details": {
            "expected_data_type": "integer",
            "api_name": "Quantity",
            "json_path": "$.data[1].Quantity",
        },
        "message": "invalid data",
        "status": "error",
    }
    assert entries[2]["code"] == "MANDATORY_NOT_FOUND"
    assert entries[2]["details"] == {"api_name": "Name", "json_path": "$.data[2].Name"}


def test_all_refused_is_400_with_data(zoho: Zoho, order: Order) -> None:
    """When every record fails the call is 400 but still carries one entry per record."""
    response = zoho.upsert([order(Amount="12.50"), order(parent_id="")])
    assert response.status_code == 400
    assert [e["code"] for e in response.json()["data"]] == ["INVALID_DATA", "MANDATORY_NOT_FOUND"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("Amount", "12.50", "currency"),
        ("Amount", True, "currency"),
        ("Quantity", 1.5, "integer"),
        ("Quantity", 1_234_567_890, "integer"),
        ("Paid", "true", "boolean"),
        ("Order_Date", "01/05/2024", "date"),
        ("Order_Date", "2024-02-30", "date"),
        ("Ordered_At", "2024-01-05T10:00:00", "datetime"),
        ("Customer_Email", "not-an-email", "email"),
        ("Status", "Lost", "picklist"),
        ("Notes", 42, "textarea"),
    ],
)
def test_wrong_values_are_invalid_data(
    zoho: Zoho, order: Order, field: str, value: Any, expected: str
) -> None:
    """A value of the wrong JSON type or format is INVALID_DATA naming the expected data type."""
    entry = zoho.upsert([order(**{field: value})]).json()["data"][0]
    assert entry["code"] == "INVALID_DATA"
    assert entry["details"] == {
        "expected_data_type": expected,
        "api_name": field,
        "json_path": f"$.data[0].{field}",
    }


def test_text_longer_than_the_field_is_invalid_data(zoho: Zoho, order: Order) -> None:
    """Name is 120 characters at most: INVALID_DATA with maximum_length."""
    entry = zoho.upsert([order(Name="x" * 121)]).json()["data"][0]
    assert entry["details"] == {
        "maximum_length": 120,
        "api_name": "Name",
        "json_path": "$.data[0].Name",
    }
    assert zoho.upsert([order(Name="x" * 120)]).status_code == 200


def test_null_clears_but_not_a_mandatory_field(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """null clears an optional field on update; nulling a mandatory one is MANDATORY_NOT_FOUND."""
    zoho.upsert([order()])
    assert zoho.upsert([{"parent_id": "A-1", "Notes": None}]).status_code == 200
    refused = zoho.upsert([{"parent_id": "A-1", "Name": None}]).json()["data"][0]
    assert refused["code"] == "MANDATORY_NOT_FOUND"
    (stored,) = emulator.admin.records("Orders")
    assert (stored["Notes"], stored["Name"]) == (None, "SO-0001")


def test_insert_of_an_existing_unique_value_is_duplicate_data(zoho: Zoho, order: Order) -> None:
    """Insert with a parent_id that exists (any case) is DUPLICATE_DATA with the holder's id."""
    record_id = zoho.post("/crm/v8/Orders", json={"data": [order(parent_id="dup")]}).json()["data"][
        0
    ]["details"]["id"]
    response = zoho.post("/crm/v8/Orders", json={"data": [order(parent_id="DUP")]})
    (entry,) = response.json()["data"]
    assert response.status_code == 400
    assert (entry["code"], entry["message"]) == ("DUPLICATE_DATA", "duplicate data")
    assert entry["details"]["api_name"] == "parent_id"
    assert entry["details"]["json_path"] == "$.data[0].parent_id"
    assert entry["details"]["duplicate_record"]["id"] == record_id
    assert entry["details"]["duplicate_record"]["module"]["api_name"] == "Orders"


def test_duplicate_keys_in_one_upsert_are_sequential_by_default(
    zoho: Zoho, order: Order, emulator: EmulatorServer
) -> None:
    """Two entries with one key in a request: the second updates what the first inserted."""
    entries = zoho.upsert([order(Name="first"), order(Name="second")]).json()["data"]
    assert [e["action"] for e in entries] == ["insert", "update"]
    assert [r["Name"] for r in emulator.admin.records("Orders")] == ["second"]


def test_duplicate_keys_in_one_upsert_can_be_duplicate_data(
    order: Order,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """With intra_request_duplicates='duplicate_data' the second entry is DUPLICATE_DATA."""
    zoho = make_zoho(start_emulator(intra_request_duplicates="duplicate_data"))
    response = zoho.upsert(
        [order(Name="first"), order(Name="second")], duplicate_check_fields=["parent_id"]
    )
    assert response.status_code == 207
    assert [e["code"] for e in response.json()["data"]] == ["SUCCESS", "DUPLICATE_DATA"]


def test_omitted_duplicate_check_fields_match_name_first(zoho: Zoho, order: Order) -> None:
    """Without duplicate_check_fields a custom module checks its Name first, then unique fields."""
    zoho.upsert([order(parent_id="P-1", Name="SO-1")])
    entry = zoho.upsert([order(parent_id="P-2", Name="so-1")]).json()["data"][0]
    assert (entry["action"], entry["duplicate_field"]) == ("update", "Name")
    listed = zoho.upsert(
        [order(parent_id="P-3", Name="SO-1")], duplicate_check_fields=["parent_id"]
    )
    assert listed.json()["data"][0]["action"] == "insert"


def test_duplicate_check_fields_must_be_unique_fields(zoho: Zoho, order: Order) -> None:
    """duplicate_check_fields naming a non-unique field is a request-level 400 INVALID_DATA."""
    response = zoho.upsert([order()], duplicate_check_fields=["parent_id", "Notes"])
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_DATA"
    assert response.json()["details"]["json_path"] == "$.duplicate_check_fields[1]"


def test_unknown_keys_are_ignored(zoho: Zoho, order: Order, emulator: EmulatorServer) -> None:
    """Keys that are not field API names are ignored, as Zoho does."""
    assert zoho.upsert([order(Legacy_Column="x", trigger="y")]).status_code == 200
    assert "Legacy_Column" not in emulator.admin.records("Orders")[0]


@pytest.mark.parametrize(
    ("count", "code", "status"),
    [(101, "LIMIT_EXCEEDED", 400), (101, "INVALID_DATA", 413)],
)
def test_more_than_100_records_is_refused(
    count: int,
    code: str,
    status: int,
    order: Order,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """More than 100 records in a call is refused with the configured code and status."""
    zoho = make_zoho(start_emulator(over_limit_code=code, over_limit_status=status))
    records = [order(parent_id=f"K{i}") for i in range(count)]
    response = zoho.upsert(records)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert zoho.upsert(records[:100]).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/crm/v8/Invoices/upsert", {"data": [{}]}, 400, "INVALID_MODULE"),
        ("/crm/v8/Orders/upsert", {"records": []}, 400, "MANDATORY_NOT_FOUND"),
        ("/crm/v8/Orders/upsert", {"data": []}, 400, "INVALID_DATA"),
    ],
)
def test_request_level_errors(
    zoho: Zoho, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    """Unknown module or a body without records is one top-level error, not per-record entries."""
    response = zoho.post(path, json=body)
    assert (response.status_code, response.json()["code"], response.json()["status"]) == (
        status,
        code,
        "error",
    )


def test_body_that_is_not_json_is_400(zoho: Zoho) -> None:
    """A body that is not JSON answers 400 INVALID_DATA."""
    response = zoho.post("/crm/v8/Orders/upsert", content=b"{not json")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_DATA")


def test_unrestricted_picklists_accept_new_values(
    order: Order,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """With strict_picklists off a picklist takes any string."""
    zoho = make_zoho(start_emulator(strict_picklists=False))
    assert zoho.upsert([order(Status="Lost")]).status_code == 200
