"""A legacy `orders` table like the ones syncd is built for, on any SQLAlchemy URL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    false,
    select,
)

from syncd.model import FieldMap, FieldType

FIELDS = (
    FieldMap("Name", "order_number"),
    FieldMap("Amount", "total"),
    FieldMap("Order_Date", "order_date"),
    FieldMap("Ordered_At", "ordered_at"),
    FieldMap("Status", "status"),
    FieldMap("Customer_Email", "customer_email"),
    FieldMap("Quantity", "quantity"),
    FieldMap("Paid", "paid"),
    FieldMap("Notes", "notes"),
)
FIELD_TYPES = {
    "order_number": FieldType.TEXT,
    "total": FieldType.DECIMAL,
    "order_date": FieldType.DATE,
    "ordered_at": FieldType.DATETIME,
    "status": FieldType.TEXT,
    "customer_email": FieldType.TEXT,
    "quantity": FieldType.INTEGER,
    "paid": FieldType.BOOLEAN,
    "notes": FieldType.TEXT,
}


def orders_table(name: str = "orders") -> Table:
    return Table(
        name,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("order_number", String(40)),
        Column("total", Numeric(12, 2)),
        Column("order_date", Date),
        Column("ordered_at", DateTime),
        Column("status", String(20)),
        Column("customer_email", String(255)),
        Column("quantity", Integer),
        Column("paid", Boolean),
        Column("notes", Text),
        Column("sync", Boolean, nullable=False, server_default=false()),
    )


def order(i: int, **overrides: Any) -> dict[str, Any]:
    """A valid order row number ``i``."""
    row: dict[str, Any] = {
        "id": i,
        "order_number": f"SO-{i:07d}",
        "total": Decimal(i % 5000) + Decimal("0.99"),
        "order_date": date(2025, 1, 1) + timedelta(days=i % 365),
        "ordered_at": datetime(2025, 1, 1, 8, 30) + timedelta(minutes=i),
        "status": ("New", "Paid", "Shipped", "Cancelled")[i % 4],
        "customer_email": f"buyer{i}@example.com",
        "quantity": 1 + i % 9,
        "paid": i % 2 == 0,
        "notes": None if i % 3 else f'Gift wrap, "fragile"\nDeliver to Müller #{i}',
        "sync": False,
    }
    row.update(overrides)
    return row


def create_orders(url: str, rows: Iterable[dict[str, Any]], name: str = "orders") -> Engine:
    engine = create_engine(url)
    table = orders_table(name)
    table.metadata.create_all(engine)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for row in rows:
            batch.append(row)
            if len(batch) >= 5000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    return engine


# -- the legacy application at work: every insert or change sets the flag false --------------


def add_orders(engine: Engine, rows: Iterable[dict[str, Any]], name: str = "orders") -> None:
    """Insert rows in one transaction, pending (as the legacy app does)."""
    with engine.begin() as conn:
        conn.execute(orders_table(name).insert(), [{**row, "sync": False} for row in rows])


def change_orders(
    engine: Engine, keys: Iterable[int] | None, name: str = "orders", **values: Any
) -> int:
    """Update these rows (all rows when ``keys`` is None) in one transaction, setting the flag
    false with the change; returns how many rows changed."""
    table = orders_table(name)
    stmt = table.update().values(**values, sync=False)
    if keys is not None:
        stmt = stmt.where(table.c.id.in_(list(keys)))
    with engine.begin() as conn:
        return int(conn.execute(stmt).rowcount)


def pending_keys(engine: Engine, name: str = "orders") -> list[int]:
    """Keys of the rows whose flag is false, in key order."""
    table = orders_table(name)
    query = select(table.c.id).where(table.c.sync == false()).order_by(table.c.id)
    with engine.connect() as conn:
        return [int(k) for k in conn.execute(query).scalars()]
