"""Hostile and odd input (issue 15, item 5): names that need quoting, values at the edges.

The config contract takes plain identifiers only (letters, digits, _ and $: syncd.config.values),
so a name that tries SQL injection, or holds spaces, quotes or dots, is refused at load time
with one line naming its key, before any SQL runs. Within that contract, names still need
quoting: reserved words (a key named ``order``, columns ``select``, ``from``, ``group``), mixed
case, ``$``. Such a table, in a mixed-case schema on PostgreSQL, is created by plain DDL and
filled through the database's own client on SQLite, PostgreSQL and MariaDB; its values carry
quotes, commas, CR/LF, NUL, emoji, right-to-left text, a 32,000-character note, NULLs, extreme
dates and decimals at the limits of Zoho's Currency field. Through the bulk path (initial sync
of 5,000+ rows) and the records path, each row reaches the emulator exactly as written, or is
a reject naming its row and column; nothing crashes.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from syncd.config.schema import ConfigFile
from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.schema import Schema, parse_schema
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.apply import LOCAL_REJECT_CODE
from syncd.engine.runs import run_drain
from tests.helpers.e2e import open_app, run_syncd
from tests.helpers.e2e import write_config as write_e2e_config
from tests.helpers.native import NativeDatabase, native
from tests.helpers.sqlite_orders import pending, sqlite3_orders

INJECTION = '"; DROP TABLE canary; --'
TABLE_INJECTION = "orders; DROP TABLE orders; --"
TABLE = "Order"
PG_SCHEMA = "Legacy$ERP"
KEY, FLAG = "order", "IsSynced"
# CRM field -> legacy column name: reserved words, mixed case, $
COLUMNS = {
    "Name": "select",
    "Amount": "Total$Net",
    "Order_Date": "from",
    "Ordered_At": "group",
    "Status": "MixedCase",
    "Customer_Email": "desc",
    "Quantity": "table",
    "Paid": "where",
    "Notes": "NOTES_Long",
}
NOTE_LIMIT = 32_000  # Zoho's Multi Line (Large) text area
PAD_FROM, BULK_PAD = 1_000, 5_000  # 5,000 rows and more: the initial sync takes Bulk Write
LONG_NOTE = ("Grüße 🦄 " * 4_000)[:NOTE_LIMIT]


@dataclass(frozen=True)
class Row:
    """What the legacy application writes (by CRM field), and what the CRM must then hold
    (None: left empty); ``reject`` names the field a row is refused for instead."""

    n: int
    values: Mapping[str, Any]
    expected: Mapping[str, Any] | None = None
    reject: str | None = None


BASE = {"Name": "SO", "Status": "New", "Quantity": 1, "Paid": False}

ROWS = (
    Row(
        1,
        {
            **BASE,
            "Name": 'It\'s "quoted", with, commas',
            "Notes": "line one\r\nline two\nline three\rend",
            "Customer_Email": "o'brien@example.com",
        },
    ),
    Row(2, {**BASE, "Name": "🦄🚀 emoji", "Notes": "שלום עולם — مرحبا بالعالم ‮RTL‬"}),
    Row(3, {**BASE, "Notes": LONG_NOTE}),
    Row(4, {"Name": "all NULL"}, {"Name": "all NULL", "Paid": None}),
    Row(
        5,
        {
            **BASE,
            "Order_Date": date(1900, 1, 1),
            "Ordered_At": datetime(1901, 12, 13, 20, 45, 52),
            "Amount": Decimal("9999999999999.99"),
        },
    ),
    Row(
        6,
        {
            **BASE,
            "Order_Date": date(9999, 12, 31),
            "Ordered_At": datetime(2038, 1, 19, 3, 14, 8),
            "Amount": Decimal("-0.000000001"),
        },
    ),
    Row(7, {**BASE, "Amount": Decimal("123456789012345")}),
    Row(8, {**BASE, "Name": INJECTION, "Notes": "'); DROP TABLE canary; --"}),
    # refused: each names its column
    Row(20, {**BASE, "Amount": Decimal("0.0000000001")}, reject="Amount"),  # 10 places
    Row(21, {**BASE, "Amount": Decimal("12345678901234567")}, reject="Amount"),  # 17 digits
    Row(22, {**BASE, "Notes": "x" * (NOTE_LIMIT + 1)}, reject="Notes"),
)
NUL_ROW = Row(23, {**BASE, "Name": "nul\x00inside"}, reject="Name")  # not on PostgreSQL


def pad(n: int) -> Row:
    return Row(n, {**BASE, "Name": f'SO-{n}, "padded"', "Amount": Decimal(n) / 100})


@dataclass(frozen=True)
class Dialect:
    fixture: str
    schema: str | None
    quote_char: str
    types: Mapping[str, str]
    table_options: str = ""

    def quote(self, name: str) -> str:
        q = self.quote_char
        return q + name.replace(q, q + q) + q

    def table(self) -> str:
        table = self.quote(TABLE)
        return f"{self.quote(self.schema)}.{table}" if self.schema else table


TYPES = {
    "Name": "varchar(120)",
    "Amount": "numeric(27,10)",  # room for the rejects: 17 digits, 10 places
    "Order_Date": "date",
    "Ordered_At": "timestamp",
    "Status": "varchar(20)",
    "Customer_Email": "varchar(255)",
    "Quantity": "integer",
    "Paid": "boolean",
    "Notes": "text",
}
DIALECTS = {
    "sqlite": Dialect("sqlite_url", None, '"', TYPES | {"Ordered_At": "datetime"}),
    "postgres": Dialect("pg_url", PG_SCHEMA, '"', TYPES),
    "mysql": Dialect(
        "mysql_url",
        None,
        "`",
        TYPES | {"Ordered_At": "datetime", "Notes": "mediumtext"},
        " DEFAULT CHARSET=utf8mb4",
    ),
}


def crm_schema() -> Schema:
    """The emulator's Orders module with Notes as a 32,000-character text area."""
    fields: list[dict[str, Any]] = [
        {"api_name": "parent_id", "type": "text", "mandatory": True, "unique": True},
        {"api_name": "Name", "type": "text", "length": 120, "mandatory": True},
        {"api_name": "Amount", "type": "currency"},
        {"api_name": "Order_Date", "type": "date"},
        {"api_name": "Ordered_At", "type": "datetime"},
        {"api_name": "Status", "type": "picklist", "values": ["New", "Paid"]},
        {"api_name": "Customer_Email", "type": "email"},
        {"api_name": "Quantity", "type": "integer"},
        {"api_name": "Paid", "type": "boolean"},
        {"api_name": "Notes", "type": "textarea", "length": NOTE_LIMIT},
    ]
    return parse_schema({"modules": [{"api_name": "Orders", "fields": fields}]}, "hostile")


