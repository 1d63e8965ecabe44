"""Lookups by a unique field of the parent module (issue 16, item 2, the table form):
``Account = { column = "customer_number",
lookup = { module = "Accounts", field = "Account_Number" } }``.

PostgreSQL ``customers`` (pipeline accounts -> Accounts, unique Account_Number = the customer's
id) and ``orders`` whose ``customer_number`` names the customer by that number. The records
path finds each parent's id with the Search Records API (one call per 10 distinct values of a
batch); Bulk Write finds it itself (find_by = Account_Number). A number no Accounts record has
makes its rows wait, costing a bounded number of searches; NULL clears the field.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.apply import send_records
from syncd.engine.parents import MISS_MAX_DELAY
from syncd.engine.planner import BREAK_EVEN
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from syncd.engine.runtime import PipelineRuntime
from syncd.model import ParentField
from tests.e2e.test_lookups import ACCOUNTS, SCHEMA
from tests.helpers.e2e import FIELD_LINES, MovableClock, crm_by_key, open_app, run_syncd
from tests.helpers.e2e import write_config as write_orders_config
from tests.helpers.native import native

BY_NUMBER = '{ module = "Accounts", field = "Account_Number" }'
ORDER_FIELDS = (
    f'Name = "order_number"\nAccount = {{ column = "customer_number", lookup = {BY_NUMBER} }}'
)
SEARCH = "GET /crm/v8/{module}/search"
NO_CUSTOMER = 1  # order 1 names no customer: NULL clears the field, no search for it


def _tables(pg_url: str, orders: int, customers: int, synced_customers: int | None = None) -> None:
    """Orders 2.. name customers 1..``customers`` round robin; customers past
    ``synced_customers`` are flagged synced (not sent) until the test says so."""
    synced = customers if synced_customers is None else synced_customers
    with native(pg_url) as db:
        db.execute(
            "CREATE TABLE customers (id integer PRIMARY KEY, name varchar(80),"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, order_number varchar(40),"
            " customer_number integer, customer_name varchar(80),"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.executemany(
            "INSERT INTO customers (id, name, sync) VALUES (%s, %s, %s)",
            [(c, f"Customer {c}", c > synced) for c in range(1, customers + 1)],
        )
        db.executemany(
            "INSERT INTO orders (id, order_number, customer_number, customer_name)"
            " VALUES (%s, %s, %s, %s)",
            [
                (i, f"SO-{i}", *((None, None) if i == NO_CUSTOMER else _customer(i, customers)))
                for i in range(1, orders + 1)
            ],
        )


def _customer(order: int, customers: int) -> tuple[int, str]:
    number = 1 + order % customers
    return number, f"Customer {number}"


def _config(tmp_path: Path, pg_url: str, base_url: str, fields: str = ORDER_FIELDS) -> Path:
    config = write_orders_config(tmp_path, pg_url, base_url, extra=ACCOUNTS)
    config.write_text(config.read_text().replace(FIELD_LINES, fields))
    return config


def _searches(server: EmulatorServer) -> int:
    return int(server.admin.stats()["calls"].get(SEARCH, 0))


def _ledger(tmp_path: Path) -> tuple[int, int]:
    """(search calls, search credits) in syncd's own credit ledger."""
    with sqlite3.connect(tmp_path / "state.db") as db:
        row = db.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(credits), 0) FROM syncd_credit_ledger"
            " WHERE kind = 'search'"
        ).fetchone()
    return int(row[0]), int(row[1])


def _accounts(base_url: str) -> dict[str, str]:
    return {r["Account_Number"]: r["id"] for r in EmulatorAdmin(base_url).records("Accounts")}


def _parent_id(record: dict[str, Any]) -> str | None:
    value = record.get("Account")
    return None if value is None else str(value["id"] if isinstance(value, dict) else value)


def _pending(pg_url: str, table: str) -> int:
    with native(pg_url) as db:
        return int(db.query(f"SELECT count(*) FROM {table} WHERE NOT sync")[0][0])


def _moved(rt: PipelineRuntime, clock: MovableClock) -> PipelineRuntime:
    return dataclasses.replace(rt, clock=clock)


def _assert_points_at_parents(base_url: str, orders: int, customers: int) -> None:
    crm, accounts = crm_by_key(base_url), _accounts(base_url)
    assert _parent_id(crm[str(NO_CUSTOMER)]) is None
    for order in range(2, orders + 1):
        assert _parent_id(crm[str(order)]) == accounts[str(_customer(order, customers)[0])]


