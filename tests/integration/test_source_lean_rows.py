"""The compare-and-set of rows a bulk job keeps lean (fingerprint only, no values)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import create_engine

from syncd.model import CHANGED, FieldMap, TableSpec
from syncd.source.table import LegacyTable
from tests.helpers.native import native

DDL = {
    "sqlite": "CREATE TABLE orders (id INTEGER PRIMARY KEY, total NUMERIC(12, 2), "
    "notes TEXT, sync BOOLEAN NOT NULL DEFAULT 0)",
    "postgresql": "CREATE TABLE orders (id bigint PRIMARY KEY, total numeric(12, 2), "
    "notes text, sync boolean NOT NULL DEFAULT false)",
    "mysql": "CREATE TABLE orders (id bigint PRIMARY KEY, total decimal(12, 2), "
    "notes text, sync tinyint(1) NOT NULL DEFAULT 0)",
}
FIELDS = (FieldMap("Amount", "total"), FieldMap("Notes", "notes"))


def test_lean_rows_confirm_by_fingerprint(legacy_url: str) -> None:
    """Unchanged rows are flagged; a row changed after the read is left pending, named as
    changed content (no column: its values were not kept); a deleted row is named deleted."""
    with native(legacy_url) as db:
        dialect = "mysql" if db.dialect in ("mysql", "mariadb") else db.dialect
        db.execute(DDL[dialect])
        db.executemany(
            "INSERT INTO orders (id, total, notes) VALUES (%s, %s, %s)",
            [
                (i, str(Decimal(i) + Decimal("0.25")), f"n{i}" if i % 2 else None)
                for i in range(1, 7)
            ],
        )
        engine = create_engine(legacy_url)
        table = LegacyTable(engine, TableSpec("orders", "orders", "id", "sync", FIELDS))
        sent = [row.lean() for row in table.pending_batch(None, 100)]
        assert all(not row.values for row in sent)
        db.execute("UPDATE orders SET notes = 'changed' WHERE id = 2")
        db.execute("UPDATE orders SET total = 3.5 WHERE id = 3")
        db.execute("DELETE FROM orders WHERE id = 4")
        confirmation = table.mark_synced(sent)
        flagged = {int(k) for (k,) in db.query("SELECT id FROM orders WHERE sync = %s", (True,))}
        engine.dispose()
    assert confirmation.marked == {"1", "5", "6"}
    assert flagged == {1, 5, 6}
    assert confirmation.changed == {"2": (CHANGED,), "3": (CHANGED,), "4": ("<deleted>",)}
