"""A legacy NULL clears the CRM field, whichever API carries the change (issue 16, item 3).

Rows first go out with a value in every mapped column; then the legacy application sets the
optional columns to NULL. Through Bulk Write (a backlog past the 5,000-row break-even, drained
as `initial-sync` and a mass update do) and through the records API (the realtime path: a few
changed rows buffered and flushed as an update by record id), the CRM record ends up with no
value in those fields, and the row is confirmed.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.planner import BREAK_EVEN
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from tests.helpers.e2e import (
    UPDATE_CALL,
    MovableClock,
    crm_by_key,
    open_app,
    write_config,
)
from tests.helpers.orders import change_orders, create_orders, order, pending_keys

# Every mapped field but the mandatory Name, with the legacy column that feeds it.
OPTIONAL = {
    "Amount": "total",
    "Order_Date": "order_date",
    "Ordered_At": "ordered_at",
    "Status": "status",
    "Customer_Email": "customer_email",
    "Quantity": "quantity",
    "Paid": "paid",
    "Notes": "notes",
}
CHANGED = [3, 7]


def _cleared(value: object) -> bool:
    return value in (None, "")


@pytest.mark.parametrize("path", ["bulk", "records"])
def test_a_null_clears_the_crm_field_on_both_paths(tmp_path: Path, path: str) -> None:
    """Values first, then NULL in the legacy row: the CRM field is emptied, by Bulk Write and
    by the records API alike, and the row is confirmed."""
    rows = BREAK_EVEN if path == "bulk" else 10
    url = f"sqlite:///{tmp_path}/legacy.db"
    engine = create_orders(
        url, (order(i, notes=f"note {i}", paid=True) for i in range(1, rows + 1))
    )
    clock = MovableClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = dataclasses.replace(app.runtime(app.settings.pipeline("orders")), clock=clock)
            run_drain(rt, "initial")
            before = crm_by_key(server.base_url)
            nulls = dict.fromkeys(OPTIONAL.values())
            change_orders(engine, None if path == "bulk" else CHANGED, **nulls)
            jobs = server.admin.stats()["bulk"].get("jobs_created", 0)
            updates = server.admin.stats()["calls"].get(UPDATE_CALL, 0)
            if path == "bulk":
                run_drain(rt, "initial")
            else:
                realtime_tick(rt)  # buffered
                clock.at += rt.tunables.max_delay
                realtime_tick(rt)  # flushed: the oldest change waited max_delay
            stats = server.admin.stats()
        after = crm_by_key(server.base_url)
    assert all(not _cleared(before[str(k)][field]) for k in CHANGED for field in OPTIONAL)
    new_jobs = stats["bulk"].get("jobs_created", 0) - jobs
    new_updates = stats["calls"].get(UPDATE_CALL, 0) - updates
    assert (new_jobs, new_updates) == ((1, 0) if path == "bulk" else (0, 1)), stats["calls"]
    for key in CHANGED:
        record = after[str(key)]
        assert {f: record.get(f) for f in OPTIONAL if not _cleared(record.get(f))} == {}
        assert record["Name"] == before[str(key)]["Name"]
    assert pending_keys(engine) == []
    engine.dispose()
