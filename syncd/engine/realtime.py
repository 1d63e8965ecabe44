"""One tick of realtime mode: poll pending rows into the buffer, flush what is due.

A backlog big enough for Bulk Write (a mass update) is not buffered: it is drained through
the planner at once, so 80,000 changed rows cost 4 bulk jobs instead of 800 upsert calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from syncd.engine.apply import send_records, sendable, sendable_pages
from syncd.engine.backoff import RECORD_BASE_DELAY, RECORD_MAX_DELAY, next_attempt
from syncd.engine.drain import bulk_paused, check_budget, drain, recover_jobs
from syncd.engine.flush import decide_flush
from syncd.engine.planner import BREAK_EVEN, plan_backlog
from syncd.engine.runtime import PipelineRuntime
from syncd.model import Api, RunCounts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickResult:
    counts: RunCounts
    buffered: int
    mode: str  # "buffer", "bulk", or "paused" (a bulk-sized backlog waits for the backoff)


def realtime_tick(rt: PipelineRuntime, run_id: int | None = None) -> TickResult:
    """Poll, buffer, and flush full chunks now and a partial chunk once it is due.

    Bulk jobs a previous worker left in the journal (it died, or stopped mid-drain) are
    finished first: Zoho has them and they are paid for, so their rows must not go again.
    """
    recovered = recover_jobs(rt)
    backlog = rt.source.count_pending() - rt.state.count_rejects(rt.name)
    if plan_backlog(max(backlog, 0)).api is Api.BULK:
        if bulk_paused(rt):  # a bulk-sized backlog waits: upsert would cost it several times
            return TickResult(recovered, rt.state.buffer_stats(rt.name)[0], "paused")
        logger.info(
            "backlog of about %d rows: draining by bulk write",
            backlog,
            extra={"event": "realtime_mass_update", "pipeline": rt.name, "rows": backlog},
        )
        result = drain(rt, run_id)
        return TickResult(recovered + result.counts, rt.state.buffer_stats(rt.name)[0], "bulk")
    poll(rt)
    counts = recovered + flush_due(rt)
    return TickResult(counts, rt.state.buffer_stats(rt.name)[0], "buffer")


def poll(rt: PipelineRuntime) -> int:
    """Buffer every sendable pending row; a key already buffered keeps its first-seen time."""
    rows = next(sendable_pages(rt, BREAK_EVEN), [])
    rt.state.buffer_add(rt.name, [r.key_text for r in rows], rt.clock.now())
    return len(rows)


def flush_due(rt: PipelineRuntime) -> RunCounts:
    """Flush what is due among the buffered keys whose own retry backoff has passed."""
    now = rt.clock.now()
    buffered, oldest = rt.state.buffer_stats(rt.name, ready_at=now)
    decision = decide_flush(buffered, oldest, now, rt.flush_size, rt.max_delay, rt.poll_interval)
    if decision.rows == 0:
        return RunCounts()
    keys = rt.state.buffer_keys(rt.name, decision.rows, ready_at=now)
    counts = RunCounts()
    for start in range(0, len(keys), rt.flush_size):
        if rt.stop.is_set():
            break  # the rest stays buffered in the state store for the next start
        counts = counts + flush(rt, keys[start : start + rt.flush_size], decision.reason)
    return counts


def flush(rt: PipelineRuntime, keys: list[str], reason: str) -> RunCounts:
    """Send these buffered keys' current versions through Upsert and apply the outcomes."""
    rows = sendable(rt, rt.source.fetch_rows(keys, pending_only=True))
    plan = plan_backlog(len(rows))
    check_budget(rt, plan)
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
