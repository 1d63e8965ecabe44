"""A legacy SQLite table keyed by a DATETIME, in the spellings SQLite really holds.

SQLite keeps a DATETIME as whatever text the application wrote: the canonical
'2025-03-01 10:00:05', a date alone, a 'T' between date and time, a fraction of any length,
a local format no parser knows. The table is made and filled by Python's sqlite3 module.
Each row must be read, sent once as one record keyed by the text it holds, and confirmed;
an unchanged table then costs nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, record_writes, write_config

KEYS = [
    "2025-03-01 10:00:05",
    "2025-03-01 10:00:05.250000",
    "2025-03-01 10:00:06.5",
    "2025-03-01T10:00:07",
    "2025-03-02",
    "2025-03-02 10:00",
    "01/04/2025 09:30",
]


def _legacy_table(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE orders (id DATETIME PRIMARY KEY, order_number VARCHAR(40),"
        " total NUMERIC(12,2), order_date DATE, ordered_at DATETIME, status VARCHAR(20),"
        " customer_email VARCHAR(255), quantity INTEGER, paid BOOLEAN, notes TEXT,"
        " sync BOOLEAN NOT NULL DEFAULT 0)"
    )
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, 10.5, '2025-03-01', '2025-03-01 10:00:00', 'New',"
        " 'b@example.com', 1, 1, NULL, 0)",
        [(key, f"SO-{n}") for n, key in enumerate(KEYS)],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _flags(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT id, sync FROM orders").fetchall())
    finally:
        conn.close()


def test_rows_keyed_by_a_datetime_in_any_spelling_are_sent_once_and_confirmed(
    tmp_path: Path,
) -> None:
    """Batches of 2 rows: the keyset paging binds the text of the last key read back."""
    url = _legacy_table(tmp_path / "legacy.db")
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url, pipeline="batch_size = 2")
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            first = run_drain(rt, "initial")
            calls = record_writes(admin.stats()["calls"])
            credits = admin.stats()["credits"]["used"]
            flags = _flags(tmp_path / "legacy.db")
            again = run_drain(rt, "initial")
            spent_again = admin.stats()["credits"]["used"] - credits
            records = admin.records("Orders")
            rejects = app.store.list_rejects("orders", limit=100)
            calls_again = record_writes(admin.stats()["calls"]) - calls

    assert first.counts.confirmed == len(KEYS) and first.counts.sent == len(KEYS)
    assert first.left_pending == 0 and not rejects
    assert flags == dict.fromkeys(KEYS, 1)
    assert sorted(r["parent_id"] for r in records) == sorted(KEYS)  # one record per row
    assert {r["parent_id"]: r["Name"] for r in records}["2025-03-02"] == "SO-4"
    assert calls == 4  # 7 rows in batches of 2, each through the records API
    assert again.counts.sent == 0 and spent_again == 0 and calls_again == 0


def test_a_changed_row_keyed_by_a_date_alone_is_sent_again_and_confirmed(
    tmp_path: Path,
) -> None:
    url = _legacy_table(tmp_path / "legacy.db")
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            run_drain(rt, "initial")
            conn = sqlite3.connect(tmp_path / "legacy.db")
            conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id = '2025-03-02'")
            conn.commit()
            conn.close()
            before = record_writes(admin.stats()["calls"])
            after = run_drain(rt, "initial")
            spent = record_writes(admin.stats()["calls"]) - before
            records = {r["parent_id"]: r for r in admin.records("Orders")}

    assert after.counts.sent == 1 and after.counts.confirmed == 1 and spent == 1
    assert records["2025-03-02"]["Status"] == "Paid"
    assert len(records) == len(KEYS)
    assert _flags(tmp_path / "legacy.db")["2025-03-02"] == 1