def create_table(db: NativeDatabase, dialect: Dialect, rows: list[Row]) -> None:
    """Plain DDL and INSERTs through the database's own client, every identifier quoted."""
    q = dialect.quote
    if dialect.schema:
        db.execute(f"CREATE SCHEMA {q(dialect.schema)}")
    db.execute("CREATE TABLE canary (id integer)")
    columns = ", ".join(f"{q(COLUMNS[f])} {dialect.types[f]}" for f in COLUMNS)
    db.execute(
        f"CREATE TABLE {dialect.table()} ({q(KEY)} integer PRIMARY KEY, "
        f"{q(FLAG)} boolean NOT NULL DEFAULT false, {columns}){dialect.table_options}"
    )
    names = ", ".join(q(n) for n in [KEY, *(COLUMNS[f] for f in COLUMNS)])
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    db.executemany(
        f"INSERT INTO {dialect.table()} ({names}) VALUES ({marks})",
        ([row.n, *(_native(row.values.get(f), db) for f in COLUMNS)] for row in rows),
    )


def _native(value: Any, db: NativeDatabase) -> Any:
    """sqlite3 binds no Decimal: a legacy application on SQLite writes the number's text."""
    return str(value) if db.dialect == "sqlite" and isinstance(value, Decimal) else value


def write_config(directory: Path, source_url: str, base_url: str, dialect: Dialect) -> Path:
    """Every hostile name goes through TOML as an escaped string, exactly as an operator would
    write it."""
    emulator = EmulatorSettings()
    table = f"{dialect.schema}.{TABLE}" if dialect.schema else TABLE
    fields = "\n".join(f"{f} = {json.dumps(c)}" for f, c in COLUMNS.items())
    path = directory / "config.toml"
    path.write_text(
        f"""
[source]
url = "{source_url}"

[state]
url = "sqlite:///{directory}/state.db"

[crm]
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
client_id = "{emulator.client_id}"
client_secret = "{emulator.client_secret}"
refresh_token = "{emulator.refresh_token}"

[[pipelines]]
name = "orders"
table = {json.dumps(table)}
key = {json.dumps(KEY)}
flag = {json.dumps(FLAG)}
module = "Orders"
unique_field = "parent_id"

[pipelines.fields]
{fields}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def expected_of(row: Row) -> dict[str, Any]:
    values = row.expected if row.expected is not None else row.values
    return {f: values.get(f) for f in COLUMNS}


def same(expected: Any, actual: Any) -> bool:
    if expected is None:
        return actual in (None, "")
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, Decimal | int):
        return isinstance(actual, int | float) and Decimal(str(actual)) == expected
    if isinstance(expected, datetime):
        return isinstance(actual, str) and datetime.fromisoformat(actual) == expected.replace(
            tzinfo=UTC
        )
    if isinstance(expected, date):
        return actual == expected.isoformat()
    return bool(actual == expected)


@contextmanager
def hostile_sync(
    request: pytest.FixtureRequest, tmp_path: Path, dialect: Dialect, rows: list[Row]
) -> Iterator[tuple[Any, EmulatorAdmin, NativeDatabase]]:
    url = str(request.getfixturevalue(dialect.fixture))
    with native(url) as db:
        create_table(db, dialect, rows)
        settings = dataclasses.replace(EmulatorSettings(), schema=crm_schema())
        with EmulatorServer(settings) as server:
            config = write_config(tmp_path, url, server.base_url, dialect)
            with open_app(config) as app:
                yield app, server.admin, db


@pytest.mark.parametrize("path", ["records", "bulk"])
@pytest.mark.parametrize("name", list(DIALECTS))
def test_hostile_names_and_odd_values_round_trip_or_are_named_rejects(
    request: pytest.FixtureRequest, tmp_path: Path, name: str, path: str
) -> None:
    """Every valid row is in the CRM exactly as written and flagged synced; every refused row
    is a reject naming its column and stays pending; the canary table is still there."""
    dialect = DIALECTS[name]
    odd = [*ROWS, *([] if name == "postgres" else [NUL_ROW])]
    padding = [pad(n) for n in range(PAD_FROM, PAD_FROM + (BULK_PAD if path == "bulk" else 20))]
    rows = odd + padding
    with hostile_sync(request, tmp_path, dialect, rows) as (app, admin, db):
        result = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
        records = {r["parent_id"]: r for r in admin.records("Orders")}
        rejects = {r.key: r for r in app.store.list_rejects("orders", limit=100)}
        flags = {
            str(k): bool(f)
            for k, f in db.query(
                f"SELECT {dialect.quote(KEY)}, {dialect.quote(FLAG)} FROM {dialect.table()}"
            )
        }
        canary = db.query("SELECT count(*) FROM canary")
        jobs = len(admin.jobs())

    assert canary == [(0,)]
    assert jobs == (1 if path == "bulk" else 0), "the initial sync took the wrong path"
    refused = {str(r.n): r.reject for r in rows if r.reject}
    valid = [r for r in rows if not r.reject]
    assert {k for k, synced in flags.items() if not synced} == set(refused)
    assert result.counts.confirmed == len(valid)
    problems = [
        f"row {row.n} {field}: wrote {value!r:.60}, CRM has {records[str(row.n)].get(field)!r:.60}"
        for row in valid
        for field, value in expected_of(row).items()
        if not same(value, records[str(row.n)].get(field))
    ]
    assert problems == []
    assert set(rejects) == set(refused), "a refused row is not a listed reject"
    for key, field in refused.items():
        reject = rejects[key]
        named = f"{reject.field} {reject.message}"
        assert field in named or COLUMNS[field] in named, reject
        assert key not in records, f"refused row {key} reached the CRM"
    local = {k for k, r in rejects.items() if r.code == LOCAL_REJECT_CODE}
    assert local == set(refused) - {"22"}, "syncd sent a value it cannot represent"


# -- hostile config files ----------------------------------------------------------------------


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside ``Model``, ``Model | None`` or ``list[Model]``, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        inner = [a for a in typing.get_args(candidate) if isinstance(a, type)]
        if inner and issubclass(inner[0], BaseModel):
            return inner[0]
    return None


def leaf_keys() -> dict[str, list[str]]:
    """Every scalar or list key of the config contract, by section (``pipelines`` and
    ``notify`` as their first table), read from the models, so a new key is covered too."""
    keys: dict[str, list[str]] = {}
    for section, field in ConfigFile.model_fields.items():
        model = _model_of(field.annotation)
        assert model is not None, section
        keys[section] = [
            name
            for name, sub in model.model_fields.items()
            if _model_of(sub.annotation) is None and "dict" not in str(sub.annotation)
        ]
    return keys


WRONG = "{ wrong = 1 }"  # a table: the wrong type for every scalar and list key


def toml_line(key: str, value: str) -> str:
    return f"{json.dumps(key)} = {value}"


def run_check(config: Path) -> tuple[int, list[str], str]:
    """``syncd -c CONFIG check``: exit code, its ``syncd:`` lines, all of stderr."""
    result = run_syncd(config, "check")
    lines = [line for line in result.stderr.splitlines() if line.startswith("syncd: ")]
    return result.returncode, lines, result.stderr + result.stdout


def test_every_key_of_the_wrong_type_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    """A config with every key of the contract set to a table: exit 2, no traceback, and each
    key named in a line of its own that names the file too."""
    keys = leaf_keys()
    body = []
    for section, names in keys.items():
        header = f"[[{section}]]" if section in ("pipelines", "notify") else f"[{section}]"
        body.append(header)
        body += [toml_line(name, WRONG) for name in names]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(body) + "\n", encoding="utf-8")
    code, lines, output = run_check(config)
    assert code == 2 and "Traceback" not in output
    assert all(line.startswith("syncd: config.toml: ") for line in lines), lines
    prefix = {"pipelines": "pipelines[0].", "notify": "notify[0]."}
    missing = [
        f"{prefix.get(section, section + '.')}{name}"
        for section, names in keys.items()
        for name in names
        if not any(f"{prefix.get(section, section + '.')}{name}:" in line for line in lines)
    ]
    assert missing == [], f"keys not named: {missing}\n{output}"
    assert sum(len(names) for names in keys.values()) >= 50  # the contract, not a stub


def test_unknown_keys_and_hostile_names_are_refused_before_any_sql(tmp_path: Path) -> None:
    """Names that try SQL injection or need more than quoting, and keys syncd does not know:
    one line each, exit 2, and the legacy database is never touched."""
    db = tmp_path / "legacy.db"
    sqlite3_orders(db, 3)
    config = write_e2e_config(
        tmp_path,
        f"sqlite:///{db}",
        "http://127.0.0.1:9",
        crm='colour = "red"',
        pipeline='batchsize = 10\nunknown_thing = "x"',
        extra="[surprise]\nkey = 1",
    )
    text = config.read_text(encoding="utf-8")
    text = text.replace('table = "orders"', f"table = {json.dumps(TABLE_INJECTION)}")
    text = text.replace('flag = "sync"', f"flag = {json.dumps(INJECTION)}")
    text = text.replace('Notes = "notes"', 'Notes = "notes; DELETE FROM orders"')
    config.write_text(text, encoding="utf-8")
    code, lines, output = run_check(config)
    assert code == 2 and "Traceback" not in output
    expected = [
        "crm.colour: unknown key",
        'pipelines[0].batchsize: unknown key (did you mean "batch_size"?)',
        "pipelines[0].unknown_thing: unknown key",
        "surprise: unknown key",
        "pipelines[0].table: must be a table name",
        "pipelines[0].flag: must be a plain column name",
        "pipelines[0].fields.Notes",
    ]
    for fragment in expected:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)
    assert pending(db) == 3 and _tables(db) == ["orders"]


def test_a_secret_file_unreadable_or_readable_by_others_is_refused(tmp_path: Path) -> None:
    """client_secret_file names a directory (cannot be read, even by root); refresh_token_file
    is mode 0644: one line each naming the file and key, exit 2, no secret shown."""
    db = tmp_path / "legacy.db"
    sqlite3_orders(db, 1)
    config = write_e2e_config(tmp_path, f"sqlite:///{db}", "http://127.0.0.1:9")
    (tmp_path / "secret_dir").mkdir()
    token = tmp_path / "token"
    token.write_text("rt-VERY-SECRET\n", encoding="utf-8")
    token.chmod(0o644)
    emulator = EmulatorSettings()
    text = config.read_text(encoding="utf-8")
    text = text.replace(
        f'client_secret = "{emulator.client_secret}"', 'client_secret_file = "secret_dir"'
    )
    text = text.replace(
        f'refresh_token = "{emulator.refresh_token}"', 'refresh_token_file = "token"'
    )
    config.write_text(text, encoding="utf-8")
    code, lines, output = run_check(config)
    assert code == 2 and "Traceback" not in output
    assert len(lines) == 2, lines
    unreadable, shared = sorted(lines)
    assert "config.toml: crm.client_secret_file: cannot read" in unreadable
    assert "secret_dir" in unreadable
    assert "config.toml: crm.refresh_token_file:" in shared and str(token) in shared
    assert "mode 0644" in shared and "chmod 600" in shared
    assert "rt-VERY-SECRET" not in output

    token.chmod(0o640)  # the group may read it (a syncd group, systemd credentials)
    code, lines, _ = run_check(config)
    assert not any("refresh_token_file" in line for line in lines), lines


def _tables(db: Path) -> list[str]:
    with native(f"sqlite:///{db}") as conn:
        return [r[0] for r in conn.query("SELECT name FROM sqlite_master WHERE type='table'")]
