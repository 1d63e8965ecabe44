"""Legacy value → Zoho JSON / CSV conversion (syncd.crm.values)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from syncd.crm.values import (
    BULK_DATE_FORMAT,
    BULK_DATETIME_FORMAT,
    ValueNotRepresentable,
    bulk_format,
    to_csv_cell,
    to_json,
)
from syncd.errors import SyncdError
from syncd.model import FieldType as T

BERLIN = ZoneInfo("Europe/Berlin")


def test_none_clears_the_field() -> None:
    """NULL goes out as JSON null and an empty CSV cell, for every type."""
    for ftype in T:
        assert to_json(None, ftype, UTC) is None
        assert to_csv_cell(None, ftype, UTC) == ""


def test_naive_datetime_is_read_in_the_source_zone() -> None:
    """A naive timestamp is local time of the legacy DB and goes out with that zone's offset."""
    value = datetime(2024, 7, 1, 12, 30, 45, 999)
    assert to_json(value, T.DATETIME, BERLIN) == "2024-07-01T12:30:45+02:00"
    assert to_csv_cell(value, T.DATETIME, BERLIN) == "2024-07-01T12:30:45+02:00"
    assert to_json(datetime(2024, 1, 1, 8), T.DATETIME, BERLIN) == "2024-01-01T08:00:00+01:00"


def test_aware_datetime_keeps_its_instant() -> None:
    """An aware timestamp is sent at its own offset, the source zone does not shift it."""
    value = datetime(2024, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert to_json(value, T.DATETIME, BERLIN) == "2024-07-01T12:00:00-05:00"
    assert to_json(datetime(2024, 7, 1, tzinfo=UTC), T.DATETIME, BERLIN).endswith("+00:00")


def test_dates() -> None:
    """Dates are yyyy-MM-dd; a datetime mapped to a date takes the day in the source zone."""
    assert to_json(date(2024, 2, 29), T.DATE, UTC) == "2024-02-29"
    assert to_csv_cell("2024-02-29", T.DATE, UTC) == "2024-02-29"
    late_utc = datetime(2024, 2, 29, 23, 30, tzinfo=UTC)
    assert to_json(late_utc, T.DATE, BERLIN) == "2024-03-01"
    with pytest.raises(ValueNotRepresentable):
        to_json("29.02.2024", T.DATE, UTC)


def test_decimals() -> None:
    """Decimals are numbers in JSON and plain notation (never exponent) in CSV."""
    assert to_json(Decimal("12.50"), T.DECIMAL, UTC) == 12.5
    assert to_json(Decimal("1E+3"), T.DECIMAL, UTC) == 1000
    assert isinstance(to_json(Decimal("1E+3"), T.DECIMAL, UTC), int)
    assert to_csv_cell(Decimal("1E+3"), T.DECIMAL, UTC) == "1000"
    assert to_csv_cell(Decimal("1.5E-7"), T.DECIMAL, UTC) == "0.00000015"
    assert to_csv_cell(0.1, T.DECIMAL, UTC) == "0.1"
    assert to_csv_cell(Decimal("12.50"), T.DECIMAL, UTC) == "12.50"
    for bad in (Decimal("NaN"), float("inf"), "abc", True):
        with pytest.raises(ValueNotRepresentable):
            to_json(bad, T.DECIMAL, UTC)


def test_decimal_columns_with_more_than_nine_places_of_trailing_zeros() -> None:
    """A NUMERIC(27,10) column gives 10.0000000000: the value has no decimals, so the cell
    must not carry 10 places Zoho cannot read (before, the whole row was refused by Zoho)."""
    assert to_csv_cell(Decimal("10.0000000000"), T.DECIMAL, UTC) == "10"
    assert to_csv_cell(Decimal("-0.0000000010"), T.DECIMAL, UTC) == "-0.000000001"
    assert to_csv_cell(Decimal("0E-10"), T.DECIMAL, UTC) == "0"
    assert to_json(Decimal("10.0000000000"), T.DECIMAL, UTC) == 10
    with pytest.raises(ValueNotRepresentable):
        to_csv_cell(Decimal("0.0000000001"), T.DECIMAL, UTC)


def test_integers() -> None:
    """Integers accept exact integral values only, up to 18 digits."""
    assert to_json(42, T.INTEGER, UTC) == 42
    assert to_json(Decimal("42.000"), T.INTEGER, UTC) == 42
    assert to_json(" 7 ", T.INTEGER, UTC) == 7
    assert to_csv_cell(10**17, T.INTEGER, UTC) == "100000000000000000"
    for bad in ("abc", Decimal("1.5"), 2.5, 10**18, float("nan")):
        with pytest.raises(ValueNotRepresentable):
            to_json(bad, T.INTEGER, UTC)


def test_text_into_integer_says_why() -> None:
    """The refusal names the type and the reason, and is a SyncdError."""
    with pytest.raises(ValueNotRepresentable, match="str 'abc' cannot be written as integer") as e:
        to_json("abc", T.INTEGER, UTC)
    assert isinstance(e.value, SyncdError)


def test_booleans() -> None:
    """Booleans are true/false; 0/1 and common words are read, anything else is refused."""
    assert to_json(True, T.BOOLEAN, UTC) is True
    assert to_json(0, T.BOOLEAN, UTC) is False
    assert to_json("Yes", T.BOOLEAN, UTC) is True
    assert to_csv_cell(1, T.BOOLEAN, UTC) == "true"
    assert to_csv_cell(False, T.BOOLEAN, UTC) == "false"
    with pytest.raises(ValueNotRepresentable):
        to_json(2, T.BOOLEAN, UTC)


def test_text() -> None:
    """Text takes any scalar in its text form; bad bytes and NUL are refused."""
    assert to_json('Grüße, "x"\n', T.TEXT, UTC) == 'Grüße, "x"\n'
    assert to_json(12, T.TEXT, UTC) == "12"
    assert to_json(Decimal("1E+2"), T.TEXT, UTC) == "100"
    assert to_json(True, T.TEXT, UTC) == "true"
    assert to_json(b"abc", T.TEXT, UTC) == "abc"
    assert to_json(date(2024, 1, 2), T.TEXT, UTC) == "2024-01-02"
    for bad in (b"\xff", "a\x00b"):
        with pytest.raises(ValueNotRepresentable):
            to_json(bad, T.TEXT, UTC)


def test_bulk_formats_match_the_cells() -> None:
    """Date and datetime columns declare the format their cells are written in; others none."""
    assert bulk_format(T.DATE) == BULK_DATE_FORMAT == "yyyy-MM-dd"
    assert bulk_format(T.DATETIME) == BULK_DATETIME_FORMAT == "yyyy-MM-dd'T'HH:mm:ssXXX"
    assert bulk_format(T.TEXT) is None
    assert bulk_format(T.DECIMAL) is None
