"""The daemon's ticks: per-pipeline ticks, leases, housekeeping, notifications, the watchdog.

``Ticks.schedule`` puts them on one APScheduler 3 BackgroundScheduler (APScheduler calls each
an "add_job"; in syncd a job is a Zoho bulk job, so here they are ticks). Every tick runs with
``max_instances=1``, so none overlaps itself; a pipeline's tick runs the initial sync until
one has succeeded, then its realtime tick or its interval drain. Ticks count themselves in
``RunningTicks`` so a stop or a reload can wait for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.app import App
from syncd.config import PipelineSettings
from syncd.crashpoints import crash_point
from syncd.daemon.metrics import Metrics
from syncd.daemon.running import Running, Worker
from syncd.daemon.sharing import fair_share, give_back_extra, held_count
from syncd.daemon.systemd import Notifier, watchdog_interval
from syncd.deletes import CHUNKS_PER_TICK, DELETE_TICK, delete_policy, delete_round
from syncd.engine.apply import prune_rejects
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import run_drain
from syncd.errors import BudgetExceeded, LeaseLost, Stopped, SyncdError
from syncd.logs import log_context
from syncd.model import RunCounts
from syncd.state.lease import HEARTBEAT

logger = logging.getLogger(__name__)

HOUSEKEEPING = timedelta(hours=1)
KEEP_HISTORY = timedelta(days=30)
NOTIFY_EVERY = timedelta(minutes=1)


class _OverlapFilter(logging.Filter):
    """A tick still running when the next one is due is skipped by design, not a warning:
    during a long bulk drain APScheduler would say so at every poll interval."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


scheduler_log = logging.getLogger("apscheduler.scheduler.syncd")  # quiet like "apscheduler"
scheduler_log.addFilter(_OverlapFilter())


def pipeline_trigger(pipeline: PipelineSettings, zone: ZoneInfo) -> IntervalTrigger | CronTrigger:
    """Realtime: every ``poll_interval``; interval: its schedule (cron in the source's zone)."""
    if pipeline.mode == "realtime":
        return IntervalTrigger(seconds=pipeline.poll_interval.total_seconds(), timezone=UTC)
    assert pipeline.schedule is not None
    if pipeline.schedule.every is not None:
        return IntervalTrigger(seconds=pipeline.schedule.every.total_seconds(), timezone=UTC)
    assert pipeline.schedule.cron is not None
    # Cron expressions are read in the legacy system's zone: that is the business's clock.
    return CronTrigger.from_crontab(pipeline.schedule.cron, timezone=zone)


