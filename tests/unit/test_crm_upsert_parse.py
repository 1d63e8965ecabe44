"""Upsert request building and per-record response parsing (syncd.crm.upsert)."""

from __future__ import annotations

import pytest

from syncd.crm.upsert import chunks, collapse, entry_outcome, parse_upsert_response, upsert_body
from syncd.errors import CrmRetriableError
from syncd.model import CrmRecord, Outcome, OutcomeKind


def _records(*keys: str) -> list[CrmRecord]:
    return [CrmRecord(k, {"Name": f"n-{k}"}) for k in keys]


def _ok(action: str, record_id: str) -> dict[str, object]:
    return {"code": "SUCCESS", "action": action, "status": "success", "details": {"id": record_id}}


def _error(code: str, path: str | None = None, api_name: str | None = None) -> dict[str, object]:
    details = {k: v for k, v in (("json_path", path), ("api_name", api_name)) if v}
    return {"code": code, "details": details, "message": code.lower(), "status": "error"}


def test_collapse_keeps_last_version_once() -> None:
    """Duplicate keys collapse to the last version, at the first key's place."""
    records = [CrmRecord("a", {"v": 1}), CrmRecord("b", {"v": 1}), CrmRecord("a", {"v": 2})]
    assert collapse(records) == [CrmRecord("a", {"v": 2}), CrmRecord("b", {"v": 1})]


def test_chunks_of_at_most_100() -> None:
    """Records go out in slices of at most 100."""
    sizes = [len(c) for c in chunks(_records(*map(str, range(250))))]
    assert sizes == [100, 100, 50]


def test_body_names_the_unique_field_and_trigger() -> None:
    """Each record carries its key in the unique field; duplicate check and trigger are set."""
    body = upsert_body(_records("k1"), "parent_id", ("workflow",))
    assert body == {
        "data": [{"parent_id": "k1", "Name": "n-k1"}],
        "duplicate_check_fields": ["parent_id"],
        "trigger": ["workflow"],
    }
    assert upsert_body(_records("k1"), "parent_id", ())["trigger"] == []
    typed = upsert_body([CrmRecord("7", {"parent_id": 7})], "parent_id", ())
    assert typed["data"] == [{"parent_id": 7}]


def test_every_outcome_kind() -> None:
    """insert → added, update → updated, data errors → skipped, transient codes → retry."""
    chunk = _records("a", "b", "c", "d")
    body = {
        "data": [
            _ok("insert", "1"),
            _ok("update", "2"),
            _error("MANDATORY_NOT_FOUND", "$.data[2].Name", "Name"),
            _error("INTERNAL_ERROR"),
        ]
    }
    assert parse_upsert_response(chunk, body) == [
        Outcome("a", OutcomeKind.ADDED, record_id="1"),
        Outcome("b", OutcomeKind.UPDATED, record_id="2"),
        Outcome(
            "c",
            OutcomeKind.SKIPPED,
            code="MANDATORY_NOT_FOUND",
            field="Name",
            message="mandatory_not_found",
        ),
        Outcome("d", OutcomeKind.RETRY, code="INTERNAL_ERROR", message="internal_error"),
    ]


def test_json_path_beats_position() -> None:
    """An error entry naming another index answers that record, not the one at its position."""
    chunk = _records("a", "b")
    body = {"data": [_error("INVALID_DATA", "$.data[1].Amount"), _ok("insert", "9")]}
    outcomes = parse_upsert_response(chunk, body)
    assert outcomes[1] == Outcome(
        "b", OutcomeKind.SKIPPED, code="INVALID_DATA", field="Amount", message="invalid_data"
    )
    assert outcomes[0].kind is OutcomeKind.RETRY  # the success entry's own slot was taken
    assert outcomes[0].code == "NO_RESULT"


def test_missing_entries_are_retried() -> None:
    """A record Zoho gave no entry for is RETRY, never assumed written."""
    outcomes = parse_upsert_response(_records("a", "b"), {"data": [_ok("insert", "1")]})
    assert [o.kind for o in outcomes] == [OutcomeKind.ADDED, OutcomeKind.RETRY]


def test_multiple_errors_report_the_first() -> None:
    """MULTIPLE_OR_MULTI_ERRORS is read as its first inner error (code and field)."""
    entry = {
        "code": "MULTIPLE_OR_MULTI_ERRORS",
        "details": {
            "errors": [
                _error("DUPLICATE_DATA", "$.data[0].Email", "Email"),
                _error("DUPLICATE_DATA", "$.data[0].Mobile", "Mobile"),
            ]
        },
        "message": "Multiple errors in the request",
        "status": "error",
    }
    outcome = entry_outcome("a", entry)
    assert (outcome.kind, outcome.code, outcome.field) == (
        OutcomeKind.SKIPPED,
        "DUPLICATE_DATA",
        "Email",
    )


def test_body_without_data_is_a_temporary_error() -> None:
    """A response with no data array is not read as outcomes."""
    with pytest.raises(CrmRetriableError):
        parse_upsert_response(_records("a"), {"code": "X"})
