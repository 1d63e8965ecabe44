"""The tombstone table: keys of legacy rows deleted since syncd last looked.

Optional, and created by the operator from the DDL `syncd ddl` prints (syncd never runs DDL on
the legacy database): an AFTER DELETE trigger on the legacy table writes each deleted row's key
into it. syncd reads it, hands the keys to the delete reconcile, and clears what it read: the
only legacy table besides the flag that syncd writes to, and only when it is configured.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Integer, MetaData, Table, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, NoSuchTableError, SAWarning, SQLAlchemyError

from syncd.errors import SourceError
from syncd.source.table import LegacyTable

KEY_COLUMN = "legacy_key"
"""The tombstone table's key column (``key`` itself is reserved in MySQL/MariaDB)."""

_CHUNK = 500


class Tombstones:
    """One pipeline's tombstone table, beside its legacy table."""

    def __init__(self, legacy: LegacyTable, name: str) -> None:
        self.legacy = legacy
        self.name = name
        self._table: Table | None = None

    def _split(self) -> tuple[str | None, str]:
        schema, _, table = self.name.rpartition(".")
        return schema or None, table

    @property
    def table(self) -> Table:
        if self._table is None:
            schema, name = self._split()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SAWarning)
                    self._table = Table(
                        name, MetaData(), schema=schema, autoload_with=self.legacy.engine
                    )
            except NoSuchTableError as exc:
                raise SourceError(
                    f"pipeline {self.legacy.spec.pipeline}: tombstone_table {self.name!r} not "
                    "found in the legacy database; create it with the DDL `syncd ddl` prints"
                ) from exc
            except SQLAlchemyError as exc:
                raise _error(exc, f"reflecting {self.name!r}") from exc
        return self._table

    @contextmanager
    def _connect(self, what: str) -> Iterator[Connection]:
        try:
            with self.legacy.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise _error(exc, what) from exc

    def read(self, limit: int) -> list[str]:
        """Up to ``limit`` distinct deleted keys, as text."""
        column = self.table.c[KEY_COLUMN]
        query = select(column).distinct().order_by(column).limit(limit)
        with self._connect("reading the tombstone table") as conn:
            return [str(k) for k in conn.scalars(query)]

    def clear(self, keys: Sequence[str]) -> None:
        """Remove these keys' tombstones (after the reconcile has taken them over)."""
        column = self.table.c[KEY_COLUMN]
        as_int = isinstance(column.type, Integer)
        values: list[Any] = [int(k) if as_int else k for k in keys]
        with self._connect("clearing the tombstone table") as conn:
            for start in range(0, len(values), _CHUNK):
                part = values[start : start + _CHUNK]
                conn.execute(delete(self.table).where(column.in_(part)))

    def ddl(self) -> str:
        """The tombstone table and the AFTER DELETE trigger that fills it, for the operator."""
        engine = self.legacy.engine
        preparer = engine.dialect.identifier_preparer
        legacy = self.legacy.table
        schema, name = self._split()
        tomb = preparer.format_table(Table(name, MetaData(), schema=schema))
        table = preparer.format_table(legacy)
        key = preparer.quote(self.legacy.spec.key)
        col = preparer.quote(KEY_COLUMN)
        key_type = legacy.c[self.legacy.spec.key].type.compile(dialect=engine.dialect)
        trigger = preparer.quote(f"{legacy.name}_syncd_deleted")
        insert = f"INSERT INTO {tomb} ({col}) VALUES (OLD.{key})"  # noqa: S608 - printed DDL
        dialect = engine.dialect.name
        if dialect == "postgresql":
            return (
                f"CREATE TABLE {tomb} ({col} {key_type} NOT NULL,\n"
                "  deleted_at timestamptz NOT NULL DEFAULT now());\n"
                f"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  {insert};\n  RETURN OLD;\nEND $$;\n"
                f"CREATE TRIGGER {trigger} AFTER DELETE ON {table}\n"
                f"  FOR EACH ROW EXECUTE FUNCTION {trigger}();"
            )
        stamp = "TEXT" if dialect == "sqlite" else "TIMESTAMP"
        create = (
            f"CREATE TABLE {tomb} ({col} {key_type} NOT NULL,\n"
            f"  deleted_at {stamp} NOT NULL DEFAULT CURRENT_TIMESTAMP);\n"
        )
        if dialect == "sqlite":
            return (
                create + f"CREATE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW\n"
                f"BEGIN {insert}; END;"
            )
        return (
            create + f"CREATE TRIGGER {trigger} AFTER DELETE ON {table} FOR EACH ROW\n  {insert};"
        )


def _error(exc: SQLAlchemyError, what: str) -> SourceError:
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    return SourceError(f"legacy database: {what}: {reason}")
