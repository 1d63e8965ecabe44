"""The orders table as a legacy application makes it: plain DDL, rows written by sqlite3.

No SQLAlchemy on the way in, so nothing syncd does to values can hide in how they were written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, order_number VARCHAR(40),"
    " total NUMERIC(12,2), order_date DATE, ordered_at DATETIME, status VARCHAR(20),"
    " customer_email VARCHAR(255), quantity INTEGER, paid BOOLEAN, notes TEXT,"
    " sync BOOLEAN NOT NULL DEFAULT 0)"
)


def sqlite3_orders(path: Path, rows: int) -> str:
    """Create and fill ``orders`` with ``rows`` pending rows; returns the SQLAlchemy URL."""
    conn = sqlite3.connect(path)
    conn.execute(DDL)
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, '2025-03-01', '2025-03-01 10:00:00', 'New',"
        " ?, 2, 0, 'note', 0)",
        [(i, f"SO-{i}", i + 0.25, f"b{i}@example.com") for i in range(1, rows + 1)],
    )
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def pending(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM orders WHERE sync = 0").fetchone()[0])
    finally:
        conn.close()
