"""Promise 1's safety net: a row that never stays confirmed is parked, not re-sent for ever.

The table is created and filled by Python's sqlite3 module, with the kind of trigger legacy
applications carry: it sets the flag false after every UPDATE, syncd's own flag UPDATE
included. Zoho confirms each send, the flag never stays true; without the safety net every
round re-sends the same content.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.engine.apply import NOT_CONVERGING_AFTER, NOT_CONVERGING_CODE
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, record_writes, write_config

ROWS = 30


def _legacy_table(path: Path) -> str:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE orders (id INTEGER PRIMARY KEY, order_number VARCHAR(40),
          total NUMERIC(12,2), order_date DATE, ordered_at DATETIME, status VARCHAR(20),
          customer_email VARCHAR(255), quantity INTEGER, paid BOOLEAN, notes TEXT,
          sync BOOLEAN NOT NULL DEFAULT 0);
        CREATE TRIGGER orders_touch AFTER UPDATE ON orders
          BEGIN UPDATE orders SET sync = 0 WHERE id = NEW.id; END;
        """
    )
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, '2025-03-01', '2025-03-01 10:00:00', 'New',"
        " ?, 1, 1, NULL, 0)",
        [(i, f"SO-{i}", 10.5 + i, f"b{i}@example.com") for i in range(1, ROWS + 1)],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _upsert_calls(admin: EmulatorAdmin) -> int:
    return record_writes(admin.stats()["calls"])


def test_a_row_whose_flag_never_sticks_is_parked_after_three_confirmations(
    tmp_path: Path,
) -> None:
    """Three confirmations of unchanged content that do not stick park the row as a reject."""
    url = _legacy_table(tmp_path / "legacy.db")
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            first = run_drain(rt, "initial")
            calls = _upsert_calls(admin)
            credits = admin.stats()["credits"]["used"]
            again = run_drain(rt, "initial")
            rejects = app.store.list_rejects("orders", limit=100)
            assert admin.stats()["credits"]["used"] == credits  # the parked rows cost nothing
            assert _upsert_calls(admin) == calls

    # One records call per round: 30 rows fit one call.
    assert calls == NOT_CONVERGING_AFTER
    assert first.counts.stale == ROWS * (NOT_CONVERGING_AFTER - 1) + ROWS
    assert first.counts.confirmed == 0 and first.left_pending == 0
    assert again.counts.sent == 0
    assert len(rejects) == ROWS
    assert {r.code for r in rejects} == {NOT_CONVERGING_CODE}
    assert "flag column sync" in (rejects[0].message or "")
    assert "trigger" in (rejects[0].message or "")


def test_a_parked_row_goes_again_once_its_content_changes(tmp_path: Path) -> None:
    """The parked row is re-sent as soon as the legacy application changes its content."""
    url = _legacy_table(tmp_path / "legacy.db")
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            run_drain(rt, "initial")
            conn = sqlite3.connect(tmp_path / "legacy.db")
            conn.execute("DROP TRIGGER orders_touch")  # the operator fixed the cause
            conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id = 7")
            conn.commit()
            before = _upsert_calls(admin)
            after = run_drain(rt, "initial")
            spent = _upsert_calls(admin) - before
            record = {r["parent_id"]: r for r in admin.records("Orders")}["7"]
            flag = conn.execute("SELECT sync FROM orders WHERE id = 7").fetchone()[0]
            conn.close()
            left = {r.key for r in app.store.list_rejects("orders", limit=100)}

    assert after.counts.sent == 1 and spent == 1
    assert after.counts.confirmed == 1 and flag == 1
    assert record["Status"] == "Paid"
    assert "7" not in left and len(left) == ROWS - 1
    assert before == NOT_CONVERGING_AFTER
