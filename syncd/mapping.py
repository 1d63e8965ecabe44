"""A pipeline's field mapping as a ``RowEncoder``: legacy rows to Upsert records and CSV rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import tzinfo
from operator import itemgetter

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
        # One converter per column, chosen here: the type dispatch is not paid per cell.
        self._cells = [
            (f.column, csv_cell_encoder(self.types[f.api_name], tz)) for f in self.fields
        ]
        self._columns = [
            (f.column, csv_column_encoder(self.types[f.api_name], tz)) for f in self.fields
        ]

    def record(self, row: PendingRow) -> CrmRecord:
        values: dict[str, object] = {self.unique_field: row.key_text}
        for item in self.fields:
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
        return list(map(BulkRow, keys, zip(*columns, strict=True))) if columns else None

    def bulk_columns(self) -> list[BulkColumn]:
        return [BulkColumn(f.api_name, bulk_format(self.types[f.api_name])) for f in self.fields]

    def _convert(self, item: FieldMap, row: PendingRow, *, json: bool) -> object:
        ftype = self.types[item.api_name]
        value = row.values[item.column]
        try:
            if json:
                return to_json(value, ftype, self.tz)
            return to_csv_cell(value, ftype, self.tz)
        except ValueNotRepresentable as exc:
            raise RowNotRepresentable(item.column, item.api_name, str(exc)) from exc
