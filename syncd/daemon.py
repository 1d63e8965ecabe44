"""`syncd run`: APScheduler 3 wiring, leases, signals, systemd notify and watchdog, metrics.

One BackgroundScheduler runs, per pipeline, a realtime tick every ``poll_interval`` or a drain
on its schedule; a lease job keeps (or waits for) each pipeline's lease every few seconds, so
a standby takes over soon after the active worker dies. The main thread only waits for
signals: SIGTERM stops (the flush in flight finishes, bulk jobs stay journaled), SIGHUP reloads.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from syncd.app import App, host_id
from syncd.config import PipelineSettings, Settings, load_settings
from syncd.engine.drain import Stopped
from syncd.engine.realtime import realtime_tick
from syncd.engine.runs import record_tick, run_drain
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import BudgetExceeded, ConfigError, SourceError, SyncdError
from syncd.logs import log_context
from syncd.metrics import Metrics, StateCollector
from syncd.model import RunCounts
from syncd.state.lease import Lease, lease_for
from syncd.systemd import Notifier, watchdog_interval

logger = logging.getLogger(__name__)

LEASE_CHECK = timedelta(seconds=2)
HOUSEKEEPING = timedelta(hours=1)
KEEP_HISTORY = timedelta(days=30)


@dataclass
class Worker:
    """One pipeline inside this process."""

    settings: PipelineSettings
    runtime: PipelineRuntime
    lease: Lease
    last_success: datetime | None = None
    holder: str = field(default_factory=host_id)


class Daemon:
    def __init__(self, config_path: Path, notifier: Notifier | None = None) -> None:
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self._metrics_started = False
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.app: App | None = None
        self.scheduler: BackgroundScheduler | None = None
        self.workers: dict[str, Worker] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        self._install_signals()
        self._start(load_settings(self.config_path))
        self.notifier.notify("READY=1\nSTATUS=syncing")
        logger.info(
            "syncd is running (%d pipeline(s))",
            len(self.workers),
            extra={"event": "daemon_ready", "pipelines": sorted(self.workers)},
        )
        while not self._stop.is_set():
            self._stop.wait(0.5)
            if self._reload.is_set():
                self._reload.clear()
                self._reload_config()
        self.notifier.notify("STOPPING=1")
        logger.info("stopping: finishing the flush in flight", extra={"event": "daemon_stopping"})
        self._shutdown()
        logger.info("stopped", extra={"event": "daemon_stopped"})
        return 0

    def request_stop(self) -> None:
        self._stop.set()
        for worker in self.workers.values():
            worker.runtime.stop.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum: int, _frame: FrameType | None) -> None:
            self.request_stop()

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self._reload.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    def _start(self, settings: Settings) -> None:
        """Preflight (state store, legacy tables, CRM) then schedule every job."""
        app = App.open(settings)
        try:
            self._preflight(app)
        except SyncdError:
            app.close()
            raise
        self.app = app
        self.workers = {
            p.name: Worker(p, app.runtime(p), lease_for(app.store, p.name))
            for p in settings.pipelines
        }
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self._schedule(settings)
        self.scheduler.start()
        self._serve_metrics(settings)

    def _preflight(self, app: App) -> None:
        for pipeline in app.settings.pipelines:
            report = app.table(pipeline).inspect()
            if report.problems:
                raise SourceError("\n".join(report.problems))
            for warning in report.warnings:
                logger.warning(
                    warning, extra={"event": "source_warning", "pipeline": pipeline.name}
                )
        app.crm.org_id()  # a token and the org id now, not at the first flush

    def _schedule(self, settings: Settings) -> None:
        assert self.scheduler is not None
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self._lease_job,
            IntervalTrigger(seconds=LEASE_CHECK.seconds),
            id="leases",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._housekeeping,
            IntervalTrigger(seconds=HOUSEKEEPING.seconds),
            id="housekeeping",
            max_instances=1,
            coalesce=True,
        )
        interval = watchdog_interval()
        if interval:
            self.scheduler.add_job(
                self._watchdog,
                IntervalTrigger(seconds=interval),
                id="watchdog",
                next_run_time=now,
                max_instances=1,
            )
        for worker in self.workers.values():
            self.scheduler.add_job(
                self._tick,
                self._trigger(worker.settings, settings),
                args=[worker.settings.name],
                id=f"pipeline:{worker.settings.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )

    @staticmethod
    def _trigger(pipeline: PipelineSettings, settings: Settings) -> IntervalTrigger | CronTrigger:
        if pipeline.mode == "realtime":
            return IntervalTrigger(seconds=pipeline.poll_interval.total_seconds())
        assert pipeline.schedule is not None
        if pipeline.schedule.every is not None:
            return IntervalTrigger(seconds=pipeline.schedule.every.total_seconds())
        # Cron expressions are read in the legacy system's zone: that is the business's clock.
        return CronTrigger.from_crontab(pipeline.schedule.cron, timezone=settings.source.timezone)

    def _serve_metrics(self, settings: Settings) -> None:
        if not settings.metrics.enabled or self._metrics_started or self.app is None:
            return
        store = self.app.store
        collector = StateCollector(
            store,
            [p.name for p in settings.pipelines],
            lambda: datetime.now(UTC),
            self._last_success,
        )
        self.metrics.serve(settings.metrics.host, settings.metrics.port, collector)
        self._metrics_started = True
        logger.info(
            "metrics on http://%s:%d/metrics",
            settings.metrics.host,
            settings.metrics.port,
            extra={"event": "metrics_started"},
        )

    def _last_success(self, name: str) -> datetime | None:
        worker = self.workers.get(name)
        return None if worker is None else worker.last_success

    def _shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        for worker in self.workers.values():
            if worker.lease.held and self.app is not None:
                self.app.store.clear_lease(worker.settings.name, worker.holder)
            worker.lease.release()
        self.workers = {}
        if self.app is not None:
            self.app.close()
            self.app = None

    def _reload_config(self) -> None:
        try:
            settings = load_settings(self.config_path)
        except ConfigError as exc:
            logger.error(
                "config reload refused, keeping the running config:\n%s",
                exc,
                extra={"event": "reload_failed"},
            )
            return
        assert self.app is not None
        if settings.state.url != self.app.settings.state.url:
            logger.error(
                "config reload refused: state.url changed; restart syncd for that",
                extra={"event": "reload_failed"},
            )
            return
        logger.info("reloading config", extra={"event": "reload"})
        self.notifier.notify("RELOADING=1")
        self._shutdown()
        try:
            self._start(settings)
        except SyncdError as exc:
            logger.error("reload failed: %s; stopping", exc, extra={"event": "reload_failed"})
            self.request_stop()
            return
        self.notifier.notify("READY=1")

    # -- jobs -----------------------------------------------------------------------------------

    def _lease_job(self) -> None:
        assert self.app is not None
        now = datetime.now(UTC)
        for name, worker in self.workers.items():
            if worker.lease.held:
                if worker.lease.verify():
                    self.app.store.heartbeat_lease(name, worker.holder, now)
                continue
            if worker.lease.try_acquire():
                self.app.store.record_lease(name, worker.holder, now)
                logger.info(
                    "lease acquired: this process is the active worker",
                    extra={"event": "lease_acquired", "pipeline": name},
                )
                if self.scheduler is not None:
                    self.scheduler.modify_job(f"pipeline:{name}", next_run_time=now)

    def _tick(self, name: str) -> None:
        worker = self.workers.get(name)
        if worker is None or not worker.lease.held or self._stop.is_set():
            return  # standby: another process holds this pipeline
        assert self.app is not None
        rt = worker.runtime
        with log_context(pipeline=name):
            try:
                counts = self._work(worker)
            except Stopped:
                return
            except BudgetExceeded as exc:
                logger.warning("%s", exc, extra={"event": "budget_exceeded"})
                return
            except SyncdError as exc:
                logger.error("tick failed: %s", exc, extra={"event": "tick_failed"})
                return
        self.metrics.count(name, counts)
        worker.last_success = rt.clock.now()

    def _work(self, worker: Worker) -> RunCounts:
        assert self.app is not None
        rt, name = worker.runtime, worker.settings.name
        if not self.app.store.has_succeeded(name, "initial"):
            logger.info(
                "initial sync not complete: running it first",
                extra={"event": "initial_sync_started"},
            )
            return run_drain(rt, "initial").counts
        if worker.settings.mode == "interval":
            return run_drain(rt, "interval").counts
        started = rt.clock.now()
        result = realtime_tick(rt)
        record_tick(
            rt, "realtime" if result.mode == "buffer" else "realtime-bulk", started, result.counts
        )
        return result.counts

    def _housekeeping(self) -> None:
        assert self.app is not None
        pruned = self.app.store.prune(datetime.now(UTC) - KEEP_HISTORY)
        logger.info(
            "housekeeping pruned %d old row(s)",
            pruned,
            extra={"event": "housekeeping", "rows": pruned},
        )

    def _watchdog(self) -> None:
        """Ping only while the state store answers; a hung store lets systemd restart us."""
        assert self.app is not None
        try:
            self.app.store.revision()
        except SyncdError as exc:
            logger.error(
                "watchdog: state store unreachable: %s", exc, extra={"event": "watchdog_unhealthy"}
            )
            return
        self.notifier.notify("WATCHDOG=1")
