"""On PostgreSQL the next part of pending rows is read while the engine encodes this one
(``pending_batch(ahead=True)``, ``syncd.source.ahead``).

The table is made by plain DDL and written by psycopg, as a legacy application would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from syncd.model import FieldMap, TableSpec
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.native import NativeDatabase, native

PART = 5


@pytest.fixture
def table(pg_url: str) -> Iterator[tuple[LegacyTable, Engine]]:
    with native(pg_url) as db:
        db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text, sync boolean)")
        db.executemany(
            "INSERT INTO orders VALUES (%s, %s, false)", [(k, f"n{k}") for k in range(1, 13)]
        )
    engine = open_source_engine(pg_url)
    spec = TableSpec("orders", "orders", "id", "sync", (FieldMap("Note", "note"),))
    try:
        yield LegacyTable(engine, spec), engine
    finally:
        engine.dispose()


def _answered(source: LegacyTable) -> None:
    """Wait until the part read ahead has its answer (as the next call would), without
    taking it."""
    ahead = source._ahead  # the test waits where the next read would
    assert ahead is not None and ahead.answer() is not None


def _keys(rows: list[object]) -> list[int]:
    return [int(getattr(r, "key")) for r in rows]  # noqa: B009 - PendingRow, typed loosely


def test_the_part_after_is_read_as_soon_as_this_one_is_returned(
    pg_url: str, table: tuple[LegacyTable, Engine]
) -> None:
    """The parts are the keyset parts, read ahead or not; the second was read before it was
    asked for (a change made between the two calls is not in it), and no connection stays
    out of the pool."""
    source, engine = table
    first = source.pending_batch(None, PART, ahead=True)
    _answered(source)
    with native(pg_url) as db:
        db.execute("UPDATE orders SET note = 'changed' WHERE id = 6")
    second = source.pending_batch(first[-1].key, PART, ahead=True)
    third = source.pending_batch(second[-1].key, PART)
    assert _keys(first) == [1, 2, 3, 4, 5]
    assert _keys(second) == [6, 7, 8, 9, 10]
    assert second[0].values == {"note": "n6"}  # as it was read ahead
    assert _keys(third) == [11, 12]
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_another_part_asked_for_drops_the_one_read_ahead(
    table: tuple[LegacyTable, Engine],
) -> None:
    """The engine starting over (or asking for another size) gets what it asks for; the part
    read ahead is dropped and its connection given back."""
    source, engine = table
    first = source.pending_batch(None, PART, ahead=True)
    again = source.pending_batch(None, PART)
    bigger = source.pending_batch(first[-1].key, 2 * PART, ahead=True)
    other = source.pending_batch(bigger[0].key, PART)
    assert _keys(again) == _keys(first) == [1, 2, 3, 4, 5]
    assert _keys(bigger) == list(range(6, 13))  # short: nothing read ahead after it
    assert _keys(other) == list(range(7, 12))
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_a_part_read_ahead_holds_no_lock(pg_url: str, table: tuple[LegacyTable, Engine]) -> None:
    """Once its answer is in, the read ahead's transaction is over: DDL on the legacy table
    (which waits for every open transaction that read it) goes through at once."""
    source, _ = table
    first = source.pending_batch(None, PART, ahead=True)
    _answered(source)
    with native(pg_url) as db:
        db.execute("SET lock_timeout = '1s'")
        db.execute("ALTER TABLE orders ADD COLUMN extra int")
        states = db.query(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%%'"
        )
    assert states == []
    assert _keys(source.pending_batch(first[-1].key, PART)) == [6, 7, 8, 9, 10]


def test_a_failed_read_ahead_is_read_again(pg_url: str) -> None:
    """The read ahead is slow (a view whose rows after the first part take 0.3 s each) and
    its backend is terminated: the part is read again the usual way once asked for, and
    comes back whole."""
    with native(pg_url) as db:
        db.execute("CREATE TABLE base (id bigint PRIMARY KEY, note text, sync boolean)")
        db.executemany(
            "INSERT INTO base VALUES (%s, %s, false)", [(k, f"n{k}") for k in range(1, 13)]
        )
        db.execute(
            "CREATE FUNCTION slow(k bigint) RETURNS boolean LANGUAGE plpgsql AS $$"
            " BEGIN IF k > 5 THEN PERFORM pg_sleep(0.3); END IF; RETURN true; END $$"
        )
        db.execute("CREATE VIEW orders AS SELECT * FROM base WHERE slow(id)")
    engine = open_source_engine(pg_url)
    spec = TableSpec("orders", "orders", "id", "sync", (FieldMap("Note", "note"),))
    try:
        source = LegacyTable(engine, spec)
        first = source.pending_batch(None, PART, ahead=True)
        with native(pg_url) as db:
            terminated = _terminate_the_read_ahead(db)
        second = source.pending_batch(first[-1].key, PART)
        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    finally:
        engine.dispose()
    assert terminated
    assert _keys(second) == [6, 7, 8, 9, 10]
    assert checked_out == 0


def _terminate_the_read_ahead(db: NativeDatabase) -> bool:
    for _ in range(100):
        found = db.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'active'"
            " AND datname = current_database() AND pid <> pg_backend_pid()"
            " AND query LIKE '%%FROM orders%%'"
        )
        if found:
            return bool(found[0][0])
        time.sleep(0.02)
    return False
