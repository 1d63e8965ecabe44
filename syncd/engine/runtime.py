"""Everything one pipeline's engine needs, handed in by the wiring (cli / daemon)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from syncd.model import RunCounts
from syncd.ports import Clock, Crm, EngineState, RowEncoder, Source

ProgressCallback = Callable[[RunCounts], None]


@dataclass(frozen=True)
class PipelineRuntime:
    name: str
    module: str
    unique_field: str
    source: Source
    crm: Crm
    state: EngineState
    encoder: RowEncoder
    clock: Clock
    host: str
    daily_credit_budget: int
    batch_size: int = 25_000
    jobs_in_flight: int = 2
    bulk_poll_interval: timedelta = timedelta(seconds=5)
    bulk_job_timeout: timedelta = timedelta(hours=2)
    flush_size: int = 100
    max_delay: timedelta = timedelta(minutes=10)
    poll_interval: timedelta = timedelta(seconds=5)
    max_rounds: int = 10
    # Set on SIGTERM: loops stop starting new work; journaled jobs are resumed on the next start.
    stop: threading.Event = field(default_factory=threading.Event)
