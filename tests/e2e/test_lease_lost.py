"""Promise 8: a worker that loses its lease stops sending before its next CRM call.

Before, the lease was checked only between ticks: a long drain went on while the standby took
over, and both sent. Here the PostgreSQL backend holding the advisory lock is terminated
during a drain of several bulk jobs; a heartbeat thread checks the lease as the daemon's does.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.drain import drain
from syncd.errors import LeaseLost
from syncd.state.lease import HEARTBEAT, lease_for
from tests.helpers.daemon import wait_until
from tests.helpers.e2e import open_app, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 15_000


def _calls(admin: EmulatorAdmin) -> int:
    return sum(admin.stats()["calls"].values())


def test_terminating_the_lease_backend_stops_a_long_drain(tmp_path: Path, pg_url: str) -> None:
    """Within a heartbeat of the lock's loss the drain stops, with no CRM call after it."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, ROWS)
    settings = EmulatorSettings(bulk_rows_per_second=2_000)  # 5,000 rows: 2.5 s per job
    with EmulatorServer(settings) as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(
            tmp_path, url, server.base_url, state_url=pg_url, pipeline="batch_size = 5000"
        )
        with open_app(config) as app:
            lease = lease_for(app.store, "orders")
            assert lease.try_acquire()
            rt = app.runtime(app.settings.pipeline("orders"))
            rt = dataclasses.replace(
                rt,
                may_send=lambda: lease.held,
                tunables=dataclasses.replace(
                    rt.tunables, jobs_in_flight=1, bulk_poll_interval=timedelta(milliseconds=100)
                ),
            )
            lost_at: list[tuple[float, int]] = []
            stop = threading.Event()

            def heartbeat() -> None:
                while not stop.wait(HEARTBEAT.total_seconds() / 4):
                    if lease.held and not lease.verify():
                        lost_at.append((time.monotonic(), _calls(admin)))

            failure: list[BaseException] = []

            def run() -> None:
                try:
                    drain(rt, None)
                except LeaseLost as exc:
                    failure.append(exc)

            beat = threading.Thread(target=heartbeat, daemon=True)
            worker = threading.Thread(target=run, daemon=True)
            beat.start()
            worker.start()
            wait_until(lambda: admin.jobs(), 20, "the first bulk job")
            admin_engine = create_engine(pg_url)
            with admin_engine.begin() as conn:
                killed = (
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_locks"
                            " WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                            # this test's database only: a test running beside it (pytest -n 2)
                            # holds advisory locks of its own
                            " AND database = (SELECT oid FROM pg_database"
                            " WHERE datname = current_database())"
                        )
                    )
                    .scalars()
                    .all()
                )
            admin_engine.dispose()
            terminated = time.monotonic()
            worker.join(20)
            stopped = time.monotonic()
            stop.set()
            beat.join(5)
            jobs, calls = len(admin.jobs()), _calls(admin)
            lease.release()

    assert killed == [True]
    assert not worker.is_alive() and failure and "lost its lease" in str(failure[0])
    assert lost_at, "the heartbeat never saw the lease go"
    assert stopped - terminated < 5  # within seconds, not at the end of the drain
    assert calls == lost_at[0][1]  # no CRM call once the loss was seen
    assert jobs == 1 and pending(db) == ROWS  # the other batches were never sent
