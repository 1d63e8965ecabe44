"""Legacy values → Zoho values: JSON for the Upsert API, CSV cells for Bulk Write.

Pure functions. A value that cannot be written faithfully raises ``ValueNotRepresentable``
instead of being guessed at: a silently wrong value in the CRM is worse than a visible reject.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.errors import SyncdError
from syncd.model import FieldType

BULK_DATE_FORMAT = "yyyy-MM-dd"
BULK_DATETIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ssXXX"
"""Formats declared in ``field_mappings[].format``; Zoho's default CSV date format is disputed
(reference §5.6), so every date and datetime column declares one of these."""

MAX_INTEGER_DIGITS = 18
"""Zoho's Long Integer holds up to 18 digits; Number fields hold fewer (Zoho reports those)."""

MAX_DECIMAL_PLACES = 9
MAX_DECIMAL_INTEGER_DIGITS = 16
"""Zoho's Currency/Decimal holds up to 16 digits before and 9 after the point (reference 4.7):
a value with more is a reject naming its column, never rounded on the way."""

FLOAT_DIGITS = 15
"""Significant decimal digits a binary double holds faithfully: a float column's 0.1 + 0.2 is
the 0.3 the legacy application shows, not 0.30000000000000004."""

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class ValueNotRepresentable(SyncdError):
    """A legacy value has no faithful form in the CRM field type it is mapped to."""

    def __init__(self, ftype: FieldType, value: object, reason: str) -> None:
        self.ftype, self.reason = ftype, reason
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        super().__init__(f"{type(value).__name__} {shown} cannot be written as {ftype}: {reason}")


def bulk_format(ftype: FieldType) -> str | None:
    """The ``format`` to declare for a Bulk Write column of this type (dates only)."""
    if ftype is FieldType.DATE:
        return BULK_DATE_FORMAT
    if ftype is FieldType.DATETIME:
        return BULK_DATETIME_FORMAT
    return None


def to_json(value: Any, ftype: FieldType, tz: tzinfo) -> object:
    """The JSON value of a legacy ``value`` for a field of ``ftype`` (None → null clears it).

    Naive datetimes are read in the source time zone ``tz``.
    """
    if value is None:
        return None
    if ftype is FieldType.DECIMAL:
        number = _crm_decimal(value)
        # Zoho's Decimal/Currency is a double; integral values go out exact as integers.
        return int(number) if number == number.to_integral_value() else float(number)
    return _convert(value, ftype, tz)


def to_csv_cell(value: Any, ftype: FieldType, tz: tzinfo) -> str:
    """The CSV cell of a legacy ``value`` for a column of ``ftype`` (None → empty cell)."""
    if value is None:
        return ""
    if ftype is FieldType.DECIMAL:
        # Plain notation: Zoho does not read exponents such as 1E+3.
        return format(_crm_decimal(value), "f")
    converted = _convert(value, ftype, tz)
    if isinstance(converted, bool):
        return "true" if converted else "false"
    return str(converted)


def _convert(value: Any, ftype: FieldType, tz: tzinfo) -> str | int | bool:
    if ftype is FieldType.TEXT:
        return _text(value, tz)
    if ftype is FieldType.INTEGER:
        return _integer(value, ftype)
    if ftype is FieldType.BOOLEAN:
        return _boolean(value, ftype)
    if ftype is FieldType.DATE:
        return _date(value, ftype, tz).isoformat()
    if ftype is FieldType.DATETIME:
        return _datetime(value, ftype, tz).isoformat(timespec="seconds")
    raise ValueError(f"unknown field type {ftype!r}")


def _text(value: Any, tz: tzinfo) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueNotRepresentable(FieldType.TEXT, value, "bytes are not UTF-8") from None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _datetime(value, FieldType.TEXT, tz).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float):
        return format(_decimal(value, FieldType.TEXT), "f")
    if isinstance(value, dict | list):
        # A json/jsonb column: the JSON text the legacy application stored, not a Python repr.
        try:
            return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        except (TypeError, ValueError):
            raise ValueNotRepresentable(FieldType.TEXT, value, "it has no JSON form") from None
    text = str(value)
    if "\x00" in text:
        raise ValueNotRepresentable(FieldType.TEXT, value, "text contains a NUL character")
    return text


def _integer(value: Any, ftype: FieldType) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    else:
        exact = _decimal(value, ftype)
        if exact != exact.to_integral_value():
            raise ValueNotRepresentable(ftype, value, "it has a fractional part")
        number = int(exact)
    if len(str(abs(number))) > MAX_INTEGER_DIGITS:
        raise ValueNotRepresentable(ftype, value, f"more than {MAX_INTEGER_DIGITS} digits")
    return number


def _crm_decimal(value: Any) -> Decimal:
    """A number within Zoho's Decimal/Currency limits, exactly as the legacy table holds it."""
    number = _decimal(value, FieldType.DECIMAL)
    _sign, digits, exponent = number.normalize().as_tuple()
    assert isinstance(exponent, int)  # _decimal refuses NaN and infinity
    places = max(-exponent, 0)
    if places > MAX_DECIMAL_PLACES:
        raise ValueNotRepresentable(
            FieldType.DECIMAL,
            value,
            f"{places} decimal places; Zoho's Decimal/Currency fields hold at most "
            f"{MAX_DECIMAL_PLACES} (it would be rounded)",
        )
    if len(digits) + exponent > MAX_DECIMAL_INTEGER_DIGITS:
        raise ValueNotRepresentable(
            FieldType.DECIMAL,
            value,
            f"more than {MAX_DECIMAL_INTEGER_DIGITS} digits before the point",
        )
    return number


def _decimal(value: Any, ftype: FieldType) -> Decimal:
    if isinstance(value, bool):
        raise ValueNotRepresentable(ftype, value, "a boolean is not a number")
    try:
        number = _float_decimal(value) if isinstance(value, float) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueNotRepresentable(ftype, value, "it is not a number") from None
    if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueNotRepresentable(ftype, value, "NaN and infinity have no CRM form")
    return number


def _float_decimal(value: float) -> Decimal:
    if not math.isfinite(value):
        raise ValueNotRepresentable(FieldType.DECIMAL, value, "NaN and infinity have no CRM form")
    return Decimal(format(value, f".{FLOAT_DIGITS}g"))


def _boolean(value: Any, ftype: FieldType) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueNotRepresentable(ftype, value, "it is not a boolean")


def _date(value: Any, ftype: FieldType, tz: tzinfo) -> date:
    if isinstance(value, datetime):
        # The calendar day in the legacy zone, whatever offset the value carries.
        return _datetime(value, ftype, tz).astimezone(tz).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
        try:  # a date column of SQLite holding a timestamp text: its day in the legacy zone
            return _datetime(value, ftype, tz).astimezone(tz).date()
        except ValueNotRepresentable:
            raise ValueNotRepresentable(ftype, value, "it is not an ISO date") from None
    raise ValueNotRepresentable(ftype, value, "it is not a date")


def _datetime(value: Any, ftype: FieldType, tz: tzinfo) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueNotRepresentable(ftype, value, "it is not an ISO datetime") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise ValueNotRepresentable(ftype, value, "it is not a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        # Naive timestamps are wall-clock times of the legacy database's zone.
        return value.replace(tzinfo=tz)
    return value
