"""Reads what the notification conditions look at from the state store, at one ``now``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger

from syncd.config import PipelineSettings
from syncd.deletes import waiting_for_approval
from syncd.engine.backoff import BULK_SCOPE
from syncd.model import JobState
from syncd.notify.conditions import WINDOW, PipelineSnapshot, Snapshot
from syncd.state.store import StateStore


def quiet_period(pipeline: PipelineSettings, now: datetime) -> timedelta:
    """How long the pipeline is quiet by design: nothing for realtime, a period for interval."""
    schedule = pipeline.schedule
    if pipeline.mode == "realtime" or schedule is None:
        return timedelta(0)
    if schedule.every is not None:
        return schedule.every
    assert schedule.cron is not None
    trigger = CronTrigger.from_crontab(schedule.cron, timezone=now.tzinfo)
    first = trigger.get_next_fire_time(None, now)
    second = None if first is None else trigger.get_next_fire_time(first, first)
    return timedelta(0) if first is None or second is None else second - first


def read_snapshot(
    store: StateStore,
    pipelines: Sequence[PipelineSettings],
    last_success: Callable[[str], datetime | None],
    watching_since: datetime,
    budget: int,
    reserve: int,
    now: datetime,
) -> Snapshot:
    """``last_success`` is the daemon's own record (quiet ticks leave no run in the store);
    before a pipeline's first success, the time since ``watching_since`` counts."""
    since = now - WINDOW
    org = store.org_remaining()
    return Snapshot(
        pipelines=tuple(
            PipelineSnapshot(
                name=p.name,
                last_success=max(last_success(p.name) or watching_since, watching_since),
                grace=quiet_period(p, now),
                rejects=store.count_rejects(p.name),
                bulk_failures=_bulk_failures(store, p.name),
                unfinished_jobs=store.count_journal_since(p.name, JobState.FAILED, since),
                maybe_paid_twice=store.count_uncertain(p.name, since),
                deletes_waiting=waiting_for_approval(store, p),
            )
            for p in pipelines
        ),
        spent_24h=store.credits_spent_since(since),
        budget=budget,
        org_remaining=None if org is None or org[1] < since else org[0],
        reserve=reserve,
    )


def _bulk_failures(store: StateStore, pipeline: str) -> int:
    backoff = store.backoff(pipeline, BULK_SCOPE)
    return 0 if backoff is None else backoff.failures
