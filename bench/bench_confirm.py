"""Confirmation speed: flagging N confirmed rows, the old per-row CAS UPDATE vs mark_synced.

    .venv/bin/python bench/bench_confirm.py                         # 1,000,000 rows, PostgreSQL
    .venv/bin/python bench/bench_confirm.py --rows 200000 --repeat 1
    .venv/bin/python bench/bench_confirm.py --chunk 500 --chunk 2000 --chunk 5000
    .venv/bin/python bench/bench_confirm.py --database sqlite
    .venv/bin/python bench/bench_confirm.py --only new --profile /tmp/confirm.prof
    .venv/bin/python bench/bench_confirm.py --only new --lean --chunk 2500 --chunk 10000

The issue's requirement: "the confirmation of 1,000,000 rows must not be slower than today's
per-row UPDATE". A fresh database (PostgreSQL: created on ``--server-url`` and dropped after;
SQLite: a temporary file) gets an ``orders``-like table by plain DDL, filled with the native
client (psycopg COPY / sqlite3), plus the pending index ``syncd ddl`` suggests. Every pending
row is read once with syncd's own ``LegacyTable.pending_batch`` (25,000 a batch), then confirmed
by each contender, one call per batch as the engine does after a bulk job:

* ``old``: the BASELINE, syncd before commit 6e62271 (``git show HEAD~1:syncd/source.py``),
  reimplemented below: one compare-and-set UPDATE per row (executemany, every mapped value
  bound back into the WHERE clause) in one transaction per call, then the flag read back;
* ``new chunk=N``: today's ``LegacyTable.mark_synced`` with
  ``syncd.source.table.CONFIRM_CHUNK = N``; with ``--lean``, of the rows made lean as a bulk
  job holds them, which PostgreSQL compares itself (the drain's path since session 9).

Before each run the flag is reset (``UPDATE ... SET sync = false``), then VACUUM ANALYZE (and a
CHECKPOINT on PostgreSQL), so every run starts from the same table. ``--repeat`` runs every
contender again, alternating the order (old first, then new first). After each run the flagged
rows are counted: a run that did not flag all N rows stops the bench.

Figures: wall time, this process's CPU (``time.process_time``) and, for a local PostgreSQL, the
CPU of this database's server backends (read from /proc; blank when not readable). The client
and the server share this machine's cores.

Values are chosen so the baseline can succeed at all: its bound-back equality fails, and leaves
rows pending forever, on what the new code handles (non-float4-exact ``real`` values read back
as float8, SQLite timestamps not in SQLAlchemy's own text format); see the commit message.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Column, Engine, and_, bindparam, false, select, true, update
from sqlalchemy.engine import make_url
from sqlalchemy.sql.elements import ColumnElement

import syncd.source.table
from syncd.model import FieldMap, PendingRow, TableSpec
from syncd.source.table import LegacyTable, open_source_engine
from tests.helpers.databases import fresh_database

COLUMNS = (
    "order_number",  # varchar(40)
    "total",  # numeric(12,2)
    "order_date",  # date
    "ordered_at",  # timestamp
    "status",  # varchar(20)
    "customer_email",  # varchar(255)
    "quantity",  # integer
    "paid",  # boolean
    "weight",  # real
    "notes",  # text, NULL in one row of 7
)
SPEC = TableSpec("orders", "orders", "id", "sync", tuple(FieldMap(c, c) for c in COLUMNS))

POSTGRES_DDL = """
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    order_number varchar(40),
    total numeric(12, 2),
    order_date date,
    ordered_at timestamp,
    status varchar(20),
    customer_email varchar(255),
    quantity integer,
    paid boolean,
    weight real,
    notes text,
    sync boolean NOT NULL DEFAULT false
)
"""
SQLITE_DDL = POSTGRES_DDL.replace("bigint PRIMARY KEY", "INTEGER PRIMARY KEY").replace(
    "DEFAULT false", "DEFAULT 0"
)
COPY = "COPY orders (id, " + ", ".join(COLUMNS) + ") FROM STDIN"
INSERT = "INSERT INTO orders (id, " + ", ".join(COLUMNS) + ") VALUES (" + "?, " * 10 + "?)"
STATUSES = ("New", "Paid", "Shipped", "Cancelled")
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's own storage format (see module doc)


def order_row(i: int) -> tuple[Any, ...]:
    """Row ``i``: the key, then one value per mapped column."""
    return (
        i,
        f"SO-{i:07d}",
        Decimal(i % 5000) + Decimal("0.99"),
        date(2025, 1, 1) + timedelta(days=i % 365),
        datetime(2025, 1, 1, 8, 30) + timedelta(seconds=37 * i),
        STATUSES[i % 4],
        f"buyer{i}@example.com",
        i % 100 + 1,
        i % 3 == 0,
        (i % 4000) / 4,  # exact in float4: the baseline binds it back as float8
        None if i % 7 == 0 else f"Leave at the back door, ring twice (order {i})",
    )


def sqlite_row(i: int) -> tuple[Any, ...]:
    row = list(order_row(i))
    row[2] = float(row[2])  # NUMERIC affinity stores it as REAL anyway
    row[3] = row[3].isoformat()
    row[4] = row[4].strftime(SQLITE_DATETIME)
    return tuple(row)


# -- the database ---------------------------------------------------------------------------------


@contextmanager
def bench_database(kind: str, server_url: str, workdir: Path) -> Iterator[str]:
    """A new SQLite file, or a new database on the PostgreSQL server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/legacy.db"
        return
    yield from fresh_database(server_url, prefix="syncd_bench")


