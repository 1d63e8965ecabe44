"""Multi-select picklists: a JSON array of strings in the records API (reference 4.7), one CSV
cell with the values separated by ";" in Bulk Write (reference 5.6); each value must be listed.
Also the ``decimal_place`` a currency field reports in its metadata (UNCONFIRMED key)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from syncd.emulator.schema import SchemaError, parse_schema
from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

SCHEMA = parse_schema(
    {
        "modules": [
            {
                "api_name": "Orders",
                "fields": [
                    {"api_name": "parent_id", "unique": True, "mandatory": True},
                    {"api_name": "Name", "mandatory": True},
                    {
                        "api_name": "Tags",
                        "type": "multiselectpicklist",
                        "values": ["red", "green", "blue"],
                    },
                    {"api_name": "Amount", "type": "currency", "decimal_places": 2},
                ],
            }
        ]
    },
    "test",
)


@pytest.fixture
def zoho(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> Zoho:
    return make_zoho(start_emulator(schema=SCHEMA, bulk_rows_per_second=None))


def _stored(zoho: Zoho) -> dict[str, Any]:
    return {r["parent_id"]: r["Tags"] for r in zoho.server.admin.records("Orders")}


@pytest.mark.parametrize(
    ("tags", "ok"),
    [(["red", "blue"], True), (None, True), ("red", False), (["red", "pink"], False), ([1], False)],
)
def test_records_api_takes_an_array_of_listed_values(zoho: Zoho, tags: Any, ok: bool) -> None:
    entry = zoho.upsert([{"parent_id": "K1", "Name": "SO-1", "Tags": tags}]).json()["data"][0]
    if ok:
        assert entry["code"] == "SUCCESS" and _stored(zoho) == {"K1": tags}
    else:
        assert entry["code"] == "INVALID_DATA"
        assert entry["details"]["expected_data_type"] == "multiselectpicklist"
        assert _stored(zoho) == {}


def test_bulk_write_splits_a_cell_at_semicolons(zoho: Zoho) -> None:
    header = ["parent_id", "Name", "Tags"]
    details = zoho.run_job(
        [["K1", "SO-1", "red;blue"], ["K2", "SO-2", "green"], ["K3", "SO-3", "red;pink"]], header
    )
    _, _, result = zoho.result(details)
    assert [r["ERRORS"] for r in result] == ["", "", "INVALID_DATA-Tags"]
    assert _stored(zoho) == {"K1": ["red", "blue"], "K2": ["green"]}


def test_metadata_describes_the_multi_select_and_decimal_places(zoho: Zoho) -> None:
    fields = zoho.get("/crm/v8/settings/fields", params={"module": "Orders"}).json()["fields"]
    meta = {f["api_name"]: f for f in fields}
    assert meta["Tags"]["data_type"] == "multiselectpicklist"
    assert meta["Tags"]["json_type"] == "jsonarray"
    assert [v["actual_value"] for v in meta["Tags"]["pick_list_values"]] == ["red", "green", "blue"]
    assert (meta["Amount"]["decimal_place"], meta["Name"]["decimal_place"]) == (2, None)


def test_schema_checks_multi_select_values_and_decimal_places() -> None:
    with pytest.raises(SchemaError) as caught:
        parse_schema(
            {
                "modules": [
                    {
                        "api_name": "M",
                        "fields": [
                            {"api_name": "T", "type": "multiselectpicklist"},
                            {"api_name": "N", "type": "text", "decimal_places": 2},
                        ],
                    }
                ]
            },
            "s.toml",
        )
    assert caught.value.problems == [
        "s.toml: modules[0].fields[0].values: a picklist needs its values",
        "s.toml: modules[0].fields[1].decimal_places: only a double or currency field has them",
    ]
