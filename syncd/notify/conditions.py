"""Which notification conditions hold, decided from a snapshot and ``now``. Pure.

A condition has a stable key ("rejects:orders", "budget_reached"): a target is told "started"
when a key appears and "ended" when it goes, and nothing while it stays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from syncd.config.settings import NotifyThresholds

WINDOW = timedelta(hours=24)
"""Failed and uncertain journal entries count for this long (like `status` and the budget)."""

Event = Literal["started", "ended"]


@dataclass(frozen=True)
class PipelineSnapshot:
    name: str
    last_success: datetime  # last successful tick (or when this daemon began watching)
    grace: timedelta  # the pipeline's own quiet time: an interval schedule's period
    rejects: int
    bulk_failures: int
    unfinished_jobs: int  # journal entries closed as FAILED within WINDOW
    maybe_paid_twice: int  # journal entries UNCERTAIN within WINDOW
    deletes_waiting: int = 0  # deletes of gone legacy rows held by the breaker for approval


@dataclass(frozen=True)
class Snapshot:
    pipelines: tuple[PipelineSnapshot, ...]
    spent_24h: int
    budget: int
    org_remaining: int | None  # None: Zoho has not said within WINDOW
    reserve: int


@dataclass(frozen=True)
class Condition:
    key: str
    kind: str  # one of config.settings.CONDITIONS
    pipeline: str | None
    summary: str  # one line, says what is wrong and which command shows more


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def _credits(snap: Snapshot, limits: NotifyThresholds) -> Iterator[Condition]:
    if snap.spent_24h * 100 >= snap.budget * limits.budget_percent:
        yield Condition(
            "budget_reached",
            "budget_reached",
            None,
            f"{snap.spent_24h:,} of the daily credit budget of {snap.budget:,} spent in the "
            f"last 24 h ({limits.budget_percent}% threshold); sending waits (see `syncd status`)",
        )
    if snap.org_remaining is not None and snap.org_remaining <= snap.reserve:
        yield Condition(
            "org_reserve_reached",
            "org_reserve_reached",
            None,
            f"the org has {snap.org_remaining:,} credits left, at or below the reserve of "
            f"{snap.reserve:,} kept for other integrations; sending waits",
        )


def _pipeline(p: PipelineSnapshot, limits: NotifyThresholds, now: datetime) -> Iterator[Condition]:
    quiet = now - p.last_success
    if quiet > limits.not_sending_after + p.grace:
        yield Condition(
            f"not_sending:{p.name}",
            "not_sending",
            p.name,
            f"no successful tick for {_age(quiet)} (threshold {_age(limits.not_sending_after)}"
            "); see `syncd status` and the log",
        )
    if p.bulk_failures >= limits.bulk_failures:
        yield Condition(
            f"bulk_failures:{p.name}",
            "bulk_failures",
            p.name,
            f"{p.bulk_failures} bulk jobs failed in a row (threshold {limits.bulk_failures}); "
            "see `syncd status` and `syncd jobs list`",
        )
    if p.rejects > limits.rejects_above:
        yield Condition(
            f"rejects:{p.name}",
            "rejects",
            p.name,
            f"{p.rejects:,} rows rejected by Zoho (threshold {limits.rejects_above:,}); "
            "see `syncd rejects list`",
        )
    if p.unfinished_jobs >= limits.unfinished_jobs:
        yield Condition(
            f"unfinished_jobs:{p.name}",
            "unfinished_jobs",
            p.name,
            f"{p.unfinished_jobs} bulk job(s) could not finish in the last 24 h (their rows "
            "go again); see `syncd jobs list`",
        )
    if p.maybe_paid_twice >= limits.maybe_paid_twice:
        yield Condition(
            f"maybe_paid_twice:{p.name}",
            "maybe_paid_twice",
            p.name,
            f"{p.maybe_paid_twice} bulk job(s) in the last 24 h may have been paid twice (the "
            "reply to their create call was lost); see `syncd jobs list`",
        )
    if p.deletes_waiting:
        yield Condition(
            f"deletes_waiting:{p.name}",
            "deletes_waiting",
            p.name,
            f"{p.deletes_waiting:,} CRM record(s) of deleted legacy rows wait for approval "
            "(more than max_deletes at once); see `syncd deletes list`",
        )


def evaluate(
    snap: Snapshot, limits: NotifyThresholds, wanted: frozenset[str], now: datetime
) -> dict[str, Condition]:
    """The conditions that hold now, by key, among the kinds in ``wanted``."""
    found = [*_credits(snap, limits)]
    for pipeline in snap.pipelines:
        found.extend(_pipeline(pipeline, limits, now))
    return {c.key: c for c in found if c.kind in wanted}


@dataclass(frozen=True)
class Change:
    event: Event
    key: str
    summary: str  # started: what holds now; ended: what held when it started
    started_at: datetime | None  # ended: when it started


def changes(
    announced: Mapping[str, tuple[datetime, str]], current: Mapping[str, Condition]
) -> list[Change]:
    """What to tell a target: conditions new since the last evaluation, and those gone."""
    started = [
        Change("started", k, c.summary, None) for k, c in current.items() if k not in announced
    ]
    ended = [
        Change("ended", k, summary, since)
        for k, (since, summary) in announced.items()
        if k not in current
    ]
    return sorted(started + ended, key=lambda change: (change.key, change.event))


def _headline(change: Change, host: str, now: datetime) -> str:
    kind, _, pipeline = change.key.partition(":")
    where = f"pipeline {pipeline}: " if pipeline else ""
    if change.event == "started":
        return f"[syncd {host}] PROBLEM {kind}: {where}{change.summary}"
    lasted = "" if change.started_at is None else f" after {_age(now - change.started_at)}"
    return f"[syncd {host}] RESOLVED {kind}{lasted}: {where}was: {change.summary}"


def webhook_body(change: Change, host: str, now: datetime) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    kind, _, pipeline = change.key.partition(":")
    return {
        "source": "syncd",
        "host": host,
        "event": change.event,
        "condition": kind,
        "key": change.key,
        "pipeline": pipeline or None,
        "summary": change.summary,
        "text": _headline(change, host, now),
        "at": now.isoformat(),
        "started_at": None if change.started_at is None else change.started_at.isoformat(),
    }


def slack_body(change: Change, host: str, now: datetime) -> dict[str, Any]:
    """A Slack incoming webhook's body (also what Mattermost and Rocket.Chat accept)."""
    return {"text": _headline(change, host, now)}
