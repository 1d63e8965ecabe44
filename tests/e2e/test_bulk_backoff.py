"""Promise 9: failed bulk jobs are never re-created in a hot loop, not even across a restart.

Every bulk job of the emulator ends FAILED. Before, `syncd run` in interval mode created 79
jobs (39,500 credits) in a minute. Now each failed job puts the pipeline's bulk writes on a
growing backoff kept in the state store; the tests move syncd's clock, not the wall clock.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults
from syncd.engine.backoff import BULK_BASE_DELAY, BULK_PAUSE_AFTER
from syncd.engine.runs import run_drain
from syncd.engine.runtime import PipelineRuntime
from tests.helpers.e2e import MovableClock, open_app, write_config
from tests.helpers.sqlite_orders import sqlite3_orders

ROWS = 6_000  # above the 5,000-row break-even: the planner picks Bulk Write
JOB_CREDITS = 500


def _runtime(app_rt: PipelineRuntime, clock: MovableClock) -> PipelineRuntime:
    return dataclasses.replace(
        app_rt,
        clock=clock,
        tunables=dataclasses.replace(
            app_rt.tunables, bulk_poll_interval=timedelta(milliseconds=50)
        ),
    )


def _paid(admin: EmulatorAdmin) -> tuple[int, int]:
    """(bulk jobs created, credits used) as the CRM counts them."""
    return len(admin.jobs()), int(admin.stats()["credits"]["used"])


def test_failed_bulk_jobs_back_off_and_survive_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One failed job per backoff window, paused after three, resumed after success."""
    url = sqlite3_orders(tmp_path / "legacy.db", ROWS)
    clock = MovableClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    settings = EmulatorSettings(faults=Faults(fail_jobs=1000))
    with EmulatorServer(settings) as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(
            tmp_path, url, server.base_url, mode="interval", pipeline='schedule = "every 1m"'
        )
        with open_app(config) as app:
            rt = _runtime(app.runtime(app.settings.pipeline("orders")), clock)
            first = run_drain(rt, "interval")
            after_first = _paid(admin)
            again = run_drain(rt, "interval")  # at once: the backoff holds
            assert _paid(admin) == after_first
        with open_app(config) as app:  # a restart does not reset the backoff
            rt = _runtime(app.runtime(app.settings.pipeline("orders")), clock)
            run_drain(rt, "interval")
            assert _paid(admin) == after_first
            with caplog.at_level(logging.ERROR, logger="syncd"):
                for _ in range(BULK_PAUSE_AFTER - 1):
                    clock.at += BULK_BASE_DELAY * 2**BULK_PAUSE_AFTER  # past any backoff
                    run_drain(rt, "interval")
            paused_jobs, paused_credits = _paid(admin)
            status = app.store.backoff("orders", "bulk")
            admin.set_faults(fail_jobs=0)
            run_drain(rt, "interval")  # still inside the last backoff: nothing
            assert _paid(admin) == (paused_jobs, paused_credits)
            clock.at += timedelta(hours=3)
            last = run_drain(rt, "interval")
            cleared = app.store.backoff("orders", "bulk")

    jobs, credits = after_first
    assert jobs == 1 and JOB_CREDITS <= credits < JOB_CREDITS + 20  # upload and polls: 1 each
    assert first.left_pending == ROWS and again.counts.sent == 0 and again.left_pending == ROWS
    assert paused_jobs == BULK_PAUSE_AFTER
    assert paused_credits - credits < (BULK_PAUSE_AFTER - 1) * (JOB_CREDITS + 20)
    paused_events = [r for r in caplog.records if getattr(r, "event", "") == "bulk_paused"]
    assert len(paused_events) == 1
    assert status is not None and status.failures == BULK_PAUSE_AFTER
    assert status.blocks(clock.at - timedelta(hours=3)) and status.last_error
    assert last.left_pending == 0 and last.counts.confirmed == ROWS
    assert cleared is None
