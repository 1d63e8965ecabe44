"""The emulator's faults switched on: the daemon neither loses nor duplicates anything."""

from __future__ import annotations

import random
import time
from pathlib import Path

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, write_config
from tests.helpers.orders import add_orders, change_orders, create_orders, order, pending_keys

RATES = {"error_rate": 0.08, "rate_limit_rate": 0.08, "drop_rate": 0.08, "drop_after_rate": 0.08}
KINDS = {"error", "rate_limit", "drop", "drop_after"}  # as the emulator's stats name them
INITIAL, NEW = 5_000, 200
SEED = 810  # every kind of fault early, no long streak of them (so no long backoff)


def test_errors_throttling_and_dropped_replies_lose_and_duplicate_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    """Under 500s, 429s and lost requests and replies, every row ends up mirrored exactly once."""
    legacy = create_orders(pg_url, (order(i) for i in range(1, INITIAL + 1)))
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None, seed=SEED)) as emulator:
        config = write_config(
            tmp_path,
            pg_url,
            emulator.base_url,
            pipeline='poll_interval = "1s"\nmax_delay = "1s"\nflush_size = 10',
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("daemon_ready")
            emulator.admin.set_faults(**RATES)  # the initial sync by bulk write, then realtime
            wait_until(lambda: not pending_keys(legacy), 60, "initial sync done", 0.5)
            add_orders(legacy, (order(i) for i in range(INITIAL + 1, INITIAL + NEW + 1)))
            pick = random.Random(3)
            deadline = time.monotonic() + 45
            # Keep the legacy app busy until every kind of fault has struck at least once.
            while not set(emulator.admin.stats()["faults"]) >= KINDS:
                assert time.monotonic() < deadline, emulator.admin.stats()["faults"]
                keys = pick.sample(range(1, INITIAL + NEW + 1), 15)
                change_orders(legacy, keys, quantity=pick.randint(1, 9), status="Paid")
                time.sleep(1)
            wait_until(lambda: not pending_keys(legacy), 60, "changes synced", 0.5)
            emulator.admin.set_faults(**dict.fromkeys(RATES, 0.0))
            assert daemon.terminate() == 0
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        try:
            counts = assert_mirrored(pg_url, emulator.base_url, state)
        finally:
            state.close()
        total = INITIAL + NEW
        assert counts == {"synced": total, "rejected": 0, "crm_records": total}
    legacy.dispose()
