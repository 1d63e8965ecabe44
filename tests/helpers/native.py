"""The legacy database through its own client: psycopg, PyMySQL or sqlite3, never SQLAlchemy.

Tables of a real legacy system are created by plain DDL and written by its application's
driver; tests that guard how syncd reads and confirms such rows must build them the same way.
``native(url)`` turns a test fixture's SQLAlchemy URL into the driver's own connection::

    with native(pg_url) as db:
        db.execute("CREATE TABLE t (id bigint PRIMARY KEY, name text)")
        db.executemany("INSERT INTO t VALUES (%s, %s)", [(1, "a"), (2, "b")])
        db.query("SELECT count(*) FROM t")   # [(2,)]

SQL is written with ``%s`` placeholders for every database (sqlite3's ``?`` is substituted).
Each ``execute``/``executemany`` commits, as a legacy application's short transactions do.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import psycopg
import pymysql
from sqlalchemy.engine import make_url


class NativeDatabase:
    """One DB-API connection of the database's own driver, with autocommitting helpers."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "postgresql":
            self.conn: Any = psycopg.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 5432,
                user=parsed.username,
                password=parsed.password,
                dbname=parsed.database,
            )
        elif self.dialect in ("mysql", "mariadb"):
            self.conn = pymysql.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 3306,
                user=parsed.username or "root",
                password=parsed.password or "",
                database=parsed.database,
                charset="utf8mb4",
            )
        elif self.dialect == "sqlite":
            self.conn = sqlite3.connect(parsed.database or ":memory:")
        else:
            raise ValueError(f"no native client for {self.dialect!r}")

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.dialect == "sqlite" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement and commit; returns the affected row count."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), tuple(params))
            count = int(cursor.rowcount)
        finally:
            cursor.close()
        self.conn.commit()
        return count

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement per row (the drivers batch them) and commit once."""
        cursor = self.conn.cursor()
        try:
            cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
        finally:
            cursor.close()
        self.conn.commit()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a SELECT; the read transaction ends with it."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(self._sql(sql), tuple(params))
            rows = [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()
        self.conn.commit()
        return rows

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> NativeDatabase:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def native(url: str) -> NativeDatabase:
    """The database at SQLAlchemy ``url``, opened with its own driver."""
    return NativeDatabase(url)
