"""The legacy-table adapter on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC

import psycopg
import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.engine import make_url

from syncd.crm.encoder import FieldEncoder
from syncd.errors import RowNotRepresentable, SourceError
from syncd.model import FieldMap, TableSpec
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.orders import FIELD_TYPES, FIELDS, create_orders, order, orders_table

SPEC = TableSpec("orders", "orders", "id", "sync", FIELDS)


@pytest.fixture
def engine(legacy_url: str) -> Iterator[Engine]:
    created = create_orders(legacy_url, (order(i) for i in range(1, 8)))
    yield created
    created.dispose()


def test_keyset_batches_cover_pending_rows_in_key_order(engine: Engine) -> None:
    """Pages follow the key, never repeat a row, and skip rows already synced."""
    table = orders_table()
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == 3).values(sync=True))
    source = LegacyTable(engine, SPEC)
    first = source.pending_batch(None, 3)
    second = source.pending_batch(first[-1].key, 3)
    assert [r.key for r in first] == [1, 2, 4]
    assert [r.key for r in second] == [5, 6, 7]
    assert source.pending_batch(7, 3) == []
    assert source.count_pending() == 6
    assert first[0].values["order_number"] == "SO-0000001"


def test_compare_and_set_skips_rows_changed_after_reading(engine: Engine) -> None:
    """Only rows still holding the values that were read get flag true (NULLs included)."""
    source = LegacyTable(engine, SPEC)
    rows = source.pending_batch(None, 10)
    assert rows[0].values["notes"] is None or rows[2].values["notes"] is None
    table = orders_table()
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == 2).values(status="Refunded"))
        conn.execute(update(table).where(table.c.id == 4).values(notes="now set"))
    confirmation = source.mark_synced(rows)
    assert confirmation.marked == {"1", "3", "5", "6", "7"}
    assert confirmation.changed == {"2": ("status",), "4": ("notes",)}
    assert [r.key for r in source.pending_batch(None, 10)] == [2, 4]


def test_compare_and_set_sees_case_only_changes(engine: Engine) -> None:
    """A change of letter case alone is a change (MySQL collations would say equal)."""
    source = LegacyTable(engine, SPEC)
    rows = source.pending_batch(None, 1)
    table = orders_table()
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == 1).values(order_number="so-0000001"))
    assert source.mark_synced(rows).marked == set()


def test_inspection_accepts_the_table_and_suggests_an_index(engine: Engine) -> None:
    """A table that fits passes; with no index on the flag, ready DDL is suggested."""
    source = LegacyTable(engine, SPEC)
    report = source.inspect()
    assert report.problems == []
    assert report.pending == 7
    assert len(report.warnings) == 1 and "CREATE INDEX" in report.warnings[0]
    ddl = report.warnings[0].split("\n", 1)[1].strip()
    with engine.begin() as conn:
        conn.execute(text(ddl.replace("CONCURRENTLY ", "")))
    assert LegacyTable(engine, SPEC).inspect().warnings == []
    assert source.column_types() == FIELD_TYPES


def test_inspection_names_missing_columns_and_bad_flag(engine: Engine) -> None:
    """Missing mapped columns and a non-boolean flag are reported by name."""
    spec = TableSpec("orders", "orders", "id", "status", (*FIELDS, FieldMap("X", "nope")))
    report = LegacyTable(engine, spec).inspect()
    assert any("fields.X: column 'nope' not found" in p for p in report.problems)
    assert any("flag column 'status'" in p and "expected a boolean" in p for p in report.problems)


def test_missing_table_is_a_source_error(engine: Engine) -> None:
    """A table that does not exist gives one clear SourceError."""
    with pytest.raises(SourceError, match="table 'ordres' not found"):
        LegacyTable(engine, TableSpec("orders", "ordres", "id", "sync", FIELDS)).inspect()


def test_version_column_decides_the_compare_and_set(legacy_url: str) -> None:
    """With a version column only the version is compared."""
    engine = create_orders(legacy_url, (order(i) for i in range(1, 3)))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE orders ADD COLUMN row_version INTEGER DEFAULT 1"))
    source = LegacyTable(
        engine, TableSpec("orders", "orders", "id", "sync", FIELDS, version_column="row_version")
    )
    rows = source.pending_batch(None, 10)
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET row_version = 2 WHERE id = 2"))
    assert source.mark_synced(rows).marked == {"1"}
    engine.dispose()


def test_trigger_ddl_flags_changes_but_not_the_compare_and_set(engine: Engine) -> None:
    """The printed trigger sets the flag false on a mapped change, not on syncd's own update."""
    source = LegacyTable(engine, SPEC)
    statements = source.trigger_ddl()
    with engine.begin() as conn:
        # MySQL's driver takes one statement per call; the others take the whole text.
        parts = statements.split(";\n") if engine.dialect.name == "mysql" else [statements]
        for statement in parts:
            conn.exec_driver_sql(statement)
    rows = source.pending_batch(None, 10)
    assert source.mark_synced(rows).marked == {str(r.key) for r in rows}
    assert source.count_pending() == 0
    table = orders_table()
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == 5).values(total=1))
        conn.execute(update(table).where(table.c.id == 6).values(status="Paid"))
    assert [r.key for r in source.pending_batch(None, 10)] == [5, 6]


def test_postgres_dates_python_cannot_hold_are_rejects_not_a_blocked_batch(pg_url: str) -> None:
    """'infinity' and BC values read as text, so only their own row is refused."""
    with psycopg.connect(
        make_url(pg_url).set(drivername="postgresql").render_as_string(False)
    ) as conn:
        conn.execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, at timestamp, at_tz timestamptz,"
            " day date, sync boolean NOT NULL DEFAULT false)"
        )
        conn.execute(
            "INSERT INTO events (id, at, at_tz, day) VALUES"
            " (1, '2025-03-01 10:00', '2025-03-01 10:00+01', '2025-03-01'),"
            " (2, 'infinity', '-infinity', '4713-01-01 BC'),"
            " (3, '2025-03-02 11:00', '2025-03-02 11:00+01', 'infinity')"
        )
    fields = (FieldMap("At", "at"), FieldMap("At_Tz", "at_tz"), FieldMap("Day", "day"))
    engine = open_source_engine(pg_url)
    source = LegacyTable(engine, TableSpec("events", "events", "id", "sync", fields))
    rows = source.pending_batch(None, 10)
    encoder = FieldEncoder("parent_id", fields, source.column_types(), UTC)
    refused: dict[int, str] = {}
    for row in rows:
        try:
            encoder.record(row)
        except RowNotRepresentable as exc:
            refused[row.key] = str(exc)
    confirmed = source.mark_synced([r for r in rows if r.key not in refused]).marked
    engine.dispose()

    assert [r.key for r in rows] == [1, 2, 3]
    assert rows[1].values["at"] == "infinity" and rows[1].values["day"] == "4713-01-01 BC"
    assert set(refused) == {2, 3} and "column at ->" in refused[2]
    assert "column day ->" in refused[3]
    assert confirmed == {"1"}
