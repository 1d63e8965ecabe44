"""The ``Source`` port's contract: every implementation passes every test here.

Run against the in-memory table (``syncd.source.memory``) and the legacy-table adapter on
SQLite, PostgreSQL and MariaDB. The legacy application writes natively (SQL on the real
databases), setting the flag false with every write as the documented contract asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import pytest
from sqlalchemy import Engine, MetaData, Table, text

from syncd.model import CHANGED, DELETED, TableSpec
from syncd.ports import Source
from syncd.source.memory import MemoryTable
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.orders import FIELD_TYPES, FIELDS, create_orders, order

SPEC = TableSpec("orders", "orders", "id", "sync", FIELDS)
VERSIONED = TableSpec("orders", "orders", "id", "sync", FIELDS, version_column="row_version")


class LegacyApp(Protocol):
    """The legacy application: each write commits on its own."""

    def update(self, key: int, **values: Any) -> None:
        """Change a row; the flag goes false with it unless ``sync`` is given."""
        ...

    def delete(self, key: int) -> None: ...


@dataclass
class Legacy:
    source: Source
    app: LegacyApp


MakeLegacy = Callable[..., Legacy]


class SqlApp:
    def __init__(self, engine: Engine) -> None:
        # reflected: the table may have more columns than ``orders_table`` (a version)
        self.engine, self.table = engine, Table("orders", MetaData(), autoload_with=engine)

    def update(self, key: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            where = self.table.c.id == key
            conn.execute(self.table.update().where(where).values({"sync": False, **values}))

    def delete(self, key: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.id == key))


class MemoryApp:
    def __init__(self, table: MemoryTable) -> None:
        self.table = table

    def update(self, key: int, **values: Any) -> None:
        self.table.update(key, **{"sync": False, **values})

    def delete(self, key: int) -> None:
        self.table.delete(key)


@pytest.fixture(params=["memory", "sqlite", "postgres", "mysql"])
def make_legacy(request: pytest.FixtureRequest) -> Iterator[MakeLegacy]:
    """``make_legacy(keys, spec=SPEC)``: an orders table holding ``order(k)`` for each key,
    all pending, behind the implementation under test."""
    engines: list[Engine] = []

    def make(keys: list[int], spec: TableSpec = SPEC) -> Legacy:
        rows = [order(k) for k in keys]
        if spec.version_column:
            rows = [{**row, "row_version": 1} for row in rows]
        if request.param == "memory":
            table = MemoryTable(spec, FIELD_TYPES)
            for row in rows:
                table.insert(row)
            return Legacy(table, MemoryApp(table))
        fixture = {"sqlite": "sqlite_url", "postgres": "pg_url", "mysql": "mysql_url"}
        url = str(request.getfixturevalue(fixture[request.param]))
        app_engine = create_orders(url, [order(k) for k in keys])
        engines.append(app_engine)
        if spec.version_column:
            with app_engine.begin() as conn:
                conn.execute(text("ALTER TABLE orders ADD COLUMN row_version INTEGER DEFAULT 1"))
        engines.append(source_engine := open_source_engine(url))
        return Legacy(LegacyTable(source_engine, spec), SqlApp(app_engine))

    yield make
    for engine in engines:
        engine.dispose()


def keys_of(rows: list[Any]) -> list[Any]:
    return [r.key for r in rows]


def test_pending_pages_follow_the_native_key_order(make_legacy: MakeLegacy) -> None:
    """Keyset pages run in the key's own order (10 after 9, not after 1), skipping synced rows."""
    legacy = make_legacy(list(range(1, 13)))
    legacy.app.update(3, sync=True)
    first = legacy.source.pending_batch(None, 5)
    second = legacy.source.pending_batch(first[-1].key, 5)
    third = legacy.source.pending_batch(second[-1].key, 5)
    assert keys_of(first) == [1, 2, 4, 5, 6]
    assert keys_of(second) == [7, 8, 9, 10, 11]
    assert keys_of(third) == [12]
    assert legacy.source.pending_batch(12, 5) == []


def test_count_pending_counts_rows_with_flag_false(make_legacy: MakeLegacy) -> None:
    """Pending means flag false: synced rows are not counted, changed ones are again."""
    legacy = make_legacy([1, 2, 3])
    legacy.app.update(1, sync=True)
    legacy.app.update(2, sync=True)
    assert legacy.source.count_pending() == 1
    legacy.app.update(2, status="Refunded")
    assert legacy.source.count_pending() == 2


def test_pending_rows_hold_every_mapped_column_by_name(make_legacy: MakeLegacy) -> None:
    """A pending row carries its native key and the mapped columns' values, in mapping order."""
    [row] = make_legacy([1]).source.pending_batch(None, 10)
    assert row.key == 1 and row.key_text == "1"
    assert list(row.values) == SPEC.columns
    assert (row.values["order_number"], row.values["status"]) == ("SO-0000001", "Paid")


