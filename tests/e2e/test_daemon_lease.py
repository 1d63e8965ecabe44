"""One active worker per pipeline: a second `syncd run` waits as standby and takes over."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys

TIMING = 'poll_interval = "1s"\nmax_delay = "1s"'


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A state store of each kind: file lock (SQLite) and advisory lock (PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("pg_url"))


def test_standby_never_sends_and_takes_over_within_seconds_after_kill_9(
    tmp_path: Path, state_url: str, mysql_url: str
) -> None:
    """Two daemons on one state store: only the lease holder sends; kill -9 hands over."""
    legacy = create_orders(mysql_url, [])
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path, mysql_url, emulator.base_url, state_url=state_url, pipeline=TIMING
        )
        state = StateStore.open(state_url)
        first = SyncdProcess(config, tmp_path / "first.log").start()
        second = SyncdProcess(config, tmp_path / "second.log")
        try:
            first.wait_for("drain_finished")
            second.start().wait_for("daemon_ready")
            add_orders(legacy, (order(i) for i in range(1, 151)))
            wait_until(lambda: not pending_keys(legacy), 10, "first batch synced")
            runs = wait_until(
                lambda: [r for r in state.last_runs("orders", 50) if r.kind == "realtime"],
                5,
                "the realtime runs",
            )
            assert not second.events("lease_acquired")
            assert {r.host for r in runs} == {first.host_id}

            # A hung active worker still holds the lease: the standby must not send for it.
            first.signal(signal.SIGSTOP)
            add_orders(legacy, (order(i) for i in range(151, 181)))
            time.sleep(3)  # max_delay and two polls
            assert len(pending_keys(legacy)) == 30
            assert not second.events("flush_sent")

            first.kill()
            killed = datetime.now(UTC)
            started = time.monotonic()
            second.wait_for("lease_acquired", timeout=10)
            assert time.monotonic() - started < 5, "the standby took too long to take over"
            add_orders(legacy, (order(i) for i in range(181, 221)))
            wait_until(lambda: not pending_keys(legacy), 10, "second batch synced")
            holder = state.lease_holder("orders")
            assert holder is not None and holder.holder == second.host_id
            # The run is recorded just after its outcomes are applied.
            later = wait_until(
                lambda: [r for r in state.last_runs("orders", 50) if r.started_at >= killed],
                5,
                "the run after the takeover",
            )
            assert {r.host for r in later} == {second.host_id}
            assert second.terminate() == 0
            counts = assert_mirrored(mysql_url, emulator.base_url, state)  # no duplicates
            assert counts["synced"] == counts["crm_records"] == 220
        finally:
            first.kill()
            second.kill()
            state.close()
    legacy.dispose()
