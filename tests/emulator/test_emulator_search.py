"""Search Records in the emulator (reference §7.1): equals conditions joined by or, escaped
values, 204 when nothing matches, at most 10 conditions, 1 credit a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from syncd.emulator.search import parse_criteria
from syncd.emulator.server import EmulatorServer
from tests.emulator.test_emulator_lookups import SCHEMA

if TYPE_CHECKING:
    from conftest import Zoho


@pytest.fixture
def zoho(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> Zoho:
    zoho = make_zoho(start_emulator(schema=SCHEMA, bulk_rows_per_second=None))
    accounts = [
        {"Account_Number": "C1", "Account_Name": "Ann (UK), Ltd"},
        {"Account_Number": "C2", "Account_Name": "Bob"},
        {"Account_Number": "C3", "Account_Name": "Bob"},
    ]
    created = zoho.post("/crm/v8/Accounts", json={"data": accounts})
    assert created.status_code == 201, created.text
    return zoho


def _search(zoho: Zoho, criteria: str, **params: str) -> list[str]:
    response = zoho.get("/crm/v8/Accounts/search", params={"criteria": criteria, **params})
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    return [r["Account_Number"] for r in response.json()["data"]]


def test_equals_joined_by_or_finds_each_holder(zoho: Zoho) -> None:
    """Every record holding one of the values comes back, case-insensitively for a unique
    field; two holders of a non-unique value both come back."""
    assert sorted(_search(zoho, "((Account_Number:equals:C1)or(Account_Number:equals:c2))")) == [
        "C1",
        "C2",
    ]
    assert sorted(_search(zoho, "(Account_Name:equals:Bob)")) == ["C2", "C3"]


def test_an_escaped_value_matches_the_plain_one(zoho: Zoho) -> None:
    """Parentheses and commas in a value come escaped with a backslash."""
    assert _search(zoho, "(Account_Name:equals:Ann \\(UK\\)\\, Ltd)") == ["C1"]
    assert parse_criteria("((F:equals:a\\(b\\))or(F:equals:c\\,d\\\\))") == [
        ("F", "equals", "a(b)"),
        ("F", "equals", "c,d\\"),
    ]


def test_nothing_matching_is_204_and_costs_a_credit(zoho: Zoho) -> None:
    """No match: 204 with no body; every search call is charged 1 credit."""
    before = zoho.server.admin.stats()["credits"]["used"]
    response = zoho.get(
        "/crm/v8/Accounts/search", params={"criteria": "(Account_Number:equals:none)"}
    )
    assert response.status_code == 204 and response.content == b""
    assert zoho.server.admin.stats()["credits"]["used"] - before == 1


@pytest.mark.parametrize(
    ("criteria", "code"),
    [
        (
            "(" + "or".join(f"(Account_Number:equals:C{i})" for i in range(11)) + ")",
            "LIMIT_EXCEEDED",
        ),
        ("(Nope:equals:C1)", "INVALID_QUERY"),
        ("(Account_Number:starts_with:C)", "INVALID_QUERY"),
        ("((Account_Number:equals:C1)and(Account_Name:equals:Bob))", "INVALID_QUERY"),
    ],
)
def test_criteria_the_emulator_refuses(zoho: Zoho, criteria: str, code: str) -> None:
    """More than 10 conditions, an unknown field, another operator or an and: a 400."""
    response = zoho.get("/crm/v8/Accounts/search", params={"criteria": criteria})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
