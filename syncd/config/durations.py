"""Durations ("5s", "10m", "1h30m") and schedules ("every 12h" or a 5-field cron expression)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta

from apscheduler.triggers.cron import CronTrigger

DURATION_HINT = 'a duration like "5s", "10m", "12h", "1d" or "1h30m"'
SCHEDULE_HINT = (
    '"every <duration>" (e.g. "every 12h") or a 5-field cron expression (e.g. "0 2 * * *")'
)

# Units in falling order, each at most once, so "1h30m" reads one way only ("30m1h" is refused).
_DURATION = re.compile(r"(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """Turn "5s", "10m", "12h", "1d" or a combination like "1h30m" into a positive timedelta.

    Raises ``ValueError`` whose message says what is expected.
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groups()):
        raise ValueError(f"must be {DURATION_HINT}")
    amounts = {unit: int(amount or 0) for unit, amount in match.groupdict().items()}
    try:
        duration = timedelta(
            days=amounts["d"], hours=amounts["h"], minutes=amounts["m"], seconds=amounts["s"]
        )
    except OverflowError:
        raise ValueError(f"must be {DURATION_HINT} (this one is far too long)") from None
    if not duration:
        raise ValueError("must be a duration longer than zero")
    return duration


@dataclass(frozen=True)
class Schedule:
    """When an interval pipeline drains its backlog.

    Exactly one of ``every`` (a fixed period) and ``cron`` (a 5-field crontab expression for
    ``CronTrigger.from_crontab``) is set; ``expression`` is the text as configured.
    """

    expression: str
    every: timedelta | None
    cron: str | None


def parse_schedule(text: str) -> Schedule:
    """Parse "every <duration>" or a 5-field cron expression.

    Raises ``ValueError`` whose first argument says what is expected and whose optional second
    argument is APScheduler's reason for refusing the cron expression.
    """
    expression = " ".join(text.split())
    head, _, rest = expression.partition(" ")
    if head.lower() == "every":
        try:
            every = parse_duration(rest)
        except ValueError:
            raise ValueError(f'must be "every <duration>" with {DURATION_HINT}') from None
        return Schedule(expression=expression, every=every, cron=None)
    try:
        # Only validates: the zone is irrelevant here and passing one keeps APScheduler from
        # probing the host's local zone.
        CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        raise ValueError(f"must be {SCHEDULE_HINT}", f"as cron: {exc}") from None
    return Schedule(expression=expression, every=None, cron=expression)
