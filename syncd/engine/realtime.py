"""One tick of realtime mode: poll pending rows into the buffer, flush what is due.

A backlog big enough for Bulk Write (a mass update) is not buffered: it is drained through
the planner at once, so 80,000 changed rows cost 4 bulk jobs instead of 800 upsert calls.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass

from syncd.crashpoints import crash_point
from syncd.engine.apply import send_records, sendable, sendable_pages
from syncd.engine.backoff import RECORD_BASE_DELAY, RECORD_MAX_DELAY, next_attempt
from syncd.engine.budget import ensure_affordable
from syncd.engine.drain import bulk_paused, drain, recover_jobs
from syncd.engine.flush import decide_flush
from syncd.engine.planner import BREAK_EVEN, plan_backlog
from syncd.engine.runs import TickRun, tick_run
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import BudgetExceeded
from syncd.model import Api, PendingRow, Plan, RunCounts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickResult:
    counts: RunCounts
    buffered: int
    mode: str  # "buffer", "bulk", or "paused" (a bulk-sized backlog waits for the backoff)


def realtime_tick(rt: PipelineRuntime) -> TickResult:
    """Poll, buffer, and flush full chunks now and a partial chunk once it is due.

    Bulk jobs a previous worker left in the journal (it died, or stopped mid-drain) are
    finished first: Zoho has them and they are paid for, so their rows must not go again.
    A tick that sends is a recorded run, and its lines from the first send on carry the run id.
    """
    with tick_run(rt) as run:
        result = _tick(rt, run)
        run.counts = result.counts
    return result


def _tick(rt: PipelineRuntime, run: TickRun) -> TickResult:
    recovered = recover_jobs(rt)
    backlog = _backlog(rt)
    if plan_backlog(max(backlog, 0)).api is Api.BULK:
        if bulk_paused(
            rt.state, rt.clock, rt.name
        ):  # a bulk-sized backlog waits: upsert would cost it several times
            return TickResult(recovered, rt.state.buffer_stats(rt.name)[0], "paused")
        logger.info(
            "backlog of about %d rows: draining by bulk write",
            backlog,
            extra={"event": "realtime_mass_update", "pipeline": rt.name, "rows": backlog},
        )
        # Refused before the run starts, as a flush is: waiting for credits is not a run.
        ensure_affordable(
            rt.state,
            rt.clock,
            rt.tunables,
            plan_backlog(min(backlog, rt.tunables.batch_size)).credits,
        )
        with run.sending("realtime-bulk") as run_id:
            result = drain(rt, run_id)
        return TickResult(recovered + result.counts, rt.state.buffer_stats(rt.name)[0], "bulk")
    poll(rt)
    crash_point("after_realtime_poll")
    counts = recovered + flush_due(rt, run)
    return TickResult(counts, rt.state.buffer_stats(rt.name)[0], "buffer")


def _backlog(rt: PipelineRuntime) -> int:
    """About how many rows could go now. Rows waiting for a lookup parent are pending but not
    sendable: counted as pending, a bulk-sized wait would turn every tick into an empty drain
    (and no flush). With lookups the first sendable page tells, as ``poll`` reads it anyway."""
    if rt.encoder.lookups:
        return len(next(sendable_pages(rt, BREAK_EVEN), []))
    return rt.source.count_pending() - rt.state.count_rejects(rt.name)


def poll(rt: PipelineRuntime) -> int:
    """Buffer every sendable pending row; a key already buffered keeps its first-seen time."""
    rows = next(sendable_pages(rt, BREAK_EVEN), [])
    rt.state.buffer_add(rt.name, [r.key_text for r in rows], rt.clock.now())
    return len(rows)


def flush_due(rt: PipelineRuntime, run: TickRun | None = None) -> RunCounts:
    """Flush what is due among the buffered keys whose own retry backoff has passed."""
    now = rt.clock.now()
    buffered, oldest = rt.state.buffer_stats(rt.name, ready_at=now)
    tun = rt.tunables
    decision = decide_flush(buffered, oldest, now, tun.flush_size, tun.max_delay, tun.poll_interval)
    if decision.rows == 0:
        return RunCounts()
    keys = rt.state.buffer_keys(rt.name, decision.rows, ready_at=now)
    counts = RunCounts()
    for start in range(0, len(keys), rt.tunables.flush_size):
        if rt.stop.is_set():
            break  # the rest stays buffered in the state store for the next start
        try:
            part = keys[start : start + rt.tunables.flush_size]
            counts = counts + flush(rt, part, decision.reason, run)
        except BudgetExceeded:
            if not counts.sent:
                raise
            # What went is kept and the tick succeeds: sending did resume. The rest waits in
            # the buffer and the next tick, refused before it sends, starts a new episode.
            break
    return counts


def flush(rt: PipelineRuntime, keys: list[str], reason: str, run: TickRun | None) -> RunCounts:
    """Send these buffered keys' current versions through Upsert and apply the outcomes; the
    tick's ``run`` starts here (after the budget allowed it) unless it has."""
    rows = sendable(rt, rt.source.fetch_rows(keys, pending_only=True))
    plan = plan_backlog(len(rows))
    ensure_affordable(rt.state, rt.clock, rt.tunables, plan.credits)
    with nullcontext() if run is None or not rows else run.sending("realtime"):
        return _send_flush(rt, keys, rows, reason, plan)


def _send_flush(
    rt: PipelineRuntime, keys: list[str], rows: list[PendingRow], reason: str, plan: Plan
) -> RunCounts:
    logger.info(
        "flushing %d rows (%s): %s",
        len(rows),
        reason,
        plan.reason,
        extra={
            "event": "flush_sent",
            "pipeline": rt.name,
            "rows": len(rows),
            "credits": plan.credits,
        },
    )
    counts, retry = send_records(rt, rows) if rows else (RunCounts(), set())
    crash_point("after_flush_applied")
    # Keys that went (or no longer need to go) leave the buffer; transient ones stay, oldest,
    # but each waits for its own backoff: a locked record is not re-sent at every poll.
    rt.state.buffer_remove(rt.name, [k for k in keys if k not in retry])
    if retry:
        now = rt.clock.now()
        rt.state.buffer_retry_later(
            rt.name,
            sorted(retry),
            lambda attempts: next_attempt(
                attempts, now, base=RECORD_BASE_DELAY, cap=RECORD_MAX_DELAY
            ),
        )
    return counts
