"""The drain asks about a bulk job when the run's earlier jobs say it is due (issue 14,
goal 4): a job is not seen a whole poll interval after it finished."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, write_config
from tests.helpers.orders import create_orders, order

JOB_SECONDS = 1.0
INTERVAL = 4.0
JOBS = 3


def test_after_the_first_job_each_job_is_seen_soon_after_it_finished(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Three jobs of 1 s each, one at a time, with a 4 s poll interval. Polling on the
    interval sees each job 3 s late (at least 12 s in all); paced, only the first is (the run
    takes about 4 + 1.3 + 1.3 s), for a few status calls more."""
    rows = JOBS * 5_000
    create_orders(sqlite_url, [order(i) for i in range(1, rows + 1)]).dispose()
    settings = EmulatorSettings(bulk_rows_per_second=None, bulk_job_seconds=JOB_SECONDS)
    with EmulatorServer(settings) as server:
        config = write_config(
            tmp_path,
            sqlite_url,
            server.base_url,
            pipeline="batch_size = 5000",
            crm="bulk_jobs_in_flight = 1",
        )
        with open_app(config, bulk_poll_interval=timedelta(seconds=INTERVAL)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            began = time.monotonic()
            with app.pipeline_lease("orders"):
                result = run_drain(rt, "initial")
            took = time.monotonic() - began
        stats = server.admin.stats()
    assert (result.counts.confirmed, result.left_pending) == (rows, 0)
    assert stats["bulk"]["jobs_created"] == JOBS
    assert took < JOBS * INTERVAL - 2, f"{took:.1f} s: the jobs were seen an interval late"
    polls = stats["calls"].get("GET /crm/bulk/v8/write/{job_id}", 0)
    assert JOBS * 2 <= polls <= JOBS * 6, polls