class RunningTicks:
    """How many ticks are running, so a stop or reload can wait for them."""

    def __init__(self) -> None:
        self._idle = threading.Condition()
        self._busy = 0

    @contextmanager
    def track(self) -> Iterator[None]:
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: timedelta, while_waiting: Callable[[], None]) -> bool:
        """Wait until no tick runs (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout.total_seconds()
        with self._idle:
            while self._busy and time.monotonic() < deadline:
                while_waiting()
                self._idle.wait(min(deadline - time.monotonic(), 0.5))
            return not self._busy


class Ticks:
    def __init__(self, metrics: Metrics, notifier: Notifier, in_flight: RunningTicks) -> None:
        self.metrics, self.notifier, self.in_flight = metrics, notifier, in_flight

    def schedule(self, run: Running) -> None:
        now = datetime.now(UTC)
        add = run.scheduler.add_job
        once = {"max_instances": 1, "coalesce": True}
        every = IntervalTrigger(seconds=HEARTBEAT.total_seconds(), timezone=UTC)
        add(self.leases, every, args=[run], id="leases", next_run_time=now, **once)
        hourly = IntervalTrigger(seconds=HOUSEKEEPING.total_seconds(), timezone=UTC)
        add(self.housekeeping, hourly, args=[run], id="housekeeping", **once)
        if run.notifications is not None:
            minute = IntervalTrigger(seconds=NOTIFY_EVERY.total_seconds(), timezone=UTC)
            add(self.notify, minute, args=[run], id="notify", **once)
        interval = watchdog_interval()
        if interval:
            ping = IntervalTrigger(seconds=interval, timezone=UTC)
            add(self.watchdog, ping, args=[run], id="watchdog", next_run_time=now, **once)
        for worker in run.workers.values():
            add(
                self.tick,
                pipeline_trigger(worker.settings, run.app.settings.source.timezone),
                args=[run, worker],
                id=f"pipeline:{worker.settings.name}",
                misfire_grace_time=None,
                **once,
            )
            if delete_policy(worker.settings) is not None:
                often = min(DELETE_TICK, worker.settings.delete_scan_interval)
                rounds = IntervalTrigger(seconds=often.total_seconds(), timezone=UTC)
                name = worker.settings.name
                add(self.deletes, rounds, args=[run, worker], id=f"deletes:{name}", **once)

    def leases(self, run: Running) -> None:
        """Keep the leases held (heartbeat) or, as a standby, try to take them."""
        with self.in_flight.track():
            if run.halted.is_set():
                return
            share = fair_share(run, datetime.now(UTC))
            for worker in run.workers.values():
                try:
                    if worker.lease.held or held_count(run) < share:
                        self._keep_lease(run, worker, datetime.now(UTC))
                except SyncdError as exc:
                    logger.warning(
                        "lease record not updated: %s",
                        exc,
                        extra={"event": "lease_record_failed", "pipeline": worker.settings.name},
                    )
            give_back_extra(run, share)

    @staticmethod
    def _keep_lease(run: Running, worker: Worker, now: datetime) -> None:
        name = worker.settings.name
        if worker.lease.held:
            if worker.lease.verify():
                crash_point("after_lease_verified")
                run.app.store.heartbeat_lease(name, worker.holder, now)
            return
        if worker.lease.try_acquire():
            logger.info(
                "lease acquired: this process is the active worker",
                extra={"event": "lease_acquired", "pipeline": name},
            )
            run.scheduler.modify_job(f"pipeline:{name}", next_run_time=now)
            run.app.store.record_lease(name, worker.holder, now)

    def tick(self, run: Running, worker: Worker) -> None:
        name = worker.settings.name
        with self.in_flight.track(), log_context(pipeline=name):
            if run.halted.is_set() or not worker.lease.held:
                return  # stopping, or standby: another process holds this pipeline
            try:
                with worker.busy:
                    counts = self._work(run.app, worker)
            except Stopped:
                return
            except LeaseLost as exc:  # the heartbeat saw the lease go: the standby has it now
                logger.error("%s", exc, extra={"event": "lease_lost_stopped_sending"})
                return
            except BudgetExceeded as exc:
                if not worker.waiting_for_budget:  # not again at every poll while it lasts
                    logger.warning("%s", exc, extra={"event": "budget_exceeded"})
                worker.waiting_for_budget = True
                return
            except SyncdError as exc:
                logger.error("tick failed: %s", exc, extra={"event": "tick_failed"})
                return
            if worker.waiting_for_budget:
                worker.waiting_for_budget = False
                logger.info(
                    "credits available again: sending resumed", extra={"event": "budget_available"}
                )
            self.metrics.count(name, counts)
            worker.last_success = worker.runtime.clock.now()

    @staticmethod
    def _work(app: App, worker: Worker) -> RunCounts:
        rt = worker.runtime
        if not app.store.has_succeeded(worker.settings.name, "initial"):
            logger.info(
                "initial sync not complete: running it first",
                extra={"event": "initial_sync_started"},
            )
            return run_drain(rt, "initial").counts
        if worker.settings.mode == "interval":
            return run_drain(rt, "interval").counts
        return realtime_tick(rt).counts  # records its run itself, from its first send on

    def deletes(self, run: Running, worker: Worker) -> None:
        """A delete round (``syncd.deletes``) of a pipeline this process holds, between ticks."""
        name = worker.settings.name
        with self.in_flight.track(), log_context(pipeline=name):
            if run.halted.is_set() or not worker.lease.held:
                return
            if not worker.busy.acquire(blocking=False):
                return  # the tick is running: the next round comes in a minute
            try:
                delete_round(run.app, worker.settings, worker.runtime, max_chunks=CHUNKS_PER_TICK)
            except (Stopped, LeaseLost):
                return
            except SyncdError as exc:  # BudgetExceeded included: the round waits for credits
                logger.warning("delete round failed: %s", exc, extra={"event": "deletes_failed"})
            finally:
                worker.busy.release()

    def housekeeping(self, run: Running) -> None:
        with self.in_flight.track():
            if run.halted.is_set():
                return
            pruned = run.app.store.prune(datetime.now(UTC) - KEEP_HISTORY)
            for worker in run.workers.values():
                if worker.lease.held:  # the active worker's rejects; a standby leaves them
                    pruned += self._prune_rejects(worker)
            logger.info(
                "housekeeping pruned %d old row(s)",
                pruned,
                extra={"event": "housekeeping", "rows": pruned},
            )

    @staticmethod
    def _prune_rejects(worker: Worker) -> int:
        with log_context(pipeline=worker.settings.name):
            try:
                rt = worker.runtime
                return prune_rejects(rt.source, rt.state, rt.name)
            except SyncdError as exc:  # the legacy DB is away: try again next time
                logger.warning("%s", exc, extra={"event": "housekeeping_failed"})
                return 0

    def notify(self, run: Running) -> None:
        """Tell the [[notify]] targets what started and what ended; only an active worker does
        (a standby would repeat it), and only about the pipelines it holds."""
        with self.in_flight.track():
            held = [w.settings for w in run.workers.values() if w.lease.held]
            if run.halted.is_set() or run.notifications is None or not held:
                return
            crm = run.app.settings.crm
            try:
                run.notifications.run(
                    held,
                    lambda name: run.workers[name].last_success,
                    crm.daily_credit_budget,
                    crm.credit_reserve,
                    datetime.now(UTC),
                )
            except SyncdError as exc:  # the state store is away: try again next time
                logger.warning(
                    "notifications not evaluated: %s", exc, extra={"event": "notify_failed"}
                )

    def watchdog(self, run: Running) -> None:
        """Ping only while the state store answers; a hung store lets systemd restart us."""
        if run.halted.is_set():
            return
        try:
            run.app.store.revision()
        except SyncdError as exc:
            logger.error(
                "watchdog: state store unreachable: %s", exc, extra={"event": "watchdog_unhealthy"}
            )
            return
        self.notifier.notify("WATCHDOG=1")
