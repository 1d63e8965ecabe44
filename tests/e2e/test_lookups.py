"""Lookup fields end to end (issue 16, item 2): orders point at their customer's Accounts record.

Two PostgreSQL tables made by plain DDL and filled by psycopg: ``customers`` (pipeline
accounts -> Accounts, unique Account_Number) and ``orders`` (pipeline orders -> Orders) whose
``customer_id`` column feeds the lookup field ``Account``. A child whose parent has no CRM
record yet waits: no CRM call, not a reject, shown by ``syncd status``; it goes once the
parent is confirmed, pointing at the parent's record, on the records API (``{"id": ...}``)
and on Bulk Write (``find_by`` = Account_Number).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.schema import parse_schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.planner import BREAK_EVEN
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from tests.helpers.e2e import FIELD_LINES, crm_by_key, open_app, record_writes, run_syncd
from tests.helpers.e2e import write_config as write_orders_config
from tests.helpers.native import native

SCHEMA = parse_schema(
    {
        "modules": [
            {
                "api_name": "Accounts",
                "fields": [
                    {"api_name": "Account_Number", "unique": True, "mandatory": True},
                    {"api_name": "Account_Name", "mandatory": True},
                ],
            },
            {
                "api_name": "Orders",
                "fields": [
                    {"api_name": "parent_id", "unique": True, "mandatory": True},
                    {"api_name": "Name", "mandatory": True},
                    {"api_name": "Account", "type": "lookup", "module": "Accounts"},
                ],
            },
        ]
    },
    "test",
)
ORDER_FIELDS = 'Name = "order_number"\nAccount = { column = "customer_id", lookup = "accounts" }'
ACCOUNTS = """
[[pipelines]]
name = "accounts"
table = "customers"
key = "id"
flag = "sync"
module = "Accounts"
unique_field = "Account_Number"

[pipelines.fields]
Account_Name = "name"
"""
CUSTOMERS = 3
NO_CUSTOMER = 1  # order 1 has customer_id NULL: it needs no parent and clears the field


def _tables(pg_url: str, orders: int) -> None:
    with native(pg_url) as db:
        db.execute(
            "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(80),"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, order_number varchar(40),"
            " customer_id integer, sync boolean NOT NULL DEFAULT false)"
        )
        db.executemany(
            "INSERT INTO customers (id, name) VALUES (%s, %s)",
            [(c, f"Customer {c}") for c in range(1, CUSTOMERS + 1)],
        )
        db.executemany(
            "INSERT INTO orders (id, order_number, customer_id) VALUES (%s, %s, %s)",
            [
                (i, f"SO-{i}", None if i == NO_CUSTOMER else 1 + i % CUSTOMERS)
                for i in range(1, orders + 1)
            ],
        )


def _config(tmp_path: Path, pg_url: str, base_url: str, fields: str = ORDER_FIELDS) -> Path:
    """orders (listed first, looking up accounts), then accounts."""
    config = write_orders_config(tmp_path, pg_url, base_url, extra=ACCOUNTS)
    config.write_text(config.read_text().replace(FIELD_LINES, fields))
    return config


def _pending(pg_url: str, table: str) -> int:
    with native(pg_url) as db:
        return int(db.query(f"SELECT count(*) FROM {table} WHERE NOT sync")[0][0])


def _calls(server: EmulatorServer) -> tuple[int, int]:
    """(records API writes, bulk jobs created) so far."""
    stats = server.admin.stats()
    return record_writes(stats["calls"]), int(stats["bulk"].get("jobs_created", 0))


def _accounts(base_url: str) -> dict[str, str]:
    """Account_Number (the customer's legacy key) -> record id."""
    return {r["Account_Number"]: r["id"] for r in EmulatorAdmin(base_url).records("Accounts")}


def _parent_id(record: dict[str, Any]) -> str | None:
    value = record.get("Account")
    return None if value is None else str(value["id"] if isinstance(value, dict) else value)


@pytest.mark.parametrize("path", ["records", "bulk"])
def test_child_waits_for_its_parent_then_points_at_its_record(
    tmp_path: Path, pg_url: str, path: str
) -> None:
    orders = BREAK_EVEN + 10 if path == "bulk" else 20
    _tables(pg_url, orders)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            child = app.runtime(app.settings.pipeline("orders"))
            first = run_drain(child, "initial")
            calls_waiting = _calls(server)
            rejects_waiting = app.store.count_rejects("orders")
        status = run_syncd(config, "status")
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            calls_parents = _calls(server)
            second = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            calls_after = _calls(server)
            rejects_after = app.store.count_rejects("orders")
        status_after = run_syncd(config, "status")
        crm = crm_by_key(server.base_url)
        accounts = _accounts(server.base_url)
    waiting = orders - NO_CUSTOMER
    # waiting: only the order without a customer went; the others cost nothing, reject nothing
    assert first.counts.sent == NO_CUSTOMER and first.counts.rejected == 0
    assert rejects_waiting == 0
    assert calls_waiting == (1, 0), calls_waiting  # one insert call, for order 1 alone
    assert status.returncode == 0, status.stderr
    assert f"{waiting:,} waiting for pipeline accounts" in status.stdout, status.stdout
    # the parent went, then the children: one insert call each way, or one bulk job
    assert calls_parents == (2, 0)
    expected = (calls_parents[0] + 1, 0) if path == "records" else (calls_parents[0], 1)
    assert calls_after == expected, calls_after
    assert second.counts.confirmed == waiting and rejects_after == 0
    assert _pending(pg_url, "orders") == 0
    assert "waiting for pipeline" not in status_after.stdout, status_after.stdout
    assert len(accounts) == CUSTOMERS
    assert _parent_id(crm["1"]) is None
    for key in (str(i) for i in range(2, orders + 1)):
        customer = str(1 + int(key) % CUSTOMERS)
        assert _parent_id(crm[key]) == accounts[customer], key


@pytest.mark.parametrize("path", ["records", "bulk"])
def test_a_parent_gone_from_the_crm_is_a_reject_naming_the_field(
    tmp_path: Path, pg_url: str, path: str
) -> None:
    """The identity map still knows the parent, but its record was deleted in the CRM: Zoho
    refuses the id (records API) or finds no parent by find_by (Bulk Write); the row is a
    reject naming the lookup field, sent once."""
    orders = BREAK_EVEN + 10 if path == "bulk" else 20
    _tables(pg_url, orders)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            gone = _accounts(server.base_url)["1"]
            server.admin.delete_record("Accounts", gone)
            before = _calls(server)
            run = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            after = _calls(server)
            rejects = app.store.list_rejects("orders", limit=10**6)
    children_of_1 = [i for i in range(2, orders + 1) if 1 + i % CUSTOMERS == 1]
    assert run.counts.rejected == len(children_of_1)
    assert sorted(int(r.key) for r in rejects) == children_of_1
    assert {r.field for r in rejects} == {"Account"}, {r.field for r in rejects}
    sent = (after[0] - before[0], after[1] - before[1])
    assert sent == ((1, 0) if path == "records" else (0, 1)), sent


def test_initial_sync_runs_the_parent_pipeline_first(tmp_path: Path, pg_url: str) -> None:
    """orders is listed before accounts, yet initial-sync sends accounts first: every order
    goes in the same run, pointing at its customer."""
    _tables(pg_url, 10)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        result = run_syncd(config, "initial-sync")
        crm = crm_by_key(server.base_url)
        accounts = _accounts(server.base_url)
        writes = record_writes(server.admin.stats()["calls"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.index("initial sync of accounts") < result.stdout.index(
        "initial sync of orders"
    )
    assert _pending(pg_url, "orders") == 0 and len(crm) == 10
    assert writes == 2  # one insert call per pipeline
    assert _parent_id(crm["2"]) == accounts[str(1 + 2 % CUSTOMERS)]


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (
            '"customers"',
            'pipelines[0].fields.Account.lookup: names pipeline "customers", which this file '
            "does not have (pipelines: accounts, orders)",
        ),
        ('"orders"', 'pipelines[0].fields: Account.lookup names this pipeline itself ("orders")'),
        (
            '"accounts", type = "text"',
            "pipelines[0].fields.Account.lookup: sends the parent's record, not a value",
        ),
    ],
)
def test_a_bad_lookup_is_one_line_naming_the_key(
    tmp_path: Path, lookup: str, expected: str
) -> None:
    fields = f'Name = "order_number"\nAccount = {{ column = "customer_id", lookup = {lookup} }}'
    config = _config(tmp_path, "postgresql://127.0.0.1/none", "http://127.0.0.1:9", fields)
    result = run_syncd(config, "status")
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "lookup" in line]) == 1


