"""The org's edition and what it allows: concurrency and daily credits (reference 6.2, 6.3).

Pure: ``read_license`` takes one entry of ``GET /crm/v8/org`` and ``edition_limits`` the
edition and user count it found. Zoho documents ``license_details`` as (Get Organization
Information example)::

    "license_details": {"paid_expiry": null, "users_license_purchased": 10,
                        "trial_type": null, "trial_expiry": null,
                        "paid": true, "paid_type": "enterprise"}

syncd reads ``paid_type`` and ``users_license_purchased`` only. A trial org answers
``paid: false, paid_type: "free"`` with the trial edition in ``trial_type``; syncd then uses the
Free limits, the lower ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Edition:
    """One edition's limits: calls in flight at once, and credits per rolling 24 hours."""

    name: str
    concurrency: int
    base_credits: int
    credits_per_user: int
    max_credits: int | None  # None: no maximum

    def daily_credits(self, users: int) -> int:
        """The allowance for ``users`` licensed users (add-on credits are not visible here)."""
        credits = self.base_credits + max(users, 0) * self.credits_per_user
        return credits if self.max_credits is None else min(credits, self.max_credits)


EDITIONS: dict[str, Edition] = {
    "free": Edition("free", 5, 5_000, 0, 5_000),
    "standard": Edition("standard", 10, 50_000, 250, 100_000),
    "professional": Edition("professional", 15, 50_000, 500, 3_000_000),
    "enterprise": Edition("enterprise", 20, 50_000, 1_000, 5_000_000),
    "ultimate": Edition("ultimate", 25, 50_000, 2_000, None),
}

# Other names the reference gives the same limits ("Standard/Starter", "Enterprise/Zoho One",
# "Ultimate/CRM Plus"). Whether paid_type ever holds them, and how it spells any edition but
# "free" and "enterprise", is UNCONFIRMED.
_ALIASES = {"starter": "standard", "zohoone": "enterprise", "crmplus": "ultimate"}


@dataclass(frozen=True)
class OrgLimits:
    """What the org's license allows, as ``syncd check`` shows it."""

    edition: str
    users: int
    concurrency: int
    daily_credits: int


def read_license(org: Mapping[str, Any]) -> tuple[str, int] | None:
    """``(paid_type, users_license_purchased)`` of an org entry; None when absent."""
    details = org.get("license_details")
    if not isinstance(details, Mapping):
        return None
    edition, users = details.get("paid_type"), details.get("users_license_purchased")
    if not isinstance(edition, str) or not edition.strip():
        return None
    count = users if isinstance(users, int) and not isinstance(users, bool) else 0
    return edition.strip(), max(count, 0)


def edition_limits(edition: str, users: int) -> OrgLimits | None:
    """The limits of ``edition`` (any case, spaces and dashes ignored); None if unknown."""
    key = "".join(ch for ch in edition.casefold() if ch.isalnum())
    known = EDITIONS.get(_ALIASES.get(key, key))
    if known is None:
        return None
    return OrgLimits(known.name, users, known.concurrency, known.daily_credits(users))
