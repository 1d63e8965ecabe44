"""Wiring of the delete reconcile (``syncd.engine.deletes``) for the CLI and the daemon."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from syncd.app import App
from syncd.config import PipelineSettings
from syncd.engine.deletes import DeletePolicy, DeleteReport, breaker, delete_limit, reconcile
from syncd.engine.runtime import PipelineRuntime
from syncd.source.tombstones import Tombstones
from syncd.state.deletes import DeleteStore
from syncd.state.store import StateStore

DELETE_TICK = timedelta(minutes=1)
"""How often (at most this far apart; more often when delete_scan_interval is shorter) the
daemon runs a delete round of each pipeline with on_delete set: tombstones, a slice of the
reconcile scan (when a pass is due), and the deletes approved or allowed."""

CHUNKS_PER_TICK = 50
"""Reconcile chunks (of 1,000 keys) per daemon round: a pass over a large map is spread over
rounds, so a round never holds the pipeline for long."""


def delete_policy(pipeline: PipelineSettings) -> DeletePolicy | None:
    """The pipeline's delete settings; None when its deleted rows keep their records."""
    if pipeline.on_delete == "keep":
        return None
    return DeletePolicy(
        pipeline.on_delete,
        pipeline.mark_field,
        pipeline.max_deletes,
        pipeline.delete_scan_interval,
    )


def tombstones(app: App, pipeline: PipelineSettings) -> Tombstones | None:
    if pipeline.tombstone_table is None:
        return None
    return Tombstones(app.table(pipeline), pipeline.tombstone_table)


def delete_round(
    app: App,
    pipeline: PipelineSettings,
    rt: PipelineRuntime | None = None,
    *,
    force_scan: bool = False,
    max_chunks: int | None = None,
) -> DeleteReport | None:
    """One delete round of ``pipeline`` (None when on_delete is "keep")."""
    policy = delete_policy(pipeline)
    if policy is None:
        return None
    return reconcile(
        rt or app.runtime(pipeline),
        DeleteStore(app.store),
        app.table(pipeline),
        policy,
        tombstones(app, pipeline),
        force_scan=force_scan,
        max_chunks=max_chunks,
    )


def waiting_for_approval(store: StateStore, pipeline: PipelineSettings) -> int:
    """How many deletes of ``pipeline`` the breaker holds for approval now."""
    policy = delete_policy(pipeline)
    if policy is None:
        return 0
    state = DeleteStore(store)
    limit = delete_limit(policy, state.known_records(pipeline.name))
    return breaker(state.pending(pipeline.name), limit)[1]


def deletes_status(app: App, pipeline: PipelineSettings) -> dict[str, Any] | None:
    """For `status`: pending deletes, how many wait for approval, and the scan's progress."""
    policy = delete_policy(pipeline)
    if policy is None:
        return None
    state = DeleteStore(app.store)
    pending = state.pending(pipeline.name)
    limit = delete_limit(policy, state.known_records(pipeline.name))
    _, held = breaker(pending, limit)
    position = state.scan_position(pipeline.name)
    return {
        "on_delete": pipeline.on_delete,
        "pending": len(pending),
        "approved": sum(p.approved_at is not None for p in pending),
        "waiting_for_approval": held,
        "max_deletes": limit,
        "failing": sum(p.attempts > 0 for p in pending),
        "scan_after_key": position.after_key,
        "last_full_scan": _iso(position.last_pass_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
