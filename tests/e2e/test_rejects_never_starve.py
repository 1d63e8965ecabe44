"""Promise 9: any number of rejects never hides a sendable row nor thins a batch.

Rejects keep flag false, so they stay pending for ever. Before, the realtime poll read the
first 5,000 pending rows and dropped rejects afterwards (a row behind 6,000 rejects was never
sent), and drain batches were read and then thinned, paying for more calls than needed. The
tables are made by plain DDL and filled by Python's sqlite3 module.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from syncd.engine.runtime import PipelineRuntime
from syncd.model import Reject, content_hash
from tests.helpers.e2e import open_app, record_writes, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders


def _reject_lowest(rt: PipelineRuntime, count: int, extra_keys: tuple[str, ...] = ()) -> None:
    """Record the ``count`` lowest pending rows as rejects of their current content, as an
    earlier run would have; ``extra_keys`` are rejects of rows that do not exist."""
    rows = rt.source.pending_batch(None, count)
    now = rt.clock.now()
    items = [
        Reject(rt.name, r.key_text, "INVALID_DATA", "Status", "bad", content_hash(r.values), now)
        for r in rows
    ]
    items += [Reject(rt.name, k, "INVALID_DATA", None, None, "gone", now) for k in extra_keys]
    rt.state.record_rejects(items)


def _calls(admin: EmulatorAdmin, kind: str) -> int:
    return sum(n for name, n in admin.stats()["calls"].items() if kind in name)


def test_a_new_row_behind_six_thousand_rejects_is_sent_in_realtime(tmp_path: Path) -> None:
    """A lone change behind 6,000 unchanged rejects goes out within max_delay + one poll."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, 6_000)
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(
            tmp_path, url, server.base_url, pipeline='max_delay = "1s"\npoll_interval = "1s"'
        )
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            _reject_lowest(rt, 6_000)
            conn = sqlite3.connect(db)
            conn.execute(
                "INSERT INTO orders VALUES (7000, 'SO-7000', 5, '2025-03-01',"
                " '2025-03-01 10:00:00', 'New', 'new@example.com', 1, 1, NULL, 0)"
            )
            conn.commit()
            conn.close()
            first = realtime_tick(rt)
            time.sleep(1.1)
            second = realtime_tick(rt)
            records = admin.records("Orders")
            upserts, bulk = record_writes(admin.stats()["calls"]), _calls(admin, "bulk")

    # max_delay (1 s) ends before the next poll: the lone change goes at the first tick.
    assert first.mode == "buffer" and first.counts.confirmed == 1
    assert second.counts.sent == 0
    assert [r["parent_id"] for r in records] == ["7000"]
    assert upserts == 1 and bulk == 0
    assert pending(db) == 6_000  # the rejects, still pending, never re-sent


def test_batches_are_filled_with_sendable_rows_and_dead_rejects_are_pruned(
    tmp_path: Path,
) -> None:
    """7,500 pending rows with 1,500 unchanged rejects cost one 6,000-row bulk job, no upsert."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, 7_500)
    with EmulatorServer() as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url, pipeline="batch_size = 6000")
        with open_app(config) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            fast = dataclasses.replace(rt.tunables, bulk_poll_interval=timedelta(milliseconds=50))
            rt = dataclasses.replace(rt, tunables=fast)
            _reject_lowest(rt, 1_500, extra_keys=("90001", "90002"))
            result = run_drain(rt, "initial")
            left = app.store.count_rejects("orders")
            credits = admin.stats()["credits"]["used"]
            jobs, upserts = len(admin.jobs()), record_writes(admin.stats()["calls"])

    assert result.counts.confirmed == 6_000 and result.left_pending == 0
    assert jobs == 1 and upserts == 0
    assert 500 <= credits < 520  # one job; upload, polls and download cost 1 each
    assert left == 1_500  # the rejects of rows that do not exist were forgotten