def fill(url: str, rows: int) -> None:
    """Create and fill the table with the native client, then ANALYZE."""
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database or "") as conn:
            conn.execute(SQLITE_DDL)
            conn.executemany(INSERT, (sqlite_row(i) for i in range(1, rows + 1)))
            conn.execute("ANALYZE")
        conn.close()
        return
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(POSTGRES_DDL)
        with conn.cursor() as cur, cur.copy(COPY) as copy:
            for i in range(1, rows + 1):
                copy.write_row(order_row(i))
        conn.execute("ANALYZE orders")


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def add_pending_index(engine: Engine, legacy: LegacyTable) -> None:
    """The index ``syncd ddl`` prints, as an operator would run it."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(legacy.index_ddl())


def reset(engine: Engine) -> None:
    """Every row pending again, dead rows gone, statistics fresh, WAL checkpointed."""
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE orders SET sync = false WHERE sync")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE orders" if postgres else "VACUUM")
        conn.exec_driver_sql("CHECKPOINT" if postgres else "ANALYZE")


def flagged(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM orders WHERE sync").scalar_one())


def read_pending(legacy: LegacyTable, batch: int) -> list[list[PendingRow]]:
    """Every pending row, in batches, with syncd's own keyset read."""
    batches: list[list[PendingRow]] = []
    after = None
    while rows := legacy.pending_batch(after, batch):
        batches.append(rows)
        after = rows[-1].key
    return batches


# -- the BASELINE: syncd's compare-and-set before commit 6e62271 ------------------------------


class OldPerRowUpdate:
    """BASELINE, not syncd's code any more: ``mark_synced`` of ``git show HEAD~1:syncd/source.py``
    (with ``_cas_condition``, ``_same`` and ``_cas_params``), copied on the same reflected table.
    The MySQL byte-exact branch of ``_same`` is left out: this bench runs PostgreSQL and SQLite.
    """

    def __init__(self, legacy: LegacyTable) -> None:
        self.table = legacy.table
        self.spec = legacy.spec
        self.engine = legacy.engine

    def mark_synced(self, rows: Sequence[PendingRow]) -> set[str]:
        if not rows:
            return set()
        flag = self.table.c[self.spec.flag]
        stmt = update(self.table).where(self._cas_condition()).values({flag: true()})
        params = [self._cas_params(row) for row in rows]
        key = self.table.c[self.spec.key]
        marked: set[str] = set()
        with self.engine.begin() as conn:
            conn.execute(stmt, params)
            for start in range(0, len(rows), 500):
                part = [r.key for r in rows[start : start + 500]]
                query = select(key).where(key.in_(part), flag == true())
                marked.update(str(k) for k in conn.scalars(query))
        return marked

    def _cas_condition(self) -> ColumnElement[bool]:
        clauses = [self.table.c[self.spec.key] == bindparam("cas_key")]
        for index, name in enumerate(self.spec.columns):
            clauses.append(self.table.c[name].is_not_distinct_from(bindparam(f"cas_{index}")))
        return and_(*clauses)

    def _cas_params(self, row: PendingRow) -> dict[str, Any]:
        params = {f"cas_{i}": row.values[name] for i, name in enumerate(self.spec.columns)}
        params["cas_key"] = row.key
        return params


