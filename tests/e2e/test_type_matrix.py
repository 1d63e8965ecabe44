"""Promise 1 across column types, on tables written by the database's own client.

Each variant is a legacy table created by plain DDL and filled through psycopg, PyMySQL or
sqlite3 (never SQLAlchemy), with the column types legacy schemas really have: single and double
floats, latin1 text, json, naive and zoned timestamps, SQLite values of another affinity. For
each variant:

1. one initial sync confirms every valid row, and the CRM holds what the legacy application
   wrote (the expected CRM values are written out by hand here, not computed by syncd's code);
2. a second run makes no CRM call;
3. a native edit goes out exactly once: one update call by record id, then silence;
4. a native edit made while its bulk job is in flight is sent again, never lost.

Naive timestamps are read in ``source.timezone = "Europe/Berlin"``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.app import App
from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.schema import Schema, parse_schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.apply import LOCAL_REJECT_CODE
from syncd.engine.drain import DrainResult
from syncd.engine.runs import run_drain
from tests.helpers.e2e import UPDATE_CALL, open_app
from tests.helpers.native import NativeDatabase, native

BERLIN = ZoneInfo("Europe/Berlin")
MODULE = "Legacy"
PIPELINE = "legacy"
BULK_PADDING = 6_000  # past the 5,000-row break-even: the initial sync goes through Bulk Write
UPSERT_PADDING = 300  # below it: the initial sync goes through the Upsert API
FIRST_PADDED = 1_000  # padding rows are numbered from here


# -- what a variant is made of --------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """A mapped legacy column, its SQL type, and the CRM field (a Zoho data_type) it fills."""

    name: str
    sql: str
    field: str
    crm: str
    picklist: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    """A row as the legacy application writes it, and what the CRM must then hold.

    Both are keyed by column; a column absent from ``values`` is NULL, one absent from
    ``expected`` must be empty in the CRM.
    """

    n: int
    values: Mapping[str, Any]
    expected: Mapping[str, Any]


@dataclass(frozen=True)
class Edit:
    """A native UPDATE of one mapped value of row ``n``, with the flag set false."""

    n: int
    column: str
    value: Any
    expected: Any


@dataclass(frozen=True)
class JsonText:
    """The CRM must hold JSON text parsing to ``value``, and exactly ``text`` when given (a
    Python repr such as ``{'a': None}`` is not JSON)."""

    value: Any
    text: str | None = None


CONVERGES = object()
"""Expected marker: the CRM holds a value, but which instant is not asserted."""


@dataclass(frozen=True)
class Variant:
    """One legacy table: its database, key type, columns, rows, and the edits made to it.

    ``premise`` is a query with its expected rows, checked before anything is synced: what the
    table must really hold for the variant to test what it claims (a latin1 column, a float
    kept in a NUMERIC column by SQLite).
    """

    name: str
    fixture: str
    key_sql: str
    flag_sql: str
    columns: tuple[Col, ...]
    rows: tuple[Row, ...]
    pad: Callable[[int], Row]
    padding: int
    edits: tuple[Edit, ...]
    key: Callable[[int], Any] = int
    table_options: str = ""
    # rows with a value the CRM cannot take, each with the column that holds it
    invalid: tuple[tuple[Row, str], ...] = ()
    premise: tuple[str, list[tuple[Any, ...]]] | None = None

    @property
    def bulk(self) -> bool:
        return self.padding >= BULK_PADDING

    def valid_rows(self) -> list[Row]:
        padded = range(FIRST_PADDED, FIRST_PADDED + self.padding)
        return [*self.rows, *(self.pad(n) for n in padded)]

    def all_rows(self) -> list[Row]:
        return [*self.valid_rows(), *(row for row, _ in self.invalid)]

    def key_text(self, n: int) -> str:
        return str(self.key(n))

    def column(self, name: str) -> Col:
        return next(c for c in self.columns if c.name == name)

    def ddl(self) -> str:
        cols = ", ".join(f"{c.name} {c.sql}" for c in self.columns)
        return (
            f"CREATE TABLE legacy (id {self.key_sql} PRIMARY KEY, sync {self.flag_sql}, {cols})"
            f"{self.table_options}"
        )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An instant in UTC, written out by hand."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def berlin_wall_clock(moment: datetime) -> datetime:
    """The UTC instant of a naive Europe/Berlin wall-clock time (for generated padding rows;
    the hand-written rows spell their instants out)."""
    return moment.replace(tzinfo=BERLIN).astimezone(UTC)


PAD_BASE = datetime(2025, 1, 1, 8, 30)


# -- PostgreSQL -----------------------------------------------------------------------------------

PG_COLUMNS = (
    Col("f_real", "real", "Real_Value", "double"),
    Col("f_double", "double precision", "Double_Value", "double"),
    Col("f_numeric", "numeric(12,2)", "Amount", "currency"),
    Col("f_json", "json", "Json_Doc", "textarea"),
    Col("f_jsonb", "jsonb", "Jsonb_Doc", "textarea"),
    Col("f_ts", "timestamp without time zone", "Local_Time", "datetime"),
    Col("f_tstz", "timestamp with time zone", "Zoned_Time", "datetime"),
    Col("f_date", "date", "Day", "date"),
    Col("f_time", "time", "Clock", "text"),
    Col("f_varchar", "varchar(40)", "Short_Text", "text"),
    Col("f_char", "char(10)", "Fixed_Text", "text"),
    Col("f_text", "text", "Body", "textarea"),
    Col("f_bool", "boolean", "Active", "boolean"),
)

PG_ROWS = (
    Row(
        1,
        {
            "f_real": "19.99",
            "f_double": 0.1 + 0.2,  # 0.30000000000000004: the CRM gets the 0.3 the app shows
            "f_numeric": "19.99",
            "f_json": '{"b": [1, 2.5, null], "a": "Grüße"}',
            "f_jsonb": '{"b": [1, 2.5, null], "a": "Grüße"}',
            "f_ts": "2025-01-15 23:30:00",  # CET, +01:00
            "f_tstz": "2025-07-01 00:15:00+05:30",
            "f_date": "2024-02-29",
            "f_time": "13:45:30",
            "f_varchar": 'Müller, "Grüße"',
            "f_char": "abc",
            "f_text": "Grüße 日本語 🎉\nzweite Zeile",
            "f_bool": True,
        },
        {
            "f_real": 19.99,
            "f_double": 0.3,
            "f_numeric": 19.99,
            "f_json": JsonText(
                {"b": [1, 2.5, None], "a": "Grüße"}, '{"b": [1, 2.5, null], "a": "Grüße"}'
            ),
            # jsonb stores its keys in its own order (shorter first); the CRM gets that text
            "f_jsonb": JsonText(
                {"a": "Grüße", "b": [1, 2.5, None]}, '{"a": "Grüße", "b": [1, 2.5, null]}'
            ),
            "f_ts": utc(2025, 1, 15, 22, 30),
            "f_tstz": utc(2025, 6, 30, 18, 45),
            "f_date": "2024-02-29",
            "f_time": "13:45:30",
            "f_varchar": 'Müller, "Grüße"',
            "f_char": "abc       ",  # char(n) is blank-padded: that is what the table holds
            "f_text": "Grüße 日本語 🎉\nzweite Zeile",
            "f_bool": True,
        },
    ),
    Row(
        2,
        {
            "f_real": "-2.5",
            "f_double": "1234567.891",
            "f_numeric": "-0.01",
            "f_json": '[1, "zwei", {"drei": 3}]',
            "f_jsonb": "{}",
            "f_ts": "2025-07-01 00:15:00",  # CEST, +02:00: the day before in UTC
            "f_tstz": "2025-01-01 00:00:00+00",
            "f_date": "1999-12-31",
            "f_time": "00:00:00",
            "f_char": "ÄÖÜ",
            "f_text": 'a,b,"c"\r\nline two',
            "f_bool": False,
        },
        {
            "f_real": -2.5,
            "f_double": 1234567.891,
            "f_numeric": -0.01,
            "f_json": JsonText([1, "zwei", {"drei": 3}], '[1, "zwei", {"drei": 3}]'),
            "f_jsonb": JsonText({}, "{}"),
            "f_ts": utc(2025, 6, 30, 22, 15),
            "f_tstz": utc(2025, 1, 1),
            "f_date": "1999-12-31",
            "f_time": "00:00:00",
            "f_char": "ÄÖÜ       ",
            "f_text": 'a,b,"c"\r\nline two',
            "f_bool": False,
        },
    ),
    Row(3, {}, {}),  # every mapped column NULL
    Row(
        4,
        {
            "f_real": "0.1",
            "f_double": "1e-05",
            "f_numeric": "9999999999.99",
            "f_ts": "2025-01-15 23:30:45.999",  # the CRM keeps whole seconds
        },
        {
            "f_real": 0.1,
            "f_double": 0.00001,
            "f_numeric": 9999999999.99,
            "f_ts": utc(2025, 1, 15, 22, 30, 45),
        },
    ),
    Row(5, {"f_numeric": "100.00"}, {"f_numeric": 100}),
)


def pg_padding(n: int) -> Row:
    local = PAD_BASE + timedelta(minutes=n)
    zoned = utc(2025, 3, 1) + timedelta(hours=n)
    day = date(2024, 1, 1) + timedelta(days=n % 366)
    numeric = f"{n}.{n % 100:02d}"
    values = {
        "f_real": f"{n}.25",
        "f_double": n / 8,
        "f_numeric": numeric,
        "f_json": f'{{"n": {n}}}',
        "f_jsonb": f'{{"n": {n}, "tag": "Grüße"}}',
        "f_ts": local.isoformat(sep=" "),
        "f_tstz": zoned.isoformat(sep=" "),
        "f_date": day.isoformat(),
        "f_time": f"{n % 24:02d}:{n % 60:02d}:00",
        "f_varchar": f"Müller {n}",
        "f_char": f"c{n}",
        "f_text": f"row {n}",
        "f_bool": n % 2 == 0,
    }
    expected = {
        "f_real": n + 0.25,
        "f_double": n / 8,
        "f_numeric": float(numeric),
        "f_json": JsonText({"n": n}, f'{{"n": {n}}}'),
        "f_jsonb": JsonText({"n": n, "tag": "Grüße"}, f'{{"n": {n}, "tag": "Grüße"}}'),
        "f_ts": berlin_wall_clock(local),
        "f_tstz": zoned,
        "f_date": day.isoformat(),
        "f_time": f"{n % 24:02d}:{n % 60:02d}:00",
        "f_varchar": f"Müller {n}",
        "f_char": f"c{n}".ljust(10),
        "f_text": f"row {n}",
        "f_bool": n % 2 == 0,
    }
    return Row(n, values, expected)


PG_EDITS = (
    Edit(1, "f_numeric", "20.01", 20.01),
    Edit(2, "f_jsonb", '{"x": [true]}', JsonText({"x": [True]}, '{"x": [true]}')),
    Edit(FIRST_PADDED + 2, "f_ts", "2025-12-24 18:00:00", utc(2025, 12, 24, 17)),
)


def pg_variant(key_kind: str) -> Variant:
    keys: dict[str, Callable[[int], Any]] = {
        "bigint": int,
        "uuid": lambda n: str(uuid.uuid5(uuid.NAMESPACE_URL, f"legacy/{n}")),
        "text": lambda n: f"ORD-{n:05d}",
    }
    return Variant(
        name=f"postgres-{key_kind}",
        fixture="pg_url",
        key_sql=key_kind,
        flag_sql="boolean NOT NULL DEFAULT false",
        columns=PG_COLUMNS,
        rows=PG_ROWS,
        pad=pg_padding,
        padding=BULK_PADDING if key_kind == "bigint" else UPSERT_PADDING,
        edits=PG_EDITS,
        key=keys[key_kind],
    )


# -- MariaDB --------------------------------------------------------------------------------------

STATUSES = ("New", "Paid", "Shipped")
MY_COLUMNS = (
    Col("f_float", "FLOAT", "Float_Value", "double"),
    Col("f_double", "DOUBLE", "Double_Value", "double"),
    Col("f_decimal", "DECIMAL(12,2)", "Amount", "currency"),
    Col("f_datetime", "DATETIME", "Local_Time", "datetime"),
    Col("f_datetime6", "DATETIME(6)", "Precise_Time", "datetime"),
    # NULL DEFAULT NULL: no implicit ON UPDATE CURRENT_TIMESTAMP
    Col("f_timestamp", "TIMESTAMP NULL DEFAULT NULL", "Stamp", "datetime"),
    Col("f_bool", "TINYINT(1)", "Active", "boolean"),
    Col("f_status", "ENUM('New','Paid','Shipped')", "Status", "picklist", STATUSES),
    Col("f_text", "TEXT", "Body", "textarea"),
    Col("f_varchar", "VARCHAR(60)", "Short_Text", "text"),
)
MY_ROWS = (
    Row(
        1,
        {
            "f_float": "19.99",
            "f_double": 0.1 + 0.2,
            "f_decimal": "19.99",
            "f_datetime": "2025-01-15 23:30:00",  # CET, +01:00
            "f_datetime6": "2025-07-01 00:15:00.123456",  # CEST, +02:00
            "f_timestamp": "2025-03-01 12:00:00",
            "f_bool": 1,
            "f_status": "Paid",
            "f_text": "Müller",
            "f_varchar": "Grüße",
        },
        {
            "f_float": 19.99,
            "f_double": 0.3,
            "f_decimal": 19.99,
            "f_datetime": utc(2025, 1, 15, 22, 30),
            "f_datetime6": utc(2025, 6, 30, 22, 15),
            # A TIMESTAMP reads back in the session time zone (the server's, here): which
            # instant that is depends on the server, so only convergence is asserted for it.
            "f_timestamp": CONVERGES,
            "f_bool": True,
            "f_status": "Paid",
            "f_text": "Müller",
            "f_varchar": "Grüße",
        },
    ),
    Row(
        2,
        {
            "f_float": "-2.5",
            "f_double": "1234567.891",
            "f_decimal": "9999999999.99",
            "f_datetime": "2024-02-29 00:00:00",
            "f_datetime6": "2025-01-15 23:30:45.999999",
            "f_bool": 0,
            "f_status": "New",
            "f_text": 'Grüße aus Köln, "Zitat"\nZeile 2',
            "f_varchar": "Müller",
        },
        {
            "f_float": -2.5,
            "f_double": 1234567.891,
            "f_decimal": 9999999999.99,
            "f_datetime": utc(2024, 2, 28, 23),
            "f_datetime6": utc(2025, 1, 15, 22, 30, 45),
            "f_bool": False,
            "f_status": "New",
            "f_text": 'Grüße aus Köln, "Zitat"\nZeile 2',
            "f_varchar": "Müller",
        },
    ),
    Row(3, {}, {}),
)
MY_UTF8_ROWS = (
    Row(
        4,
        {"f_text": "日本語 🎉 Grüße", "f_varchar": "Ærø 😀"},
        {"f_text": "日本語 🎉 Grüße", "f_varchar": "Ærø 😀"},
    ),
)


def mysql_padding(n: int) -> Row:
    local = PAD_BASE + timedelta(minutes=n)
    decimal = f"{n}.{n % 100:02d}"
    values = {
        "f_float": n + 0.25,
        "f_double": n / 8,
        "f_decimal": decimal,
        "f_datetime": local.isoformat(sep=" "),
        "f_datetime6": (local + timedelta(microseconds=n)).isoformat(sep=" "),
        "f_timestamp": (PAD_BASE + timedelta(hours=n)).isoformat(sep=" "),
        "f_bool": n % 2,
        "f_status": STATUSES[n % 3],
        "f_text": f"Müller {n}",
        "f_varchar": f"Grüße {n}",
    }
    expected = {
        "f_float": n + 0.25,
        "f_double": n / 8,
        "f_decimal": float(decimal),
        "f_datetime": berlin_wall_clock(local),
        "f_datetime6": berlin_wall_clock(local),  # whole seconds
        "f_timestamp": CONVERGES,
        "f_bool": n % 2 == 1,
        "f_status": STATUSES[n % 3],
        "f_text": f"Müller {n}",
        "f_varchar": f"Grüße {n}",
    }
    return Row(n, values, expected)


MY_EDITS = (
    Edit(1, "f_text", "Müllerin", "Müllerin"),
    Edit(2, "f_decimal", "19.98", 19.98),
    Edit(FIRST_PADDED + 2, "f_datetime", "2025-12-24 18:00:00", utc(2025, 12, 24, 17)),
)


def mysql_variant(charset: str) -> Variant:
    return Variant(
        name=f"mariadb-{charset}",
        fixture="mysql_url",
        key_sql="INT",
        flag_sql="TINYINT(1) NOT NULL DEFAULT 0",
        columns=MY_COLUMNS,
        rows=MY_ROWS + (MY_UTF8_ROWS if charset == "utf8mb4" else ()),
        pad=mysql_padding,
        padding=BULK_PADDING,
        edits=MY_EDITS,
        table_options=f" CHARACTER SET {charset}",
        premise=(
            "SELECT column_name, character_set_name FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = 'legacy'"
            " AND column_name IN ('f_text', 'f_varchar') ORDER BY column_name",
            [("f_text", charset), ("f_varchar", charset)],
        ),
    )


# -- SQLite ---------------------------------------------------------------------------------------

SQLITE_COLUMNS = (
    Col("placed_at", "DATETIME", "Placed_At", "datetime"),
    Col("amount", "NUMERIC(12,2)", "Amount", "currency"),
    Col("weight", "REAL", "Weight", "double"),
    Col("label", "TEXT", "Label", "text"),
    Col("active", "BOOLEAN", "Active", "boolean"),
    Col("due", "DATE", "Due", "date"),
)
# SQLite keeps what it is given where the declared affinity cannot convert it losslessly:
# text dates in a DATETIME, a float with three decimals in a NUMERIC(12,2), 'true' in a BOOLEAN.
SQLITE_ROWS = (
    Row(
        1,
        {
            "placed_at": "2025-01-15 23:30:00",  # naive: Europe/Berlin, CET
            "amount": 19.999,  # stays 19.999: NUMERIC(12,2) rounds nothing in SQLite
            "weight": 0.1 + 0.2,
            "label": 12345,  # TEXT affinity stores '12345'
            "active": "true",
            "due": "2024-02-29",
        },
        {
            "placed_at": utc(2025, 1, 15, 22, 30),
            "amount": 19.999,
            "weight": 0.3,
            "label": "12345",
            "active": True,
            "due": "2024-02-29",
        },
    ),
    Row(
        2,
        {
            "placed_at": "2025-07-01T00:15:00+02:00",
            "amount": "12.50",  # a decimal string: NUMERIC affinity makes it REAL 12.5
            "weight": "2.5",
            "label": 3.5,
            "active": "false",
            "due": "2024-05-01 23:30:00",  # a timestamp text in a DATE: its Berlin day
        },
        {
            "placed_at": utc(2025, 6, 30, 22, 15),
            "amount": 12.5,
            "weight": 2.5,
            "label": "3.5",
            "active": False,
            "due": "2024-05-01",
        },
    ),
    Row(
        3,
        {
            "placed_at": "2025-01-15 23:30:00.123456",
            "amount": "100",
            "weight": 7,
            "label": "Grüße",
            "active": 1,
            "due": "2024-05-01T23:30:00+00:00",  # 01:30 on 2 May in Berlin
        },
        {
            "placed_at": utc(2025, 1, 15, 22, 30),
            "amount": 100,
            "weight": 7,
            "label": "Grüße",
            "active": True,
            "due": "2024-05-02",
        },
    ),
    Row(
        4,
        {
            "placed_at": "2025-07-01T00:15:00.250+02:00",
            "amount": 42,
            "weight": -0.5,
            "label": "Müller",
            "active": 0,
        },
        {
            "placed_at": utc(2025, 6, 30, 22, 15),
            "amount": 42,
            "weight": -0.5,
            "label": "Müller",
            "active": False,
        },
    ),
    Row(5, {"amount": "19.999", "label": "0042"}, {"amount": 19.999, "label": "0042"}),
    Row(6, {}, {}),
)
SQLITE_INVALID = (
    (Row(90, {"placed_at": "05/01/2024", "amount": 1, "label": "x"}, {}), "placed_at"),
    (Row(91, {"amount": 1e-10, "label": "x"}, {}), "amount"),
    (Row(92, {"active": "sometimes", "label": "x"}, {}), "active"),
)


def sqlite_padding(n: int) -> Row:
    local = PAD_BASE + timedelta(minutes=n)
    day = date(2024, 1, 1) + timedelta(days=n % 366)
    values = {
        "placed_at": local.isoformat(sep=" "),
        "amount": n + 0.125,
        "weight": n / 8,
        "label": f"label {n}",
        "active": n % 2,
        "due": day.isoformat(),
    }
    expected = {
        "placed_at": berlin_wall_clock(local),
        "amount": n + 0.125,
        "weight": n / 8,
        "label": f"label {n}",
        "active": n % 2 == 1,
        "due": day.isoformat(),
    }
    return Row(n, values, expected)


SQLITE = Variant(
    name="sqlite",
    fixture="sqlite_url",
    key_sql="INTEGER",
    flag_sql="BOOLEAN NOT NULL DEFAULT 0",
    columns=SQLITE_COLUMNS,
    rows=SQLITE_ROWS,
    pad=sqlite_padding,
    padding=BULK_PADDING,
    edits=(
        Edit(1, "amount", 19.991, 19.991),
        Edit(2, "placed_at", "2025-12-24T18:00:00+01:00", utc(2025, 12, 24, 17)),
        Edit(FIRST_PADDED + 2, "active", "true", True),
    ),
    invalid=SQLITE_INVALID,
    premise=(
        "SELECT id, typeof(placed_at), typeof(amount), typeof(label), typeof(active)"
        " FROM legacy WHERE id IN (1, 2, 3, 91) ORDER BY id",
        [
            (1, "text", "real", "text", "text"),
            (2, "text", "real", "text", "text"),
            (3, "text", "integer", "text", "integer"),
            (91, "null", "real", "text", "null"),
        ],
    ),
)

VARIANTS = [
    pg_variant("bigint"),
    pg_variant("uuid"),
    pg_variant("text"),
    mysql_variant("latin1"),
    mysql_variant("utf8mb4"),
    SQLITE,
]
BULK_VARIANTS = [v for v in VARIANTS if v.bulk]


# -- harness --------------------------------------------------------------------------------------


def crm_schema(variant: Variant) -> Schema:
    """The emulator's ``Legacy`` module: the unique ``parent_id`` and one field per column."""
    fields: list[dict[str, Any]] = [
        {"api_name": "parent_id", "type": "text", "mandatory": True, "unique": True}
    ]
    for col in variant.columns:
        spec: dict[str, Any] = {"api_name": col.field, "type": col.crm}
        if col.picklist:
            spec["values"] = list(col.picklist)
        fields.append(spec)
    return parse_schema({"modules": [{"api_name": MODULE, "fields": fields}]}, "type-matrix")


