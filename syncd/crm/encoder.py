"""A pipeline's field mapping as a ``RowEncoder``: legacy rows to Upsert records and CSV rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from decimal import Decimal, InvalidOperation
from operator import itemgetter
from typing import Any

from syncd.crm.values import (
    ValueNotRepresentable,
    bulk_format,
    csv_cell_encoder,
    csv_column_encoder,
    to_csv_cell,
    to_json,
)
from syncd.errors import RowNotRepresentable
from syncd.model import BulkColumn, BulkRow, CrmRecord, FieldMap, FieldType, PendingRow

ParentIds = Mapping[str, Mapping[str, str]]
"""Parent pipeline name -> (parent legacy key text -> its CRM record id), for one batch."""


class FieldEncoder:
    """Encodes the mapped columns; the unique field always carries the legacy key (as text)."""

    def __init__(
        self,
        unique_field: str,
        fields: Sequence[FieldMap],
        column_types: Mapping[str, FieldType],
        tz: tzinfo,
    ) -> None:
        self.unique_field = unique_field
        self.fields = list(fields)
        self.tz = tz
        # An explicit `type` in the config wins over the type derived from the SQL column.
        self.types = {
            f.api_name: f.type or column_types.get(f.column, FieldType.TEXT) for f in self.fields
        }
        # A field's value options (map, default, split, places) as one function run on the
        # raw value before its type conversion; fields without options have none.
        self._prepare = {f.api_name: value_options(f, self.types[f.api_name]) for f in self.fields}
        # Lookup fields: the cell is the parent's legacy key as text, matched by Bulk Write's
        # find_by on the parent module; on the records API the parent's record id goes.
        self.lookups = [f for f in self.fields if f.lookup is not None]
        # Lookups by a unique field of the parent module: the cell is the column's value as
        # text (find_by = that field); on the records API the id found by Search Records goes.
        self.parent_fields = [f for f in self.fields if f.parent_field is not None]
        # One converter per column, chosen here: the type dispatch is not paid per cell.
        self._cells: list[tuple[str, Callable[[Any], str]]] = []
        self._columns: list[tuple[str, Callable[[list[Any]], list[str]]]] = []
        for f in self.fields:
            cell: Callable[[Any], str] = _key_cell
            column: Callable[[list[Any]], list[str]] = _key_column
            if f.lookup is None and f.parent_field is None:
                ftype, prepare = self.types[f.api_name], self._prepare[f.api_name]
                cell = _before(prepare, csv_cell_encoder(ftype, tz))
                column = _before_all(prepare, csv_column_encoder(ftype, tz))
            self._cells.append((f.column, cell))
            self._columns.append((f.column, column))

    def record(self, row: PendingRow, parents: ParentIds | None = None) -> CrmRecord:
        """``parents`` holds the record id of every parent the row's lookups name (rows whose
        parent has none yet wait: ``syncd.engine.lookups``)."""
        values: dict[str, object] = {self.unique_field: row.key_text}
        for item in self.fields:
            if item.lookup is not None:
                parent = row.values[item.column]
                ids = (parents or {})[item.lookup.pipeline]
                values[item.api_name] = None if parent is None else {"id": ids[str(parent)]}
            elif item.parent_field is not None:
                value = row.values[item.column]
                ids = (parents or {})[item.parent_field.key]
                values[item.api_name] = None if value is None else {"id": ids[str(value)]}
            else:
                values[item.api_name] = self._convert(item, row, json=True)
        return CrmRecord(row.key_text, values)

    def bulk_row(self, row: PendingRow) -> BulkRow:
        values = row.values
        try:
            cells = [cell(values[column]) for column, cell in self._cells]
        except ValueNotRepresentable:
            cells = [str(self._convert(item, row, json=False)) for item in self.fields]
        return BulkRow(row.key_text, cells)

    def bulk_rows(self, rows: Sequence[PendingRow]) -> list[BulkRow] | None:
        """Every row of a batch, encoded column by column; None when a value cannot be
        represented (the caller then encodes row by row to find and reject those rows)."""
        values = [row.values for row in rows]
        try:
            columns = [encode(list(map(itemgetter(c), values))) for c, encode in self._columns]
        except ValueNotRepresentable:
            return None
        keys = [row.key_text for row in rows]
        return BulkRow.of_columns(keys, columns) if columns else None

    def bulk_columns(self) -> list[BulkColumn]:
        return [
            BulkColumn(f.api_name, find_by=f.lookup.unique_field)
            if f.lookup is not None
            else BulkColumn(f.api_name, find_by=f.parent_field.field)
            if f.parent_field is not None
            else BulkColumn(f.api_name, bulk_format(self.types[f.api_name]))
            for f in self.fields
        ]

    def _convert(self, item: FieldMap, row: PendingRow, *, json: bool) -> object:
        ftype = self.types[item.api_name]
        value = row.values[item.column]
        if (item.lookup is not None or item.parent_field is not None) and not json:
            return _key_cell(value)
        prepare = self._prepare[item.api_name]
        try:
            if prepare is not None:
                value = prepare(value)
            if json:
                return to_json(value, ftype, self.tz)
            return to_csv_cell(value, ftype, self.tz)
        except ValueNotRepresentable as exc:
            raise RowNotRepresentable(item.column, item.api_name, str(exc)) from exc


def _key_cell(value: Any) -> str:
    """A parent's legacy key as its unique field holds it (``PendingRow.key_text``)."""
    return "" if value is None else str(value)


