"""Everything one pipeline's engine needs, handed in by the wiring (cli / daemon)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from syncd.errors import LeaseLost
from syncd.model import Tunables
from syncd.ports import Clock, Crm, EngineState, RowEncoder, Source


@dataclass(frozen=True)
class PipelineRuntime:
    """One pipeline at work: who it is, its ``tunables`` (from the config) and the ports its
    loops use.

    A function whose work (with what it calls) needs at most three of these parts takes just
    those, named by role (``source``, ``crm``, ``state``, ``encoder``, ``clock``, ``pipeline``
    for ``name``, ``module``, ``unique_field``, ``tunables``, ``stop``), before its data. The
    loops and steps that need four or more, or that hand the runtime on (drain, realtime tick,
    initial sync, applying outcomes), take it whole, and so does a step whose parameters would
    otherwise pass five."""

    name: str
    module: str
    unique_field: str
    host: str
    tunables: Tunables
    source: Source
    crm: Crm
    state: EngineState
    encoder: RowEncoder
    clock: Clock
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
