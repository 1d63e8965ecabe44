"""One configuration at work in the daemon: its adapters, its pipelines' workers, its scheduler.

SIGHUP swaps a ``Running`` whole; the ticks (``syncd.daemon.ticks``) and the sharing of
pipelines between daemons (``syncd.daemon.sharing``) both act on it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from syncd.app import App, host_id
from syncd.config import PipelineSettings
from syncd.engine.runtime import PipelineRuntime
from syncd.notify.evaluate import Notifications
from syncd.state.lease import Lease


@dataclass
class Worker:
    """One pipeline inside this process."""

    settings: PipelineSettings
    runtime: PipelineRuntime
    lease: Lease
    last_success: datetime | None = None
    holder: str = field(default_factory=host_id)
    waiting_for_budget: bool = False  # said once when it starts, once when it ends
    # Held while the pipeline's tick or delete round runs: they take turns (a row written by
    # the one is never deleted by the other), and a lease is given back only between them.
    busy: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Running:
    """One configuration at work: adapters, workers and scheduler; SIGHUP swaps it whole."""

    app: App
    workers: dict[str, Worker]
    scheduler: BackgroundScheduler
    halted: threading.Event = field(default_factory=threading.Event)
    notifications: Notifications | None = None  # None without [[notify]] targets
