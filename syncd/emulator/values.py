"""Field values: what each data_type accepts from JSON (records API) and from CSV (bulk write).

The emulator is strict where Zoho is lenient or undocumented, so a syncd bug shows up here
rather than in a customer's CRM:

- JSON values must have the reference 4.7 JSON type: text types take strings only, Integer a
  JSON integer of at most 9 digits, Currency/Decimal a JSON number, Checkbox a boolean, Date
  ``yyyy-MM-dd``, DateTime ISO 8601 with an offset (``+05:30`` or ``Z``), Long Integer a string
  (or integer) of at most 18 digits. ``null`` clears a field.
- Picklists accept only their listed values unless ``strict_picklists`` is off. A
  multi-select picklist takes a JSON array of strings (reference 4.7) and a CSV cell with
  its values separated by ``;`` (reference 5.6), each value checked as a picklist's.
- Text longer than the field's length fails with ``maximum_length`` in the details; every other
  refusal carries ``expected_data_type`` (the field's data_type), as in reference 4.4.
- CSV cells: integers and decimals in plain notation, booleans ``true``/``false`` (any case),
  dates and datetimes in the column's declared ``format``.
- A lookup takes ``{"id": "..."}`` in JSON (reference 4.7) and stores the id; whether that
  record exists in the lookup's module is checked by the caller, which holds the records. Its
  CSV cell is matched by the mapping's ``find_by`` (``syncd.emulator.bulk_rows``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from syncd.emulator.formats import ISO_DATE, ISO_DATETIME, Kind, make_parser
from syncd.emulator.schema import FieldSpec

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE = re.compile(r"[0-9+()\-. xX#*]+")
_WEBSITE = re.compile(r"\S+\.\S+")
_INTEGER = re.compile(r"[+-]?\d{1,9}")
_BIGINT = re.compile(r"[+-]?\d{1,18}")
_DECIMAL = re.compile(r"[+-]?\d{1,16}(\.\d{1,9})?")
_TEXT_PATTERNS = {"email": _EMAIL, "phone": _PHONE, "website": _WEBSITE}


class FieldProblem(ValueError):
    """A value the field refuses; ``details`` are the INVALID_DATA details Zoho adds."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__(details)
        self.details = details


def json_checker(spec: FieldSpec, zone: tzinfo, strict_picklists: bool) -> Callable[[Any], Any]:
    """A function that validates a JSON value for ``spec`` and returns the value to store."""
    kind = spec.data_type

    def wrong() -> FieldProblem:
        return FieldProblem({"expected_data_type": kind})

    if kind in ("date", "datetime"):
        parse = make_parser(ISO_DATE if kind == "date" else ISO_DATETIME, _kind(kind), zone)
        return _nullable(lambda v: parse(v) if isinstance(v, str) else _raise(wrong()), wrong)
    if kind in ("integer", "bigint"):
        digits = 9 if kind == "integer" else 18

        def whole(value: Any) -> Any:
            if kind == "bigint" and isinstance(value, str) and _BIGINT.fullmatch(value):
                return value
            if type(value) is not int or len(str(abs(value))) > digits:
                raise wrong()
            return value if kind == "integer" else str(value)

        return _nullable(whole, wrong)
    if kind in ("double", "currency"):
        return _nullable(lambda v: _number(v, wrong), wrong)
    if kind == "boolean":
        return _nullable(lambda v: v if isinstance(v, bool) else _raise(wrong()), wrong)
    if kind == "lookup":

        def parent(value: Any) -> str:
            record_id = value.get("id") if isinstance(value, dict) else None
            if type(record_id) not in (str, int) or not str(record_id).isdigit():
                raise wrong()
            return str(record_id)

        return _nullable(parent, wrong)
    if kind == "multiselectpicklist":
        each = _text_check(spec, strict_picklists)

        def values(value: Any) -> list[str]:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise wrong()
            return [each(v) for v in value]

        return _nullable(values, wrong)
    text = _text_check(spec, strict_picklists)
    return _nullable(lambda v: text(v) if isinstance(v, str) else _raise(wrong()), wrong)


def csv_converter(
    spec: FieldSpec, fmt: str | None, zone: tzinfo, strict_picklists: bool
) -> Callable[[str], Any]:
    """A function turning a non-empty CSV cell into the stored value; ``ValueError`` if bad.

    ``fmt`` is the column's date pattern (already defaulted by the caller) for date and
    datetime fields and ignored for the others.
    """
    kind = spec.data_type
    if kind in ("date", "datetime"):
        return make_parser(fmt or ISO_DATE, _kind(kind), zone)
    if kind == "integer":
        return lambda cell: int(cell) if _INTEGER.fullmatch(cell) else _raise(ValueError(cell))
    if kind == "bigint":
        return lambda cell: cell if _BIGINT.fullmatch(cell) else _raise(ValueError(cell))
    if kind in ("double", "currency"):
        return lambda cell: float(cell) if _DECIMAL.fullmatch(cell) else _raise(ValueError(cell))
    if kind == "boolean":
        return _csv_boolean
    if kind == "lookup":
        return lambda cell: cell  # matched on the parent module by find_by (bulk_rows)
    if kind == "multiselectpicklist":
        each = _text_check(spec, strict_picklists)
        return lambda cell: [each(v.strip()) for v in cell.split(";") if v.strip()]
    return _text_check(spec, strict_picklists)


def _text_check(spec: FieldSpec, strict_picklists: bool) -> Callable[[str], str]:
    pattern = _TEXT_PATTERNS.get(spec.data_type)
    allowed = frozenset(spec.picklist) if strict_picklists and spec.picklist else None
    limit = spec.length if spec.data_type != "multiselectpicklist" else None

    def check(text: str) -> str:
        if limit is not None and len(text) > limit:
            raise FieldProblem({"maximum_length": limit})
        if (pattern is not None and not pattern.fullmatch(text)) or (
            allowed is not None and text not in allowed
        ):
            raise FieldProblem({"expected_data_type": spec.data_type})
        return text

    return check


def _csv_boolean(cell: str) -> bool:
    lowered = cell.lower()
    if lowered not in ("true", "false"):
        raise ValueError(cell)
    return lowered == "true"


def _number(value: Any, wrong: Callable[[], FieldProblem]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise wrong()
    if not math.isfinite(value) or abs(value) >= 1e16:
        raise wrong()
    return float(value)


def _nullable(
    check: Callable[[Any], Any], wrong: Callable[[], FieldProblem]
) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except FieldProblem:
            raise
        except ValueError as exc:  # a date that does not parse
            raise wrong() from exc

    return checked


def _raise(exc: Exception) -> Any:
    raise exc


def _kind(data_type: str) -> Kind:
    return "date" if data_type == "date" else "datetime"
