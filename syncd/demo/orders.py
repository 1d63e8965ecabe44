"""The demo's legacy order system: an `orders` table in SQLite, and the app that edits it.

The rows look like an order system's: umlauts, quotes, commas and line breaks in the notes,
naive local timestamps, money as NUMERIC. About 1.5 % of them carry a flaw the CRM refuses
(no order number, a malformed e-mail address, a status its picklist does not know), as real
legacy data does.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
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
    false,
    select,
    true,
    update,
)

TABLE = "orders"
ZONE_NAME = "Europe/Berlin"
FIRST_ID = 100_001

# CRM field API name (the emulator's bundled Orders module) -> legacy column.
FIELDS = (
    ("Name", "order_number"),
    ("Customer_Email", "customer_email"),
    ("Amount", "total"),
    ("Ordered_At", "ordered_at"),
    ("Order_Date", "order_date"),
    ("Status", "status"),
    ("Quantity", "quantity"),
    ("Paid", "paid"),
    ("Notes", "notes"),
)

_FIRST = (
    "Anna", "Jürgen", "Zoë", "Mehmet", "Søren", "Claire", "Łukasz", "Inês",
    "Björn", "Fatima", "Jean-Luc", "Maren", "Olaf", "Chiara", "Tomás", "Ute",
)  # fmt: skip
_LAST = (
    "Müller", "Schäfer", "O'Brien", "Weiß", "Nowak", "Dubois", "Jäger", "Yılmaz",  # noqa: RUF001 - real names: the data must exercise UTF-8
    "Hansen", "Rossi", "Groß", "Kowalski", "Becker", "Fischer",
)  # fmt: skip
_DOMAINS = ("example.com", "example.de", "mail.example.org", "example.at", "example.ch")
_NOTES = (
    'Bitte beim Nachbarn abgeben, "Hausnr. 12a"',
    "Lieferung über die Hintertür\nKlingel defekt – bitte anrufen",  # noqa: RUF001 - real typography
    'Customer says: "fragile, handle with care"',
    "Geschenk; Rechnung separat an Frau Schäfer",
    "Straße gesperrt, Zufahrt über den Hof",
    "Rückfrage: Größe L statt M?\nKunde meldet sich",
)
_BAD_EMAILS = ("info(at)example.de", "anna.mueller@example", "k.wagner@@example.com", "n/a")
_UNKNOWN_STATUSES = ("On hold", "Backorder", "Returned")
# Letters that Unicode decomposition does not turn into ASCII, as people spell them in e-mails.
_FOLD = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ł": "l", "ı": "i", "ø": "o"})  # noqa: RUF001

# Share of rows with each flaw; together about 1.5 %.
_MISSING_NUMBER, _BAD_EMAIL, _UNKNOWN_STATUS = 0.004, 0.006, 0.005


def orders_table() -> Table:
    return Table(
        TABLE,
        MetaData(),
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("order_number", String(40)),
        Column("customer_email", String(255)),
        Column("total", Numeric(12, 2)),
        Column("ordered_at", DateTime),  # naive, Europe/Berlin wall-clock time
        Column("order_date", Date),
        Column("status", String(20)),
        Column("quantity", Integer),
        Column("paid", Boolean),
        Column("notes", Text),
        Column("sync", Boolean, nullable=False, server_default=false()),
    )


@dataclass(frozen=True)
class Flaws:
    """How many generated rows carry each flaw the CRM refuses."""

    missing_number: int = 0
    bad_email: int = 0
    unknown_status: int = 0

    @property
    def total(self) -> int:
        return self.missing_number + self.bad_email + self.unknown_status


def order_number(key: int, day: date) -> str:
    return f"SO-{day.year}-{key:06d}"


class OrderFactory:
    """Makes ``rows`` orders spread over the year before ``today``, oldest first."""

    def __init__(self, rng: random.Random, rows: int, today: date) -> None:
        self.rng, self.rows, self.today = rng, rows, today
        self.flaws: dict[str, int] = {}  # Flaws field -> rows given that flaw

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for index in range(self.rows):
            yield self._with_flaw(self.order(index))

    def order(self, index: int) -> dict[str, Any]:
        rng = self.rng
        key = FIRST_ID + index
        ordered_at = self._ordered_at(index)
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 4, 5))
        unit = Decimal(rng.randrange(499, 49_900)) / 100
        status = self._status(index / self.rows)
        return {
            "id": key,
            "order_number": order_number(key, ordered_at.date()),
            "customer_email": self._email(),
            "total": (unit * quantity).quantize(Decimal("0.01")),
            "ordered_at": ordered_at,
            "order_date": ordered_at.date(),
            "status": status,
            "quantity": quantity,
            "paid": status in ("Paid", "Shipped", "Refunded")
            or (status == "Cancelled" and rng.random() < 0.3),
            "notes": rng.choice(_NOTES) if rng.random() < 0.15 else None,
            "sync": False,
        }

    def _ordered_at(self, index: int) -> datetime:
        # Shop hours only: no timestamp falls into a daylight-saving gap or overlap.
        day = self.today - timedelta(days=365) + timedelta(days=index * 365 // self.rows)
        seconds = self.rng.randrange(8 * 3600, 22 * 3600)
        return datetime.combine(day, time()) + timedelta(seconds=seconds)

    def _status(self, age: float) -> str:
        if age > 0.75:  # the most recent quarter is not shipped yet
            return self.rng.choice(("New", "Paid", "Paid"))
        return self.rng.choices(("Shipped", "Cancelled", "Refunded", "Paid"), (85, 8, 4, 3))[0]

    def _email(self) -> str:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        local = f"{_ascii(first)}.{_ascii(last)}"
        if self.rng.random() < 0.3:
            local += str(self.rng.randrange(1, 99))
        return f"{local}@{self.rng.choice(_DOMAINS)}"

    def _with_flaw(self, row: dict[str, Any]) -> dict[str, Any]:
        """Give about 1.5 % of the rows one flaw the CRM refuses."""
        draw = self.rng.random()
        if draw < _MISSING_NUMBER:
            row["order_number"], flaw = None, "missing_number"
        elif draw < _MISSING_NUMBER + _BAD_EMAIL:
            row["customer_email"], flaw = self.rng.choice(_BAD_EMAILS), "bad_email"
        elif draw < _MISSING_NUMBER + _BAD_EMAIL + _UNKNOWN_STATUS:
            row["status"], flaw = self.rng.choice(_UNKNOWN_STATUSES), "unknown_status"
        else:
            return row
        self.flaws[flaw] = self.flaws.get(flaw, 0) + 1
        return row


def _ascii(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name.lower().translate(_FOLD))
    return "".join(ch for ch in folded if ch.isascii() and (ch.isalnum() or ch == "-"))


def create_orders(engine: Engine, rows: int, seed: int, today: date) -> Flaws:
    """Create and fill the table (every row pending); returns how many rows carry a flaw."""
    table = orders_table()
    table.metadata.create_all(engine)
    factory = OrderFactory(random.Random(seed), rows, today)
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        # WAL lets the daemon read while "the legacy app" writes, as a server database would.
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        for row in factory:
            batch.append(row)
            if len(batch) == 5_000:
                conn.execute(table.insert(), batch)
                batch = []
        if batch:
            conn.execute(table.insert(), batch)
    return Flaws(**factory.flaws)


def install_ddl(engine: Engine, statements: Sequence[str]) -> None:
    """Run the index and trigger DDL that `syncd ddl` prints (syncd itself never runs it)."""
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


class LegacyApp:
    """The order system's own writes: it never touches the flag; the trigger does that."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.table = orders_table()

    def _synced(self, *statuses: str, limit: int) -> list[int]:
        t = self.table
        query = select(t.c.id).where(t.c.sync == true()).order_by(t.c.id.desc()).limit(limit)
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        with self.engine.connect() as conn:
            return list(conn.scalars(query))

    def _update(self, keys: Sequence[int], **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(self.table).where(self.table.c.id.in_(keys)).values(**values))

    def ship(self, count: int) -> list[int]:
        """Mark the ``count`` most recent open orders shipped, in one transaction."""
        keys = self._synced("New", "Paid", limit=count)
        self._update(keys, status="Shipped", paid=True)
        return keys

    def recent_order(self, exclude: Sequence[int] = ()) -> int:
        """The most recent synced order not in ``exclude``."""
        return next(k for k in self._synced(limit=len(exclude) + 1) if k not in exclude)

    def change_quantity(self, key: int, quantity: int) -> None:
        """The customer changes the quantity: the total follows the unit price."""
        t = self.table
        with self.engine.begin() as conn:
            old = conn.execute(select(t.c.total, t.c.quantity).where(t.c.id == key)).one()
            unit = Decimal(old.total) / max(old.quantity or 1, 1)
            total = (unit * quantity).quantize(Decimal("0.01"))
            conn.execute(update(t).where(t.c.id == key).values(quantity=quantity, total=total))

    def add_note(self, key: int, note: str) -> None:
        self._update([key], notes=note)

    def fill_missing_numbers(self, limit: int) -> list[int]:
        """Someone fixes orders that were saved without an order number."""
        t = self.table
        query = (
            select(t.c.id, t.c.order_date)
            .where(t.c.order_number.is_(None))
            .order_by(t.c.id)
            .limit(limit)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(query).all()
            for key, day in rows:
                conn.execute(
                    update(t).where(t.c.id == key).values(order_number=order_number(key, day))
                )
        return [key for key, _ in rows]

    def is_synced(self, key: int) -> bool:
        query = select(self.table.c.sync).where(self.table.c.id == key)
        with self.engine.connect() as conn:
            return bool(conn.scalar(query))
