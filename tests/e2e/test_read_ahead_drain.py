"""The drain lets the legacy table read a part ahead only where that part is asked for next,
within a bulk page: never across the wait for a job between two pages (a part read then would
be as old as that wait when it is sent). The table is made by plain DDL and filled by psycopg.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.drain import PART_ROWS
from syncd.engine.runs import run_drain
from syncd.model import PendingRow
from syncd.source.table import LegacyTable
from tests.helpers.e2e import open_app, write_config
from tests.helpers.native import native

PAGE = 2 * PART_ROWS
ROWS = 2 * PAGE + 1200  # two pages of two parts, and a short one


class _NotedTable(LegacyTable):
    """The real legacy table, noting each read: (after, limit, ahead, keys read)."""

    reads: list[tuple[Any, int, bool, list[Any]]]

    def pending_batch(
        self, after_key: Any | None, limit: int, *, ahead: bool = False
    ) -> list[PendingRow]:
        rows = super().pending_batch(after_key, limit, ahead=ahead)
        self.reads.append((after_key, limit, ahead, [r.key for r in rows]))
        return rows


def test_a_part_is_read_ahead_only_when_it_is_asked_for_next(tmp_path: Path, pg_url: str) -> None:
    with native(pg_url) as db:
        db.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, order_number varchar(40),"
            " total numeric(12,2), order_date date, ordered_at timestamp, status varchar(20),"
            " customer_email varchar(255), quantity integer, paid boolean, notes text,"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.execute(
            "INSERT INTO orders (id, order_number, total, order_date, status, quantity, paid)"
            " SELECT g, 'SO-' || g, g %% 900 + 0.25, date '2025-03-01', 'New', g %% 7, g %% 2 = 0"
            f" FROM generate_series(1, {ROWS}) AS g"
        )
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, pg_url, server.base_url, pipeline=f"batch_size = {PAGE}")
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            assert isinstance(rt.source, LegacyTable)
            table = _NotedTable(rt.source.engine, rt.source.spec)
            table.reads = []
            result = run_drain(replace(rt, source=table), "initial")

    reads = table.reads
    assert result.counts.confirmed == ROWS
    ahead = [i for i, (_, limit, asked, keys) in enumerate(reads) if asked and len(keys) == limit]
    assert len(ahead) == 2  # the first part of each full page (the short one has one part)
    for i in ahead:  # the next read is the part after it, as it was read ahead
        assert reads[i + 1][:2] == (reads[i][3][-1], reads[i][1])
    # Each page's last part is read without: the page's job is waited for after it.
    page_ends = [i for i, (_, _, _, keys) in enumerate(reads) if keys and keys[-1] % PAGE == 0]
    assert len(page_ends) == 2 and not any(reads[i][2] for i in page_ends)
