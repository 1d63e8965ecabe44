"""psycopg loaders for the legacy database: a value Python cannot hold is read as its text.

PostgreSQL dates and timestamps reach 'infinity', year 294276 and BC; psycopg raises on those
while loading a row, which would fail the whole batch and so block every pending row behind it.
Read as text instead, such a value reaches ``syncd.crm.values`` and becomes a visible
NOT_REPRESENTABLE reject of its own row.
"""

from __future__ import annotations

from typing import Any

from psycopg import DataError
from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader


def _text_on_overflow(base: type[Loader]) -> type[Loader]:
    class TextOnOverflow(base):  # type: ignore[misc,valid-type]  # a class built from a class
        def load(self, data: Buffer) -> Any:
            try:
                return super().load(data)
            except DataError:
                return bytes(data).decode("utf-8", "replace")

    TextOnOverflow.__name__ = f"{base.__name__}TextOnOverflow"
    return TextOnOverflow


_LOADERS = {
    "date": _text_on_overflow(DateLoader),
    "timestamp": _text_on_overflow(TimestampLoader),
    "timestamptz": _text_on_overflow(TimestamptzLoader),
}


def register_lenient_loaders(adapters: AdaptersMap) -> None:
    """Install the loaders on a connection's adapters (text results, psycopg's default)."""
    for name, loader in _LOADERS.items():
        adapters.register_loader(name, loader)
