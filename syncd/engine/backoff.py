"""When failed work may be tried again: exponential backoff with jitter. Pure.

The state store keeps each scope's consecutive failures and its ``next_at``, so a restart does
not reset the wait: a certain failure is never paid for twice in a row without a backoff.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

BULK_SCOPE = "bulk"
"""Creating bulk jobs for a pipeline (each costs 500 credits)."""

BULK_BASE_DELAY = timedelta(minutes=2)
BULK_MAX_DELAY = timedelta(hours=2)
BULK_PAUSE_AFTER = 3
"""Consecutive failed bulk jobs after which the pipeline says bulk writes are paused."""


RECORD_BASE_DELAY = timedelta(seconds=30)
RECORD_MAX_DELAY = timedelta(minutes=30)
"""A record Zoho answered with a transient failure (RECORD_LOCKED, UNPROCESSED) waits this long,
doubling per consecutive failure, before it is sent again."""


def next_attempt(
    failures: int,
    now: datetime,
    *,
    base: timedelta = BULK_BASE_DELAY,
    cap: timedelta = BULK_MAX_DELAY,
    jitter: float | None = None,
) -> datetime:
    """When to try again after ``failures`` consecutive failures (``failures`` >= 1).

    The delay doubles per failure up to ``cap``; jitter (0..1, drawn when not given) takes it
    down by up to half, so pipelines and hosts that failed together do not retry together.
    """
    delay = min(cap, base * 2 ** min(failures - 1, 30))
    spread: float = random.random() if jitter is None else jitter
    wait: timedelta = delay * (1 - spread / 2)
    return now + wait
