"""Legacy values → Zoho values: JSON for the Upsert API, CSV cells for Bulk Write.

Pure functions. A value that cannot be written faithfully raises ``ValueNotRepresentable``
instead of being guessed at: a silently wrong value in the CRM is worse than a visible reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from itertools import repeat
from operator import add, attrgetter, itemgetter, methodcaller
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

MULTISELECT_SEPARATOR = ";"
"""Bulk Write separates a multi-select picklist's values in one CSV cell by ";" (reference
5.6); the records API takes a JSON array of strings (reference 4.7)."""

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
    if ftype is FieldType.MULTISELECT:
        return _multiselect(value, tz) or None  # no values clears the field, as NULL does
    return _convert(value, ftype, tz)


def to_csv_cell(value: Any, ftype: FieldType, tz: tzinfo) -> str:
    """The CSV cell of a legacy ``value`` for a column of ``ftype`` (None → empty cell)."""
    if value is None:
        return ""
    if ftype is FieldType.DECIMAL:
        # Plain notation: Zoho does not read exponents such as 1E+3.
        return format(_crm_decimal(value), "f")
    if ftype is FieldType.MULTISELECT:
        return MULTISELECT_SEPARATOR.join(_multiselect(value, tz))
    converted = _convert(value, ftype, tz)
    if isinstance(converted, bool):
        return "true" if converted else "false"
    return str(converted)


def csv_cell_encoder(ftype: FieldType, tz: tzinfo) -> Callable[[Any], str]:
    """``to_csv_cell`` for one column, chosen once per pipeline instead of once per cell.

    The value types a driver returns for a column of ``ftype`` take a fast path that gives
    exactly what ``to_csv_cell`` gives; any other value (a text date in SQLite, a float in a
    numeric column, an out-of-range number) goes through ``to_csv_cell`` itself.
    """
    fast = _FAST_CELLS[ftype](tz)

    def cell(value: Any) -> str:
        if value is None:
            return ""
        text = fast(value)
        return text if text is not None else to_csv_cell(value, ftype, tz)

    return cell


def csv_column_encoder(ftype: FieldType, tz: tzinfo) -> Callable[[list[Any]], list[str]]:
    """``to_csv_cell`` for a whole column of a batch at once.

    When every value has the driver's usual type for ``ftype`` and lies within the field's
    limits (checked for the column with C-level builtins: ``set(map(type, ...))``, ``min``,
    ``max``), the cells are made by ``map`` over the column without a Python call per cell;
    otherwise each cell goes through ``csv_cell_encoder`` (which raises
    ``ValueNotRepresentable`` for a value the CRM cannot hold).
    """
    whole = _WHOLE_COLUMNS[ftype](tz)
    cell = csv_cell_encoder(ftype, tz)

    def column(values: list[Any]) -> list[str]:
        present = [v for v in values if v is not None]
        cells = whole(present)
        if cells is None:
            return [cell(v) for v in values]
        if len(present) == len(values):
            return cells
        made = iter(cells)
        return ["" if v is None else next(made) for v in values]

    return column


def _only(values: list[Any], *kinds: type) -> bool:
    return set(map(type, values)) <= set(kinds)


def _whole_text(_tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    return lambda vs: vs if _only(vs, str) and "\x00" not in "".join(vs) else None


def _whole_integer(_tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    bound = 10**MAX_INTEGER_DIGITS

    def whole(values: list[Any]) -> list[str] | None:
        if not _only(values, int) or (values and not -bound < min(values) <= max(values) < bound):
            return None
        return list(map(str, values))

    return whole


def _whole_decimal(_tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    bound = Decimal(10) ** MAX_DECIMAL_INTEGER_DIGITS
    fraction_of = itemgetter(2)

    def whole(values: list[Any]) -> list[str] | None:
        if not values:
            return []
        if not _only(values, Decimal) or not all(map(Decimal.is_finite, values)):
            return None  # NaN or infinity: cell by cell
        if not -bound < min(values) <= max(values) < bound:
            return None
        cells = list(map(format, values, repeat("f")))
        # A finite value's "f" text has as many places as its exponent says (none when it is
        # not negative), read off the texts: ``as_tuple`` makes a Python named tuple a value.
        places = map(len, map(fraction_of, map(str.partition, cells, repeat("."))))
        if max(places) > MAX_DECIMAL_PLACES:
            return None  # more places than Zoho keeps: cell by cell
        return cells

    return whole


def _whole_date(_tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    return lambda vs: list(map(date.isoformat, vs)) if _only(vs, date) else None


def _whole_datetime(tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    """Naive values in ``tz``: each value's own ISO text and its zone's offset text, the
    offset's text made once per offset (``replace(tzinfo=tz).isoformat()`` per value made a
    new datetime and formatted its offset anew: 1.4 µs a value, 0.5 µs so in UTC)."""
    text = methodcaller("isoformat", timespec="seconds")
    zone_of, micro_of = attrgetter("tzinfo"), attrgetter("microsecond")
    fixed = tz.utcoffset(None)  # UTC and fixed offsets have one; zones with DST have none
    suffixes: dict[timedelta | None, str] = {}

    def suffix(value: datetime, offset: timedelta | None) -> str:
        if offset not in suffixes:
            aware = value.replace(tzinfo=tz).isoformat(timespec="seconds")
            suffixes[offset] = aware[len(text(value)) :]
        return suffixes[offset]

    def whole(values: list[Any]) -> list[str] | None:
        if not _only(values, datetime) or set(map(zone_of, values)) - {None}:
            return None  # aware values: cell by cell (their offset is kept)
        if not values:
            return []
        # Without a fraction to drop, the plain isoformat is the same text, a third cheaper
        # than passing timespec (0.45 s against 0.67 s for 1,000,000 values).
        texts = map(text if any(map(micro_of, values)) else datetime.isoformat, values)
        if fixed is not None:
            return list(map(add, texts, repeat(suffix(values[0], fixed))))
        offsets = list(map(tz.utcoffset, values))  # a naive value is read as wall time in tz
        return [
            t + (suffixes.get(o) or suffix(v, o))
            for t, v, o in zip(texts, values, offsets, strict=True)
        ]

    return whole


def _whole_boolean(_tz: tzinfo) -> Callable[[list[Any]], list[str] | None]:
    cells = {True: "true", False: "false"}
    return lambda vs: list(map(cells.__getitem__, vs)) if _only(vs, bool) else None


_WHOLE_COLUMNS: dict[FieldType, Callable[[tzinfo], Callable[[list[Any]], list[str] | None]]] = {
    FieldType.TEXT: _whole_text,
    FieldType.INTEGER: _whole_integer,
    FieldType.DECIMAL: _whole_decimal,
    FieldType.DATE: _whole_date,
    FieldType.DATETIME: _whole_datetime,
    FieldType.BOOLEAN: _whole_boolean,
    FieldType.MULTISELECT: lambda _tz: lambda _vs: None,  # lists: cell by cell
}


def _fast_text(_tz: tzinfo) -> Callable[[Any], str | None]:
    return lambda v: v if type(v) is str and "\x00" not in v else None


def _fast_integer(_tz: tzinfo) -> Callable[[Any], str | None]:
    bound = 10**MAX_INTEGER_DIGITS
    return lambda v: str(v) if type(v) is int and -bound < v < bound else None


def _fast_decimal(_tz: tzinfo) -> Callable[[Any], str | None]:
    def fast(value: Any) -> str | None:
        if type(value) is not Decimal:
            return None
        _sign, digits, exponent = value.as_tuple()
        # Within the limits before normalizing is within them after (trailing zeros only go).
        if (
            type(exponent) is int
            and exponent >= -MAX_DECIMAL_PLACES
            and len(digits) + exponent <= MAX_DECIMAL_INTEGER_DIGITS
        ):
            return format(value, "f")
        return None

    return fast


def _fast_date(_tz: tzinfo) -> Callable[[Any], str | None]:
    return lambda v: v.isoformat() if type(v) is date else None


def _fast_datetime(tz: tzinfo) -> Callable[[Any], str | None]:
    def fast(value: Any) -> str | None:
        if type(value) is not datetime or value.tzinfo is not None:
            return None
        return value.replace(tzinfo=tz).isoformat(timespec="seconds")

    return fast


def _fast_boolean(_tz: tzinfo) -> Callable[[Any], str | None]:
    return lambda v: ("true" if v else "false") if type(v) is bool else None


_FAST_CELLS: dict[FieldType, Callable[[tzinfo], Callable[[Any], str | None]]] = {
    FieldType.TEXT: _fast_text,
    FieldType.INTEGER: _fast_integer,
    FieldType.DECIMAL: _fast_decimal,
    FieldType.DATE: _fast_date,
    FieldType.DATETIME: _fast_datetime,
    FieldType.BOOLEAN: _fast_boolean,
    FieldType.MULTISELECT: lambda _tz: lambda _v: None,  # lists: through to_csv_cell
}


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


def _multiselect(value: Any, tz: tzinfo) -> list[str]:
    """A multi-select's values: an array column's items (a single value is one item), as
    text, blanks and repeats dropped, in the legacy order."""
    items = value if isinstance(value, list | tuple) else [value]
    texts = [_text(item, tz).strip() for item in items if item is not None]
    for text in texts:
        if MULTISELECT_SEPARATOR in text:
            raise ValueNotRepresentable(
                FieldType.MULTISELECT,
                text,
                f"a multi-select value cannot hold {MULTISELECT_SEPARATOR!r}, which separates "
                "the values in a Bulk Write cell",
            )
    return list(dict.fromkeys(text for text in texts if text))


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
    # A NUMERIC(27,10) column gives 10.0000000000: its trailing zeros would make a CSV cell
    # with more places than Zoho reads, though the value has none. Drop them there only.
    current = number.as_tuple().exponent
    if isinstance(current, int) and current < -MAX_DECIMAL_PLACES:
        return number.quantize(Decimal(1).scaleb(-places))
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
