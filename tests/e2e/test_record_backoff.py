"""Promise 9: a record Zoho reports as transiently failing is retried on its own backoff.

Before, a RECORD_LOCKED record was re-sent at every realtime poll once max_delay had passed:
one locked record cost 120 calls in 20 minutes. The clock is syncd's, moved by the test.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from tests.helpers.e2e import MovableClock, open_app, record_writes, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

POLL = timedelta(seconds=5)


def _upserts(admin: EmulatorAdmin) -> int:
    return record_writes(admin.stats()["calls"])


def test_a_locked_record_is_retried_on_a_growing_backoff_not_at_every_poll(
    tmp_path: Path,
) -> None:
    """20 minutes of 5 s polls cost a handful of calls for one locked record, then it goes."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, 10)
    clock = MovableClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    with EmulatorServer(EmulatorSettings(faults=Faults(locked_records=("5",)))) as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config) as app:
            rt = dataclasses.replace(app.runtime(app.settings.pipeline("orders")), clock=clock)
            run_drain(rt, "initial")  # row 5 is new: an insert, not locked yet
            conn = sqlite3.connect(db)
            conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id = 5")
            conn.commit()
            before = _upserts(admin)
            end = clock.at + rt.tunables.max_delay + timedelta(minutes=20)
            while clock.at < end:
                realtime_tick(rt)
                clock.at += POLL
            locked_calls = _upserts(admin) - before
            buffered_while_locked = app.store.buffer_keys("orders")
            admin.set_faults(locked_records=[])
            for _ in range(int(timedelta(minutes=31) / POLL)):
                realtime_tick(rt)
                clock.at += POLL
            record = {r["parent_id"]: r for r in admin.records("Orders")}["5"]
            conn.close()

    assert buffered_while_locked == ["5"]  # kept, not dropped
    # First send after max_delay, then 30 s doubling with jitter (at least 15 s, 30 s, ...):
    # at most 8 sends in 20 minutes instead of one per poll (240).
    assert 3 <= locked_calls <= 8
    assert record["Status"] == "Paid" and pending(db) == 0
