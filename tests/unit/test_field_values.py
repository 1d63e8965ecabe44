"""A field's value options (issue 16, item 3): a value map, a default for NULL, multi-select
values from a delimited text or an array, decimal places; read from the config file and
applied by ``FieldEncoder`` before the type conversion, the same on every path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.crm.encoder import FieldEncoder, _before, _before_all
from syncd.crm.preflight import check_fields, picklist_warnings, precision_warnings
from syncd.crm.values import csv_cell_encoder
from syncd.errors import RowNotRepresentable
from syncd.model import FieldMap, FieldType, PendingRow
from tests.unit.test_config import base, load, problems

TZ = ZoneInfo("Europe/Berlin")
STATUS = FieldMap("Status", "status", value_map=(("P", "Paid"), ("S", "Shipped"), ("1", "New")))
TAGS = FieldMap("Tags", "tags", FieldType.MULTISELECT, split=",")
LABELS = FieldMap("Labels", "labels", FieldType.MULTISELECT)
PAID = FieldMap("Paid", "paid", FieldType.BOOLEAN, default=False)
AMOUNT = FieldMap("Amount", "total", decimal_places=2)
TYPES = {"status": FieldType.TEXT, "tags": FieldType.TEXT, "labels": FieldType.TEXT}
TYPES |= {"paid": FieldType.TEXT, "total": FieldType.DECIMAL}


def _encoder(*fields: FieldMap) -> FieldEncoder:
    return FieldEncoder("parent_id", fields, TYPES, TZ)


def _row(key: int, **values: Any) -> PendingRow:
    return PendingRow(key, values)


def _all_paths(encoder: FieldEncoder, rows: list[PendingRow]) -> tuple[Any, ...]:
    """Records, row-by-row CSV cells and whole-column CSV cells of ``rows``."""
    records = [dict(encoder.record(row).fields) for row in rows]
    cells = [list(encoder.bulk_row(row).cells) for row in rows]
    whole = encoder.bulk_rows(rows)
    assert whole is not None
    return records, cells, [list(row.cells) for row in whole]


def test_a_value_map_translates_codes_by_their_text_on_every_path() -> None:
    rows = [_row(1, status="P"), _row(2, status="S "), _row(3, status=1), _row(4, status=None)]
    records, cells, whole = _all_paths(_encoder(STATUS), rows)
    assert [r["Status"] for r in records] == ["Paid", "Shipped", "New", None]
    assert cells == whole == [["Paid"], ["Shipped"], ["New"], [""]]


def test_a_value_the_map_lacks_is_a_reject_naming_column_and_value() -> None:
    encoder = _encoder(STATUS)
    row = _row(7, status="X")
    for encode in (encoder.record, encoder.bulk_row):
        with pytest.raises(RowNotRepresentable) as caught:
            encode(row)
        assert caught.value.column == "status" and caught.value.api_name == "Status"
        assert "'X'" in caught.value.reason and "value map has no entry" in caught.value.reason
    # The whole-column path gives up, so the caller encodes row by row and rejects this row.
    assert encoder.bulk_rows([_row(1, status="P"), row]) is None


def test_a_default_replaces_null_only() -> None:
    rows = [_row(1, paid=None), _row(2, paid="Y"), _row(3, paid="N"), _row(4, paid="1")]
    rows += [_row(5, paid="0"), _row(6, paid=True)]
    records, cells, whole = _all_paths(_encoder(PAID), rows)
    assert [r["Paid"] for r in records] == [False, True, False, True, False, True]
    assert cells == whole == [["false"], ["true"], ["false"], ["true"], ["false"], ["true"]]


def test_a_delimited_text_becomes_multi_select_values() -> None:
    rows = [_row(1, tags="red, blue,,red"), _row(2, tags=""), _row(3, tags=None)]
    records, cells, whole = _all_paths(_encoder(TAGS), rows)
    assert [r["Tags"] for r in records] == [["red", "blue"], None, None]
    assert cells == whole == [["red;blue"], [""], [""]]


def test_an_array_column_becomes_multi_select_values_mapped_one_by_one() -> None:
    labels = FieldMap("Labels", "labels", FieldType.MULTISELECT, value_map=(("a", "A"), ("b", "B")))
    rows = [_row(1, labels=["a", "b"]), _row(2, labels=[]), _row(3, labels=None)]
    records, cells, whole = _all_paths(_encoder(labels), rows)
    assert [r["Labels"] for r in records] == [["A", "B"], None, None]
    assert cells == whole == [["A;B"], [""], [""]]
    with pytest.raises(RowNotRepresentable, match="'c'"):
        _encoder(labels).record(_row(4, labels=["a", "c"]))


def test_a_multi_select_value_holding_the_separator_is_a_reject() -> None:
    """Bulk Write separates the values by ";": such a value cannot go there, nor (so both paths
    agree) through the records API."""
    encoder = _encoder(LABELS)
    for encode in (encoder.record, encoder.bulk_row):
        with pytest.raises(RowNotRepresentable, match="cannot hold ';'"):
            encode(_row(1, labels=["a;b"]))


def test_more_decimal_places_than_the_field_keeps_is_a_reject_never_rounded() -> None:
    encoder = _encoder(AMOUNT)
    rows = [_row(1, total=Decimal("12.50")), _row(2, total=Decimal("3.100")), _row(3, total=7)]
    records, cells, whole = _all_paths(encoder, rows)
    assert [r["Amount"] for r in records] == [12.5, 3.1, 7]
    assert cells == whole == [["12.50"], ["3.100"], ["7"]]
    for encode in (encoder.record, encoder.bulk_row):
        with pytest.raises(RowNotRepresentable, match="3 decimal places; the field keeps 2"):
            encode(_row(4, total=Decimal("12.345")))
    assert encoder.bulk_rows([_row(4, total=Decimal("12.345"))]) is None


def test_fields_without_options_keep_the_plain_encoders() -> None:
    """No value option, no wrapper: the per-cell and per-column encoders are used as they are."""
    cell = csv_cell_encoder(FieldType.TEXT, TZ)
    assert _before(None, cell) is cell
    assert _before_all(None, list) is list
    assert not FieldMap("Name", "order_number").transforms
    encoder = _encoder(FieldMap("Name", "status"), STATUS)
    assert encoder._prepare == {"Name": None, "Status": encoder._prepare["Status"]}
    assert encoder._prepare["Status"] is not None


# --- the config file ------------------------------------------------------------------------


def test_value_options_are_read_from_the_config(tmp_path: Path) -> None:
    config = base()
    config["pipelines"][0]["fields"] |= {
        "Status": {"column": "status", "map": {"P": "Paid", "S": "Shipped"}, "default": "New"},
        "Tags": {"column": "tags", "split": ";"},
        "Labels": {"column": "labels", "type": "multiselect"},
        "Paid": {"column": "paid", "type": "boolean", "map": {"J": True}, "default": False},
        "Amount": {"column": "total", "decimal_places": 2},
    }
    fields = {f.api_name: f for f in load(tmp_path, config).pipelines[0].fields}
    assert fields["Status"] == FieldMap(
        "Status", "status", None, (("P", "Paid"), ("S", "Shipped")), "New"
    )
    assert fields["Tags"] == FieldMap("Tags", "tags", FieldType.MULTISELECT, split=";")
    assert fields["Labels"] == FieldMap("Labels", "labels", FieldType.MULTISELECT)
    assert fields["Paid"] == FieldMap(
        "Paid", "paid", FieldType.BOOLEAN, (("J", True),), default=False
    )
    assert fields["Amount"] == FieldMap("Amount", "total", decimal_places=2)
    assert not fields["Name"].transforms


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"column": "c", "split": ";", "type": "text"},
            "Amount.split: cuts a text into the values of a multi-select: use it with "
            'type = "multiselect" or without a type',
        ),
        (
            {"column": "c", "decimal_places": 2, "type": "text"},
            'Amount.decimal_places: is for numbers: use it with type = "decimal" or without a type',
        ),
        ({"column": "c", "decimal_places": 10}, "Amount.decimal_places: must be an integer from 0"),
        ({"column": "c", "map": {}}, "Amount.map: must not be empty"),
        ({"column": "c", "map": {"P": 1.5}}, "Amount.map.P: must be a text, an integer or true"),
        ({"column": "c", "split": ""}, "Amount.split: must be a separator of 1 to 5 characters"),
        ({"column": "c", "default": 1.5}, "Amount.default: must be a text, an integer or true/fa"),
    ],
)
def test_bad_value_options_name_their_key(
    tmp_path: Path, spec: dict[str, Any], expected: str
) -> None:
    config = base()
    config["pipelines"][0]["fields"]["Amount"] = spec
    found = problems(tmp_path, config)
    assert len(found) == 1 and f"pipelines[0].fields.{expected}" in found[0], found


# --- syncd check against the field metadata ------------------------------------------------


def test_check_warns_when_the_field_keeps_fewer_places_than_are_let_through() -> None:
    """The encoder does not see the metadata: check names the field and the key to set."""
    metadata = {
        "Amount": {"data_type": "currency", "decimal_place": 2},
        "Qty": {"decimal_place": 2},
    }
    plain = [FieldMap("Amount", "total"), FieldMap("Qty", "qty")]
    types = {"total": FieldType.DECIMAL, "qty": FieldType.INTEGER}
    assert precision_warnings("Orders", plain, types, metadata) == [
        "Orders.Amount keeps 2 decimal places, but values with more from column 'total' would "
        "be sent and rounded by the CRM: set decimal_places = 2 on the field to make them rejects"
    ]
    for places in (0, 2):
        declared = [FieldMap("Amount", "total", decimal_places=places)]
        assert precision_warnings("Orders", declared, types, metadata) == []
    assert precision_warnings("Orders", plain, types, {"Amount": {"decimal_place": None}}) == []


def test_a_multi_select_goes_only_to_a_multi_select_picklist() -> None:
    tags = FieldMap("Tags", "tags", FieldType.MULTISELECT, split=";")
    metadata: dict[str, dict[str, Any]] = {"parent_id": {"data_type": "text", "unique": {"a": 1}}}
    for data_type, ok in (("multiselectpicklist", True), ("text", False), ("picklist", False)):
        meta = metadata | {"Tags": {"data_type": data_type}}
        found = check_fields("Orders", "parent_id", [tags], {}, meta)
        assert (found == []) is ok, found
    status = FieldMap("Status", "status")
    meta = metadata | {"Status": {"data_type": "multiselectpicklist"}}
    assert check_fields("Orders", "parent_id", [status], {"status": FieldType.TEXT}, meta)


def test_check_warns_of_mapped_values_the_picklist_does_not_list() -> None:
    listed = [{"actual_value": v} for v in ("New", "Paid")]
    metadata = {"Status": {"data_type": "picklist", "pick_list_values": listed}}
    good = FieldMap("Status", "status", value_map=(("P", "Paid"),), default="New")
    bad = FieldMap("Status", "status", value_map=(("P", "Payed"),), default="Old")
    assert picklist_warnings("Orders", [good], metadata) == []
    assert picklist_warnings("Orders", [FieldMap("Status", "status")], metadata) == []
    assert picklist_warnings("Orders", [bad], metadata) == [
        "Orders.Status does not list 'Old', 'Payed', which its map or default writes: Zoho "
        "refuses such a value if the picklist is restricted; add it to the picklist or fix "
        "the mapping"
    ]
