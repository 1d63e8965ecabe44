"""Get Records response parsing (syncd.crm.read)."""

from __future__ import annotations

import pytest

from syncd.crm.read import parse_get_records_response
from syncd.errors import CrmRetriableError

IDS = ["5725767000001000001", "5725767000001000002"]


def test_entries_become_values_by_record_id() -> None:
    """Each entry's requested fields, keyed by its id; other keys and unasked ids are dropped."""
    body = {
        "data": [
            {"id": IDS[1], "Name": "two", "Amount": None, "$currency_symbol": "$"},
            {"id": int(IDS[0]), "Name": "one"},
            {"id": "5725767000009999999", "Name": "not asked"},
        ]
    }
    assert parse_get_records_response(IDS, ["Name", "Amount"], body) == {
        IDS[1]: {"Name": "two", "Amount": None},
        IDS[0]: {"Name": "one"},
    }


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"records": []},
        {"data": {"id": IDS[0]}},
        {"data": ["not an object"]},
        {"data": [{"Name": "no id"}]},
        {"data": [{"id": None}]},
        {"data": [{"id": True}]},
    ],
)
def test_malformed_answers_are_retriable(body: object) -> None:
    """A body without a data array, or an entry without an id, is BAD_RESPONSE (retriable)."""
    with pytest.raises(CrmRetriableError) as caught:
        parse_get_records_response(IDS, ["Name"], body)
    assert caught.value.code == "BAD_RESPONSE"
