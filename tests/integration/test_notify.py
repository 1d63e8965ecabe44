"""Notifications against a local webhook receiver and a real (SQLite) state store.

Conditions are driven through StateStore methods and a movable clock; each episode must give
exactly one "started" and one "ended" message per target, nothing while it lasts.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stamina

from syncd.config import Secret, load_settings
from syncd.config.settings import NotifyTarget, NotifyThresholds
from syncd.engine.backoff import BULK_SCOPE
from syncd.model import JobState, Reject
from syncd.notify.evaluate import Notifications
from syncd.notify.send import NotifyError
from syncd.state.store import StateStore
from tests.helpers.e2e import write_config
from tests.helpers.orders import create_orders, order
from tests.helpers.receiver import Receiver, webhook_receiver

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SECRET_PATH = "/services/T0HOOK7F3E9A/B0SECRET/xoxb-hook-7f3e9a"
HEADER_SECRET = "Bearer hdr-4c1d77"
LIMITS = NotifyThresholds(rejects_above=2)
BUDGET, RESERVE = 1_000, 100


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as server:
        yield server


@pytest.fixture(autouse=True)
def _fast_retries() -> Iterator[None]:
    """Retries happen (3 attempts) without their sleeps."""
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture(autouse=True)
def _production_log_levels(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Everything syncd logs is captured; httpx at WARNING, as syncd.logs.setup_logging has it.

    (caplog.set_level with a logger would also raise its handler's level: set them directly.)
    """
    caplog.set_level(logging.DEBUG)
    noisy = [logging.getLogger(name) for name in ("httpx", "httpcore")]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(noisy, levels, strict=True):
        logger.setLevel(level)


def target(
    receiver: Receiver, name: str, kind: str = "webhook", path: str = SECRET_PATH
) -> NotifyTarget:
    return NotifyTarget(
        name=name,
        kind="slack" if kind == "slack" else "webhook",
        url=Secret(receiver.base_url + path),
        headers=(("Authorization", Secret(HEADER_SECRET)),),
        thresholds=LIMITS,
    )


