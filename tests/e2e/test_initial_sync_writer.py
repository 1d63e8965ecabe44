"""No lost update: the legacy application keeps writing while the initial sync runs.

A writer thread changes random rows (and sets their flag false, as the legacy application
does) throughout the sync, with the changes a loose comparison would miss: a text that only
changes case or gains a trailing space (MySQL's default collations call those equal), and a
total that moves by a cent. Once the writer stops and one more drain has run, every row's
CRM content must be its final legacy content.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from tests.helpers.e2e import assert_mirrored, open_app, write_config
from tests.helpers.orders import create_orders, order, orders_table

ROWS = 12_000
CENT = Decimal("0.01")


class Writer(threading.Thread):
    """The legacy application: one small transaction per change, flag set false with it."""

    def __init__(self, engine: Engine, seed: int) -> None:
        super().__init__(name="legacy-writer", daemon=True)
        self.engine, self.rng = engine, random.Random(seed)
        self.stopping = threading.Event()
        self.changes = 0
        self.error: SQLAlchemyError | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.change(self.rng.randint(1, ROWS))
                time.sleep(0.002)
        except SQLAlchemyError as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def change(self, key: int) -> None:
        table = orders_table()
        with self.engine.begin() as conn:
            notes, total = conn.execute(
                select(table.c.notes, table.c.total).where(table.c.id == key)
            ).one()
            notes = notes or "plain note"
            kind = self.rng.choice(("case", "space", "cent"))
            values = {
                "case": {"notes": notes.swapcase()},
                "space": {"notes": notes[:-1] if notes.endswith(" ") else notes + " "},
                "cent": {"total": total + CENT},
            }[kind]
            conn.execute(table.update().where(table.c.id == key).values(sync=False, **values))
        self.changes += 1


@pytest.mark.parametrize("database", ["sqlite_url", "pg_url", "mysql_url"])
def test_rows_changed_during_the_sync_end_up_with_their_final_content(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    """A row changed while its batch was in flight is re-sent, never marked synced stale."""
    url = str(request.getfixturevalue(database))
    engine = create_orders(url, (order(i) for i in range(1, ROWS + 1)))
    writer = Writer(engine, seed=ROWS)
    # Slow enough jobs that many changes land while a batch is in flight.
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=20_000)) as server:
        config = write_config(tmp_path, url, server.base_url, pipeline="batch_size = 6000")
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=200)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            writer.start()
            try:
                during = run_drain(rt, "initial")
            finally:
                writer.stopping.set()
                writer.join()
            assert writer.error is None, writer.error
            after = run_drain(rt, "initial")
            counts = assert_mirrored(url, server.base_url, app.store)
    engine.dispose()

    assert writer.changes > 10  # the writer really ran (how often depends on machine load)
    assert during.counts.stale > 0, "no change landed while its row was in flight"
    assert after.left_pending == 0
    assert counts == {"synced": ROWS, "rejected": 0, "crm_records": ROWS}