def typed_batches(legacy: LegacyTable, batch: int) -> list[list[PendingRow]]:
    """The same rows as the old code read them: through SQLAlchemy's result processing (on
    SQLite its Date/DateTime bind processors refuse the raw text ``pending_batch`` returns)."""
    table = legacy.table
    key = table.c[legacy.spec.key]
    columns: list[Column[Any]] = [table.c[c] for c in legacy.spec.columns]
    base = select(key, *columns).where(table.c[legacy.spec.flag] == false()).order_by(key)
    batches: list[list[PendingRow]] = []
    after = None
    with legacy.engine.connect() as conn:
        while True:
            query = base.limit(batch) if after is None else base.where(key > after).limit(batch)
            rows = [
                PendingRow(r[0], dict(zip(legacy.spec.columns, r[1:], strict=True)))
                for r in conn.execute(query)
            ]
            if not rows:
                return batches
            batches.append(rows)
            after = rows[-1].key


# -- timing ---------------------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    wall: float
    cpu: float
    server_cpu: float | None
    marked: int


def backend_cpu(database: str) -> float | None:
    """CPU seconds so far of the server processes serving ``database`` (local PostgreSQL)."""
    total = 0.0
    found = False
    tick = os.sysconf("SC_CLK_TCK")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if not cmdline.startswith(b"postgres: ") or f" {database} ".encode() not in cmdline:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        found = True
    return total if found else None


def timed(
    name: str,
    confirm: Callable[[Sequence[PendingRow]], int],
    batches: list[list[PendingRow]],
    database: str | None,
    profile: cProfile.Profile | None,
) -> Run:
    server_before = backend_cpu(database) if database else None
    cpu = time.process_time()
    wall = time.perf_counter()
    if profile:
        profile.enable()
    marked = sum(confirm(rows) for rows in batches)
    if profile:
        profile.disable()
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    server_after = backend_cpu(database) if database else None
    server = None
    if server_before is not None and server_after is not None:
        server = server_after - server_before
    return Run(name, wall, cpu, server, marked)


