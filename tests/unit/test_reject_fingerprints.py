"""A reject is held back while its row holds what was refused, whichever fingerprint recorded it."""

from __future__ import annotations

from syncd.engine.apply import changed
from syncd.model import PendingRow, content_hash

VALUES = {"status": "Paid", "amount": 12}
DB_FINGERPRINT = "0cc175b9c0f1b6a831c399e269772661"  # what PostgreSQL gave when it read the row


def test_a_reject_recorded_with_the_rows_own_fingerprint_is_unchanged() -> None:
    """The fingerprint the row was read with (Python's or the database's) says "unchanged"."""
    python_row = PendingRow(1, VALUES)
    db_row = PendingRow.fingerprinted(1, VALUES, DB_FINGERPRINT)
    assert not changed(python_row.fingerprint, python_row)
    assert not changed(DB_FINGERPRINT, db_row)


def test_a_reject_recorded_before_fingerprints_moved_to_postgresql_stays_held_back() -> None:
    """A reject stored by the release that fingerprinted in Python (``content_hash``) is not
    re-sent after the upgrade while its row is unchanged, and is once the row changes."""
    stored = content_hash(VALUES)
    assert not changed(stored, PendingRow.fingerprinted(1, VALUES, DB_FINGERPRINT))
    edited = {**VALUES, "amount": 13}
    assert changed(stored, PendingRow.fingerprinted(1, edited, "92eb5ffee6ae2fec3ad71c777531578f"))
    assert changed(DB_FINGERPRINT, PendingRow.fingerprinted(1, edited, "92eb5ffee6ae2fec3ad71c"))