def _key_column(values: list[Any]) -> list[str]:
    return list(map(_key_cell, values))


def _before(
    prepare: Callable[[Any], Any] | None, cell: Callable[[Any], str]
) -> Callable[[Any], str]:
    """``cell`` itself when there is nothing to prepare (no extra call per cell)."""
    if prepare is None:
        return cell
    return lambda value: cell(prepare(value))


def _before_all(
    prepare: Callable[[Any], Any] | None, column: Callable[[list[Any]], list[str]]
) -> Callable[[list[Any]], list[str]]:
    if prepare is None:
        return column
    return lambda values: column(list(map(prepare, values)))


def value_options(item: FieldMap, ftype: FieldType) -> Callable[[Any], Any] | None:
    """The function applying ``item``'s value options to a raw legacy value, or None when it
    has none. Raises ``ValueNotRepresentable`` for a value the map lacks or with too many
    decimal places: the row is a reject naming the column, never a guess or a rounding."""
    if not item.transforms:
        return None
    table = dict(item.value_map)
    default, split, places = item.default, item.split, item.decimal_places

    def mapped(value: Any) -> Any:
        text = value.strip() if type(value) is str else _map_key(value)
        if text not in table:
            raise ValueNotRepresentable(ftype, value, "the field's value map has no entry for it")
        return table[text]

    def prepare(value: Any) -> Any:
        if value is None:
            return default
        if split is not None and isinstance(value, str):
            value = [part.strip() for part in value.split(split) if part.strip()]
        if table:
            value = [mapped(v) for v in value] if isinstance(value, list) else mapped(value)
        if places is not None:
            _check_places(value, places, ftype)
        return value

    return prepare


def _map_key(value: Any) -> str:
    """The text a value map is keyed by: a number's digits, a boolean as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if not isinstance(value, bytes) else value.decode("utf-8", "replace")


def _check_places(value: Any, places: int, ftype: FieldType) -> None:
    """Refuse a number with more decimal places than the CRM field keeps (it would round)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return  # not a number: the type conversion names the problem
    try:
        number = Decimal(format(value, ".15g")) if isinstance(value, float) else Decimal(str(value))
        exponent = number.normalize().as_tuple().exponent
    except InvalidOperation:
        return
    if isinstance(exponent, int) and -exponent > places:
        raise ValueNotRepresentable(
            ftype,
            value,
            f"{-exponent} decimal places; the field keeps {places} (decimal_places), "
            "so the CRM would round it",
        )
