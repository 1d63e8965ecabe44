"""The realtime part of the demo: the real daemon in a thread while "the legacy app" edits rows.

What the audience is told is observed, not assumed: flushes are read from the runs the daemon
records, latencies are measured until the flag turns true in the legacy table.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from syncd.app import App
from syncd.config import Settings
from syncd.credits import CallKind
from syncd.daemon.service import Daemon
from syncd.daemon.systemd import Notifier
from syncd.demo.orders import LegacyApp
from syncd.engine.apply import sendable_pages
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import DemoFailed, SyncdError
from syncd.state.store import RunRecord

BURST = 250
REPEATS = (2, 3, 4, 3, 5)  # one order's quantity, changed again and again
FIXES = 5
LONE_NOTE = 'Kunde bittet um Anruf vor Lieferung: "nach 17 Uhr", Tel. siehe Konto'
_TICK = 0.1  # how often the demo looks, seconds


@dataclass
class RealtimeResult:
    flushes: list[int] = field(default_factory=list)  # rows sent per daemon tick
    timeouts: list[str] = field(default_factory=list)  # what did not happen in time
    seconds: float = 0.0


class DaemonThread:
    """``Daemon.run`` in a background thread (it skips signal handlers off the main thread)."""

    def __init__(self, config_path: Path) -> None:
        self.daemon = Daemon(config_path, notifier=Notifier(address=""))  # never notify systemd
        self.error: SyncdError | None = None
        self.thread = threading.Thread(target=self._run, name="syncd-daemon", daemon=True)

    def _run(self) -> None:
        try:
            self.daemon.run()
        except SyncdError as exc:  # handed to the main thread, which reports it
            self.error = exc

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.daemon.request_stop()
        self.thread.join(timeout=60)

    def check(self) -> None:
        """Raise when the daemon failed, or stopped without being asked to."""
        self.raise_error()
        if not self.thread.is_alive():
            raise DemoFailed("the daemon stopped unexpectedly")

    def raise_error(self) -> None:
        if self.error is not None:
            raise DemoFailed(f"the daemon stopped: {self.error}") from self.error


class RealtimeScript:
    """The daemon runs; the shop edits; the audience is told what the daemon did about it."""

    def __init__(
        self,
        app: App,
        settings: Settings,
        config_path: Path,
        legacy: LegacyApp,
        say: Callable[[str], None],
    ) -> None:
        self.pipeline = settings.pipelines[0]
        self.rt: PipelineRuntime = app.runtime(self.pipeline)
        self.store = app.store
        self.daemon = DaemonThread(config_path)
        self.legacy, self._say = legacy, say
        self.result = RealtimeResult()
        self.max_delay = self.pipeline.max_delay.total_seconds()
        self.poll = self.pipeline.poll_interval.total_seconds()
        self._reported: set[int] = set()  # runs already told
        self._calls_reported = 0  # records API calls already told
        self._started = time.monotonic()
        self._daemon_started = self._burst_at = datetime.now(UTC)
        self._repeated: int | None = None

    def run(self) -> RealtimeResult:
        self._started, self._daemon_started = time.monotonic(), datetime.now(UTC)
        self.daemon.start()
        try:
            self._wait_active()
            self._burst()
            self._repeated_edits()
            fixed = self._fix_rejects()
            self._settle(fixed)
            self._lone_change()
        finally:
            self.daemon.stop()
        self.daemon.raise_error()
        self.result.seconds = time.monotonic() - self._started
        self.say("daemon stopped")
        return self.result

    def say(self, text: str) -> None:
        self._say(f"[{time.monotonic() - self._started:5.1f}s] {text}")

    # -- the steps --------------------------------------------------------------------------

    def _wait_active(self) -> None:
        def active() -> bool:
            return self.store.lease_holder(self.pipeline.name) is not None

        if not self._wait(active, 30):
            raise DemoFailed("the daemon did not take the pipeline's lease within 30 s")
        self.say("the daemon is up and holds the pipeline's lease")

    def _burst(self) -> None:
        since = self._burst_at = datetime.now(UTC)
        keys = self.legacy.ship(BURST)
        self.say(f"the shop ships {len(keys)} orders in one transaction")
        full = len(keys) - len(keys) % self.pipeline.flush_size
        if not full:
            return
        if not self._wait(lambda: self._sent_since(since) >= full, 5 * self.poll + 10):
            self._timeout(f"the first {full} rows of the burst were not sent in time")
            return
        buffered = self.store.buffer_stats(self.pipeline.name)[0]
        self.say(f"  → sent {self._flushes()}, {_ago(since)} later; {buffered} wait in the buffer")

    def _repeated_edits(self) -> None:
        key = self._repeated = self.legacy.recent_order()
        for quantity in REPEATS:
            self.legacy.change_quantity(key, quantity)
            time.sleep(0.3)
        self.say(f"order {key} is changed {len(REPEATS)} times in a row (the buffer keeps it once)")

    def _fix_rejects(self) -> list[int]:
        fixed = self.legacy.fill_missing_numbers(FIXES)
        if fixed:
            self.say(
                f"the shop's staff fill in the missing order number of {len(fixed)} rejected orders"
            )
        return fixed

    def _settle(self, fixed: list[int]) -> None:
        if not self._wait(self._settled, self.max_delay + 5 * self.poll + 10):
            self._timeout("the buffer did not drain in time")
            return
        self.say(
            f"  → sent {self._flushes()}, {_ago(self._burst_at)} after the burst: the oldest "
            "change had waited max_delay"
        )
        if fixed:
            confirmed = sum(self._confirmed_and_released(k) for k in fixed)
            share = "all" if confirmed == len(fixed) else f"{confirmed} of the"
            self.say(f"  → {share} {len(fixed)} fixed orders are confirmed and off the reject list")

    def _confirmed_and_released(self, key: int) -> bool:
        released = self.store.get_reject(self.pipeline.name, str(key)) is None
        return released and self.legacy.is_synced(key)

    def _lone_change(self) -> None:
        key = self.legacy.recent_order(exclude=[self._repeated or 0])
        started = time.monotonic()
        self.legacy.add_note(key, LONE_NOTE)
        self.say(f"customer service adds a note to order {key}: a lone change")
        if not self._wait(lambda: self.legacy.is_synced(key), self.max_delay + 5 * self.poll + 10):
            self._timeout(f"the lone change of order {key} was not confirmed in time")
            return
        latency = time.monotonic() - started
        self.say(
            f"  → sent {self._flushes()}: confirmed {latency:.1f}s after the change, having "
            f"waited max_delay ({self.max_delay:.0f}s) in the buffer"
        )

    # -- observing the daemon -----------------------------------------------------------------

    def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.daemon.check()
            if condition():
                return True
            time.sleep(_TICK)
        return False

    def _settled(self) -> bool:
        """Nothing buffered, and no pending row the daemon would still send."""
        if self.store.buffer_stats(self.pipeline.name)[0]:
            return False
        return next(sendable_pages(self.rt, 5_000), None) is None

    def _realtime_runs(self) -> list[RunRecord]:
        runs = self.store.last_runs(self.pipeline.name, 50)
        return [r for r in runs if r.kind.startswith("realtime") and r.finished_at is not None]

    def _sent_since(self, since: datetime) -> int:
        return sum(r.counts.sent for r in self._realtime_runs() if r.started_at >= since)

    def _flushes(self) -> str:
        """The flushes not told yet, as "200 rows in 2 records API calls"; records them."""
        new = sorted(
            (r for r in self._realtime_runs() if r.id not in self._reported), key=lambda r: r.id
        )
        self._reported.update(r.id for r in new)
        sizes = [r.counts.sent for r in new]
        self.result.flushes.extend(sizes)
        ledger = self.store.calls_since(self._daemon_started)
        calls = sum(ledger.get(kind, (0, 0))[0] for kind in CallKind.RECORD_WRITES)
        calls, self._calls_reported = calls - self._calls_reported, calls
        rows = " + ".join(f"{n:,}" for n in sizes) + (" row" if sizes == [1] else " rows")
        return f"{rows} in {calls} records API call" + ("" if calls == 1 else "s")

    def _timeout(self, what: str) -> None:
        self.result.timeouts.append(what)
        self.say(f"  → {what}")


def _ago(since: datetime) -> str:
    return f"{(datetime.now(UTC) - since).total_seconds():.1f}s"