def test_the_table_form_loads_as_a_field_lookup(tmp_path: Path) -> None:
    """lookup = { module, field } becomes a ParentField, not a pipeline lookup."""
    config = _config(tmp_path, "postgresql://127.0.0.1/none", "http://127.0.0.1:9")
    with open_app(config) as app:
        account = next(f for f in app.settings.pipeline("orders").fields if f.api_name == "Account")
    assert account.parent_field == ParentField("Accounts", "Account_Number")
    assert account.lookup is None


@pytest.mark.parametrize(
    ("lookup", "expected"),
    [
        (
            '{ modul = "Accounts", field = "Account_Number" }',
            'pipelines[0].fields.Account.lookup.modul: unknown key (did you mean "module"?)',
        ),
        (
            '{ module = "Accounts", field = "Account Number" }',
            "pipelines[0].fields.Account.lookup.field: ",
        ),
        (
            f'{BY_NUMBER}, type = "text"',
            "pipelines[0].fields.Account.lookup: sends the parent's record, not a value",
        ),
        ("3", "pipelines[0].fields.Account.lookup: must be the name of another [[pipelines]]"),
    ],
)
def test_a_bad_lookup_table_is_one_line_naming_the_key(
    tmp_path: Path, lookup: str, expected: str
) -> None:
    """An unknown key, a bad API name, an option beside it or a wrong type: one line each
    (a misspelt key also leaves the real one missing, reported as for any field table)."""
    fields = f'Name = "order_number"\nAccount = {{ column = "customer_number", lookup = {lookup} }}'
    config = _config(tmp_path, "postgresql://127.0.0.1/none", "http://127.0.0.1:9", fields)
    result = run_syncd(config, "status")
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "lookup" in line]
    assert len([line for line in lines if "is required" not in line]) == 1, lines


def test_records_path_finds_parents_by_search(tmp_path: Path, pg_url: str) -> None:
    """150 orders naming 12 customers: one search per 10 distinct numbers of the batch (2), 1
    credit each in Zoho's and syncd's ledgers; every order points at its customer's record."""
    orders, customers = 150, 12
    _tables(pg_url, orders, customers)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            credits_before = server.admin.stats()["credits"]["used"]
            run = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
        stats = server.admin.stats()
        _assert_points_at_parents(server.base_url, orders, customers)
    searches = math.ceil(customers / 10)
    assert stats["calls"].get(SEARCH, 0) == searches
    assert _ledger(tmp_path) == (searches, searches)
    inserts = math.ceil(orders / 10)  # 150 records in 2 calls: 15 credits
    assert stats["credits"]["used"] - credits_before == searches + inserts
    assert run.counts.confirmed == orders and _pending(pg_url, "orders") == 0


def test_bulk_path_finds_parents_by_find_by(tmp_path: Path, pg_url: str) -> None:
    """A bulk-sized backlog: one job whose Account column has find_by Account_Number; no search
    at all, and the emulator's store points every order at its customer's record."""
    orders, customers = BREAK_EVEN + 10, 12
    _tables(pg_url, orders, customers)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            run = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
        stats = server.admin.stats()
        jobs = EmulatorAdmin(server.base_url).jobs()
        _assert_points_at_parents(server.base_url, orders, customers)
    assert stats["calls"].get(SEARCH, 0) == 0
    assert int(stats["bulk"].get("jobs_created", 0)) == 1
    assert run.counts.confirmed == orders
    mappings = jobs[-1]["resource"][0]["field_mappings"]
    assert {"api_name": "Account", "find_by": "Account_Number"}.items() <= next(
        m for m in mappings if m["api_name"] == "Account"
    ).items()


@pytest.mark.parametrize("path", ["records", "bulk"])
def test_a_missing_parent_waits_at_a_bounded_cost_then_goes(
    tmp_path: Path, pg_url: str, path: str
) -> None:
    """Customer 3 has no Accounts record: its orders wait (pending, not rejects, counted by
    status) and cost at most one search per backoff window over many drains; once the
    record exists and the window passed, they go pointing at it."""
    orders = BREAK_EVEN + 10 if path == "bulk" else 30
    customers = 3
    _tables(pg_url, orders, customers, synced_customers=2)
    waiting_keys = [str(i) for i in range(2, orders + 1) if _customer(i, customers)[0] == 3]
    waiting = len(waiting_keys)
    clock = MovableClock(datetime.now(UTC))
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            child = _moved(app.runtime(app.settings.pipeline("orders")), clock)
            first = run_drain(child, "initial")
            after_first = _searches(server)
            for _ in range(5):  # drains within the first window (30 to 60 s): no call
                clock.at += timedelta(seconds=5)
                assert run_drain(child, "initial").counts.sent == 0
            tick = realtime_tick(child)  # a poll buffers none of them, calls nothing
            # rows selected before their value was known missing (a flush's race): no call
            held = child.source.fetch_rows(waiting_keys, pending_only=True)
            assert len(held) == waiting and send_records(child, held)[0].sent == 0
            after_window = _searches(server)
            clock.at += MISS_MAX_DELAY  # the window passed: one search looks again
            assert run_drain(child, "initial").counts.sent == 0
            after_recheck = _searches(server)
            rejects = app.store.count_rejects("orders")
        status = run_syncd(config, "status")
        with native(pg_url) as db:
            db.execute("UPDATE customers SET sync = false WHERE id = 3")
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            clock.at += 2 * MISS_MAX_DELAY
            last = run_drain(_moved(app.runtime(app.settings.pipeline("orders")), clock), "initial")
        _assert_points_at_parents(server.base_url, orders, customers)
    assert first.counts.confirmed == orders - waiting and first.counts.rejected == 0
    assert after_first == (1 if path == "records" else 0)
    assert after_window == after_first
    assert tick.buffered == 0, tick
    assert after_recheck == after_window + 1
    assert rejects == 0
    assert f"{waiting:,} waiting for Accounts.Account_Number" in status.stdout, status.stdout
    assert last.counts.confirmed == waiting
    assert _pending(pg_url, "orders") == 0


