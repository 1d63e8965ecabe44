"""Runs: each initial sync, drain or realtime flush is recorded with its counts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from syncd.engine.drain import DrainResult, Stopped, drain
from syncd.engine.runtime import PipelineRuntime, ProgressCallback
from syncd.errors import SyncdError
from syncd.logs import log_context
from syncd.model import RunCounts

logger = logging.getLogger(__name__)

T = TypeVar("T")


def recorded(rt: PipelineRuntime, kind: str, work: Callable[[int], tuple[T, RunCounts, bool]]) -> T:
    """Run ``work(run_id)`` as a recorded run; it returns (result, counts, complete)."""
    started = rt.clock.now()
    run_id = rt.state.start_run(rt.name, kind, rt.host, started)
    try:
        with log_context(run_id=run_id):
            result, counts, complete = work(run_id)
    except Stopped as exc:
        rt.state.finish_run(run_id, "interrupted", RunCounts(), rt.clock.now(), str(exc))
        raise
    except SyncdError as exc:
        spent = rt.state.credits_spent_since(started)
        rt.state.finish_run(run_id, "failed", RunCounts(credits=spent), rt.clock.now(), str(exc))
        raise
    except BaseException:
        rt.state.finish_run(run_id, "interrupted", RunCounts(), rt.clock.now(), "interrupted")
        raise
    counts = counts + RunCounts(credits=rt.state.credits_spent_since(started))
    status = "succeeded" if complete else "partial"
    rt.state.finish_run(run_id, status, counts, rt.clock.now())
    return result


def run_drain(
    rt: PipelineRuntime, kind: str, on_progress: ProgressCallback | None = None
) -> DrainResult:
    """A recorded drain: ``initial`` (the initial sync) or ``interval``."""

    started = rt.clock.now()

    def with_credits(counts: RunCounts) -> RunCounts:
        return counts + RunCounts(credits=rt.state.credits_spent_since(started))

    def report(counts: RunCounts) -> None:
        if on_progress is not None:
            on_progress(with_credits(counts))

    def work(run_id: int) -> tuple[DrainResult, RunCounts, bool]:
        result = drain(rt, run_id, report)
        return result, result.counts, result.left_pending == 0

    result = recorded(rt, kind, work)
    result.counts = with_credits(result.counts)
    logger.info(
        "%s drain finished: %d sent, %d confirmed, %d rejected, %d left pending",
        kind,
        result.counts.sent,
        result.counts.confirmed,
        result.counts.rejected,
        result.left_pending,
        extra={
            "event": "drain_finished",
            "pipeline": rt.name,
            "kind": kind,
            "confirmed": result.counts.confirmed,
            "rejected": result.counts.rejected,
            "left_pending": result.left_pending,
        },
    )
    return result


def record_tick(rt: PipelineRuntime, kind: str, started: datetime, counts: RunCounts) -> None:
    """Record a realtime tick that sent something, after the fact (quiet ticks leave no run)."""
    if counts.sent == 0:
        return
    run_id = rt.state.start_run(rt.name, kind, rt.host, started)
    credits = RunCounts(credits=rt.state.credits_spent_since(started))
    rt.state.finish_run(run_id, "succeeded", counts + credits, rt.clock.now())
