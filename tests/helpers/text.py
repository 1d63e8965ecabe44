"""Seeded tricky text for round-trip tests: CSV specials, line breaks, backslashes, unicode.

Each value is non-empty (an empty cell clears a field, which is a different rule) and at most
``limit`` characters, so a field of that length takes it unchanged.
"""

from __future__ import annotations

import random

NOTES_LIMIT = 2000  # Orders.Notes length in the emulator's default schema
REPORTED = 'Gift wrap, "fragile"\nDeliver to Müller #3'  # tests/helpers/orders.py order(3)
PIECES = (
    ",",
    '"',
    '""',
    "\n",
    "\r\n",
    "\r",
    "\\",
    '\\"',
    "\\,",
    "\\\n",
    " ",
    "\t",
    ";",
    ":",
    "|",
    "'",
    "#",
    "=1+2",
    "ü",
    "Müller",
    "€",
    "😀",
    "e\u0301",  # a combining accent
    "\u2028",  # str.splitlines() breaks here, CSV must not
    "\x85",
    "\x0b\x0c",
    "\ufeff",  # a BOM inside a cell is content
    "Gift wrap",
    "fragile",
    "NULL",
)


def tricky_text(rng: random.Random, limit: int = NOTES_LIMIT) -> str:
    """One value: mostly short mixes of ``PIECES``, sometimes the reported value or exactly
    ``limit`` characters long."""
    roll = rng.random()
    if roll < 0.1:
        return REPORTED
    if roll < 0.2:
        long = "".join(rng.choice(PIECES) for _ in range(limit))
        return long[:limit]
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 20)))


def tricky_texts(seed: int, count: int, limit: int = NOTES_LIMIT) -> list[str]:
    """``count`` values from a fixed seed (the reported value always first)."""
    rng = random.Random(seed)
    return [REPORTED, *(tricky_text(rng, limit) for _ in range(count - 1))]
