"""Progress that moves during the initial sync (issue 17, item 5).

The emulator runs bulk jobs at a set rate, so each job is seen IN PROGRESS with a processed
count that grows between polls. Off a terminal, `initial-sync` logs one line per step of the
drain (a batch read, encoded, uploaded as a job, a poll whose count moved, a job finished,
rows settled), and an ETA once two jobs have finished.
"""

from __future__ import annotations

import io
import logging
import sys
from collections import defaultdict
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from syncd.commands.progress import progress_bar
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.progress import Progress
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, write_config
from tests.helpers.orders import create_orders, order

ROWS, BATCH = 15_000, 5_000  # three bulk jobs, run one after another by the emulator


def test_initial_sync_reports_zohos_processed_counts_and_an_eta_one_log_line_per_step(
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_orders(sqlite_url, [order(i) for i in range(1, ROWS + 1)]).dispose()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: log lines, no bar
    caplog.set_level(logging.INFO, logger="syncd.commands.progress")
    # 5,000 rows a second: each job runs about a second, polled every 50 ms and more.
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=5_000)) as server:
        config = write_config(
            tmp_path, sqlite_url, server.base_url, pipeline=f"batch_size = {BATCH}"
        )
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            with app.pipeline_lease("orders"), progress_bar("orders", ROWS) as update:
                credits: list[tuple[str, int]] = []

                def noted(progress: Progress) -> None:
                    credits.append((progress.step, progress.counts.credits))
                    update(progress)

                result = run_drain(rt, "initial", noted)
    assert (result.counts.confirmed, result.left_pending) == (ROWS, 0)

    # Credits so far, from the ledger: an upload and its job's creation are counted on their
    # step; a read or an encoding follows no call and carries the credits of the step before.
    spent = [c for _, c in credits]
    assert spent == sorted(spent) and spent[-1] == result.counts.credits > 0
    for (_, before), (step, now) in pairwise(credits):
        if step in ("read", "encoded"):
            assert now == before
        if step == "uploaded":
            assert now > before

    lines: list[Any] = [r for r in caplog.records if getattr(r, "event", None) == "progress"]
    steps = [r.step for r in lines]
    assert {"read", "encoded", "uploaded", "job_polled", "job_finished", "settled"} <= set(steps)
    # Rows read, encoded and uploaded grow batch by batch, each step on its own line.
    assert [r.read for r in lines if r.step == "read"] == [BATCH, 2 * BATCH, 3 * BATCH]
    assert [r.encoded for r in lines if r.step == "encoded"] == [BATCH, 2 * BATCH, 3 * BATCH]
    assert [r.uploaded for r in lines if r.step == "uploaded"] == [BATCH, 2 * BATCH, 3 * BATCH]
    assert steps.count("job_finished") == 3

    # Zoho's processed count of a running job, poll after poll: it moves, within the job.
    processed: dict[str, list[int]] = defaultdict(list)
    for record in lines:
        if record.step == "job_polled":
            for job in record.jobs:
                processed[job["job_id"]].append(job["processed"])
    assert len(processed) >= 2, f"no running job seen with Zoho's counts: {dict(processed)}"
    moving = [counts for counts in processed.values() if len(set(counts)) >= 2]
    assert moving, f"no job's processed count moved between polls: {dict(processed)}"
    for counts in processed.values():  # 0: a job the emulator has not started yet
        assert counts == sorted(counts) and all(0 <= n <= BATCH for n in counts)
    assert any(0 < n < BATCH for counts in moving for n in counts)  # seen mid-way
    assert any("processed" in r.getMessage() for r in lines if r.step == "job_polled")

    # The ETA: none before two jobs finished, then one while the third still runs.
    assert all(r.eta_seconds is None for r in lines if r.jobs_done < 2)
    with_eta = [r for r in lines if r.eta_seconds is not None]
    assert with_eta and any(r.confirmed < ROWS for r in with_eta)
    assert any("ETA" in r.getMessage() for r in with_eta)
