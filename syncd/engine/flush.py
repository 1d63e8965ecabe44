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
    buffered: int, oldest: datetime | None, now: datetime, flush_size: int, max_delay: timedelta
) -> FlushDecision:
    """Full chunks go as soon as they exist; everything goes once the oldest entry is due.

    The age rule comes first: a remainder left behind a full chunk would otherwise wait one
    more poll interval past ``max_delay``.
    """
    if buffered and oldest is not None and now - oldest >= max_delay:
        return FlushDecision(buffered, f"oldest change waited {now - oldest} >= max_delay")
    if buffered >= flush_size:
        full = buffered - buffered % flush_size
        return FlushDecision(full, f"{buffered} buffered >= flush_size {flush_size}")
    return FlushDecision(0, "waiting")
