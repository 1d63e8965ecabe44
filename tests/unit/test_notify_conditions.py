"""syncd.notify.conditions: which conditions hold, and what a target is told. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd.config import parse_schedule
from syncd.config.settings import CONDITIONS, NotifyThresholds, PipelineSettings
from syncd.model import FieldMap
from syncd.notify.conditions import (
    Change,
    PipelineSnapshot,
    Snapshot,
    changes,
    evaluate,
    slack_body,
    webhook_body,
)
from syncd.notify.snapshot import quiet_period

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ALL = frozenset(CONDITIONS)


def snap(**pipeline: object) -> Snapshot:
    fields: dict[str, object] = {
        "name": "orders",
        "last_success": NOW,
        "grace": timedelta(0),
        "rejects": 0,
        "bulk_failures": 0,
        "unfinished_jobs": 0,
        "maybe_paid_twice": 0,
    }
    fields.update(pipeline)
    return Snapshot((PipelineSnapshot(**fields),), 0, 1000, None, 100)  # type: ignore[arg-type]


def test_thresholds_are_edges() -> None:
    """At the threshold: bulk failures, jobs and budget hold; rejects must be above it."""
    limits = NotifyThresholds(rejects_above=5, bulk_failures=3)
    assert evaluate(snap(rejects=5, bulk_failures=2), limits, ALL, NOW) == {}
    found = evaluate(snap(rejects=6, bulk_failures=3, maybe_paid_twice=1), limits, ALL, NOW)
    assert set(found) == {"rejects:orders", "bulk_failures:orders", "maybe_paid_twice:orders"}
    spent = Snapshot((), 900, 1000, 100, 100)
    assert set(evaluate(spent, NotifyThresholds(budget_percent=90), ALL, NOW)) == {
        "budget_reached",
        "org_reserve_reached",
    }
    assert (
        evaluate(Snapshot((), 899, 1000, 101, 100), NotifyThresholds(budget_percent=90), ALL, NOW)
        == {}
    )


def test_not_sending_counts_the_schedule_period_and_the_threshold() -> None:
    """An interval pipeline is quiet for its period by design; then the threshold counts."""
    limits = NotifyThresholds(not_sending_after=timedelta(minutes=30))
    quiet = snap(last_success=NOW - timedelta(minutes=30))
    assert evaluate(quiet, limits, ALL, NOW) == {}
    late = snap(last_success=NOW - timedelta(minutes=31))
    assert set(evaluate(late, limits, ALL, NOW)) == {"not_sending:orders"}
    scheduled = snap(last_success=NOW - timedelta(hours=12), grace=timedelta(hours=12))
    assert evaluate(scheduled, limits, ALL, NOW) == {}


def test_a_target_hears_only_the_conditions_it_names() -> None:
    """`conditions = [...]` filters what a target is told about."""
    found = evaluate(
        snap(rejects=500, bulk_failures=9), NotifyThresholds(), frozenset({"rejects"}), NOW
    )
    assert list(found) == ["rejects:orders"]


def test_changes_are_what_appeared_and_what_went() -> None:
    """Nothing for a condition already announced; "ended" carries the summary it started with."""
    current = evaluate(snap(rejects=500), NotifyThresholds(), ALL, NOW)
    before = NOW - timedelta(hours=2)
    assert changes({"rejects:orders": (before, "old")}, current) == []
    assert changes({}, current) == [
        Change("started", "rejects:orders", current["rejects:orders"].summary, None)
    ]
    assert changes({"bulk_failures:orders": (before, "3 failed")}, {}) == [
        Change("ended", "bulk_failures:orders", "3 failed", before)
    ]


def test_message_bodies() -> None:
    """Webhook: a JSON object with event, key, pipeline, summary; Slack: a text only."""
    change = Change("ended", "rejects:orders", "500 rows rejected", NOW - timedelta(hours=1))
    body = webhook_body(change, "db1", NOW)
    assert body["event"] == "ended" and body["condition"] == "rejects"
    assert body["pipeline"] == "orders" and body["summary"] == "500 rows rejected"
    assert body["started_at"] == "2026-11-24T11:00:00+00:00"
    assert slack_body(change, "db1", NOW) == {
        "text": "[syncd db1] RESOLVED rejects after 1h00m: pipeline orders: was: 500 rows rejected"
    }
    budget = Change("started", "budget_reached", "40,000 spent", None)
    assert slack_body(budget, "db1", NOW) == {
        "text": "[syncd db1] PROBLEM budget_reached: 40,000 spent"
    }
    assert webhook_body(budget, "db1", NOW)["pipeline"] is None


def test_quiet_period_of_each_mode() -> None:
    """Realtime: none; interval: the "every" period, or the gap between two cron fires."""

    def pipeline(**kw: object) -> PipelineSettings:
        return PipelineSettings(
            name="orders",
            table="orders",
            key="id",
            flag="sync",
            module="Orders",
            unique_field="parent_id",
            fields=(FieldMap("Name", "order_number", None),),
            **kw,  # type: ignore[arg-type]
        )

    assert quiet_period(pipeline(mode="realtime"), NOW) == timedelta(0)
    every = pipeline(mode="interval", schedule=parse_schedule("every 12h"))
    assert quiet_period(every, NOW) == timedelta(hours=12)
    cron = pipeline(mode="interval", schedule=parse_schedule("0 */6 * * *"))
    assert quiet_period(cron, NOW) == timedelta(hours=6)
