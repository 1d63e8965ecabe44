"""Everything one pipeline's engine needs, handed in by the wiring (cli / daemon)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from syncd.errors import LeaseLost
from syncd.ports import Clock, Crm, EngineState, RowEncoder, Source


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
    credit_reserve: int = 0  # org credits kept for the company's other integrations
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
    # Whether this process still holds the pipeline (the daemon asks its lease); checked
    # before every CRM call, so a worker that lost its lease never sends beside the new one.
    may_send: Callable[[], bool] = lambda: True


def ensure_may_send(rt: PipelineRuntime) -> None:
    """Raise ``LeaseLost`` when this worker may no longer call the CRM for its pipeline."""
    if not rt.may_send():
        raise LeaseLost(
            f"pipeline {rt.name}: this worker lost its lease; it stops sending (journaled "
            "bulk jobs are finished by the worker that holds the lease now)"
        )
