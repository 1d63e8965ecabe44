"""Lookup fields (issue 16 item 2): ``{"id": ...}`` in the records API (reference 4.7), and
Bulk Write's ``field_mappings[].find_by``, mandatory for a lookup (reference 5.2). Zoho's
answers for a parent that does not exist are UNCONFIRMED: INVALID_DATA naming the field."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from syncd.emulator.schema import SchemaError, parse_schema
from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

MODULES: list[dict[str, Any]] = [
    {
        "api_name": "Accounts",
        "fields": [
            {"api_name": "Account_Number", "unique": True, "mandatory": True},
            {"api_name": "Account_Name", "mandatory": True},
        ],
    },
    {
        "api_name": "Orders",
        "fields": [
            {"api_name": "parent_id", "unique": True, "mandatory": True},
            {"api_name": "Name", "mandatory": True},
            {"api_name": "Account", "type": "lookup", "module": "Accounts"},
        ],
    },
]
SCHEMA = parse_schema({"modules": MODULES}, "test")
HEADER = ["parent_id", "Name", "Account"]


@pytest.fixture
def zoho(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> Zoho:
    zoho = make_zoho(start_emulator(schema=SCHEMA, bulk_rows_per_second=None))
    account = {"Account_Number": "C1", "Account_Name": "Ann"}
    created = zoho.post("/crm/v8/Accounts", json={"data": [account]})
    assert created.status_code == 201, created.text
    return zoho


def _account_id(zoho: Zoho) -> str:
    (account,) = zoho.server.admin.records("Accounts")
    return str(account["id"])


def _stored(zoho: Zoho) -> dict[str, Any]:
    return {r["parent_id"]: r["Account"] for r in zoho.server.admin.records("Orders")}


def test_metadata_names_the_lookup_module(zoho: Zoho) -> None:
    fields = zoho.get("/crm/v8/settings/fields", params={"module": "Orders"}).json()["fields"]
    account = next(f for f in fields if f["api_name"] == "Account")
    assert account["data_type"] == "lookup" and account["json_type"] == "jsonobject"
    assert account["lookup"]["module"]["api_name"] == "Accounts"
    assert "lookup" not in next(f for f in fields if f["api_name"] == "Name")


def test_records_api_takes_the_id_of_an_existing_parent(zoho: Zoho) -> None:
    good = {"parent_id": "K1", "Name": "SO-1", "Account": {"id": _account_id(zoho)}}
    missing = {"parent_id": "K2", "Name": "SO-2", "Account": {"id": "5725767999999999"}}
    bare = {"parent_id": "K3", "Name": "SO-3", "Account": _account_id(zoho)}
    entries = zoho.upsert([good, missing, bare]).json()["data"]
    assert entries[0]["code"] == "SUCCESS"
    assert [(e["code"], e["details"]["api_name"]) for e in entries[1:]] == [
        ("INVALID_DATA", "Account"),
        ("INVALID_DATA", "Account"),
    ]
    assert _stored(zoho) == {"K1": _account_id(zoho)}


@pytest.mark.parametrize("find_by", ["Account_Number", "id"])
def test_bulk_write_finds_the_parent_by_find_by(zoho: Zoho, find_by: str) -> None:
    parent = "C1" if find_by == "Account_Number" else _account_id(zoho)
    mappings = [
        {"api_name": "parent_id", "index": 0},
        {"api_name": "Name", "index": 1},
        {"api_name": "Account", "index": 2, "find_by": find_by},
    ]
    rows = [["K1", "SO-1", parent], ["K2", "SO-2", "C9"], ["K3", "SO-3", ""]]
    details = zoho.run_job(rows, HEADER, mappings)
    _, _, result = zoho.result(details)
    assert [(r["STATUS"], r["ERRORS"]) for r in result] == [
        ("ADDED", ""),
        ("SKIPPED", "INVALID_DATA-Account"),
        ("ADDED", ""),
    ]
    assert _stored(zoho) == {"K1": _account_id(zoho), "K3": None}


def test_bulk_write_wants_find_by_for_a_lookup(zoho: Zoho) -> None:
    mappings = [{"api_name": name, "index": i} for i, name in enumerate(HEADER)]
    created = zoho.create_job(zoho.file_id([["K1", "SO-1", "C1"]], HEADER), mappings)
    assert created.status_code == 400
    assert created.json()["details"]["api_name"] == "Account"


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        ({"type": "lookup"}, "modules[1].fields[2].module: a lookup field"),
        ({"type": "lookup", "module": "Deals"}, "modules[1].Account.module: no module 'Deals'"),
        ({"type": "text", "module": "Accounts"}, "modules[1].fields[2].module: a lookup field"),
    ],
)
def test_a_lookup_names_a_module_of_the_schema(field: dict[str, Any], problem: str) -> None:
    modules = [MODULES[0], {**MODULES[1], "fields": [*MODULES[1]["fields"][:2], field]}]
    field.setdefault("api_name", "Account")
    with pytest.raises(SchemaError) as raised:
        parse_schema({"modules": modules}, "test")
    assert any(problem in line for line in raised.value.problems), raised.value.problems
