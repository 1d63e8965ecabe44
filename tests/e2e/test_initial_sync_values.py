"""Type conversion through the whole pipe: legacy column → CSV or JSON → emulator → CRM value.

Each edge row goes through Bulk Write (padded past the 5,000-row break-even) and through the
Upsert API (alone), from each legacy database, with naive timestamps in Europe/Berlin.
A value with no faithful CRM form becomes syncd's own NOT_REPRESENTABLE reject and stays pending.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from syncd.emulator.server import EmulatorServer
from syncd.engine.apply import LOCAL_REJECT_CODE
from syncd.engine.runs import run_drain
from tests.helpers.e2e import assert_mirrored, crm_by_key, open_app, write_config
from tests.helpers.orders import create_orders, order, orders_table

BERLIN = ZoneInfo("Europe/Berlin")

EDGE_ROWS = [
    order(1, order_number='SO,"1"', notes='a,b,"c"\r\nline two\nline three ,'),
    order(2, order_number="Ünïcödé-2", notes="Grüße 日本語 emoji 🎉 ÆØÅ"),
    order(3, order_number=" SO-3 ", notes="  leading and trailing  "),
    order(4, notes="tab\there;semi|pipe:colon =SUM(A1) +x -y @z"),
    order(5, notes="x" * 2000),  # the textarea's full length
    order(6, total=Decimal("0.01"), quantity=0),
    order(7, total=Decimal("9999999999.99"), quantity=999_999_999),
    order(8, total=Decimal("-12.50")),
    order(9, total=Decimal("100.00")),
    order(10, ordered_at=datetime(2025, 1, 15, 23, 30)),  # CET, +01:00
    order(11, ordered_at=datetime(2025, 7, 1, 0, 15)),  # CEST, +02:00: the day before in UTC
    order(12, ordered_at=datetime(2025, 12, 31, 23, 59, 59), order_date=date(1999, 12, 31)),
    order(
        13,
        notes="",
        customer_email=None,
        total=None,
        order_date=None,
        ordered_at=None,
        status=None,
        quantity=None,
        paid=None,
    ),
]
# The UTC instants rows 10 and 11 must become (worked out by hand, not by the code under test).
INSTANTS = {
    "10": datetime(2025, 1, 15, 22, 30, tzinfo=UTC),
    "11": datetime(2025, 6, 30, 22, 15, tzinfo=UTC),
}
# Values each database can hold but the CRM cannot take faithfully: key -> (row, field).
UNREPRESENTABLE: dict[str, dict[str, tuple[dict[str, Any], str]]] = {
    "sqlite": {
        "20": (order(20, quantity=10**18), "Quantity"),  # 19 digits
        "21": (order(21, notes="NUL\x00inside"), "Notes"),
    },
    "postgresql": {"20": (order(20, total=Decimal("NaN")), "Amount")},
    "mysql": {"21": (order(21, notes="NUL\x00inside"), "Notes")},
}
PADDING = 5_000


@pytest.mark.parametrize("api", ["bulk", "records"])
@pytest.mark.parametrize("database", ["sqlite_url", "pg_url", "mysql_url"])
def test_edge_values_arrive_exactly_or_become_local_rejects(
    request: pytest.FixtureRequest, tmp_path: Path, database: str, api: str
) -> None:
    """Quotes, newlines, non-ASCII, decimals and zoned timestamps arrive exact; others reject."""
    url = str(request.getfixturevalue(database))
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    local = UNREPRESENTABLE[dialect]
    padding = [order(i) for i in range(1000, 1000 + PADDING)] if api == "bulk" else []
    engine = create_orders(url, [*EDGE_ROWS, *(row for row, _ in local.values()), *padding])
    with EmulatorServer() as server:
        config = write_config(tmp_path, url, server.base_url)
        config.write_text(
            config.read_text().replace("[source]\n", '[source]\ntimezone = "Europe/Berlin"\n')
        )
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=200)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            first = run_drain(rt, "initial")
            again = run_drain(rt, "initial")
            counts = assert_mirrored(url, server.base_url, app.store, source_tz=BERLIN)
            rejects = {r.key: r for r in app.store.list_rejects("orders")}
        stats = server.admin.stats()
        crm = crm_by_key(server.base_url)

    assert (stats["bulk"].get("jobs_created", 0) == 1) is (api == "bulk")
    assert counts["synced"] == len(EDGE_ROWS) + len(padding)
    assert first.counts.rejected == len(local), "local rejects missing from the run's counts"
    assert {k: (r.code, r.field) for k, r in rejects.items()} == {
        k: (LOCAL_REJECT_CODE, field) for k, (_, field) in local.items()
    }
    assert again.counts.sent == 0, "an unchanged NOT_REPRESENTABLE row was sent again"
    table = orders_table()
    with engine.connect() as conn:
        flags = dict(conn.execute(select(table.c.id, table.c.sync).where(table.c.id < 1000)).all())
    engine.dispose()
    assert {str(k) for k, synced in flags.items() if not synced} == set(local)
    for key, instant in INSTANTS.items():
        assert datetime.fromisoformat(crm[key]["Ordered_At"]) == instant
    assert crm["1"]["Notes"] == EDGE_ROWS[0]["notes"]
    assert crm["7"]["Amount"] == 9999999999.99
