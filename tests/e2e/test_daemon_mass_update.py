"""A mass update in realtime mode goes out by Bulk Write, as the planner prices it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import record_writes, write_config
from tests.helpers.orders import change_orders, create_orders, order, orders_table, pending_keys

ROWS = 80_000


def test_mass_update_of_80000_rows_goes_as_4_bulk_jobs(tmp_path: Path, pg_url: str) -> None:
    """80,000 changed rows cost 4 bulk jobs (2,000 credits), not 800 upsert calls (8,000)."""
    legacy = create_orders(pg_url, (order(i, sync=True) for i in range(1, ROWS + 1)))
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as emulator:
        config = write_config(tmp_path, pg_url, emulator.base_url, pipeline='poll_interval = "1s"')
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("drain_finished")  # nothing pending: the initial sync is done
            assert change_orders(legacy, None, status="Refunded") == ROWS
            wait_until(lambda: not pending_keys(legacy), 90, "every row synced", interval=0.5)
            stats = emulator.admin.stats()
            planned = daemon.events("batch_planned")
        assert stats["bulk"]["jobs_created"] == 4
        assert record_writes(stats["calls"]) == 0
        assert stats["records"]["Orders"] == ROWS
        assert sorted((e["api"], e["rows"], e["credits"]) for e in planned) == [
            ("bulk", 5_000, 500),
            ("bulk", 25_000, 500),
            ("bulk", 25_000, 500),
            ("bulk", 25_000, 500),
        ]
        records = emulator.admin.records("Orders")
    assert {r["Status"] for r in records} == {"Refunded"}
    assert len({r["parent_id"] for r in records}) == ROWS
    table = orders_table()
    with legacy.connect() as conn:
        assert conn.execute(select(func.count()).where(table.c.sync)).scalar_one() == ROWS
    legacy.dispose()
    state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    try:
        assert state.calls_since(datetime(2000, 1, 1, tzinfo=UTC))["bulk_job"] == (4, 2_000)
    finally:
        state.close()
