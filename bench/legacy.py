"""The benchmarks' legacy table: plain DDL, filled by the database's own client, and the floor.

The table is the ``orders`` of the tests (9 mapped columns of mixed types plus the key and the
flag), but created by hand-written DDL in the column types real legacy schemas use and filled
with the native client (psycopg COPY, PyMySQL, sqlite3), never through syncd's SQLAlchemy path.

The *floor* is the least database-side work any correct tool must do for an initial sync:
export the mapped columns of the pending rows as CSV into a zip (what a bulk write uploads),
then set every flag in one UPDATE. Benchmarks print syncd's figures as ratios of it.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pymysql
from sqlalchemy.engine import make_url

from tests.helpers.databases import fresh_database

COLUMNS = (
    "order_number",
    "total",
    "order_date",
    "ordered_at",
    "status",
    "customer_email",
    "quantity",
    "paid",
    "notes",
)
FIELDS = {
    "Name": "order_number",
    "Amount": "total",
    "Order_Date": "order_date",
    "Ordered_At": "ordered_at",
    "Status": "status",
    "Customer_Email": "customer_email",
    "Quantity": "quantity",
    "Paid": "paid",
    "Notes": "notes",
}

_DDL = {
    "postgresql": """
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
    notes text,
    sync boolean NOT NULL DEFAULT false
)""",
    "mysql": """
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    order_number varchar(40),
    total decimal(12, 2),
    order_date date,
    ordered_at datetime,
    status varchar(20),
    customer_email varchar(255),
    quantity int,
    paid tinyint(1),
    notes text,
    sync tinyint(1) NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    "sqlite": """
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    order_number varchar(40),
    total numeric(12, 2),
    order_date date,
    ordered_at datetime,
    status varchar(20),
    customer_email varchar(255),
    quantity integer,
    paid boolean,
    notes text,
    sync boolean NOT NULL DEFAULT 0
)""",
}
_STATUSES = ("New", "Paid", "Shipped", "Cancelled")


def order_row(i: int) -> tuple[Any, ...]:
    """Row ``i``: the key, then one value per column of ``COLUMNS``."""
    return (
        i,
        f"SO-{i:07d}",
        Decimal(i % 5000) + Decimal("0.99"),
        date(2025, 1, 1) + timedelta(days=i % 365),
        datetime(2025, 1, 1, 8, 30) + timedelta(seconds=37 * i),
        _STATUSES[i % 4],
        f"buyer{i}@example.com",
        i % 9 + 1,
        i % 2 == 0,
        None if i % 3 else f'Gift wrap, "fragile"\nDeliver to Müller #{i}',
    )


def dialect_of(url: str) -> str:
    name = make_url(url).get_backend_name()
    return "mysql" if name in ("mysql", "mariadb") else name


@contextmanager
def bench_database(kind: str, server_url: str | None, workdir: Path) -> Iterator[str]:
    """A SQLite file in ``workdir``, or a new database on the server (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/legacy.db"
        return
    assert server_url is not None
    yield from fresh_database(server_url, prefix="syncd_bench")


@contextmanager
def native(url: str) -> Iterator[Any]:
    """A DB-API connection of the database's own client, autocommit."""
    parsed = make_url(url)
    kind = dialect_of(url)
    if kind == "sqlite":
        conn: Any = sqlite3.connect(parsed.database or "", isolation_level=None)
    elif kind == "postgresql":
        libpq = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = psycopg.connect(libpq, autocommit=True)
    else:
        conn = pymysql.connect(
            host=parsed.host,
            port=parsed.port or 3306,
            user=parsed.username,
            password=parsed.password or "",
            database=parsed.database,
            autocommit=True,
            charset="utf8mb4",
        )
    try:
        yield conn
    finally:
        conn.close()


def fill(url: str, rows: int) -> None:
    """Create the table by plain DDL, fill it with the native client, add the pending index
    ``syncd ddl`` suggests (as an operator would) and refresh the statistics."""
    kind = dialect_of(url)
    with native(url) as conn:
        cur = conn.cursor()
        cur.execute(_DDL[kind])
        names = "id, " + ", ".join(COLUMNS)
        if kind == "postgresql":
            with cur.copy(f"COPY orders ({names}) FROM STDIN") as copy:
                for i in range(1, rows + 1):
                    copy.write_row(order_row(i))
        else:
            marks = ", ".join(["?" if kind == "sqlite" else "%s"] * (len(COLUMNS) + 1))
            insert = f"INSERT INTO orders ({names}) VALUES ({marks})"  # noqa: S608  # constants
            if kind == "sqlite":
                cur.execute("BEGIN")
            for start in range(1, rows + 1, 5000):
                stop = min(start + 5000, rows + 1)
                cur.executemany(insert, [order_row(i) for i in range(start, stop)])
            if kind == "sqlite":
                cur.execute("COMMIT")
        cur.execute(
            {
                "postgresql": "CREATE INDEX orders_sync_pending_idx ON orders (id) WHERE NOT sync",
                "sqlite": "CREATE INDEX orders_sync_pending_idx ON orders (id) WHERE sync = 0",
                "mysql": "CREATE INDEX orders_sync_pending_idx ON orders (sync, id)",
            }[kind]
        )
    settle(url)


def settle(url: str) -> None:
    """Every row pending, dead rows gone, statistics fresh, WAL checkpointed."""
    kind = dialect_of(url)
    with native(url) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE orders SET sync = false WHERE sync")
        if kind == "postgresql":
            cur.execute("VACUUM ANALYZE orders")
            cur.execute("CHECKPOINT")
        elif kind == "sqlite":
            cur.execute("VACUUM")
            cur.execute("ANALYZE")
        else:
            cur.execute("ANALYZE TABLE orders")
            cur.fetchall()


def flagged(url: str) -> int:
    with native(url) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM orders WHERE sync")
        return int(cur.fetchone()[0])


@dataclass(frozen=True)
class Floor:
    export_seconds: float  # mapped columns of pending rows -> CSV -> zip
    update_seconds: float  # one UPDATE setting every flag
    zipped_bytes: int

    @property
    def seconds(self) -> float:
        return self.export_seconds + self.update_seconds


def measure_floor(url: str, workdir: Path) -> Floor:
    """The floor, measured on the table as it is (every row pending); the table is settled
    (all pending again) afterwards."""
    kind = dialect_of(url)
    select = f"SELECT {', '.join(COLUMNS)} FROM orders WHERE NOT sync ORDER BY id"  # noqa: S608
    target = workdir / "floor.zip"
    with native(url) as conn:
        began = time.perf_counter()
        with (
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive,
            archive.open("orders.csv", "w") as raw,
        ):
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            if kind == "postgresql":
                copy_sql = f"COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER)"
                with conn.cursor().copy(copy_sql) as copy:
                    for block in copy:
                        text.write(bytes(block).decode("utf-8"))
            else:
                cur = conn.cursor(pymysql.cursors.SSCursor) if kind == "mysql" else conn
                rows = cur.execute(select)
                writer = csv.writer(text)
                writer.writerow(COLUMNS)
                writer.writerows(cur if kind == "mysql" else rows)
            text.flush()
            text.detach()
        export = time.perf_counter() - began
        began = time.perf_counter()
        conn.cursor().execute("UPDATE orders SET sync = true WHERE NOT sync")
        update = time.perf_counter() - began
    size = target.stat().st_size
    target.unlink()
    settle(url)
    return Floor(export, update, size)