def write_matrix_config(directory: Path, source_url: str, base_url: str, variant: Variant) -> Path:
    """A config for the ``legacy`` table, its ``Legacy`` module and an emulator."""
    credentials = EmulatorSettings()
    fields = "\n".join(f'{c.field} = "{c.name}"' for c in variant.columns)
    path = directory / "config.toml"
    path.write_text(
        f"""
[source]
url = "{source_url}"
timezone = "Europe/Berlin"

[state]
url = "sqlite:///{directory}/state.db"

[crm]
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
client_id = "{credentials.client_id}"
client_secret = "{credentials.client_secret}"
refresh_token = "{credentials.refresh_token}"
bulk_poll_interval = "1s"

[[pipelines]]
name = "{PIPELINE}"
table = "legacy"
key = "id"
flag = "sync"
module = "{MODULE}"
unique_field = "parent_id"
mode = "realtime"

[pipelines.fields]
{fields}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def create_legacy_table(url: str, variant: Variant) -> None:
    """Plain DDL and INSERTs through the database's own client; the flag takes its default."""
    names = ["id", *(c.name for c in variant.columns)]
    insert = f"INSERT INTO legacy ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
    with native(url) as db:
        db.execute(variant.ddl())
        db.executemany(
            insert,
            (
                [variant.key(row.n), *(row.values.get(c.name) for c in variant.columns)]
                for row in variant.all_rows()
            ),
        )


def apply_edit(db: NativeDatabase, variant: Variant, edit: Edit) -> None:
    """What the legacy application does: change the value and set the flag false."""
    changed = db.execute(
        f"UPDATE legacy SET {edit.column} = %s, sync = %s WHERE id = %s",
        (edit.value, False, variant.key(edit.n)),
    )
    assert changed == 1, f"row {edit.n} not found"


@dataclass
class Harness:
    """A variant's table with syncd and the emulator wired to it, and what tests look at."""

    variant: Variant
    url: str
    admin: EmulatorAdmin
    app: App
    db: NativeDatabase

    def drain(self) -> DrainResult:
        return run_drain(self.app.runtime(self.app.settings.pipeline(PIPELINE)), "initial")

    def stats(self) -> dict[str, Any]:
        return self.admin.stats()

    def crm(self) -> dict[str, dict[str, Any]]:
        """The CRM's records by legacy key; fails if a key is held by two records."""
        records = self.admin.records(MODULE)
        by_key = {r["parent_id"]: r for r in records}
        assert len(by_key) == len(records), "two CRM records for one legacy key"
        return by_key

    def flags(self) -> dict[str, bool]:
        """Every row's flag, read with the native client."""
        return {str(k): bool(f) for k, f in self.db.query("SELECT id, sync FROM legacy")}

    def edit(self, edit: Edit) -> None:
        apply_edit(self.db, self.variant, edit)


@contextmanager
def legacy_sync(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    variant: Variant,
    emulator: EmulatorSettings | None = None,
) -> Iterator[Harness]:
    """The variant's table, filled natively, an emulator with its module, and syncd's engine."""
    url = str(request.getfixturevalue(variant.fixture))
    create_legacy_table(url, variant)
    settings = dataclasses.replace(emulator or EmulatorSettings(), schema=crm_schema(variant))
    with EmulatorServer(settings) as server:
        config = write_matrix_config(tmp_path, url, server.base_url, variant)
        with (
            open_app(config, bulk_poll_interval=timedelta(milliseconds=200)) as app,
            native(url) as db,
        ):
            yield Harness(variant, url, server.admin, app, db)


def same(expected: Any, actual: Any) -> bool:
    """Whether the CRM value ``actual`` is the hand-written ``expected`` one."""
    if expected is CONVERGES:
        return actual is not None
    if expected is None:
        return actual is None
    if isinstance(expected, JsonText):
        if not isinstance(actual, str):
            return False
        return json.loads(actual) == expected.value and expected.text in (None, actual)
    if isinstance(expected, datetime):
        return isinstance(actual, str) and datetime.fromisoformat(actual) == expected
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, int | float):  # Zoho keeps decimals as doubles
        return type(actual) in (int, float) and actual == expected
    return bool(actual == expected)


