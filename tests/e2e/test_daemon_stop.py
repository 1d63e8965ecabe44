"""SIGTERM loses nothing: the flush in flight finishes (or is left pending), bulk jobs stay
journaled and the next start applies them, and the exit is 0 within a bounded time."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.daemon import SYNCD, SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, record_writes, write_config
from tests.helpers.orders import (
    add_orders,
    change_orders,
    create_orders,
    order,
    orders_table,
    pending_keys,
)

TIMING = 'poll_interval = "1s"\nmax_delay = "1s"'


@pytest.fixture
def legacy(pg_url: str) -> Iterator[Engine]:
    engine = create_orders(pg_url, [])
    yield engine
    engine.dispose()


def calls(emulator: EmulatorServer) -> int:
    """Records API calls (insert, update, upsert) so far."""
    return record_writes(emulator.admin.stats()["calls"])


def status(config: Path) -> dict[str, object]:
    result = subprocess.run(
        [SYNCD, "-c", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pipelines: list[dict[str, object]] = json.loads(result.stdout)["pipelines"]
    return pipelines[0]


def test_sigterm_finishes_the_call_in_flight_and_leaves_the_rest_buffered(
    tmp_path: Path, pg_url: str, legacy: Engine
) -> None:
    """SIGTERM during the first of three upserts: it is applied, the others wait for the next
    start (still pending, not sent), and the exit is 0 without waiting for them."""
    with EmulatorServer() as emulator:
        config = write_config(tmp_path, pg_url, emulator.base_url, pipeline=TIMING)
        log = tmp_path / "syncd.log"
        with SyncdProcess(config, log) as daemon:
            daemon.wait_for("drain_finished")
            emulator.admin.set_faults(latency_ms=2000)
            add_orders(legacy, (order(i) for i in range(1, 301)))
            wait_until(lambda: calls(emulator) == 1, 5, "the upsert call in flight", 0.02)
            started = time.monotonic()
            assert daemon.terminate() == 0
            assert time.monotonic() - started < 4.5, "waited for more than the call in flight"
            assert daemon.events("daemon_stopped")
        assert calls(emulator) == 1
        assert len(pending_keys(legacy)) == 200, "the call in flight was not applied"
        emulator.admin.set_faults(latency_ms=0)
        with SyncdProcess(config, log) as daemon:
            wait_until(lambda: not pending_keys(legacy), 10, "the rest sent")
            assert daemon.terminate() == 0
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        try:
            assert assert_mirrored(pg_url, emulator.base_url, state)["crm_records"] == 300
        finally:
            state.close()


def test_sigterm_exits_within_the_stop_timeout_when_a_call_hangs(
    tmp_path: Path, pg_url: str, legacy: Engine
) -> None:
    """A call that hangs does not hold the exit beyond --stop-timeout; its rows go next start."""
    with EmulatorServer() as emulator:
        config = write_config(tmp_path, pg_url, emulator.base_url, pipeline=TIMING)
        log = tmp_path / "syncd.log"
        with SyncdProcess(config, log, "--stop-timeout", "2s") as daemon:
            daemon.wait_for("drain_finished")
            emulator.admin.set_faults(latency_ms=30_000)
            add_orders(legacy, (order(i) for i in range(1, 31)))
            wait_until(lambda: calls(emulator) == 1, 5, "the upsert call in flight", 0.02)
            started = time.monotonic()
            assert daemon.terminate() == 0
            assert time.monotonic() - started < 5
            assert daemon.events("stop_timeout")
        assert len(pending_keys(legacy)) == 30, "rows marked synced without an answer"
        emulator.admin.set_faults(latency_ms=0)
        with SyncdProcess(config, log) as daemon:
            wait_until(lambda: not pending_keys(legacy), 10, "rows sent again")
            assert daemon.terminate() == 0
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        try:
            assert assert_mirrored(pg_url, emulator.base_url, state)["crm_records"] == 30
        finally:
            state.close()


def test_sigterm_during_a_bulk_job_keeps_it_journaled_for_the_next_start(
    tmp_path: Path, pg_url: str, legacy: Engine
) -> None:
    """A mass update's bulk job running at SIGTERM is applied by the next start, never paid
    for again: not even when fewer rows are pending by then than a bulk job is worth."""
    with legacy.begin() as conn:  # already in sync: the initial sync finds nothing to do
        conn.execute(orders_table().insert(), [order(i, sync=True) for i in range(1, 6001)])
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=1_500)) as emulator:
        config = write_config(tmp_path, pg_url, emulator.base_url, pipeline=TIMING)
        log = tmp_path / "syncd.log"
        with SyncdProcess(config, log) as daemon:
            daemon.wait_for("drain_finished")
            change_orders(legacy, None, status="Refunded")  # a mass update in realtime mode
            daemon.wait_for("bulk_job_created")
            started = time.monotonic()
            assert daemon.terminate() == 0
            assert time.monotonic() - started < 5
        assert len(pending_keys(legacy)) == 6000
        assert status(config)["jobs_in_flight"] == 1
        # Meanwhile the legacy app deletes a third of the rows: too few pending for a bulk job,
        # yet the job Zoho already has must be applied, not paid for again by upsert.
        table = orders_table()
        with legacy.begin() as conn:
            conn.execute(delete(table).where(table.c.id > 4000))
        with SyncdProcess(config, log) as daemon:
            wait_until(lambda: not pending_keys(legacy), 20, "the journaled job applied", 0.3)
            assert daemon.terminate() == 0
        stats = emulator.admin.stats()
        assert stats["bulk"]["jobs_created"] == 1
        assert record_writes(stats["calls"]) == 0
        assert status(config)["jobs_in_flight"] == 0
        assert {r["Status"] for r in emulator.admin.records("Orders")} == {"Refunded"}
