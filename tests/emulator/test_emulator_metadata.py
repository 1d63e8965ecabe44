"""Org and fields metadata, Zoho-shaped URL errors, and module schema files (reference 5.0, 7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from syncd.emulator.schema import SchemaError, default_schema, load_schema
from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho


def test_org_carries_the_zgid(zoho: Zoho) -> None:
    """GET /crm/v8/org answers org[0].zgid = the org id syncd sends as X-CRM-ORG."""
    response = zoho.get("/crm/v8/org")
    org = response.json()["org"][0]
    assert response.status_code == 200
    assert (org["zgid"], org["domain_name"]) == ("808232144", "org808232144")


def test_fields_metadata_describes_the_orders_schema(zoho: Zoho) -> None:
    """Fields metadata gives api_name, data_type, unique flags and picklist values per field."""
    response = zoho.get("/crm/v8/settings/fields", params={"module": "Orders"})
    fields = {f["api_name"]: f for f in response.json()["fields"]}
    assert response.status_code == 200
    assert fields["parent_id"]["unique"] == {"case_sensitive": False}
    assert fields["parent_id"]["system_mandatory"] is True
    assert fields["Name"]["unique"] == {}
    assert fields["Name"]["length"] == 120
    assert [v["actual_value"] for v in fields["Status"]["pick_list_values"]] == [
        "New",
        "Paid",
        "Shipped",
        "Cancelled",
        "Refunded",
    ]
    types = {name: f["data_type"] for name, f in fields.items()}
    assert types["Amount"] == "currency" and types["Ordered_At"] == "datetime"
    assert types["Quantity"] == "integer" and types["Paid"] == "boolean"
    assert fields["Created_Time"]["read_only"] is True
    assert all(len(f["id"]) == 19 for f in fields.values())


@pytest.mark.parametrize(
    ("params", "code"),
    [({}, "REQUIRED_PARAM_MISSING"), ({"module": "Invoices"}, "INVALID_MODULE")],
)
def test_fields_metadata_needs_a_known_module(
    zoho: Zoho, params: dict[str, str], code: str
) -> None:
    """Without ?module= or with an unknown module the fields call is a 400."""
    response = zoho.get("/crm/v8/settings/fields", params=params)
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_unknown_url_is_invalid_url_pattern(zoho: Zoho) -> None:
    """An unknown path answers 404 INVALID_URL_PATTERN in the Zoho envelope."""
    response = zoho.get("/crm/v9/whatever/else/entirely")
    assert response.status_code == 404
    assert response.json()["code"] == "INVALID_URL_PATTERN"
    assert response.json()["status"] == "error"


def test_wrong_method_is_invalid_request_method(zoho: Zoho) -> None:
    """A known path with the wrong method answers 400 INVALID_REQUEST_METHOD."""
    response = zoho.http.delete("/crm/bulk/v8/write")
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_REQUEST_METHOD")


def test_default_schema_is_orders_with_unique_parent_id() -> None:
    """The shipped schema has Orders keyed by the mandatory, case-insensitive parent_id."""
    orders = default_schema().module("orders")
    assert orders is not None
    assert [f.api_name for f in orders.unique_fields] == ["parent_id"]
    assert {f.api_name for f in orders.fields if f.mandatory} == {"parent_id", "Name"}


def test_json_schema_file_serves_its_module(
    tmp_path: Path,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """A JSON schema file defines the modules the emulator serves."""
    path = tmp_path / "schema.json"
    path.write_text(
        json.dumps(
            {
                "modules": [
                    {
                        "api_name": "Tickets",
                        "fields": [
                            {"api_name": "Ref", "type": "text", "unique": True, "mandatory": True},
                            {"api_name": "Opened", "type": "date"},
                        ],
                    }
                ]
            }
        )
    )
    zoho = make_zoho(start_emulator(schema=load_schema(path)))
    response = zoho.post("/crm/v8/Tickets", json={"data": [{"Ref": "T-1", "Opened": "2024-02-29"}]})
    assert response.status_code == 201
    assert zoho.post("/crm/v8/Orders", json={"data": [{}]}).json()["code"] == "INVALID_MODULE"


def test_bad_schema_lists_every_problem(tmp_path: Path) -> None:
    """A schema with several mistakes reports all of them, each with its path."""
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[modules]]\napi_name = "M"\nduplicate_check = ["Nope"]\n'
        '[[modules.fields]]\napi_name = "A"\ntype = "blob"\n'
        '[[modules.fields]]\napi_name = "B"\ntype = "boolean"\nunique = true\n'
        '[[modules.fields]]\napi_name = "C"\ntype = "picklist"\n'
    )
    with pytest.raises(SchemaError) as caught:
        load_schema(path)
    problems = caught.value.problems
    assert len(problems) == 4
    assert all(p.startswith("bad.toml: modules[0]") for p in problems)
    assert any("fields[0].type" in p for p in problems)
    assert any("fields[1].unique" in p for p in problems)
    assert any("fields[2].values" in p for p in problems)
    assert any("duplicate_check" in p for p in problems)
