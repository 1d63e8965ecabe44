"""Bulk jobs Zoho fails, and rows it leaves UNPROCESSED: nothing is lost, the rows go again.

Promise 4 (transient failures are retried) at the level of a whole initial sync, in-process so
the bulk poll can be fast.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults
from syncd.engine.runs import run_drain
from syncd.model import JobState
from syncd.state.tables import bulk_jobs
from tests.helpers.e2e import assert_mirrored, open_app, write_config
from tests.helpers.orders import create_orders, order

ROWS = 12_000
FAST_POLL = timedelta(milliseconds=200)


def test_rows_of_a_failed_bulk_job_stay_pending_and_go_in_the_next_round(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A job Zoho FAILS leaves its rows pending; the next round sends them in a new job."""
    create_orders(sqlite_url, (order(i) for i in range(1, ROWS + 1))).dispose()
    with EmulatorServer(EmulatorSettings(faults=Faults(fail_jobs=1))) as server:
        config = write_config(tmp_path, sqlite_url, server.base_url, pipeline="batch_size = 6000")
        with open_app(config, bulk_poll_interval=FAST_POLL) as app:
            result = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            counts = assert_mirrored(sqlite_url, server.base_url, app.store)
            with app.store.engine.connect() as conn:
                journal = conn.execute(select(bulk_jobs).order_by(bulk_jobs.c.id)).all()
        bulk = server.admin.stats()["bulk"]

    assert counts == {"synced": ROWS, "rejected": 0, "crm_records": ROWS}
    assert result.left_pending == 0
    assert bulk["jobs_failed"] == 1
    assert bulk["jobs_created"] == 3  # two batches, and the failed one once more
    assert [e.state for e in journal] == [
        JobState.FAILED.value,
        JobState.APPLIED.value,
        JobState.APPLIED.value,
    ]
    assert journal[0].manifest == journal[2].manifest, "the failed job's rows were not re-sent"
    assert result.counts.retried == 6_000
    assert result.rounds == 3  # all, then the failed batch, then nothing left


def test_unprocessed_rows_are_sent_again_until_zoho_takes_them(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Rows a bulk result reports UNPROCESSED keep flag false and are retried in later rounds."""
    create_orders(sqlite_url, (order(i) for i in range(1, ROWS + 1))).dispose()
    faults = Faults(unprocessed_rate=0.5)
    with EmulatorServer(EmulatorSettings(faults=faults, seed=6)) as server:
        config = write_config(tmp_path, sqlite_url, server.base_url)
        with open_app(config, bulk_poll_interval=FAST_POLL) as app:
            result = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            counts = assert_mirrored(sqlite_url, server.base_url, app.store)
            rejects = app.store.count_rejects("orders")
        stats = server.admin.stats()

    assert counts == {"synced": ROWS, "rejected": 0, "crm_records": ROWS}
    assert rejects == 0, "UNPROCESSED is transient, not a reject"
    assert result.left_pending == 0
    assert result.counts.retried >= ROWS // 3
    assert result.counts.confirmed == ROWS
    # About half came back UNPROCESSED: round two is big enough for another bulk job.
    assert stats["bulk"]["jobs_created"] >= 2
    assert result.counts.sent == ROWS + result.counts.retried, "a retried row was not re-sent"
