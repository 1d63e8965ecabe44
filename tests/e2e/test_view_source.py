"""A simple updatable view works as the source table (issue 16, item 3).

The legacy schema is built by plain DDL through the database's own client: a base table, and a
view over it that the pipeline names as its ``table``. On SQLite a view is read-only, so the
operator adds the INSTEAD OF trigger SQLite documents for that; PostgreSQL and MariaDB update a
simple view by themselves. The initial sync reads through the view and its flag updates land in
the base table; a later change made in the base table goes out once.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from tests.helpers.e2e import RECORD_WRITES, crm_by_key, open_app, write_config
from tests.helpers.native import native

ROWS = 20
BOOLEAN = {"sqlite": "boolean", "postgresql": "boolean", "mysql": "tinyint(1)"}
DATETIME = {"sqlite": "datetime", "postgresql": "timestamp", "mysql": "datetime"}
COLUMNS = (
    "id, order_number, total, order_date, ordered_at, status, customer_email, quantity, paid, "
    "notes, sync"
)


def base_table_ddl(dialect: str) -> str:
    return f"""CREATE TABLE orders_base (
        id bigint PRIMARY KEY,
        order_number varchar(40),
        total numeric(12,2),
        order_date date,
        ordered_at {DATETIME[dialect]},
        status varchar(20),
        customer_email varchar(255),
        quantity integer,
        paid {BOOLEAN[dialect]},
        notes text,
        sync {BOOLEAN[dialect]} NOT NULL DEFAULT false,
        internal_note text
    )"""


SQLITE_TRIGGER = """CREATE TRIGGER orders_view_update INSTEAD OF UPDATE ON orders
BEGIN
    UPDATE orders_base SET sync = NEW.sync WHERE id = OLD.id;
END"""


def base_flags(url: str) -> dict[int, bool]:
    with native(url) as db:
        return {int(k): bool(v) for k, v in db.query("SELECT id, sync FROM orders_base")}


def test_a_view_over_the_legacy_table_syncs_and_flags_the_base_rows(
    tmp_path: Path, legacy_url: str
) -> None:
    """Initial sync through the view confirms every base row; a base-table edit goes once."""
    with native(legacy_url) as db:
        dialect = "mysql" if db.dialect in ("mysql", "mariadb") else db.dialect
        db.execute(base_table_ddl(dialect))
        db.execute(f"CREATE VIEW orders AS SELECT {COLUMNS} FROM orders_base")
        if dialect == "sqlite":
            db.execute(SQLITE_TRIGGER)
        db.executemany(
            "INSERT INTO orders_base (id, order_number, total, status, paid, sync, internal_note)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(i, f"SO-{i}", f"{i}.50", "New", i % 2 == 0, False, "x") for i in range(1, ROWS + 1)],
        )
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, legacy_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            first = run_drain(rt, "initial")
            assert first.counts.confirmed == ROWS and first.left_pending == 0
            assert set(base_flags(legacy_url).values()) == {True}
            with native(legacy_url) as db:
                db.execute("UPDATE orders_base SET status = 'Paid', sync = false WHERE id = 7")
            writes = _record_writes(server)
            second = run_drain(rt, "initial")
            assert (second.counts.sent, second.counts.confirmed) == (1, 1)
            assert _record_writes(server) == writes + 1
        crm = crm_by_key(server.base_url)
    assert set(base_flags(legacy_url).values()) == {True}
    assert len(crm) == ROWS
    assert crm["7"]["Status"] == "Paid" and crm["3"]["Name"] == "SO-3"
    assert crm["3"]["Amount"] == pytest.approx(3.5)


def _record_writes(server: EmulatorServer) -> int:
    calls = server.admin.stats()["calls"]
    return sum(calls.get(name, 0) for name in RECORD_WRITES)