def mismatches(
    variant: Variant, rows: list[Row], crm: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Every (row, column) whose CRM value is not the expected one, described."""
    problems = []
    for row in rows:
        record = crm.get(variant.key_text(row.n))
        if record is None:
            problems.append(f"row {row.n}: missing in the CRM")
            continue
        for col in variant.columns:
            expected, actual = row.expected.get(col.name), record.get(col.field)
            if not same(expected, actual):
                problems.append(f"row {row.n} {col.name}: expected {expected!r}, CRM {actual!r}")
    return problems


def edited_rows(variant: Variant, edits: tuple[Edit, ...]) -> list[Row]:
    """The rows as they are after ``edits``, with their new expected CRM values."""
    by_n = {row.n: row for row in variant.valid_rows()}
    for edit in edits:
        row = by_n[edit.n]
        by_n[edit.n] = Row(
            row.n,
            {**row.values, edit.column: edit.value},
            {**row.expected, edit.column: edit.expected},
        )
    return [by_n[edit.n] for edit in edits]


def call_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, int]:
    """CRM calls made between two emulator stats snapshots, by endpoint."""
    calls = after["calls"]
    delta = {name: n - before["calls"].get(name, 0) for name, n in calls.items()}
    return {name: n for name, n in delta.items() if n}


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_initial_sync_confirms_every_row_and_a_rerun_calls_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, variant: Variant
) -> None:
    """One initial sync flags every valid row with its exact CRM value; a rerun calls nothing."""
    valid = variant.valid_rows()
    with legacy_sync(request, tmp_path, variant) as h:
        if variant.premise is not None:
            query, holds = variant.premise
            assert h.db.query(query) == holds, "the table does not hold what the variant claims"
        first = h.drain()
        before = h.stats()
        again = h.drain()
        after = h.stats()
        crm = h.crm()
        flags = h.flags()
        rejects = {r.key: r for r in h.app.store.list_rejects(PIPELINE, limit=1_000)}

    invalid_keys = {variant.key_text(row.n) for row, _ in variant.invalid}
    assert {k for k, synced in flags.items() if not synced} == invalid_keys
    assert sum(flags.values()) == len(valid)
    assert first.counts.confirmed == len(valid)
    assert first.counts.stale == 0
    assert len(crm) == len(valid)
    assert mismatches(variant, valid, crm) == []
    jobs = before["bulk"].get("jobs_created", 0)
    assert jobs == (1 if variant.bulk else 0), "the initial sync took the wrong API"

    # Rows the CRM cannot take are syncd's own rejects, naming their column, and stay pending.
    assert first.counts.rejected == len(variant.invalid)
    assert set(rejects) == invalid_keys
    for row, column in variant.invalid:
        reject = rejects[variant.key_text(row.n)]
        assert reject.code == LOCAL_REJECT_CODE
        assert column in f"{reject.field} {reject.message}", reject

    assert again.counts.sent == 0
    assert call_delta(before, after) == {}, "an unchanged table cost CRM calls"
    assert after["credits"]["used"] == before["credits"]["used"]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_a_native_edit_goes_out_exactly_once(
    request: pytest.FixtureRequest, tmp_path: Path, variant: Variant
) -> None:
    """A native UPDATE of one value is sent by exactly one update call, then never again."""
    edit = variant.edits[0]
    (row,) = edited_rows(variant, (edit,))
    key = variant.key_text(edit.n)
    with legacy_sync(request, tmp_path, variant) as h:
        h.drain()
        crm_before, before = h.crm(), h.stats()
        h.edit(edit)
        sent = h.drain()
        crm_after, middle = h.crm(), h.stats()
        quiet = h.drain()
        after = h.stats()
        flags = h.flags()

    assert call_delta(before, middle) == {UPDATE_CALL: 1}  # by record id, nothing else
    assert middle["credits"]["used"] - before["credits"]["used"] == 1
    assert (sent.counts.sent, sent.counts.confirmed, sent.counts.credits) == (1, 1, 1)
    assert mismatches(variant, [row], crm_after) == []
    assert not same(edit.expected, crm_before[key][variant.column(edit.column).field])
    assert {k: r for k, r in crm_after.items() if k != key} == {
        k: r for k, r in crm_before.items() if k != key
    }, "the update touched another record"
    assert flags[key] is True
    assert quiet.counts.sent == 0
    assert call_delta(middle, after) == {}, "the edit was sent a second time"


class InFlightEditor(threading.Thread):
    """Edits rows natively as soon as the emulator has a bulk job, i.e. while it runs."""

    def __init__(self, url: str, admin: EmulatorAdmin, variant: Variant) -> None:
        super().__init__(name="legacy-editor", daemon=True)
        self.url, self.admin, self.variant = url, admin, variant
        self.job_status_after_edit: str | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            deadline = time.monotonic() + 60
            while not self.admin.jobs():
                assert time.monotonic() < deadline, "no bulk job was ever created"
                time.sleep(0.01)
            with native(self.url) as db:
                for edit in self.variant.edits:
                    apply_edit(db, self.variant, edit)
            self.job_status_after_edit = self.admin.jobs()[0]["status"]
        except Exception as exc:  # noqa: BLE001 - any failure must reach the test, not die here
            self.error = exc


@pytest.mark.parametrize("variant", BULK_VARIANTS, ids=lambda v: v.name)
def test_an_edit_while_its_bulk_job_runs_is_never_lost(
    request: pytest.FixtureRequest, tmp_path: Path, variant: Variant
) -> None:
    """Rows edited natively while their bulk job runs end with their final value, flagged."""
    slow = EmulatorSettings(bulk_rows_per_second=4_000)  # 6,000 rows: a job of about 1.5 s
    valid = variant.valid_rows()
    edited = edited_rows(variant, variant.edits)
    with legacy_sync(request, tmp_path, variant, slow) as h:
        editor = InFlightEditor(h.url, h.admin, variant)
        editor.start()
        try:
            during = h.drain()
        finally:
            editor.join(timeout=60)
        crm = h.crm()
        flags = h.flags()

    assert editor.error is None, editor.error
    assert editor.job_status_after_edit in ("ADDED", "IN PROGRESS"), "edits came too late"
    assert during.counts.stale == len(variant.edits), "edits were not seen as changed meanwhile"
    assert during.counts.confirmed == len(valid)
    assert mismatches(variant, edited, crm) == []
    assert all(flags[variant.key_text(e.n)] for e in variant.edits)
    assert sum(flags.values()) == len(valid)
    assert len(crm) == len(valid)
