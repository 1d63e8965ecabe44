"""A bulk batch is read and written in parts (promise 7: its values never all exist at once)."""

from __future__ import annotations

import io
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.commands.progress import progress_bar
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, write_config
from tests.helpers.orders import create_orders, order

ROWS = 12_000  # one batch of the default batch_size (25,000): one bulk job


def test_one_bulk_batch_is_read_and_encoded_5000_rows_at_a_time_into_one_job(
    tmp_path: Path,
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """12,000 rows go as one job of one file, read and encoded in parts of 5,000, 5,000, 2,000."""
    create_orders(sqlite_url, [order(i) for i in range(1, ROWS + 1)]).dispose()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: log lines, no bar
    caplog.set_level(logging.INFO)
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, sqlite_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            with app.pipeline_lease("orders"), progress_bar("orders", ROWS) as update:
                result = run_drain(rt, "initial", update)
        stats = server.admin.stats()
    assert (result.counts.confirmed, result.left_pending) == (ROWS, 0)
    assert stats["bulk"]["jobs_created"] == 1

    lines: list[Any] = [r for r in caplog.records if getattr(r, "event", None) == "progress"]
    assert [r.read for r in lines if r.step == "read"] == [5_000, 10_000, ROWS]
    assert [r.encoded for r in lines if r.step == "encoded"] == [5_000, 10_000, ROWS]
    assert [r.uploaded for r in lines if r.step == "uploaded"] == [ROWS]
    planned = [
        (r.api, r.rows) for r in caplog.records if getattr(r, "event", None) == "batch_planned"
    ]
    assert planned == [("bulk", ROWS)]
