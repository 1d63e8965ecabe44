"""`syncd run` in realtime mode against the emulator and a real PostgreSQL legacy table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from syncd.emulator.server import EmulatorServer
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, crm_by_key, record_writes, write_config
from tests.helpers.orders import add_orders, change_orders, create_orders, order, pending_keys

POLL, MAX_DELAY = 1.0, 3.0
TIMING = f'poll_interval = "{POLL:.0f}s"\nmax_delay = "{MAX_DELAY:.0f}s"'


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def legacy(pg_url: str) -> Iterator[Engine]:
    engine = create_orders(pg_url, [])
    yield engine
    engine.dispose()


def upserts(emulator: EmulatorServer) -> tuple[int, int]:
    """(records API calls so far, Orders records in the CRM)."""
    stats = emulator.admin.stats()
    return record_writes(stats["calls"]), int(stats["records"].get("Orders", 0))


def test_burst_goes_as_two_full_calls_at_once_and_the_rest_after_max_delay(
    tmp_path: Path, pg_url: str, legacy: Engine, emulator: EmulatorServer
) -> None:
    """250 changes: 100 + 100 within one poll, the last 50 only as their max_delay runs out."""
    config = write_config(tmp_path, pg_url, emulator.base_url, pipeline=TIMING)
    with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
        daemon.wait_for("drain_finished")  # the (empty) initial sync comes first
        add_orders(legacy, (order(i) for i in range(1, 251)))
        inserted = datetime.now(UTC)
        seen: set[tuple[int, int]] = set()  # (upsert calls, CRM records) as the emulator saw them

        def third_call() -> bool:
            seen.add(upserts(emulator))
            return (3, 250) in seen

        wait_until(third_call, POLL + MAX_DELAY + 5, "the last 50 rows", interval=0.05)
        time.sleep(POLL * 1.5)
        assert upserts(emulator) == (3, 250), "a row went twice, or in more calls than needed"
        assert pending_keys(legacy) == []
        assert daemon.terminate() == 0

    assert (2, 200) in seen, f"never saw 2 calls carrying 100 rows each: {sorted(seen)}"
    # When each call went, by the daemon's own clock (the emulator's stats have no timestamps).
    flushes = [
        ((datetime.fromisoformat(e["ts"]) - inserted).total_seconds(), e["rows"])
        for e in daemon.events("flush_sent")
    ]
    assert [rows for _, rows in flushes] == [100, 100, 50]
    (first, _), (second, _), (last, _) = flushes
    assert first <= POLL + 1.0, "the full chunks did not go within one poll interval"
    assert second - first < 1.0, "the two full chunks did not go together"
    # The remainder goes at the last poll before its max_delay runs out (so it never overruns
    # max_delay), hence at most one poll early and, counted from the change, one poll late.
    assert MAX_DELAY - POLL - 0.2 <= last <= MAX_DELAY + POLL + 1.5, f"remainder after {last:.1f}s"


def test_initial_sync_runs_first_and_repeated_edits_send_the_last_version_once(
    tmp_path: Path, pg_url: str, emulator: EmulatorServer
) -> None:
    """Pending rows go by initial sync first; five edits of one buffered row go out once."""
    legacy = create_orders(pg_url, (order(i) for i in range(1, 31)))
    # max_delay 4 s: the flush comes 3 s after the row is seen at the earliest (one poll
    # early), well after the last edit at 1.4 s.
    timing = f'poll_interval = "{POLL:.0f}s"\nmax_delay = "4s"'
    config = write_config(tmp_path, pg_url, emulator.base_url, pipeline=timing)
    with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
        daemon.wait_for("drain_finished")
        assert upserts(emulator) == (1, 30)
        add_orders(legacy, [order(100, quantity=1)])
        for quantity in (2, 3, 4, 5):  # over more than one poll interval
            time.sleep(0.35)
            change_orders(legacy, [100], quantity=quantity, status="Paid")
        wait_until(lambda: not pending_keys(legacy), 4 + POLL + 5, "row 100 synced")
        time.sleep(POLL * 1.5)
        assert upserts(emulator) == (2, 31), "row 100 went more than once"
        assert crm_by_key(emulator.base_url)["100"]["Quantity"] == 5
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        try:
            runs = sorted(state.last_runs("orders", 10), key=lambda r: r.id)
            assert [(r.kind, r.status, r.counts.sent) for r in runs] == [
                ("initial", "succeeded", 30),
                ("realtime", "succeeded", 1),
            ]
            assert assert_mirrored(pg_url, emulator.base_url, state)["synced"] == 31
        finally:
            state.close()
    legacy.dispose()


def test_daily_credit_budget_is_never_exceeded(
    tmp_path: Path, pg_url: str, legacy: Engine, emulator: EmulatorServer
) -> None:
    """With 12 credits a day, one call of 100 (10 credits) goes and the rest waits."""
    config = write_config(
        tmp_path,
        pg_url,
        emulator.base_url,
        pipeline=TIMING,
        crm="daily_credit_budget = 12",
    )
    with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
        daemon.wait_for("drain_finished")
        add_orders(legacy, (order(i) for i in range(1, 251)))
        daemon.wait_for("budget_exceeded")
        time.sleep(MAX_DELAY + POLL)  # the remainder of 50 falls due, and cannot go either
        assert upserts(emulator) == (1, 100)
        assert emulator.admin.stats()["credits"]["used"] <= 12
        assert len(pending_keys(legacy)) == 150
