"""The compare-and-set's row comparison: the fast path never calls a changed row unchanged."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from syncd.model import content_hash
from syncd.source.table import _all_same

VALUES: list[Any] = [
    None,
    0,
    1,
    True,
    False,
    1.0,
    0.0,
    -0.0,
    float("nan"),
    Decimal("1"),
    Decimal("1.0"),
    Decimal("1.00"),
    "1",
    "",
    b"1",
    date(2025, 1, 1),
    datetime(2025, 1, 1),
    datetime(2025, 1, 1, tzinfo=UTC),
    datetime(2025, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(2025, 1, 1, fold=1),
]


def test_fast_comparison_agrees_with_the_fingerprint_whenever_it_says_same() -> None:
    """Promise 1 rests on "same" meaning "same fingerprint": for every pair of values in two
    columns, the fast path says same only where ``content_hash`` does."""
    said_same = 0
    for a1, a2, b1, b2 in itertools.product(VALUES[:12], VALUES[:12], VALUES[:12], VALUES[:12]):
        a, b = {"x": a1, "y": a2}, {"x": b1, "y": b2}
        if _all_same(a, b):
            said_same += 1
            assert content_hash(a) == content_hash(b), (a, b)
    assert said_same > 0


def test_every_column_type_pair() -> None:
    for x, y in itertools.product(VALUES, VALUES):
        if _all_same({"c": x}, {"c": y}):
            assert content_hash({"c": x}) == content_hash({"c": y}), (x, y)


def test_unchanged_rows_are_same_and_order_matters() -> None:
    row = {"a": Decimal("12.50"), "b": datetime(2025, 1, 1, 8), "c": "x", "d": 3, "e": None}
    assert _all_same(row, dict(row))
    assert not _all_same(
        {"x": Decimal("1.0"), "y": Decimal("1.00")}, {"x": Decimal("1.00"), "y": Decimal("1.0")}
    )
    swapped = {"y": Decimal("1.0"), "x": Decimal("1.00")}
    assert not _all_same({"x": Decimal("1.0"), "y": Decimal("1.00")}, swapped)
