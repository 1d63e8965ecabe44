"""The per-column CSV encoders give exactly what ``to_csv_cell`` gives, refusals included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from syncd.crm.values import (
    ValueNotRepresentable,
    csv_cell_encoder,
    csv_column_encoder,
    to_csv_cell,
)
from syncd.model import FieldType

VALUES: list[object] = [
    None,
    "",
    "plain",
    'quote " and, comma\r\nnew line',
    "nul \x00 inside",
    "Müller 🚚 שלום",
    0,
    -1,
    10**18 - 1,
    10**18,
    -(10**18) + 1,
    -(10**18),
    True,
    False,
    Decimal("0"),
    Decimal("0.00"),
    Decimal("12.50"),
    Decimal("-4999.99"),
    Decimal("1E+3"),
    Decimal("1.000000000"),
    Decimal("1.0000000000"),
    Decimal("0.123456789"),
    Decimal("0.1234567891"),
    Decimal("9999999999999999.99"),
    Decimal("99999999999999999"),
    Decimal("NaN"),
    Decimal("-Infinity"),
    1.5,
    0.1 + 0.2,
    float("nan"),
    date(2025, 1, 31),
    date(1, 1, 1),
    datetime(2025, 1, 31, 23, 59, 59, 999999),
    datetime(2025, 3, 30, 2, 30),
    datetime(2025, 1, 31, 8, 0, tzinfo=UTC),
    datetime(2025, 1, 31, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
    "2025-01-31",
    "2025-01-31 08:00:00",
    "05/01/2024",
    "1",
    "yes",
    b"bytes",
    [1, 2],
]


def _reference(value: object, ftype: FieldType) -> str | type[ValueNotRepresentable]:
    try:
        return to_csv_cell(value, ftype, ZoneInfo("Europe/Berlin"))
    except ValueNotRepresentable:
        return ValueNotRepresentable


@pytest.mark.parametrize("ftype", list(FieldType))
def test_each_column_encoder_matches_the_generic_conversion(ftype: FieldType) -> None:
    cell = csv_cell_encoder(ftype, ZoneInfo("Europe/Berlin"))
    for value in VALUES:
        expected = _reference(value, ftype)
        try:
            got: str | type[ValueNotRepresentable] = cell(value)
        except ValueNotRepresentable:
            got = ValueNotRepresentable
        assert got == expected, f"{ftype} {value!r}: {got!r} != {expected!r}"


def test_the_fast_paths_are_taken_for_the_driver_types() -> None:
    """Typical driver values come back as the generic conversion gives them (spot values, so a
    fast path that formats differently cannot hide behind the fallback)."""
    tz = ZoneInfo("Europe/Berlin")
    assert csv_cell_encoder(FieldType.DECIMAL, tz)(Decimal("12.50")) == "12.50"
    assert csv_cell_encoder(FieldType.DECIMAL, tz)(Decimal("1E+3")) == "1000"
    assert csv_cell_encoder(FieldType.DATETIME, tz)(datetime(2025, 7, 1, 8)) == (
        "2025-07-01T08:00:00+02:00"
    )
    assert csv_cell_encoder(FieldType.BOOLEAN, tz)(False) == "false"
    assert csv_cell_encoder(FieldType.INTEGER, tz)(-(10**18) + 1) == str(-(10**18) + 1)


def _reference_column(values: list[object], ftype: FieldType) -> object:
    cells = [_reference(v, ftype) for v in values]
    return ValueNotRepresentable if ValueNotRepresentable in cells else cells


def _column(values: list[object], ftype: FieldType) -> object:
    try:
        return csv_column_encoder(ftype, ZoneInfo("Europe/Berlin"))(values)
    except ValueNotRepresentable:
        return ValueNotRepresentable


HOMOGENEOUS: list[list[object]] = [
    ["a", "b", None, 'x"y,z\r\n', "Müller 🚚"],
    [1, -(10**18) + 1, 10**18 - 1, None, 0],
    [1, 10**18],
    [Decimal("12.50"), Decimal("0.00"), None, Decimal("-9999999999999999.999999999")],
    [Decimal("1.0000000000"), Decimal("2")],
    [Decimal("10000000000000000"), Decimal("1")],
    [Decimal("NaN"), Decimal("1")],
    [date(2025, 1, 31), None, date(1, 1, 1)],
    [datetime(2025, 3, 30, 2, 30), datetime(2025, 7, 1, 8), None],
    [datetime(2025, 7, 1, 8), datetime(2025, 7, 1, 8, tzinfo=UTC)],
    [True, False, None],
    [True, 1],
    [],
    [None, None],
]


@pytest.mark.parametrize("ftype", list(FieldType))
def test_a_whole_column_encodes_as_its_cells_do(ftype: FieldType) -> None:
    columns = [*HOMOGENEOUS, *([v, None, v] for v in VALUES), VALUES]
    for values in columns:
        assert _column(values, ftype) == _reference_column(values, ftype), (ftype, values)


ZONES: list[tzinfo] = [
    ZoneInfo("Europe/Berlin"),  # DST: the offset differs from value to value
    ZoneInfo("UTC"),  # the default: one offset
    timezone(timedelta(hours=5, minutes=30)),
    ZoneInfo("America/St_Johns"),  # half-hour offsets, DST
    timezone(timedelta(hours=-3, seconds=-20)),  # an offset in seconds
]

NAIVE_TIMES: list[datetime] = [
    datetime(2025, 1, 31, 23, 59, 59, 999999),
    datetime(2025, 3, 30, 2, 30),  # Berlin: skipped by the spring change
    datetime(2025, 10, 26, 2, 30),  # Berlin: twice in the autumn change (fold 0)
    datetime(2025, 10, 26, 2, 30, fold=1),  # ... and the second time
    datetime(2025, 7, 1, 8),
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59),
]


@pytest.mark.parametrize("tz", ZONES, ids=str)
def test_a_datetime_column_encodes_as_its_cells_do_in_every_zone(tz: tzinfo) -> None:
    values: list[object] = [*NAIVE_TIMES, None, NAIVE_TIMES[0]]
    reference = [to_csv_cell(v, FieldType.DATETIME, tz) for v in values]
    assert csv_column_encoder(FieldType.DATETIME, tz)(values) == reference
    assert [csv_cell_encoder(FieldType.DATETIME, tz)(v) for v in values] == reference


@pytest.mark.parametrize("tz", ZONES, ids=str)
def test_a_datetime_column_of_whole_seconds_encodes_as_its_cells_do(tz: tzinfo) -> None:
    """No value with a fraction: the column takes the plain ISO text (the usual column)."""
    values: list[object] = [*NAIVE_TIMES[1:], None]
    reference = [to_csv_cell(v, FieldType.DATETIME, tz) for v in values]
    assert csv_column_encoder(FieldType.DATETIME, tz)(values) == reference