def test_pipelines_looking_each_other_up_are_one_line(tmp_path: Path) -> None:
    """orders looks up accounts and accounts looks up orders: every row would wait forever."""
    config = _config(tmp_path, "postgresql://127.0.0.1/none", "http://127.0.0.1:9")
    config.write_text(
        config.read_text().replace(
            'Account_Name = "name"',
            'Account_Name = "name"\nLast_Order = { column = "last_order", lookup = "orders" }',
        )
    )
    result = run_syncd(config, "status")
    assert result.returncode != 0
    assert (
        "pipelines: lookups go round in a circle (orders -> accounts -> orders)" in result.stderr
    ), result.stderr
    assert "Traceback" not in result.stderr


def test_check_wants_a_lookup_field_for_a_lookup(tmp_path: Path, pg_url: str) -> None:
    """`syncd check` passes a lookup mapped to a lookup field, and names a lookup mapped to a
    field of another type (the parent's record id would not fit it)."""
    _tables(pg_url, 3)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        good = run_syncd(config, "check")
        config.write_text(
            config.read_text()
            .replace("Account = {", "Name = {", 1)
            .replace('Name = "order_number"\n', "", 1)
        )
        bad = run_syncd(config, "check")
    assert good.returncode == 0, good.stdout + good.stderr
    assert bad.returncode != 0
    assert (
        'Orders.Name is a text field, not a lookup: lookup = "accounts" needs a lookup field'
        in bad.stdout + bad.stderr
    ), bad.stdout + bad.stderr


def test_a_bulk_sized_wait_does_not_stop_realtime_flushing(tmp_path: Path, pg_url: str) -> None:
    """More rows wait than a bulk job's break-even: a realtime tick still buffers what can go
    (order 1, no customer) instead of starting an empty drain, and calls nothing for the rest."""
    _tables(pg_url, BREAK_EVEN + 10)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            tick = realtime_tick(app.runtime(app.settings.pipeline("orders")))
        calls = _calls(server)
    assert (tick.mode, tick.buffered) == ("buffer", NO_CUSTOMER), tick
    assert calls == (0, 0), calls