@dataclass
class World:
    """A state store file, a clock that moves, and the pipeline's last successful tick."""

    store: StateStore
    settings: Any
    now: datetime = T0
    last_success: dict[str, datetime] = field(default_factory=lambda: {"orders": T0})

    def tick(self, minutes: int = 1) -> None:
        """Time passes and the pipeline keeps ticking successfully."""
        self.now += timedelta(minutes=minutes)
        self.last_success["orders"] = self.now

    def wait(self, minutes: int) -> None:
        """Time passes and the pipeline does not tick."""
        self.now += timedelta(minutes=minutes)

    def evaluate(self, notifications: Notifications) -> int:
        return notifications.run(
            self.settings.pipelines, self.last_success.get, BUDGET, RESERVE, self.now
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/legacy.db", "http://127.0.0.1:9")
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    yield World(store, load_settings(config))
    store.close()


def notifications(world: World, *targets: NotifyTarget) -> Notifications:
    return Notifications(world.store, targets, "host-a", watching_since=T0)


def _rejects(w: World) -> None:
    items = [
        Reject("orders", str(k), "INVALID_DATA", "Amount", "bad", "h", w.now) for k in (1, 2, 3)
    ]
    w.store.record_rejects(items)


def _journal(state: JobState) -> Callable[[World], None]:
    def start(w: World) -> None:
        entry = w.store.journal_prepare("orders", None, "/tmp/job.zip", {"1": "h"}, w.now)
        w.store.journal_finish(entry, state, w.now, error="lost")

    return start


def _a_day_later(w: World) -> None:
    w.tick(25 * 60)


@dataclass(frozen=True)
class Case:
    key: str
    start: Callable[[World], None]
    end: Callable[[World], None]
    lasting: Callable[[World], None] = lambda w: w.tick(10)


CASES = [
    Case("rejects:orders", _rejects, lambda w: w.store.release_rejects("orders") and None),
    Case(
        "bulk_failures:orders",
        lambda w: w.store.backoff_failed("orders", BULK_SCOPE, 3, w.now, "FAILED", w.now),
        lambda w: w.store.backoff_clear("orders", BULK_SCOPE),
    ),
    Case("unfinished_jobs:orders", _journal(JobState.FAILED), _a_day_later),
    Case("maybe_paid_twice:orders", _journal(JobState.UNCERTAIN), _a_day_later),
    Case("budget_reached", lambda w: w.store.record_credits("bulk", BUDGET, w.now), _a_day_later),
    Case(
        "org_reserve_reached",
        lambda w: w.store.record_org_remaining(RESERVE, w.now),
        lambda w: w.store.record_org_remaining(50_000, w.now),
    ),
    Case("not_sending:orders", lambda w: w.wait(31), lambda w: w.tick(0), lambda w: w.wait(10)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_one_started_and_one_ended_message_per_episode(
    world: World, receiver: Receiver, case: Case
) -> None:
    """Each condition: "started" once when it begins, nothing while it lasts, "ended" once."""
    notify = notifications(world, target(receiver, "hook"))
    assert world.evaluate(notify) == 0
    case.start(world)
    world.evaluate(notify)
    for _ in range(3):
        case.lasting(world)
        world.evaluate(notify)
    assert [(b["event"], b["key"]) for b in receiver.posts_bodies()] == [("started", case.key)]
    case.end(world)
    world.evaluate(notify)
    world.tick()
    world.evaluate(notify)
    bodies = receiver.posts_bodies()
    assert [(b["event"], b["key"]) for b in bodies] == [
        ("started", case.key),
        ("ended", case.key),
    ]
    started, ended = bodies
    assert started["summary"] == ended["summary"]
    assert ended["started_at"] is not None
    assert "PROBLEM" in started["text"] and "RESOLVED" in ended["text"]
    assert receiver.posts[0].headers["Authorization"] == HEADER_SECRET


def test_an_org_credit_reading_older_than_a_day_does_not_count(
    world: World, receiver: Receiver
) -> None:
    """Zoho's remaining-credits header is daily: a reading from yesterday is no condition."""
    notify = notifications(world, target(receiver, "hook"))
    world.store.record_org_remaining(0, world.now - timedelta(hours=25))
    assert world.evaluate(notify) == 0
    world.store.record_org_remaining(0, world.now)
    assert world.evaluate(notify) == 1


def test_a_restart_does_not_announce_again_but_still_announces_the_end(
    world: World, receiver: Receiver
) -> None:
    """What a target was told survives a restart (state store), so "started" is not repeated."""
    hook = target(receiver, "hook")
    _rejects(world)
    assert world.evaluate(notifications(world, hook)) == 1
    world.store.close()
    world.store = StateStore.open(str(world.store.engine.url))
    again = notifications(world, hook)
    assert world.evaluate(again) == 0
    world.store.release_rejects("orders")
    assert world.evaluate(again) == 1
    assert [b["event"] for b in receiver.posts_bodies()] == ["started", "ended"]


def test_slack_target_posts_only_a_text(world: World, receiver: Receiver) -> None:
    """A Slack-compatible target gets {"text": ...} naming the host, condition and pipeline."""
    notify = notifications(world, target(receiver, "chat", kind="slack", path="/slack"))
    _rejects(world)
    world.evaluate(notify)
    world.store.release_rejects("orders")
    world.evaluate(notify)
    started, ended = receiver.bodies("/slack")
    assert set(started) == set(ended) == {"text"}
    assert started["text"].startswith("[syncd host-a] PROBLEM rejects: pipeline orders: 3 rows")
    assert "`syncd rejects list`" in started["text"]
    assert ended["text"].startswith("[syncd host-a] RESOLVED rejects after 0m: pipeline orders")


def test_a_failing_target_is_logged_and_retried_later_without_stopping_the_others(
    world: World, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx, a 4xx and a dead port are logged (URL masked); the others still hear; the
    failed messages go out once the target is back, each exactly once."""
    receiver.failing["/broken" + SECRET_PATH] = 503
    receiver.failing["/refused"] = 403
    broken = target(receiver, "broken", path="/broken" + SECRET_PATH)
    dead = dataclass_replace_url(target(receiver, "dead"), "http://127.0.0.1:9" + SECRET_PATH)
    ok = target(receiver, "ok", path="/ok")
    refused = target(receiver, "refused", path="/refused")
    notify = notifications(world, broken, dead, ok, refused)
    _rejects(world)
    world.store.backoff_failed("orders", BULK_SCOPE, 3, world.now, "FAILED", world.now)
    assert world.evaluate(notify) == 2
    assert len(receiver.bodies("/ok")) == 2
    # a 5xx is tried 3 times (stamina, sleeps off in tests), then the target's other message
    # waits for the next evaluation; a 4xx is a refusal, tried once
    assert receiver.hits["/broken" + SECRET_PATH] == 3 and receiver.hits["/refused"] == 1
    failed = [r for r in caplog.records if getattr(r, "event", None) == "notify_failed"]
    assert {getattr(r, "target", None) for r in failed} == {"broken", "dead", "refused"}
    assert "HTTP 503" in caplog.text and "HTTP 403" in caplog.text
    assert "ConnectError" in caplog.text
    del receiver.failing["/broken" + SECRET_PATH]  # back; "refused" still refuses
    world.tick()
    assert world.evaluate(notify) == 2
    world.tick()
    assert world.evaluate(notify) == 0
    assert [b["event"] for b in receiver.bodies("/broken" + SECRET_PATH)] == ["started"] * 2
    assert len(receiver.bodies("/ok")) == 2
    _assert_no_secret(caplog.text)


def test_no_secret_in_logs_or_errors(
    world: World, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the webhook URL's path nor a header value appears in a log line or an error."""
    hook = target(receiver, "hook")
    notify = notifications(world, hook)
    _rejects(world)
    world.evaluate(notify)
    world.store.release_rejects("orders")
    world.evaluate(notify)
    assert len(receiver.posts) == 2
    error = NotifyError(hook, "refused")
    for text in (caplog.text, str(error), repr(error), repr(hook)):
        _assert_no_secret(text)
    assert hook.display_url == f"{receiver.base_url}/****"
    assert any(getattr(r, "event", None) == "notify_sent" for r in caplog.records)


def test_status_shows_targets_masked_and_what_they_were_told(tmp_path: Path) -> None:
    """`syncd status` (text and JSON) lists each target with its URL masked."""
    create_orders(f"sqlite:///{tmp_path}/legacy.db", [order(1)])
    config = write_config(
        tmp_path,
        f"sqlite:///{tmp_path}/legacy.db",
        "http://127.0.0.1:9",
        extra=f"""
[[notify]]
name = "ops"
kind = "slack"
url = "https://hooks.slack.example{SECRET_PATH}"
""",
    )
    store = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    store.alert_started("ops", "rejects:orders", "3 rows rejected", T0)
    store.close()
    outputs = []
    for args in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "syncd", "-c", str(config), "status", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        outputs.append(result.stdout + result.stderr)
    text, as_json = outputs
    assert "notify ops (slack https://hooks.slack.example/****): told of rejects:orders" in text
    shown = json.loads(as_json)["notify"]
    assert shown == [
        {
            "name": "ops",
            "kind": "slack",
            "url": "https://hooks.slack.example/****",
            "active": ["rejects:orders"],
        }
    ]
    for output in outputs:
        _assert_no_secret(output)


def dataclass_replace_url(t: NotifyTarget, url: str) -> NotifyTarget:
    import dataclasses

    return dataclasses.replace(t, url=Secret(url))


def _assert_no_secret(text: str) -> None:
    for secret in ("7f3e9a", "B0SECRET", "hdr-4c1d77", "/services/"):
        assert secret not in text


def test_the_daemon_schedules_one_evaluation_and_only_an_active_worker_reports(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Jobs puts a "notify" job on the scheduler; it reports on held pipelines, a standby not."""
    from types import SimpleNamespace

    from apscheduler.schedulers.background import BackgroundScheduler

    from syncd.app import App
    from syncd.daemon.metrics import Metrics
    from syncd.daemon.running import Running, Worker
    from syncd.daemon.systemd import Notifier
    from syncd.daemon.ticks import NOTIFY_EVERY, RunningTicks, Ticks

    config = write_config(tmp_path, f"sqlite:///{tmp_path}/legacy.db", "http://127.0.0.1:9")
    app = App.open(load_settings(config))
    lease = SimpleNamespace(held=False)
    worker = Worker(app.settings.pipelines[0], None, lease)  # type: ignore[arg-type]
    notify = Notifications(app.store, [target(receiver, "hook")], "host-a", datetime.now(UTC))
    run = Running(app, {"orders": worker}, BackgroundScheduler(timezone=UTC), notifications=notify)
    ticks = Ticks(Metrics(), Notifier(), RunningTicks())
    ticks.schedule(run)
    job = run.scheduler.get_job("notify")
    assert job is not None and job.trigger.interval == NOTIFY_EVERY
    _rejects(World(app.store, app.settings))
    app.store.record_credits("bulk", app.settings.crm.daily_credit_budget, datetime.now(UTC))
    worker.last_success = datetime.now(UTC)
    ticks.notify(run)
    assert receiver.posts == []  # a standby: the active worker reports
    lease.held = True
    ticks.notify(run)
    ticks.notify(run)
    assert sorted((b["event"], b["key"]) for b in receiver.posts_bodies()) == [
        ("started", "budget_reached"),
        ("started", "rejects:orders"),
    ]
    notify.close()
    app.close()