def test_fetch_rows_takes_text_or_native_keys_and_leaves_out_missing(
    make_legacy: MakeLegacy,
) -> None:
    """Keys from the journal come as text: they fetch the same rows; unknown keys are left out."""
    legacy = make_legacy([1, 2, 3])
    legacy.app.update(2, sync=True)
    assert keys_of(legacy.source.fetch_rows(["3", 1, "99"])) == [1, 3]
    assert keys_of(legacy.source.fetch_rows(["1", "2", "3"])) == [1, 2, 3]
    assert keys_of(legacy.source.fetch_rows(["1", "2", "3"], pending_only=True)) == [1, 3]


def test_mark_synced_confirms_rows_that_still_hold_what_was_read(
    make_legacy: MakeLegacy,
) -> None:
    """Unchanged rows get flag true and leave the pending set; the flag column is named."""
    legacy = make_legacy([1, 2, 3])
    confirmation = legacy.source.mark_synced(legacy.source.pending_batch(None, 10))
    assert confirmation.marked == {"1", "2", "3"}
    assert confirmation.changed == {}
    assert confirmation.flag_column == "sync"
    assert legacy.source.count_pending() == 0


def test_mark_synced_skips_changed_rows_and_names_their_columns(make_legacy: MakeLegacy) -> None:
    """A row changed since it was read keeps flag false; the confirmation says which columns."""
    legacy = make_legacy([1, 2, 3])
    rows = legacy.source.pending_batch(None, 10)
    legacy.app.update(2, status="Refunded")
    legacy.app.update(3, order_number="so-0000003")  # a change of letter case alone
    confirmation = legacy.source.mark_synced(rows)
    assert confirmation.marked == {"1"}
    assert confirmation.changed == {"2": ("status",), "3": ("order_number",)}
    assert keys_of(legacy.source.pending_batch(None, 10)) == [2, 3]


def test_mark_synced_confirms_a_row_rewritten_with_the_same_content(
    make_legacy: MakeLegacy,
) -> None:
    """What counts is the content, not whether the row was written: same values, confirmed."""
    legacy = make_legacy([1])
    rows = legacy.source.pending_batch(None, 10)
    legacy.app.update(1, status=rows[0].values["status"])
    assert legacy.source.mark_synced(rows).marked == {"1"}
    assert legacy.source.count_pending() == 0


def test_mark_synced_reports_a_row_deleted_meanwhile(make_legacy: MakeLegacy) -> None:
    """A row gone since it was read is neither marked nor an error: it is named as deleted."""
    legacy = make_legacy([1, 2])
    rows = legacy.source.pending_batch(None, 10)
    legacy.app.delete(2)
    confirmation = legacy.source.mark_synced(rows)
    assert confirmation.marked == {"1"}
    assert confirmation.changed == {"2": (DELETED,)}


def test_mark_synced_compares_lean_rows_by_fingerprint(make_legacy: MakeLegacy) -> None:
    """A bulk job's lean rows (fingerprint only) are confirmed exactly when the content holds."""
    legacy = make_legacy([1, 2])
    lean = [row.lean() for row in legacy.source.pending_batch(None, 10)]
    legacy.app.update(2, quantity=999)
    confirmation = legacy.source.mark_synced(lean)
    assert confirmation.marked == {"1"}
    assert confirmation.changed == {"2": (CHANGED,)}


def test_mark_synced_compares_only_the_version_column_when_configured(
    make_legacy: MakeLegacy,
) -> None:
    """With a version column, a new version is a change; a value without one is not seen."""
    legacy = make_legacy([1, 2, 3], VERSIONED)
    rows = legacy.source.pending_batch(None, 10)
    assert "row_version" in rows[0].values
    legacy.app.update(2, row_version=2)
    legacy.app.update(3, status="Refunded")  # the application forgot to bump the version
    confirmation = legacy.source.mark_synced(rows)
    assert confirmation.marked == {"1", "3"}
    assert confirmation.changed == {"2": ("row_version",)}


def test_unflag_makes_rows_pending_again(make_legacy: MakeLegacy) -> None:
    """Unflagged keys (text or native) go again; the count is of the rows that exist."""
    legacy = make_legacy([1, 2, 3])
    legacy.source.mark_synced(legacy.source.pending_batch(None, 10))
    assert legacy.source.unflag(["1", 3, "99"]) == 2
    assert keys_of(legacy.source.pending_batch(None, 10)) == [1, 3]


def test_column_types_are_the_crm_types_of_the_mapped_columns(make_legacy: MakeLegacy) -> None:
    """Each mapped column has the CRM value type its values convert to."""
    assert make_legacy([1]).source.column_types() == FIELD_TYPES
