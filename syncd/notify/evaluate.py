"""One evaluation: read the snapshot, and tell each target what started and what ended.

What a target was told is kept in the state store (``syncd_alerts``) once it took the message,
so a restart neither repeats a "started" nor forgets the "ended"; a message a target did not
take is tried again at the next evaluation. A failing target is logged and never stops the
others (or anything else); its other messages wait for the next evaluation too, so a dead
target costs one bounded retry per evaluation, not one per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

import httpx

from syncd.config import PipelineSettings
from syncd.config.settings import NotifyTarget
from syncd.errors import SyncdError
from syncd.notify.conditions import Change, Snapshot, changes, evaluate, slack_body, webhook_body
from syncd.notify.send import post
from syncd.notify.snapshot import read_snapshot
from syncd.state.store import StateStore

logger = logging.getLogger(__name__)


class Notifications:
    """The ``[[notify]]`` targets of one configuration, evaluated against one state store."""

    def __init__(
        self,
        store: StateStore,
        targets: Sequence[NotifyTarget],
        host: str,
        watching_since: datetime,
        client: httpx.Client | None = None,
    ) -> None:
        self.store, self.targets, self.host = store, tuple(targets), host
        self.watching_since = watching_since
        self.client = client or httpx.Client(follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def run(
        self,
        pipelines: Sequence[PipelineSettings],
        last_success: Callable[[str], datetime | None],
        budget: int,
        reserve: int,
        now: datetime,
    ) -> int:
        """Evaluate once; returns how many messages were delivered."""
        self.store.alerts_forget_targets([t.name for t in self.targets])
        snap = read_snapshot(
            self.store, pipelines, last_success, self.watching_since, budget, reserve, now
        )
        return sum(self._tell(target, snap, now) for target in self.targets)

    def _tell(self, target: NotifyTarget, snap: Snapshot, now: datetime) -> int:
        current = evaluate(snap, target.thresholds, target.conditions, now)
        delivered = 0
        for change in changes(self.store.alerts_active(target.name), current):
            try:
                self._send(target, change, now)
            except SyncdError as exc:  # the rest would wait for the same dead target: next time
                logger.warning(
                    "notification not delivered (tried again at the next evaluation): %s",
                    exc,
                    extra={"event": "notify_failed", "target": target.name, "key": change.key},
                )
                break
            delivered += 1
        return delivered

    def _send(self, target: NotifyTarget, change: Change, now: datetime) -> None:
        make = slack_body if target.kind == "slack" else webhook_body
        post(self.client, target, make(change, self.host, now))
        if change.event == "started":
            self.store.alert_started(target.name, change.key, change.summary, now)
        else:
            self.store.alert_ended(target.name, change.key)
        logger.info(
            "notified %s: %s %s",
            target.name,
            change.key,
            change.event,
            extra={
                "event": "notify_sent",
                "target": target.name,
                "key": change.key,
                "change": change.event,
            },
        )