def test_two_parents_holding_the_value_is_a_named_reject(tmp_path: Path, pg_url: str) -> None:
    """A lookup by Account_Name (not unique): two Accounts named alike make their orders
    rejects naming the field, never a guess; the others go."""
    orders, customers = 20, 3
    _tables(pg_url, orders, customers)
    with native(pg_url) as db:
        db.execute("UPDATE customers SET name = 'Customer 2' WHERE id = 3")
        db.execute("UPDATE orders SET customer_name = 'Customer 2' WHERE customer_number = 3")
    fields = (
        'Name = "order_number"\nAccount = { column = "customer_name", lookup = '
        '{ module = "Accounts", field = "Account_Name" } }'
    )
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url, fields)
        with open_app(config) as app:
            run_drain(app.runtime(app.settings.pipeline("accounts")), "initial")
            run = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            rejects = app.store.list_rejects("orders", limit=1000)
    twins = [i for i in range(2, orders + 1) if _customer(i, customers)[0] in (2, 3)]
    assert sorted(int(r.key) for r in rejects) == twins
    assert {(r.code, r.field) for r in rejects} == {("AMBIGUOUS_PARENT", "Account")}
    assert "2 Accounts records have Account_Name = 'Customer 2'" in rejects[0].message
    assert run.counts.rejected == len(twins)
    assert _pending(pg_url, "orders") == len(twins)


def test_check_verifies_the_lookup_field_and_the_parent_field(tmp_path: Path, pg_url: str) -> None:
    """`syncd check` passes the table form on a lookup field, names a non-lookup CRM field,
    and names a parent field Accounts does not have."""
    _tables(pg_url, 3, 1)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        good = run_syncd(config, "check")
        text = config.read_text()
        config.write_text(
            text.replace("Account = {", "Name = {", 1).replace('Name = "order_number"\n', "", 1)
        )
        not_lookup = run_syncd(config, "check")
        config.write_text(text.replace('field = "Account_Number"', 'field = "Nope"'))
        no_field = run_syncd(config, "check")
    assert good.returncode == 0, good.stdout + good.stderr
    assert not_lookup.returncode != 0
    assert (
        "Orders.Name is a text field, not a lookup: "
        'lookup = { module = "Accounts", field = "Account_Number" } needs a lookup field'
    ) in not_lookup.stdout + not_lookup.stderr, not_lookup.stdout + not_lookup.stderr
    assert no_field.returncode != 0
    assert "Accounts.Nope does not exist (lookup of Account)" in no_field.stdout + no_field.stderr


def test_initial_sync_says_which_rows_wait_for_a_parent_value(tmp_path: Path, pg_url: str) -> None:
    """`syncd initial-sync` runs the pipeline syncing the Accounts module first (the orders
    look up Accounts by a field), then says how many rows wait for a value no Accounts record
    holds, named ``Module.Field``, and sends the others."""
    _tables(pg_url, 30, 3, synced_customers=2)
    waiting = sum(1 for i in range(2, 31) if _customer(i, 3)[0] == 3)
    with EmulatorServer(EmulatorSettings(schema=SCHEMA, bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, pg_url, server.base_url)
        result = run_syncd(config, "initial-sync")
    assert result.returncode == 0, result.stderr
    assert f"waiting    {waiting:>10,} rows for Accounts.Account_Number" in result.stdout, (
        result.stdout
    )
    assert _pending(pg_url, "orders") == waiting
    out = result.stdout
    assert out.index("initial sync of accounts") < out.index("initial sync of orders"), out
