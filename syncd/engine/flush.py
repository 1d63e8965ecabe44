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
    """Full chunks go as soon as they exist; a partial chunk goes once its oldest entry is due."""
    if buffered >= flush_size:
        full = buffered - buffered % flush_size
        return FlushDecision(full, f"{buffered} buffered >= flush_size {flush_size}")
    if buffered and oldest is not None and now - oldest >= max_delay:
        return FlushDecision(buffered, f"oldest change waited {now - oldest} >= max_delay")
    return FlushDecision(0, "waiting")
