"""Legacy keys that differ only in case, found by one query on SQLite, PostgreSQL and MariaDB.

The tables are made by plain DDL through each database's own driver, as a legacy application
makes them. MariaDB's default collation is case-insensitive, so there a key column can only
hold 'AB-1' beside 'ab-1' without a unique index, or with a binary collation; both are tried.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, event

from syncd.model import FieldMap, TableSpec
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.native import native

SPEC = TableSpec("orders", "orders", "id", "sync", (FieldMap("Name", "name"),))
TEXT_KEY = {
    "sqlite": "id varchar(20) PRIMARY KEY",
    "postgresql": "id varchar(20) PRIMARY KEY",
    # the server's default collation (utf8mb4_general_ci) would refuse 'ab-1' in a unique index
    "mysql": "id varchar(20) NOT NULL, KEY (id)",
}
COLLIDING = ["AB-1", "x-9", "ab-1", "cd-2", "cafe", "Cd-2", "café", "CD-2"]


def create_orders(url: str, key_ddl: str, keys: Sequence[Any]) -> None:
    """An ``orders`` table keyed by ``key_ddl``, one row per key, written natively."""
    with native(url) as db:
        db.execute(
            f"CREATE TABLE orders ({key_ddl}, name varchar(40),"
            " sync boolean NOT NULL DEFAULT false)"
        )
        db.executemany("INSERT INTO orders (id, name) VALUES (%s, %s)", [(k, "n") for k in keys])


@pytest.fixture
def open_engine() -> Iterator[list[Engine]]:
    engines: list[Engine] = []
    yield engines
    for engine in engines:
        engine.dispose()


def source_on(url: str, engines: list[Engine]) -> LegacyTable:
    engine = open_source_engine(url)
    engines.append(engine)
    return LegacyTable(engine, SPEC)


def dialect_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else url.split(":")[0].split("+")[0]


def test_keys_differing_only_in_case_are_counted_with_every_spelling(
    legacy_url: str, open_engine: list[Engine]
) -> None:
    """Every group of case-colliding keys is counted and shown with all its spellings; keys
    differing otherwise (accents, other letters) are not."""
    create_orders(legacy_url, TEXT_KEY[dialect_of(legacy_url)], COLLIDING)
    source = source_on(legacy_url, open_engine)
    assert source.case_colliding_keys() == (2, [["AB-1", "ab-1"], ["CD-2", "Cd-2", "cd-2"]])
    assert source.case_colliding_keys(limit=1) == (2, [["AB-1", "ab-1"]])


def test_binary_collation_key_on_mariadb(mysql_url: str, open_engine: list[Engine]) -> None:
    """A MariaDB key column with a case-sensitive collation (so it can be the primary key)."""
    create_orders(mysql_url, "id varchar(20) COLLATE utf8mb4_bin PRIMARY KEY", COLLIDING)
    source = source_on(mysql_url, open_engine)
    assert source.case_colliding_keys() == (2, [["AB-1", "ab-1"], ["CD-2", "Cd-2", "cd-2"]])


def test_distinct_keys_find_nothing(legacy_url: str, open_engine: list[Engine]) -> None:
    """Keys that differ in more than case are no collision."""
    create_orders(legacy_url, TEXT_KEY[dialect_of(legacy_url)], ["AB-1", "AB-2", "cafe", "café"])
    assert source_on(legacy_url, open_engine).case_colliding_keys() == (0, [])


def test_numeric_keys_are_not_queried(sqlite_url: str, open_engine: list[Engine]) -> None:
    """An integer key cannot differ in case: the answer comes without a statement."""
    create_orders(sqlite_url, "id integer PRIMARY KEY", [1, 2, 3])
    source = source_on(sqlite_url, open_engine)
    assert source.table is not None  # reflected before statements are counted
    statements: list[str] = []
    event.listen(source.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    assert source.case_colliding_keys() == (0, [])
    assert statements == []
