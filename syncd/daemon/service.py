"""`syncd run`: the daemon's life: preflight, READY, signals, reload, stop, the metrics endpoint.

One BackgroundScheduler runs the ticks of ``syncd.daemon.ticks``: per pipeline a realtime tick every
``poll_interval`` or a drain on its schedule, and a lease tick that keeps (or waits for) each
pipeline's lease every few seconds, so a standby takes over soon after the active worker dies.
The main thread only waits for signals: SIGTERM stops (the flush in flight finishes, within
``stop_timeout``; bulk jobs stay journaled), SIGHUP reloads the config or says why not.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from syncd.app import App, host_id
from syncd.config import PipelineSettings, Settings, load_settings
from syncd.daemon.metrics import Metrics, StateCollector
from syncd.daemon.running import Running, Worker
from syncd.daemon.sharing import forget_me
from syncd.daemon.systemd import Notifier, watchdog_interval
from syncd.daemon.ticks import RunningTicks, Ticks, scheduler_log
from syncd.errors import SourceError, SyncdError
from syncd.model import RunCounts
from syncd.notify.evaluate import Notifications
from syncd.state.lease import Lease, lease_for

logger = logging.getLogger(__name__)

STOP_TIMEOUT = timedelta(seconds=60)
"""How long SIGTERM waits for the work in flight: below the unit's TimeoutStopSec (90 s)."""


