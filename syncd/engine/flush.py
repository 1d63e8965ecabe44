"""The realtime flush rule: by size, or by the age of the oldest buffered change. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class FlushDecision:
    """How many of the oldest buffered keys to send now (0 = keep waiting)."""

    rows: int
    reason: str


def decide_flush(
    buffered: int,
    oldest: datetime | None,
    now: datetime,
    flush_size: int,
    max_delay: timedelta,
    next_poll: timedelta = timedelta(0),
) -> FlushDecision:
    """Full chunks go as soon as they exist; everything goes once the oldest entry is due.

    "Due" means its ``max_delay`` runs out before the next poll (``next_poll`` from now):
    waiting for that poll would overrun the bound, so a lone change goes out within
    ``max_delay`` of being seen, i.e. within ``max_delay`` plus one poll of being made.
    The age rule comes first: a remainder left behind a full chunk would otherwise wait one
    more poll interval past ``max_delay``.
    """
    if buffered and oldest is not None and now + next_poll - oldest > max_delay:
        return FlushDecision(
            buffered,
            f"oldest change waited {now - oldest} (max_delay "
            f"{max_delay} ends before the next poll)",
        )
    if buffered and oldest is not None and now - oldest >= max_delay:
        return FlushDecision(buffered, f"oldest change waited {now - oldest} >= max_delay")
    if buffered >= flush_size:
        full = buffered - buffered % flush_size
        return FlushDecision(full, f"{buffered} buffered >= flush_size {flush_size}")
    return FlushDecision(0, "waiting")
