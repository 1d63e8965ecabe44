"""The legacy table: reflection and checks, keyset batches, and the compare-and-set of the flag.

All SQL against the legacy database lives here. Identifiers from the config reach SQL only as
reflected ``Table``/``Column`` objects, so the dialect quotes them; values are always bound.
"""

from __future__ import annotations

import itertools
import logging
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from operator import add, attrgetter, itemgetter
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    any_,
    bindparam,
    cast,
    create_engine,
    event,
    false,
    func,
    inspect,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DataError, DBAPIError, NoSuchTableError, SAWarning, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import NullType, TypeEngine, UserDefinedType

from syncd import jsontext
from syncd.crashpoints import crash_point
from syncd.dbretry import retried
from syncd.errors import SourceError
from syncd.model import (
    CHANGED,
    DELETED,
    ROW_KEY_TEXT,
    Confirmation,
    FieldType,
    PendingRow,
    TableSpec,
    fingerprints_of,
)
from syncd.source.ahead import Answer, ReadAhead

logger = logging.getLogger(__name__)

_CHUNK = 500

CONFIRM_CHUNK = 2500
"""Rows confirmed per transaction. Each chunk holds its rows' locks (on SQLite the whole
database's write lock) only while it compares and flags them: a few milliseconds, so a legacy
writer touching one of them waits that long at most. Measured at 200,000 rows on PostgreSQL
(BENCHMARKS.md, "Confirmation alone"), 2,500 was faster than 500 and 5,000."""