def show(run: Run, rows: int) -> None:
    server = f", server {run.server_cpu:6.1f} s CPU" if run.server_cpu is not None else ""
    print(
        f"  {run.name:<16} {run.wall:7.1f} s wall = {rows / run.wall:>9,.0f} rows/s; "
        f"client {run.cpu:6.1f} s CPU{server}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument(
        "--server-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="PostgreSQL server to create the throw-away database on",
    )
    parser.add_argument("--batch-size", type=int, default=25_000, help="rows per mark_synced")
    parser.add_argument(
        "--chunk", type=int, action="append", help="CONFIRM_CHUNK to try (repeatable)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="rounds, alternating the order")
    parser.add_argument("--only", choices=("old", "new"), help="run one contender only")
    parser.add_argument("--profile", type=Path, help="cProfile the new runs into this file")
    parser.add_argument(
        "--lean",
        action="store_true",
        help="confirm lean rows, as the drain does after a bulk job (PostgreSQL compares them)",
    )
    args = parser.parse_args()
    chunks = args.chunk or [syncd.source.table.CONFIRM_CHUNK]
    with (
        tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp,
        bench_database(args.database, args.server_url, Path(tmp)) as url,
    ):
        began = time.perf_counter()
        fill(url, args.rows)
        print(f"legacy table: {args.rows:,} rows in {time.perf_counter() - began:.1f} s ({url})")
        engine = open_source_engine(url)
        try:
            bench(engine, args, chunks)
        finally:
            engine.dispose()


def bench(engine: Engine, args: argparse.Namespace, chunks: list[int]) -> None:
    legacy = LegacyTable(engine, SPEC)
    add_pending_index(engine, legacy)
    reset(engine)
    began = time.perf_counter()
    batches = read_pending(legacy, args.batch_size)
    rows = sum(len(b) for b in batches)
    print(
        f"read with pending_batch: {rows:,} rows in {len(batches)} batches, "
        f"{time.perf_counter() - began:.1f} s"
    )
    if rows != args.rows:
        raise SystemExit(f"read {rows:,} pending rows, expected {args.rows:,}")
    old_batches = batches
    if engine.dialect.name == "sqlite" and args.only != "new":
        began = time.perf_counter()
        old_batches = typed_batches(legacy, args.batch_size)
        print(f"read as the old code did (typed): {time.perf_counter() - began:.1f} s")
    database = engine.url.database if engine.dialect.name != "sqlite" else None
    # A bulk job in flight holds its rows lean (values dropped, fingerprint and version kept):
    # on PostgreSQL their compare-and-set runs in the database (_confirm_on_server).
    new_batches = [[row.lean() for row in b] for b in batches] if args.lean else batches
    profile = cProfile.Profile() if args.profile else None
    old = OldPerRowUpdate(legacy)

    def run_old() -> Run:
        return timed(
            "old per-row CAS", lambda r: len(old.mark_synced(r)), old_batches, database, None
        )

    def run_new(chunk: int) -> Run:
        saved = syncd.source.table.CONFIRM_CHUNK
        syncd.source.table.CONFIRM_CHUNK = chunk
        try:
            return timed(
                f"new chunk={chunk}",
                lambda r: len(legacy.mark_synced(r).marked),
                new_batches,
                database,
                profile,
            )
        finally:
            syncd.source.table.CONFIRM_CHUNK = saved

    contenders: list[Callable[[], Run]] = []
    if args.only != "new":
        contenders.append(run_old)
    if args.only != "old":
        contenders.extend(lambda c=c: run_new(c) for c in chunks)
    runs: list[Run] = []
    for round_ in range(args.repeat):
        load = os.getloadavg()[0]  # other work on the machine skews the figures: say so
        print(f"round {round_ + 1} of {args.repeat} (load average {load:.1f}):")
        for contender in contenders if round_ % 2 == 0 else contenders[::-1]:
            reset(engine)
            run = contender()
            show(run, rows)
            runs.append(run)
            count = flagged(engine)
            if run.marked != rows or count != rows:
                raise SystemExit(
                    f"{run.name}: {run.marked:,} marked, {count:,} flagged of {rows:,}"
                )
    summary(runs, rows)
    if profile:
        profile.dump_stats(args.profile)
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


def summary(runs: list[Run], rows: int) -> None:
    names = list(dict.fromkeys(r.name for r in runs))
    median: dict[str, Run] = {}
    print(f"median of {len(runs) // len(names)} run(s), {rows:,} rows, all flagged:")
    for name in names:
        mine = [r for r in runs if r.name == name]
        servers = [r.server_cpu for r in mine if r.server_cpu is not None]
        median[name] = Run(
            name,
            statistics.median(r.wall for r in mine),
            statistics.median(r.cpu for r in mine),
            statistics.median(servers) if servers else None,
            rows,
        )
        show(median[name], rows)
    base = median.get("old per-row CAS")
    if base is None:
        return
    for name, run in median.items():
        if run is not base:
            print(
                f"  {name}: new/old wall {run.wall / base.wall:.2f}, "
                f"client CPU {run.cpu / base.cpu:.2f}"
            )


if __name__ == "__main__":
    main()