class Daemon:
    def __init__(
        self,
        config_path: Path,
        notifier: Notifier | None = None,
        stop_timeout: timedelta = STOP_TIMEOUT,
    ) -> None:
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.stop_timeout = stop_timeout
        self.metrics = Metrics()
        self.collector: StateCollector | None = None
        self.running: Running | None = None
        self.abandoned = False
        """True when work was still in flight at exit: the caller must not wait for it."""
        self.exit_code = 0
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._in_flight = RunningTicks()
        self._ticks = Ticks(self.metrics, self.notifier, self._in_flight)

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        self._install_signals()
        settings = load_settings(self.config_path)
        self._begin(self._open(settings), {})
        self.notifier.notify("READY=1\nSTATUS=syncing")
        logger.info(
            "syncd is running (%d pipeline(s))",
            len(settings.pipelines),
            extra={"event": "daemon_ready", "pipelines": [p.name for p in settings.pipelines]},
        )
        while not self._stop.is_set():
            self._stop.wait(0.5)
            if self._reload.is_set() and not self._stop.is_set():
                self._reload.clear()
                self._reload_config()
        self.notifier.notify("STOPPING=1")
        logger.info("stopping: finishing the flush in flight", extra={"event": "daemon_stopping"})
        if not self.abandoned and self._halt():
            self._close(release_leases=True)
            logger.info("stopped", extra={"event": "daemon_stopped"})
        return self.exit_code

    def request_stop(self) -> None:
        self._stop.set()

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

    def _open(self, settings: Settings) -> App:
        """Open the adapters and run the preflight (legacy tables, a Zoho token and org)."""
        app = App.open(settings)
        try:
            for pipeline in settings.pipelines:
                report = app.table(pipeline).inspect()
                if report.problems:
                    raise SourceError("\n".join(report.problems))
                for warning in report.warnings:
                    logger.warning(
                        warning, extra={"event": "source_warning", "pipeline": pipeline.name}
                    )
            app.crm.org_id()  # a token and the org id now, not at the first flush
            app.crm.org_limits()  # the edition's concurrency limit, unless configured
            self._serve_metrics(app)
        except SyncdError:
            app.close()
            raise
        return app

    @staticmethod
    def _worker(app: App, pipeline: PipelineSettings, lease: Lease | None) -> Worker:
        """A pipeline's worker; its engine checks the lease before every CRM call, so a worker
        whose lease was lost (seen by the heartbeat within seconds) stops sending at once."""
        own = lease or lease_for(app.store, pipeline.name)
        runtime = dataclasses.replace(app.runtime(pipeline), may_send=lambda: own.held)
        return Worker(pipeline, runtime, own)

    def _begin(self, app: App, leases: dict[str, Lease]) -> None:
        """Build the workers (keeping the leases handed over) and start the scheduler."""
        workers = {
            p.name: self._worker(app, p, leases.pop(p.name, None)) for p in app.settings.pipelines
        }
        for name, lease in leases.items():  # pipelines the new config no longer has
            self._give_up(app, name, lease, host_id())
        scheduler = BackgroundScheduler(timezone=UTC, logger=scheduler_log)
        notifications = (
            Notifications(app.store, app.settings.notify, host_id(), datetime.now(UTC))
            if app.settings.notify
            else None
        )
        self.running = Running(app, workers, scheduler, notifications=notifications)
        self._ticks.schedule(self.running)
        scheduler.start()
        for name in workers:
            self.metrics.count(name, RunCounts())  # every pipeline shows up, from zero
        if self.collector is not None:
            crm = app.settings.crm
            self.collector.bind(
                app.store,
                list(workers),
                self._last_success,
                crm.daily_credit_budget,
                crm.credit_reserve,
            )

    def _serve_metrics(self, app: App) -> None:
        metrics = app.settings.metrics
        if not metrics.enabled or self.collector is not None:
            return
        collector = StateCollector(lambda: datetime.now(UTC))
        try:
            self.metrics.serve(metrics.host, metrics.port, collector)
        except OSError as exc:
            raise SyncdError(
                f"metrics: cannot listen on {metrics.host}:{metrics.port}: {exc.strerror}; "
                "set [metrics] port to a free port"
            ) from exc
        self.collector = collector
        logger.info(
            "metrics on http://%s:%d/metrics",
            metrics.host,
            metrics.port,
            extra={"event": "metrics_started"},
        )

    def _last_success(self, name: str) -> datetime | None:
        worker = None if self.running is None else self.running.workers.get(name)
        return None if worker is None else worker.last_success

    def _halt(self) -> bool:
        """Stop scheduling and wait (bounded) for the ticks in flight; False if they outlast it."""
        run = self.running
        if run is None:
            return True
        run.halted.set()
        for worker in run.workers.values():
            worker.runtime.stop.set()
        run.scheduler.shutdown(wait=False)
        if self._in_flight.wait_idle(self.stop_timeout, self._still_alive):
            return True
        self.abandoned = True
        logger.error(
            "the work in flight did not finish within %s; exiting anyway: rows it did not "
            "confirm stay pending and bulk jobs stay journaled, so the next start sends them",
            self.stop_timeout,
            extra={"event": "stop_timeout"},
        )
        return False

    def _still_alive(self) -> None:
        """While waiting for the work in flight: a reload must not look like a hang."""
        if watchdog_interval() is not None:
            self.notifier.notify("WATCHDOG=1")

    def _close(self, *, release_leases: bool) -> dict[str, Lease]:
        """Close the running configuration; returns the leases it kept (when not released)."""
        run, self.running = self.running, None
        if run is None:
            return {}
        kept: dict[str, Lease] = {}
        for name, worker in run.workers.items():
            if release_leases:
                self._give_up(run.app, name, worker.lease, worker.holder)
            else:
                kept[name] = worker.lease
        if release_leases:
            forget_me(run, datetime.now(UTC))  # the other daemons' share grows at once
        if run.notifications is not None:
            run.notifications.close()
        run.app.close()
        return kept

    @staticmethod
    def _give_up(app: App, name: str, lease: Lease, holder: str) -> None:
        if lease.held:
            try:
                app.store.clear_lease(name, holder)
            except SyncdError as exc:
                logger.warning("lease record not cleared: %s", exc, extra={"event": "lease_clear"})
        lease.release()

    def _reload_config(self) -> None:
        """Swap in the new config, or keep the running one and say why not."""
        assert self.running is not None
        try:
            settings = load_settings(self.config_path)
            if settings.state.url != self.running.app.settings.state.url:
                raise SyncdError("state.url changed; restart syncd for that")
            app = self._open(settings)
        except SyncdError as exc:
            logger.error(
                "config reload refused, keeping the running config: %s",
                exc,
                extra={"event": "reload_failed"},
            )
            return
        logger.info("reloading config", extra={"event": "reload"})
        old = self.running.app.settings
        moved = (old.metrics.host, old.metrics.port) != (
            settings.metrics.host,
            settings.metrics.port,
        )
        for what, changed in (
            ("metrics host/port", old.metrics.enabled and moved),
            ("[log]", old.log != settings.log),
        ):
            if changed:
                logger.warning(
                    "%s changed: it takes effect at the next restart",
                    what,
                    extra={"event": "reload_needs_restart", "section": what},
                )
        self.notifier.notify("RELOADING=1")
        if not self._halt():
            app.close()
            logger.error(
                "reload: exiting so the service manager restarts syncd with the new config",
                extra={"event": "reload_failed"},
            )
            self.exit_code = 1
            self.request_stop()
            return
        self._begin(app, self._close(release_leases=False))
        self.notifier.notify("READY=1")
        logger.info("config reloaded", extra={"event": "reloaded"})