@dataclass
class Inspection:
    """What `syncd check` reports about a legacy table."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    column_types: dict[str, str] = field(default_factory=dict)
    pending: int | None = None


def open_source_engine(url: str) -> Engine:
    try:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise SourceError(f"legacy database URL {_shown(url)}: {exc}") from exc
    if engine.dialect.driver == "psycopg":
        from syncd.source.pg import pin_output_settings, register_lenient_loaders

        @event.listens_for(engine, "connect")
        def _lenient(dbapi_connection: Any, _record: Any) -> None:
            register_lenient_loaders(dbapi_connection.adapters)
            pin_output_settings(dbapi_connection)

    return engine


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "<unparseable URL>"


def _translate(exc: SQLAlchemyError, what: str) -> SourceError:
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    return SourceError(f"legacy database: {what}: {reason}")


_retried = retried("legacy_db_retry")
"""A legacy-database call is one short transaction of reads, or the compare-and-set of one
chunk (read under lock, compare, set the flag): run again, it reads the rows as they are now."""


def field_type_of(sql_type: TypeEngine[Any]) -> FieldType:
    """The CRM value type a legacy column type converts to by default."""
    if _is_boolean_like(sql_type):
        return FieldType.BOOLEAN
    checks: list[tuple[type[TypeEngine[Any]], FieldType]] = [
        (Integer, FieldType.INTEGER),
        (Numeric, FieldType.DECIMAL),
        (Float, FieldType.DECIMAL),
        (DateTime, FieldType.DATETIME),
        (Date, FieldType.DATE),
    ]
    for kind, result in checks:
        if isinstance(sql_type, kind):
            return result
    return FieldType.TEXT


def unsupported_reason(sql_type: TypeEngine[Any]) -> str | None:
    """Why values of this column type have no faithful CRM form, or None if they have one."""
    if isinstance(sql_type, LargeBinary):
        return "binary data has no CRM field type (only UTF-8 text could be sent)"
    if isinstance(sql_type, ARRAY):
        return "arrays have no CRM field type"
    if isinstance(sql_type, Interval | postgresql.INTERVAL):
        return "intervals have no CRM field type"
    return None


_UNRECOGNIZED = re.compile(
    r"Did not recognize type '(?P<type>[^']+)' of column '(?P<column>[^']+)'"
)


def _is_boolean_like(sql_type: TypeEngine[Any]) -> bool:
    if isinstance(sql_type, Boolean):
        return True
    # MySQL/MariaDB have no BOOLEAN: it is TINYINT(1), which reflects as TINYINT(display_width=1).
    return isinstance(sql_type, mysql.TINYINT) and getattr(sql_type, "display_width", None) == 1


class LegacyTable:
    """One pipeline's legacy table (implements ``syncd.ports.Source``)."""

    def __init__(self, engine: Engine, spec: TableSpec) -> None:
        self.engine = engine
        self.spec = spec
        self._table: Table | None = None
        self._unknown_types: dict[str, str] = {}  # column -> type name SQLAlchemy did not know
        self._compared = self._compared_columns()  # once: _rows runs for every row read
        # PostgreSQL fingerprints each row as it reads it, and compares there at confirmation;
        # only through psycopg, whose connections get the pinned output settings it relies on.
        self._on_server = (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
        self._ahead: ReadAhead | None = None  # the next part of pending rows, being read

    @property
    def confirms_concurrently(self) -> bool:
        """A server database (PostgreSQL, MySQL/MariaDB): its compare-and-set is mostly
        waiting, and each part takes a pooled connection of its own. SQLite's is work in this
        process, and its file lock would be taken from two threads: it stays inline."""
        return self.engine.dialect.name != "sqlite"

    @property
    def table(self) -> Table:
        if self._table is None:
            self._table = self._reflect()
        return self._table

    def _reflect(self) -> Table:
        schema, _, name = self.spec.table.rpartition(".")
        try:
            with warnings.catch_warnings(record=True) as seen:
                # A type SQLAlchemy does not know reflects as NullType with a warning; keep
                # its name for `syncd check` instead of letting the warning escape.
                warnings.simplefilter("always", SAWarning)
                table = Table(name, MetaData(), schema=schema or None, autoload_with=self.engine)
            for warning in seen:
                if found := _UNRECOGNIZED.search(str(warning.message)):
                    self._unknown_types[found["column"]] = found["type"]
            return table
        except NoSuchTableError as exc:
            raise SourceError(
                f"pipeline {self.spec.pipeline}: table {self.spec.table!r} not found in the "
                "legacy database"
            ) from exc
        except SQLAlchemyError as exc:
            raise _translate(exc, f"reflecting {self.spec.table!r}") from exc

    def _col(self, name: str) -> Column[Any]:
        return self.table.c[name]

    @cached_property
    def _key(self) -> ColumnElement[Any]:
        """The key as it is selected and bound: the column, or on SQLite, for a date, time or
        timestamp key, the text the row holds. SQLite keeps these as text in any spelling
        ('2024-01-02' in a DATETIME, a 'T' between date and time); SQLAlchemy's type would
        parse it and bind it back as '2024-01-02 00:00:00.000000', which no stored text
        equals, so such a row could never be confirmed (nor an unparsable one read at all).
        As text, the key is what the legacy table holds, bound back as it is."""
        column = self._col(self.spec.key)
        if self.engine.dialect.name == "sqlite" and isinstance(column.type, Date | DateTime | Time):
            return type_coerce(column, NullType())
        return column

    @contextmanager
    def _connect(self, what: str, *, write: bool = False) -> Iterator[Connection]:
        with (
            self._connect_errors(what),
            self.engine.begin() if write else self.engine.connect() as conn,
        ):
            yield conn

    @contextmanager
    def _connect_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise _translate(exc, what) from exc

    # -- checks ---------------------------------------------------------------------------------

    def inspect(self) -> Inspection:
        """Check the table against the contract: columns, flag type, index for pending lookups."""
        report = Inspection()
        table = self.table
        wanted = {"key": self.spec.key, "flag": self.spec.flag}
        if self.spec.version_column:
            wanted["version_column"] = self.spec.version_column
        wanted.update({f"fields.{f.api_name}": f.column for f in self.spec.fields})
        for role, column in wanted.items():
            if column not in table.c:
                report.problems.append(
                    f"pipeline {self.spec.pipeline}: {role}: column {column!r} not found in "
                    f"table {self.spec.table!r} (columns: {', '.join(table.c.keys())})"
                )
        if self.spec.flag in table.c and not _is_boolean_like(table.c[self.spec.flag].type):
            report.problems.append(
                f"pipeline {self.spec.pipeline}: flag column {self.spec.flag!r} is "
                f"{table.c[self.spec.flag].type}, expected a boolean (BOOLEAN, or TINYINT(1) "
                "on MySQL/MariaDB)"
            )
        if report.problems:
            return report
        report.column_types = {c: str(table.c[c].type) for c in self.spec.columns}
        self._check_types(report)
        if not self._has_pending_index():
            report.warnings.append(self._index_advice())
        report.pending = self.count_pending()
        return report

    def _check_types(self, report: Inspection) -> None:
        """Name each mapped column whose values syncd cannot send faithfully, before any
        credit is spent (a problem), or sends as the driver's text (a warning)."""
        for item in self.spec.fields:
            sql_type = self.table.c[item.column].type
            where = f"pipeline {self.spec.pipeline}: fields.{item.api_name}: column {item.column!r}"
            reason = unsupported_reason(sql_type)
            if isinstance(sql_type, ARRAY) and item.type is FieldType.MULTISELECT:
                reason = None  # an array's items are a multi-select picklist's values
            if reason:
                report.problems.append(
                    f"{where} is {self._type_name(sql_type)}: {reason}; map a column or view "
                    "that casts it "
                    "to text, a number or a timestamp"
                )
            elif isinstance(sql_type, NullType):
                shown = self._unknown_types.get(item.column, "of a type SQLAlchemy does not know")
                report.warnings.append(
                    f"{where} is {shown}: syncd sends the text the database driver returns "
                    "for it; check one record in the CRM after the first sync"
                )

    def _type_name(self, sql_type: TypeEngine[Any]) -> str:
        """The type as the database spells it (``TEXT[]``, not SQLAlchemy's ``ARRAY``)."""
        try:
            return str(sql_type.compile(dialect=self.engine.dialect))
        except SQLAlchemyError:
            return str(sql_type)

    def _has_pending_index(self) -> bool:
        try:
            indexes = inspect(self.engine).get_indexes(self.table.name, schema=self.table.schema)
        except SQLAlchemyError as exc:
            raise _translate(exc, "listing indexes") from exc
        for index in indexes:
            columns = [c for c in index.get("column_names", []) if c]
            options = index.get("dialect_options", {})
            where = str(options.get("postgresql_where", options.get("sqlite_where", "")))
            if (columns and columns[0] == self.spec.flag) or self.spec.flag in where:
                return True
        return False

    def index_ddl(self) -> str:
        """Ready-to-run DDL for an index serving `flag = false` lookups.

        Identifiers are quoted by the dialect's own preparer; this text is printed for the
        operator, never executed by syncd (syncd writes nothing but the flag).
        """
        preparer = self.engine.dialect.identifier_preparer
        table = preparer.format_table(self.table)
        key, flag = preparer.quote(self.spec.key), preparer.quote(self.spec.flag)
        index = preparer.quote(f"{self.table.name}_{self.spec.flag}_pending_idx")
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return f"CREATE INDEX CONCURRENTLY {index} ON {table} ({key}) WHERE NOT {flag};"
        if dialect == "sqlite":
            return f"CREATE INDEX {index} ON {table} ({key}) WHERE {flag} = 0;"
        return f"CREATE INDEX {index} ON {table} ({flag}, {key});"

    def trigger_ddl(self) -> str:
        """DDL for a trigger that sets the flag false whenever a mapped column changes.

        The flag-only UPDATE of syncd's compare-and-set changes no mapped column, so it does
        not re-trigger. Printed for the operator; syncd never runs it.
        """
        preparer = self.engine.dialect.identifier_preparer
        table = preparer.format_table(self.table)
        flag, key = preparer.quote(self.spec.flag), preparer.quote(self.spec.key)
        cols = [preparer.quote(c) for c in self.spec.columns]
        name = preparer.quote(f"{self.table.name}_syncd_pending")
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            # Compared as text: json, point and xml have no equality operator, text always has.
            changed = " OR ".join(f"NEW.{c}::text IS DISTINCT FROM OLD.{c}::text" for c in cols)
            return (
                f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n  IF TG_OP = 'INSERT' OR {changed} THEN\n"
                f"    NEW.{flag} := false;\n  END IF;\n  RETURN NEW;\nEND $$;\n"
                f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table}\n"
                f"  FOR EACH ROW EXECUTE FUNCTION {name}();"
            )
        if dialect == "sqlite":
            changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in cols)
            return (
                # DDL printed for the operator, identifiers quoted by the dialect's preparer:
                f"CREATE TRIGGER {name} AFTER UPDATE ON {table} FOR EACH ROW WHEN {changed}\n"  # noqa: S608
                f"BEGIN UPDATE {table} SET {flag} = 0 WHERE {key} = NEW.{key}; END;"
            )
        same = " AND ".join(f"BINARY NEW.{c} <=> BINARY OLD.{c}" for c in cols)
        ins = preparer.quote(f"{self.table.name}_syncd_pending_ins")
        upd = preparer.quote(f"{self.table.name}_syncd_pending_upd")
        return (
            f"CREATE TRIGGER {ins} BEFORE INSERT ON {table} FOR EACH ROW SET NEW.{flag} = 0;\n"  # noqa: S608 - printed DDL, quoted identifiers
            f"CREATE TRIGGER {upd} BEFORE UPDATE ON {table} FOR EACH ROW\n"
            f"  SET NEW.{flag} = IF({same}, NEW.{flag}, 0);"
        )

    def _index_advice(self) -> str:
        ddl = self.index_ddl()
        return (
            f"pipeline {self.spec.pipeline}: no index serves `{self.spec.flag} = false` lookups; "
            f"every poll scans the table. Suggested:\n  {ddl}"
        )

    # -- reads ----------------------------------------------------------------------------------

    def _select_rows(self) -> Any:
        """The key (typed, it is bound back into keyset and IN clauses) and every compared
        column as the raw driver value: no SQLAlchemy result processing, which fails on or
        silently rounds what legacy tables really hold (a '05/01/2024' in an SQLite DATETIME,
        19.999 in a NUMERIC(12,2)). Values are converted for the CRM by ``syncd.crm.values``,
        which rejects what it cannot write faithfully."""
        compared = [n for n in self._compared if n != self.spec.key]
        raw: list[ColumnElement[Any]] = [
            type_coerce(self._col(n), NullType()).label(n) for n in compared
        ]
        if self._on_server:  # last: _rows takes it by position, whatever the columns' names
            raw.append(self._fingerprint_sql().label("syncd_fingerprint"))
            raw.append(self._version_sql().label("syncd_version"))
        return select(self._key.label(self.spec.key), *raw)

    def _version_sql(self) -> ColumnElement[Any]:
        """The row version PostgreSQL reports, as a number; NULL where it has none that can be
        trusted (``_has_row_versions``)."""
        if not self._has_row_versions:
            return null()
        return cast(cast(self._xmin, Text()), BigInteger())

    @cached_property
    def _xmin(self) -> ColumnElement[Any]:
        """The ``xmin`` system column of the table, qualified (it is not reflected)."""
        return literal_column(f"{self._quoted_table}.xmin")

    @cached_property
    def _quoted_table(self) -> str:
        return str(self.engine.dialect.identifier_preparer.format_table(self.table))

    @cached_property
    def _has_row_versions(self) -> bool:
        """Whether each row's ``xmin`` identifies its version: true of a plain or partitioned
        table, whose every UPDATE (or delete and insert) writes a new row version stamped with
        the writing transaction's id. A view has no ``xmin``; a foreign table's is not the
        remote row's. Asked once, of the catalog."""
        query = text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:name)")
        with self._connect("reading what kind of relation the table is") as conn:
            kind = conn.execute(query, {"name": self._quoted_table}).scalar()
        return kind in ("r", "p")

    def _fingerprint_sql(self) -> ColumnElement[str]:
        """PostgreSQL's fingerprint of a row: ``md5`` of the text of ``ROW(<compared columns>)``,
        in a fixed order. Every type has a text form; the row's text quotes each value (``""``
        is the empty text, nothing is NULL; quotes and backslashes doubled), so it changes
        whenever any column does. The settings that text depends on are pinned on every
        session (``syncd.source.pg.pin_output_settings``), and timestamptz, whose text is in
        the session's zone, is taken at UTC: the same row gives the same fingerprint in every
        session of syncd. It is not ``content_hash``: a version of syncd that fingerprinted in
        Python stored other fingerprints (see BENCHMARKS.md)."""
        parts: list[ColumnElement[Any]] = []
        for name in self._compared:
            column: ColumnElement[Any] = self._col(name)
            if isinstance(column.type, DateTime) and column.type.timezone:
                column = func.timezone("UTC", column)
            elif isinstance(column.type, postgresql.MONEY):  # its text follows lc_monetary
                column = cast(column, Numeric())
            parts.append(column)
        return func.md5(cast(func.row(*parts), Text()))

    def _compared_columns(self) -> list[str]:
        names = list(self.spec.columns)
        if self.spec.version_column and self.spec.version_column not in names:
            names.append(self.spec.version_column)
        return names

    def _pending(self) -> ColumnElement[bool]:
        return self._col(self.spec.flag) == false()

    def _rows(self, result: Any) -> list[PendingRow]:
        """The rows of a ``_select_rows`` query: the key, and every compared column's value as
        the driver returned it. Fetched at once (not one driver call per row), values picked
        by position, ``_stable`` only for the rare row that holds a driver buffer."""
        names = list(result.keys())
        key_at = names.index(self.spec.key)
        compared = self._compared
        pick = itemgetter(*(names.index(c) for c in compared))
        made = PendingRow.fingerprinted if self._on_server else None
        rows: list[PendingRow] = []
        # The driver's own rows where SQLAlchemy would only wrap them (no column of the query
        # is converted on the way: the compared ones are read raw, see _select_rows): a Row
        # object per row cost about 1 µs.
        fetch = result.cursor.fetchmany if self._raw_rows else result.fetchmany
        # Until an empty part: PyMySQL ends with (), the others with [].
        for part in itertools.takewhile(bool, _parts(fetch)):
            picked = list(map(pick, part)) if len(compared) > 1 else [(pick(r),) for r in part]
            if not self._on_server:  # psycopg 3 gives bytes, never a buffer: no check there
                picked = [
                    p if _UNSTABLE.isdisjoint(map(type, p)) else tuple(map(_stable, p))
                    for p in picked
                ]
            # A part's rows made by C-level maps: no Python loop step per row.
            keys = map(itemgetter(key_at), part)
            values = map(dict, map(zip, itertools.repeat(compared), picked))
            if made is not None:  # the fingerprint and the version: the last two
                fingerprints = map(itemgetter(-2), part)
                rows.extend(map(made, keys, values, fingerprints, _shared(map(_LAST, part))))
            else:
                rows.extend(map(PendingRow, keys, values))
        result.close()
        return rows

    @cached_property
    def _raw_rows(self) -> bool:
        """Whether SQLAlchemy converts no column of a ``_select_rows`` result (the key's type
        might: SQLite keeps a DATETIME key as text), so the DBAPI cursor's rows are the same."""
        dialect = self.engine.dialect
        typed = [self._key.type, Text()]  # the key, the fingerprint
        return all(t.dialect_impl(dialect).result_processor(dialect, None) is None for t in typed)

    def pending_batch(
        self, after_key: Any | None, limit: int, *, ahead: bool = False
    ) -> list[PendingRow]:
        """``ahead``: the part after this one is asked for at once; on PostgreSQL its query
        then runs while this part is encoded (``syncd.source.ahead``)."""
        rows = self._read_ahead(after_key, limit)
        if rows is None:
            rows = self._read_pending(after_key, limit)
        if ahead and self._on_server and len(rows) == limit:
            after = rows[-1].key
            query = self._pending_query(after, limit)
            self._ahead = ReadAhead(after, limit, query, lambda: self._answer_ahead(query))
        return rows

    def _pending_query(self, after_key: Any | None, limit: int) -> Any:
        key = self._col(self.spec.key)
        query = self._select_rows().where(self._pending()).order_by(key).limit(limit)
        if after_key is not None:
            query = query.where(self._key > after_key)
        return query

    @_retried
    def _read_pending(self, after_key: Any | None, limit: int) -> list[PendingRow]:
        query = self._pending_query(after_key, limit)
        with self._connect("reading pending rows") as conn:
            return self._loaded(conn, query, self._executed(conn, query))

    def _read_ahead(self, after_key: Any | None, limit: int) -> list[PendingRow] | None:
        """The part read ahead, if it is this one and its query succeeded (else None: it is
        read the usual way). Any other part asked for discards it."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if not ahead.is_for(after_key, limit):
            ahead.discard()
            return None
        answer = ahead.answer()
        if answer is None:
            return None
        conn, result = answer
        try:
            with self._connect_errors("reading pending rows"):
                return self._loaded(conn, ahead.query, result)
        except SourceError:
            return None  # read again the usual way, with its retries
        finally:
            conn.close()

    def _answer_ahead(self, query: Any) -> Answer:
        """``query`` run on a connection of its own, its answer buffered by the driver and its
        transaction ended (on the read-ahead thread)."""
        conn = self.engine.connect()
        try:
            result = self._executed(conn, query)
            conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn, result

    def _executed(self, conn: Connection, query: Any) -> Any:
        """``query``'s result; on psycopg with dates loaded by psycopg's own loaders
        (``strict_loaders``: a loader is picked as the answer comes in)."""
        if self.engine.driver != "psycopg":
            return conn.execute(query)
        from syncd.source.pg import strict_loaders

        adapters = conn.connection.driver_connection.adapters  # type: ignore[union-attr]
        with strict_loaders(adapters):
            return conn.execute(query)

    def _loaded(self, conn: Connection, query: Any, result: Any) -> list[PendingRow]:
        """The rows of ``result``; should one hold a date Python cannot hold ('infinity', BC,
        beyond year 9999), ``query`` is read again with the connection's lenient loaders,
        which make it text (and its row a reject)."""
        if self.engine.driver != "psycopg":
            return self._rows(result)
        from psycopg import DataError as Unloadable

        try:
            return self._rows(result)
        except (Unloadable, DataError):  # raised as loaded; DataError: SQLAlchemy's wrapping
            result.close()
            return self._rows(conn.execute(query))

    @_retried
    def count_pending(self) -> int:
        query = select(func.count()).select_from(self.table).where(self._pending())
        with self._connect("counting pending rows") as conn:
            return int(conn.execute(query).scalar_one())

    def case_colliding_keys(self, limit: int = 5) -> tuple[int, list[list[str]]]:
        """How many groups of keys differ only in case, and the spellings of the first
        ``limit`` (at least 1) groups, e.g. ``(1, [["AB-1", "ab-1"]])``.

        One query: the colliding groups (``GROUP BY lower(key)``, counted by a window over
        them), joined back to the table for every key of the first groups. The spellings come
        from the rows, not from ``min``/``max`` of a group, which a case-insensitive collation
        (MySQL/MariaDB's default) would return as one. Keys that are not text cannot differ in
        case: no query. ``lower`` folds what the database folds (SQLite: ASCII letters only);
        MySQL/MariaDB compare the folded keys as bytes, or their collation would also merge
        'cafe' with 'café' and 'a' with 'a '.
        """
        key = self._col(self.spec.key)
        if not isinstance(key.type, String) or isinstance(key.type, postgresql.ENUM | mysql.ENUM):
            return 0, []
        folded: ColumnElement[Any] = func.lower(key)
        if self.engine.dialect.name in ("mysql", "mariadb"):
            folded = cast(folded, LargeBinary())
        groups = (
            select(folded.label("folded"), func.count().over().label("n_groups"))
            .where(key.is_not(None))
            .group_by(folded)
            .having(func.count() > 1)
            .order_by(folded)
            .limit(max(limit, 1))
            .cte("colliding")
        )
        query = (
            select(groups.c.n_groups, groups.c.folded, key)
            .join_from(self.table, groups, folded == groups.c.folded)
            .order_by(groups.c.folded)
        )
        found: dict[str, list[str]] = {}
        total = 0
        with self._connect("looking for keys that differ only in case") as conn:
            for count, group, spelling in conn.execute(query):
                total = int(count)
                found.setdefault(repr(group), []).append(str(spelling))
        return total, [sorted(spellings) for spellings in found.values()]

    @_retried
    def fetch_rows(self, keys: Sequence[Any], *, pending_only: bool = False) -> list[PendingRow]:
        key = self._key
        keys = [self._key_value(k) for k in keys]
        base = self._select_rows().where(self._pending()) if pending_only else self._select_rows()
        found: list[PendingRow] = []
        with self._connect("reading rows") as conn:
            for start in range(0, len(keys), _CHUNK):
                part = list(keys[start : start + _CHUNK])
                query = base.where(key.in_(part)).order_by(self._col(self.spec.key))
                found.extend(self._rows(conn.execute(query)))
        return found

    def existing_keys(self, keys: Sequence[str]) -> set[str]:
        """Which of these keys (as text) still have a row, whatever its flag: the reconcile of
        deletes compares chunks of the identity map with this, in one query per 500 keys."""
        key = self._key
        values = [self._key_value(k) for k in keys]
        found: set[str] = set()
        with self._connect("reading keys") as conn:
            for start in range(0, len(values), _CHUNK):
                query = select(key).where(self._key_in(values[start : start + _CHUNK]))
                found.update(str(k) for k in conn.scalars(query))
        return found

    def _key_value(self, key: Any) -> Any:
        """Keys come back from the journal and the buffer as text; bind them as the key's type."""
        if isinstance(key, str) and isinstance(self._col(self.spec.key).type, Integer):
            return int(key)
        return key

    def column_types(self) -> dict[str, FieldType]:
        return {c: field_type_of(self.table.c[c].type) for c in self.spec.columns}

    # -- the compare-and-set ----------------------------------------------------------------------

    def mark_synced(self, rows: Sequence[PendingRow]) -> Confirmation:
        """Set the flag true only where the row still holds exactly what was sent.

        Per chunk, in one short transaction: read the rows by key under a row lock, fingerprint
        them in Python with the code that fingerprinted what was sent, set the flag by key for
        those that match, and read the flag back. No driver value is bound back into SQL, so the
        result does not depend on how values survive a round trip (floats, latin1 text, json,
        SQLite affinity). A row changed meanwhile keeps flag false and is sent again. On
        PostgreSQL, lean rows are compared by the database itself (``_confirm_on_server``):
        what is bound is the row version it reported and the fingerprint it computed when it
        read the row, never a value.
        """
        parts: list[Confirmation] = []
        for start in range(0, len(rows), CONFIRM_CHUNK):
            chunk = rows[start : start + CONFIRM_CHUNK]
            if self._confirms_on_server(chunk):
                parts.append(self._confirm_on_server(chunk))
            else:
                parts.append(self._confirm_chunk(chunk))
            crash_point("after_confirm_chunk")
        return Confirmation.joined(parts, self.spec.flag)

    @_retried
    def unflag(self, keys: Sequence[Any]) -> int:
        """Set the flag false for these keys, so they are sent again; how many rows changed.

        Used to re-send a row whose CRM record another row overwrote (a take-over syncd
        detected): the row's own content then restores the record.
        """
        flag = self._col(self.spec.flag)
        values = [self._key_value(k) for k in keys]
        changed = 0
        with self._connect("re-sending rows", write=True) as conn:
            for start in range(0, len(values), _CHUNK):
                part = values[start : start + _CHUNK]
                stmt = update(self.table).where(self._key_in(part)).values({flag: false()})
                changed += conn.execute(stmt).rowcount
        return changed

    @_retried
    def _confirm_chunk(self, sent: Sequence[PendingRow]) -> Confirmation:
        key = self._key
        flag = self._col(self.spec.flag)
        with self._locked("marking rows synced") as conn:
            query = self._select_rows().where(self._key_in([r.key for r in sent]))
            query = query.with_for_update()
            now = {r.key_text: r for r in self._rows(conn.execute(query))}
            changed = {r.key_text: self._differs(r, now.get(r.key_text)) for r in sent}
            same = [r.key for r in sent if not changed[r.key_text]]
            unflagged: set[str] = set()
            if same:
                conn.execute(update(self.table).where(self._key_in(same)).values({flag: true()}))
                # A legacy trigger that resets the flag on every UPDATE shows up here.
                reset = select(key).where(self._key_in(same), flag == false())
                unflagged = {str(k) for k in conn.scalars(reset)}
        return Confirmation(
            frozenset(str(k) for k in same) - unflagged,
            {k: cols for k, cols in changed.items() if cols},
            frozenset(unflagged),
        )

    def _confirms_on_server(self, sent: Sequence[PendingRow]) -> bool:
        """Whether PostgreSQL compares this chunk itself: lean rows (only their fingerprint
        kept, as a bulk job holds them) whose keys travel as JSON text."""
        return (
            self._on_server
            and isinstance(self._col(self.spec.key).type, Integer | String)
            and not any(map(_VALUES, sent))  # checked without a Python step per row
            and _plain_keys(map(_KEY, sent))
        )

    @_retried
    def _confirm_on_server(self, sent: Sequence[PendingRow]) -> Confirmation:
        """The compare-and-set of lean rows on PostgreSQL, in one transaction: one UPDATE sets
        the flag where the key is sent and the row is unchanged (``_unchanged_sql``: the row
        version read, or else the database's fingerprint of the row, ``_fingerprint_sql``,
        the expression that fingerprinted it when it was read, equals the one sent),
        returning the keys it flagged; the flag is read back where a trigger may have reset
        it (``_flag_may_be_reset``); only the keys not flagged are read once more, to tell a
        changed row from a deleted one. Keys and fingerprints are one JSON parameter: the
        same statement text for every chunk, prepared once.

        Promise 1 holds under concurrent writers: an UPDATE locks each row it is about to
        change, and if another transaction changed that row after this statement's snapshot,
        PostgreSQL (READ COMMITTED) re-evaluates the WHERE clause, version and fingerprint
        included, on the newest committed version before changing it. So what is compared is
        the row as it is when flagged, never an older version; a writer that comes
        later waits for this transaction and then sets the flag false itself."""
        key = self._col(self.spec.key)
        flag = self._col(self.spec.flag)
        texts = list(map(ROW_KEY_TEXT, sent))
        with self._locked("marking rows synced") as conn:
            given = {"sent": _sent_json(texts, sent)}
            flagging = conn.execute(self._flagging, given)
            if flagging.rowcount == len(sent) == len(marked := set(texts)):
                # The usual chunk: one row flagged per key sent (a chunk's keys are distinct
                # and each matches its own row only), so the keys it returned are the keys
                # sent, and are not read (1,000,000 of them per 1,000,000 rows).
                flagging.close()
            else:
                # The driver's rows (one fetch), not SQLAlchemy's: the key type converts
                # nothing here (_confirms_on_server), and a Result row cost about 0.4 µs.
                marked = set(map(str, map(itemgetter(0), flagging.cursor.fetchall())))
            if len(marked) == len(sent):  # every row flagged
                same, missed = list(map(_KEY, sent)), []
            else:
                same = [r.key for r in sent if r.key_text in marked]
                missed = [r.key for r in sent if r.key_text not in marked]
            unflagged: set[str] = set()
            if same and self._flag_may_be_reset(conn):  # a trigger resetting it shows up here
                reset = select(key).where(self._key_in(same), flag == false())
                unflagged = {str(k) for k in conn.scalars(reset)}
            present: set[str] = set()
            if missed:
                present = {str(k) for k in conn.scalars(select(key).where(self._key_in(missed)))}
        return Confirmation(
            frozenset(marked) - unflagged,
            {str(k): (CHANGED,) if str(k) in present else (DELETED,) for k in missed},
            frozenset(unflagged),
        )

    @cached_property
    def _flagging(self) -> Any:
        """``_confirm_on_server``'s UPDATE, built once: its JSON is bound when it runs. A
        statement built per chunk, with the JSON in it, was freed only by the cyclic garbage
        collector (SQLAlchemy's statements hold cycles): up to 150 KB a chunk held meanwhile,
        and the building cost CPU (BENCHMARKS.md)."""
        key = self._col(self.spec.key)
        given = cast(bindparam("sent", type_=String()), postgresql.JSON())
        pairs = func.json_each_text(given).table_valued("key", "value")
        return (
            update(self.table)
            .where(key == cast(pairs.c.key, key.type), self._unchanged_sql(pairs.c.value))
            .values({self._col(self.spec.flag): true()})
            .returning(key)
        )

    def _flag_may_be_reset(self, conn: Connection) -> bool:
        """Whether anything but this UPDATE may have set the flag of the rows it flagged: a
        trigger or a rule on the table, or a relation that is not a plain table (a view's
        UPDATE reaches a table with triggers of its own; a partition may have its own). Only
        then is the flag read back: on 1,000,000 rows the read-back cost PostgreSQL 1.5 to
        2.5 s (BENCHMARKS.md). Asked of the catalog in the confirming transaction, after the
        UPDATE: a trigger created before the UPDATE took its row locks fired and is seen here,
        and one created since waits for this transaction (CREATE TRIGGER locks the table
        against writers), so it did not fire."""
        found = conn.execute(_FLAG_RESETTERS, {"name": self._quoted_table}).scalar()
        return found is not False  # no answer (the relation is gone?): read the flag back

    def _unchanged_sql(self, sent: ColumnElement[str]) -> ColumnElement[bool]:
        """Whether the row holds what was sent (``_sent_json``'s text: the fingerprint, then
        the row version, if any). The same version is the same row version, so the same
        content: the fingerprint is computed only for a row written since it was read. Such
        a row may hold what was sent all the same (an UPDATE that changed nothing); the
        fingerprint then still confirms it. PostgreSQL evaluates an OR's arms in order and
        stops at the first true one."""
        same_content = self._fingerprint_sql() == func.split_part(sent, " ", 1)
        if not self._has_row_versions:
            return same_content
        version = cast(func.nullif(func.split_part(sent, " ", 2), ""), XID())
        return or_(self._xmin == version, same_content)

    def _key_in(self, keys: list[Any]) -> ColumnElement[bool]:
        """``key IN (...)`` as one parameter where the database allows it, so the statement text
        is the same for every chunk: no per-chunk SQL rendering, and psycopg caches and
        prepares it (it re-parses statements of more than 50 parameters every time). Measured
        at 1,000,000 rows this halves the confirmation's CPU (bench/bench_confirm.py)."""
        key = self._col(self.spec.key)
        dialect = self.engine.dialect.name
        plain = _plain_keys(keys)
        if dialect == "postgresql" and plain and isinstance(key.type, Integer | String):
            # A JSON text, not an array: psycopg dumps an array element by element in Python.
            given = cast(bindparam("keys", jsontext.dumps(keys), type_=String()), postgresql.JSON())
            elements = func.json_array_elements_text(given).table_valued("value")
            return key.in_(select(cast(elements.c.value, key.type)))
        if dialect == "postgresql":
            return key == any_(bindparam("keys", keys, type_=postgresql.ARRAY(key.type)))
        if dialect == "sqlite" and plain:
            listed = func.json_each(bindparam("keys", jsontext.dumps(keys), type_=String()))
            return key.in_(select(literal_column("value")).select_from(listed))
        return self._key.in_(keys)

    def _differs(self, sent: PendingRow, now: PendingRow | None) -> tuple[str, ...]:
        """The compared columns whose value changed; ``("<deleted>",)`` for a row that is gone."""
        if now is None:
            return (DELETED,)
        if not sent.values:  # a lean row (PendingRow.lean): only its fingerprint was kept
            return () if now.fingerprint == sent.fingerprint else (CHANGED,)
        if self.spec.version_column:
            name = self.spec.version_column
            return () if sent.values[name] == now.values[name] else (name,)
        if _all_same(sent.values, now.values) or (
            sent.values.keys() == now.values.keys()
            and all(_same(v, now.values[c]) for c, v in sent.values.items())
        ):
            return ()
        return tuple(c for c in sent.values if repr(sent.values[c]) != repr(now.values.get(c)))

    @contextmanager
    def _locked(self, what: str) -> Iterator[Connection]:
        """A transaction that holds its rows: ``FOR UPDATE`` on PostgreSQL and MySQL/MariaDB;
        SQLite has no row locks, so the transaction takes the database write lock up front."""
        try:
            with self.engine.connect() as conn:
                if self.engine.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
        except SQLAlchemyError as exc:
            raise _translate(exc, what) from exc


_FLAG_RESETTERS = text(
    "SELECT c.relkind <> 'r' OR c.relhasrules OR EXISTS (SELECT 1 FROM pg_trigger AS t "
    "WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) FROM pg_class AS c "
    "WHERE c.oid = to_regclass(:name)"
)
"""Whether a PostgreSQL relation may change a row's flag behind an UPDATE (``_flag_may_be_reset``):
internal triggers (those of foreign keys) never do."""

_KEY, _VALUES = attrgetter("key"), attrgetter("values")
_VERSION, _LAST = attrgetter("version"), itemgetter(-1)


class XID(UserDefinedType[str]):
    """PostgreSQL's ``xid``, the type of ``xmin``: only cast to, never read or bound."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid"


def _sent_json(texts: Sequence[str], sent: Sequence[PendingRow]) -> str:
    """The JSON object ``_confirm_on_server`` binds: key text -> the fingerprint sent, then a
    space and the row version read with it, if one was (a fingerprint is hex: no space)."""
    versions = list(map(_VERSION, sent))
    # Each version's text made once (a chunk's rows mostly share one): no Python step a row.
    suffix = {v: "" if v is None else f" {v}" for v in set(versions)}
    sent_texts = map(add, fingerprints_of(sent), map(suffix.__getitem__, versions))
    return jsontext.dumps(dict(zip(texts, sent_texts, strict=True)))


def _shared(versions: Iterable[int | None]) -> Iterator[int | None]:
    """The same version, one object: rows written by one transaction (a migration, a bulk
    load: what an initial sync often reads) share their xmin, and a bulk job in flight keeps
    each row's version (32 bytes a row otherwise)."""
    listed = list(versions)
    return map(dict(zip(listed, listed, strict=True)).__getitem__, listed)


def _plain_keys(keys: Iterable[Any]) -> bool:
    """Whether every key is an ``int`` or a ``str`` (JSON carries them as they are)."""
    return set(map(type, keys)) <= {int, str}


_EQ_IS_REPR = frozenset({str, int, bool, bytes, type(None), date})
"""Types whose ``==`` between two values of that exact type holds iff their ``repr`` match
(not float: nan, -0.0; not Decimal: 1.0 vs 1.00; not datetime: fold, time zones)."""


def _all_same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when every value of ``a`` is ``_same`` as ``b``'s, decided mostly in C: equal
    dicts whose values have the same types, then ``repr`` only where ``==`` is not enough.
    False means "not shown equal here" (the caller then compares column by column)."""
    if a != b or list(a) != list(b):  # same order too: the values are zipped below
        return False
    types = tuple(map(type, a.values()))
    if types != tuple(map(type, b.values())):
        return False
    if _EQ_IS_REPR.issuperset(types):
        return True
    return all(
        repr(x) == repr(y)
        for x, y, kind in zip(a.values(), b.values(), types, strict=True)
        if kind not in _EQ_IS_REPR
    )


def _same(a: Any, b: Any) -> bool:
    """What ``content_hash`` compares (``repr`` equality), without the ``repr`` where ``==``
    says the same: the fingerprint's verdict per column, at a fifteenth of the cost."""
    if a is b:
        return True
    kind = type(a)
    if kind is type(b) and kind in _EQ_IS_REPR:
        return bool(a == b)
    return repr(a) == repr(b)


_UNSTABLE = frozenset({memoryview, bytearray})


def _parts(fetch: Callable[[int], Sequence[Any]]) -> Iterator[Sequence[Any]]:
    while True:
        yield fetch(5000)


def _stable(value: Any) -> Any:
    """Driver values whose ``repr`` is not their content (a memoryview shows its address)."""
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value
