"""A bulk job keeps its rows lean: key and fingerprint, no values (promise 7's flat memory)."""

from __future__ import annotations

from syncd.model import PendingRow, content_hash

VALUES = {"status": "Paid", "amount": 12}
DB_FINGERPRINT = "0cc175b9c0f1b6a831c399e269772661"


def test_rows_made_lean_in_place_keep_key_and_the_fingerprint_of_their_values() -> None:
    """A row read without a fingerprint (SQLite, MySQL) is fingerprinted from its values before
    they go; one read with the database's keeps that one."""
    rows = [PendingRow(7, VALUES), PendingRow.fingerprinted("k8", VALUES, DB_FINGERPRINT)]
    PendingRow.make_lean(rows)

    assert [(r.key, r.key_text, dict(r.values)) for r in rows] == [(7, "7", {}), ("k8", "k8", {})]
    assert [r.fingerprint for r in rows] == [content_hash(VALUES), DB_FINGERPRINT]
    assert [r.fingerprint for r in rows] == [r.lean().fingerprint for r in rows]
