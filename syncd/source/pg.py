"""psycopg loaders for the legacy database: a value Python cannot hold is read as its text.

PostgreSQL dates and timestamps reach 'infinity', year 294276 and BC; psycopg raises on those
while loading a row, which would fail the whole batch and so block every pending row behind it.
Read as text instead, such a value reaches ``syncd.crm.values`` and becomes a visible
NOT_REPRESENTABLE reject of its own row.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import DataError
from psycopg.abc import AdaptContext
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.pq import Format
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader


def _text_on_overflow(name: str, base: type[Loader]) -> type[Loader]:
    """A loader that parses with psycopg's own loader for ``name`` (its C implementation when
    psycopg[binary] is installed; that class cannot be subclassed, so it is wrapped) and reads
    what that loader refuses as text."""
    fast = psycopg.adapters.get_loader(psycopg.adapters.types[name].oid, Format.TEXT) or base

    class TextOnOverflow(Loader):
        def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
            super().__init__(oid, context)
            self._parse = fast(oid, context).load

        def load(self, data: Buffer) -> Any:
            try:
                return self._parse(data)
            except DataError:
                return bytes(data).decode("utf-8", "replace")

    TextOnOverflow.__name__ = f"{base.__name__}TextOnOverflow"
    return TextOnOverflow


_LOADERS = {
    "date": _text_on_overflow("date", DateLoader),
    "timestamp": _text_on_overflow("timestamp", TimestampLoader),
    "timestamptz": _text_on_overflow("timestamptz", TimestamptzLoader),
}


_PINNED = (
    "SELECT set_config('DateStyle', 'ISO', false), set_config('IntervalStyle', 'postgres', false),"
    " set_config('extra_float_digits', '3', false), set_config('bytea_output', 'hex', false)"
)


def pin_output_settings(connection: psycopg.Connection[Any]) -> None:
    """Fix the session settings the text of a value depends on, so that the row fingerprint
    PostgreSQL computes (``md5`` of the row's text, ``syncd.source.table``) is the same in every
    session of syncd, whatever the server's, database's or role's defaults. extra_float_digits
    3 makes float text exact on every version (before PostgreSQL 12, 0 rounds to 15 digits).
    TimeZone is not pinned: psycopg reads timestamptz values in the session's zone, so pinning
    it would change the values syncd sends; the fingerprint reads timestamptz at UTC instead.
    None of these changes a value psycopg loads. Committed: a rolled-back SET is undone."""
    connection.execute(_PINNED)
    connection.commit()


def register_lenient_loaders(adapters: AdaptersMap) -> None:
    """Install the loaders on a connection's adapters (text results, psycopg's default)."""
    for name, loader in _LOADERS.items():
        adapters.register_loader(name, loader)


_STRICT = {
    name: psycopg.adapters.get_loader(psycopg.adapters.types[name].oid, Format.TEXT) or base
    for name, base in (
        ("date", DateLoader),
        ("timestamp", TimestampLoader),
        ("timestamptz", TimestamptzLoader),
    )
}


@contextmanager
def strict_loaders(adapters: AdaptersMap) -> Iterator[None]:
    """psycopg's own loaders (its C ones with psycopg[binary]) for the cursors created inside
    the block; the lenient ones again after it.

    The lenient loaders are a Python call per date cell: 0.7 µs a row of the benchmark's
    table (a date and a timestamp), 0.7 s of an initial sync of 1,000,000 rows. A cursor
    copies its connection's loaders when it is created, so the bulk reader creates its cursor
    in here and, should a value be one Python cannot hold, reads the part again with the
    lenient ones (``LegacyTable.pending_batch``)."""
    for name, loader in _STRICT.items():
        adapters.register_loader(name, loader)
    try:
        yield
    finally:
        register_lenient_loaders(adapters)
