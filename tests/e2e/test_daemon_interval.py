"""Interval mode: each scheduled tick drains every pending row through the planner."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from syncd.config import load_settings
from syncd.daemon.ticks import pipeline_trigger
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import INSERT_CALL, assert_mirrored, record_writes, write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys


def test_each_tick_drains_all_pending_rows_by_the_cheaper_api(
    tmp_path: Path, mysql_url: str
) -> None:
    """A MariaDB table on "every 2s": 40 rows go by one upsert call, 6,000 by one bulk job."""
    legacy = create_orders(mysql_url, [])
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as emulator:
        config = write_config(
            tmp_path,
            mysql_url,
            emulator.base_url,
            mode="interval",
            pipeline='schedule = "every 2s"',
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("drain_finished")  # initial sync, at once on taking the lease
            add_orders(legacy, (order(i) for i in range(1, 41)))
            wait_until(lambda: not pending_keys(legacy), 8, "40 rows drained")
            stats = emulator.admin.stats()
            assert stats["calls"].get(INSERT_CALL, 0) == 1  # 40 new keys: one insert
            add_orders(legacy, (order(i) for i in range(41, 6041)))
            wait_until(lambda: not pending_keys(legacy), 30, "6,000 rows drained", 0.3)
            stats = emulator.admin.stats()
            assert record_writes(stats["calls"]) == 1
            assert stats["bulk"]["jobs_created"] == 1
            planned = [(e["api"], e["rows"]) for e in daemon.events("batch_planned")]
            assert planned == [("records", 40), ("bulk", 6_000)]
            assert daemon.terminate() == 0
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        try:
            kinds = {(r.kind, r.status) for r in state.last_runs("orders", 50)}
            assert kinds <= {("initial", "succeeded"), ("interval", "succeeded")}
            assert ("interval", "succeeded") in kinds
            assert assert_mirrored(mysql_url, emulator.base_url, state)["synced"] == 6040
        finally:
            state.close()
    legacy.dispose()


def test_cron_schedule_is_read_in_the_source_timezone(tmp_path: Path) -> None:
    """ "0 2 * * *" with source.timezone Europe/Berlin fires at 02:00 Berlin time, not UTC."""
    config = write_config(
        tmp_path,
        "sqlite:///legacy.db",
        "http://127.0.0.1:9",
        mode="interval",
        pipeline='schedule = "0 2 * * *"',
    )
    text = config.read_text().replace("[source]\n", '[source]\ntimezone = "Europe/Berlin"\n', 1)
    config.write_text(text)
    settings = load_settings(config)
    trigger = pipeline_trigger(settings.pipelines[0], settings.source.timezone)
    assert isinstance(trigger, CronTrigger)
    fire = trigger.get_next_fire_time(None, datetime(2025, 1, 10, 12, 0, tzinfo=UTC))
    assert fire is not None
    assert fire.astimezone(ZoneInfo("Europe/Berlin")).hour == 2
    assert fire.astimezone(UTC) == datetime(2025, 1, 11, 1, 0, tzinfo=UTC)
