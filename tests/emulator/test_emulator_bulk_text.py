"""Bulk Write text cells: the emulator stores and echoes exactly what the CSV holds.

Its worker reads the CSV in slices of ``bulk_rows_per_second / 20`` rows; a slice must never
cut a quoted cell that holds line breaks, commas or quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from syncd.emulator.server import EmulatorServer
from tests.helpers.text import NOTES_LIMIT, tricky_texts

if TYPE_CHECKING:
    from conftest import Zoho

HEADER = ["parent_id", "Notes", "Name"]  # Notes among the three columns the result echoes


@pytest.mark.parametrize("rate", [None, 40, 2_000])
def test_tricky_text_is_stored_and_echoed_exactly(
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
    rate: float | None,
) -> None:
    """Commas, quotes, CR/LF, backslashes and unicode land unchanged, whatever the slice size."""
    server = start_emulator(bulk_rows_per_second=rate)
    texts = tricky_texts(seed=5, count=40)
    rows = [[f"k{i}", text, f"SO-{i}"] for i, text in enumerate(texts)]
    details = make_zoho(server).run_job(rows, HEADER)
    assert details["status"] == "COMPLETED", details
    records = {r["parent_id"]: r["Notes"] for r in server.admin.records("Orders")}
    assert records == {key: text for key, text, _ in rows}
    _, _, result = make_zoho(server).result(details)
    assert [(r["parent_id"], r["Notes"], r["STATUS"]) for r in result] == [
        (key, text, "ADDED") for key, text, _ in rows
    ]


def test_text_over_the_field_length_is_refused_not_cut(
    zoho: Zoho, emulator: EmulatorServer
) -> None:
    """A Notes cell one character over its length is INVALID_DATA; nothing is truncated."""
    at_limit, over = "é" * NOTES_LIMIT, "\\" * (NOTES_LIMIT + 1)
    details = zoho.run_job([["a", at_limit, "SO-1"], ["b", over, "SO-2"]], HEADER)
    _, _, result = zoho.result(details)
    assert [(r["STATUS"], r["ERRORS"]) for r in result] == [
        ("ADDED", ""),
        ("SKIPPED", "INVALID_DATA-Notes"),
    ]
    assert [(r["parent_id"], r["Notes"]) for r in emulator.admin.records("Orders")] == [
        ("a", at_limit)
    ]
