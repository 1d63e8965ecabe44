"""Runs: each initial sync, drain or realtime flush is recorded with its counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from syncd.engine.drain import DrainResult, drain
from syncd.engine.progress import Progress, ProgressCallback
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import Stopped, SyncdError
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


_NO_CALL_STEPS = frozenset({"read", "encoded"})
"""Progress steps that follow no CRM call: they report the credits the step before found,
not a sum of the ledger of their own (an initial sync of 1,000,000 rows reports 400 of them)."""


def run_drain(
    rt: PipelineRuntime, kind: str, on_progress: ProgressCallback | None = None
) -> DrainResult:
    """A recorded drain: ``initial`` (the initial sync) or ``interval``."""

    started = rt.clock.now()
    spent = RunCounts()

    def with_credits(counts: RunCounts) -> RunCounts:
        return counts + RunCounts(credits=rt.state.credits_spent_since(started))

    def report(progress: Progress) -> None:
        nonlocal spent
        if on_progress is None:
            return
        if progress.step not in _NO_CALL_STEPS:  # credits are spent by CRM calls only
            spent = with_credits(RunCounts())
        on_progress(replace(progress, counts=progress.counts + spent))

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


class TickRun:
    """A realtime tick's run, recorded from the moment the tick sends (quiet ticks leave none);
    the tick's log lines from then on carry its run id."""

    def __init__(self, rt: PipelineRuntime) -> None:
        self.rt = rt
        self.started = rt.clock.now()
        self.run_id: int | None = None
        self.kind = "realtime"  # or "realtime-bulk": a mass update drained by bulk write
        self.counts = RunCounts()  # what the tick did, set by the tick before it returns

    @contextmanager
    def sending(self, kind: str) -> Iterator[int]:
        """Start the run unless it has started (``kind`` names it then); log with its id."""
        if self.run_id is None:
            self.kind = kind
            self.run_id = self.rt.state.start_run(self.rt.name, kind, self.rt.host, self.started)
        with log_context(run_id=self.run_id):
            yield self.run_id

    def close(self, status: str, error: str | None = None) -> None:
        """Record the end; a tick that sent nothing (and failed before sending) leaves no run."""
        if self.run_id is None and (status != "succeeded" or self.counts.sent == 0):
            return
        counts = self.counts if status == "succeeded" else RunCounts()
        credits = RunCounts(credits=self.rt.state.credits_spent_since(self.started))
        with self.sending(self.kind) as run_id:
            self.rt.state.finish_run(run_id, status, counts + credits, self.rt.clock.now(), error)


@contextmanager
def tick_run(rt: PipelineRuntime) -> Iterator[TickRun]:
    """The recorded run of one realtime tick (see ``TickRun``), closed however the tick ends."""
    run = TickRun(rt)
    try:
        yield run
    except Stopped as exc:
        run.close("interrupted", str(exc))
        raise
    except SyncdError as exc:
        run.close("failed", str(exc))
        raise
    except BaseException:
        run.close("interrupted", "interrupted")
        raise
    run.close("succeeded")
