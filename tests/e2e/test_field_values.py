"""A field's value options end to end (issue 16, item 3), by Bulk Write and the records API.

The legacy table is PostgreSQL, made by plain DDL and filled by psycopg: status codes mapped to
picklist values, Y/N flags with a default for NULL, a delimited text and a text[] array as
multi-select picklists, and a numeric(12,3) amount to a currency field that keeps 2 places.
Both paths leave the same CRM records; an unmapped code and an amount with 3 places are local
NOT_REPRESENTABLE rejects naming their column, never sent (no guess, no rounding).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from syncd.emulator.schema import parse_schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.apply import LOCAL_REJECT_CODE
from syncd.engine.planner import BREAK_EVEN
from syncd.engine.runs import run_drain
from tests.helpers.e2e import (
    FIELD_LINES,
    RECORD_WRITES,
    crm_by_key,
    open_app,
    run_syncd,
    write_config,
)
from tests.helpers.native import native

SCHEMA = parse_schema(
    {
        "modules": [
            {
                "api_name": "Orders",
                "fields": [
                    {"api_name": "parent_id", "unique": True, "mandatory": True},
                    {"api_name": "Name", "mandatory": True},
                    {
                        "api_name": "Status",
                        "type": "picklist",
                        "values": ["New", "Paid", "Shipped"],
                    },
                    {"api_name": "Paid", "type": "boolean"},
                    {
                        "api_name": "Tags",
                        "type": "multiselectpicklist",
                        "values": ["red", "green", "blue"],
                    },
                    {"api_name": "Labels", "type": "multiselectpicklist", "values": ["A", "B"]},
                    {"api_name": "Amount", "type": "currency", "decimal_places": 2},
                ],
            }
        ]
    },
    "test",
)
FIELDS = """Name = "order_number"
Status = { column = "status", map = { P = "Paid", S = "Shipped" }, default = "New" }
Paid = { column = "paid", type = "boolean", default = false }
Tags = { column = "tags", split = "," }
Labels = { column = "labels", type = "multiselect", map = { a = "A", b = "B" } }
Amount = { column = "total", decimal_places = 2 }
"""
UNMAPPED, TOO_PRECISE = 3, 4


def _row(i: int) -> tuple[Any, ...]:
    status = {1: "P", 2: None, UNMAPPED: "X"}.get(i, "S")
    paid = {1: "Y", 2: None}.get(i, "N")
    tags = {1: "red, blue", 2: None}.get(i, "green")
    labels = {1: ["a", "b"], 2: []}.get(i, ["b"])
    total = Decimal("12.345") if i == TOO_PRECISE else Decimal(f"{i}.500")
    return (i, f"SO-{i}", status, paid, tags, labels, total)


EXPECTED = {
    "1": {"Status": "Paid", "Paid": True, "Tags": ["red", "blue"], "Labels": ["A", "B"]},
    "2": {"Status": "New", "Paid": False, "Tags": None, "Labels": None},
    "5": {"Status": "Shipped", "Paid": False, "Tags": ["green"], "Labels": ["B"]},
}


def _legacy_table(pg_url: str, rows: int) -> None:
    with native(pg_url) as db:
        db.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, order_number varchar(40),"
            " status char(1), paid char(1), tags text, labels text[], total numeric(12,3),"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.executemany(
            "INSERT INTO orders (id, order_number, status, paid, tags, labels, total)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [_row(i) for i in range(1, rows + 1)],
        )


def test_check_accepts_the_options_and_warns_of_places_the_crm_would_round(
    tmp_path: Path, pg_url: str
) -> None:
    """A text[] column mapped as a multi-select passes check; a currency field keeping 2 places
    fed by a numeric(12,3) column without decimal_places is a warning naming the key to set."""
    _legacy_table(pg_url, 3)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA)) as server:
        config = write_config(tmp_path, pg_url, server.base_url)
        config.write_text(config.read_text().replace(FIELD_LINES, FIELDS))
        declared = run_syncd(config, "check")
        config.write_text(config.read_text().replace(", decimal_places = 2", ""))
        undeclared = run_syncd(config, "check")
    assert declared.returncode == 0, declared.stdout + declared.stderr
    assert "arrays have" not in declared.stdout and "decimal places" not in declared.stdout
    assert "Orders.Amount keeps 2 decimal places" in undeclared.stdout, undeclared.stdout
    assert "set decimal_places = 2 on the field" in undeclared.stdout


@pytest.mark.parametrize("path", ["bulk", "records"])
def test_value_options_arrive_the_same_on_both_paths(
    tmp_path: Path, pg_url: str, path: str
) -> None:
    rows = BREAK_EVEN + 10 if path == "bulk" else 20
    _legacy_table(pg_url, rows)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, pg_url, server.base_url)
        config.write_text(config.read_text().replace(FIELD_LINES, FIELDS))
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            run = run_drain(rt, "initial")
            rejects = {r.key: r for r in app.store.list_rejects("orders")}
        stats = server.admin.stats()
        crm = crm_by_key(server.base_url)
    jobs = stats["bulk"].get("jobs_created", 0)
    writes = sum(stats["calls"].get(name, 0) for name in RECORD_WRITES)
    assert (jobs, writes > 0) == ((1, False) if path == "bulk" else (0, True)), stats["calls"]
    assert run.counts.rejected == 2
    assert {k: (r.code, r.field) for k, r in rejects.items()} == {
        str(UNMAPPED): (LOCAL_REJECT_CODE, "Status"),
        str(TOO_PRECISE): (LOCAL_REJECT_CODE, "Amount"),
    }
    assert "'X'" in str(rejects[str(UNMAPPED)].message)
    assert "column status" in str(rejects[str(UNMAPPED)].message)
    assert "3 decimal places; the field keeps 2" in str(rejects[str(TOO_PRECISE)].message)
    assert set(crm) == {str(i) for i in range(1, rows + 1)} - {str(UNMAPPED), str(TOO_PRECISE)}
    for key, expected in EXPECTED.items():
        got = {field: crm[key].get(field) for field in expected}
        assert {f: v if v != [] else None for f, v in got.items()} == expected, key
    assert crm["5"]["Amount"] == 5.5
