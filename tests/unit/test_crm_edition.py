"""Edition -> concurrency limit and daily credits (reference 6.2, 6.3), and reading them."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.crm.edition import OrgLimits, edition_limits, read_license


@pytest.mark.parametrize(
    ("edition", "users", "concurrency", "credits"),
    [
        ("free", 3, 5, 5_000),
        ("free", 0, 5, 5_000),
        ("standard", 10, 10, 52_500),
        ("standard", 200, 10, 100_000),  # 50,000 + 200 x 250 = 100,000: the cap
        ("standard", 1_000, 10, 100_000),  # capped
        ("professional", 10, 15, 55_000),
        ("professional", 6_000, 15, 3_000_000),  # capped
        ("enterprise", 10, 20, 60_000),
        ("enterprise", 0, 20, 50_000),
        ("ultimate", 10, 25, 70_000),
        ("ultimate", 10_000, 25, 20_050_000),  # no maximum
    ],
)
def test_limits_per_edition(edition: str, users: int, concurrency: int, credits: int) -> None:
    """Each edition's concurrency and 50,000 + users x per-user credits, capped where capped."""
    assert edition_limits(edition, users) == OrgLimits(edition, users, concurrency, credits)


@pytest.mark.parametrize(
    ("spelling", "edition"),
    [
        ("Enterprise", "enterprise"),
        (" PROFESSIONAL ", "professional"),
        ("Starter", "standard"),
        ("zoho_one", "enterprise"),
        ("CRM Plus", "ultimate"),
    ],
)
def test_edition_spellings(spelling: str, edition: str) -> None:
    """Case, spaces and the reference's other names for an edition are accepted."""
    limits = edition_limits(spelling, 1)
    assert limits is not None
    assert limits.edition == edition


@pytest.mark.parametrize("edition", ["", "trial", "premium", "enterprise2"])
def test_unknown_edition_has_no_limits(edition: str) -> None:
    """An edition syncd has no table for yields None (the caller keeps its defaults)."""
    assert edition_limits(edition, 10) is None


def test_license_is_read_from_zohos_documented_shape() -> None:
    """paid_type and users_license_purchased, as in Zoho's Get Organization example."""
    org = {
        "zgid": "655906806",
        "license_details": {
            "paid_expiry": None,
            "users_license_purchased": 10,
            "trial_type": None,
            "trial_expiry": None,
            "paid": True,
            "paid_type": "enterprise",
        },
    }
    assert read_license(org) == ("enterprise", 10)


def test_trial_org_reads_as_free() -> None:
    """A trial answers paid_type "free": syncd uses the lower Free limits."""
    details = {"paid": False, "paid_type": "free", "trial_type": "enterprise"}
    details["users_license_purchased"] = 3
    assert read_license({"license_details": details}) == ("free", 3)


@pytest.mark.parametrize(
    "org",
    [
        {},
        {"license_details": None},
        {"license_details": {"paid": True}},
        {"license_details": {"paid_type": ""}},
        {"license_details": {"paid_type": 7}},
    ],
)
def test_missing_license_reads_as_none(org: dict[str, Any]) -> None:
    """No usable paid_type: None, never an exception."""
    assert read_license(org) is None


@pytest.mark.parametrize("users", [None, "10", True, -3])
def test_odd_user_counts_read_as_zero(users: object) -> None:
    """A user count that is not a non-negative integer counts as 0 (the lowest allowance)."""
    org = {"license_details": {"paid_type": "enterprise", "users_license_purchased": users}}
    assert read_license(org) == ("enterprise", 0)
