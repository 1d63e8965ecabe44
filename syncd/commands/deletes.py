"""`syncd deletes list|approve|scan`: CRM records of deleted legacy rows, and the breaker."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from syncd.app import App
from syncd.commands import chosen_pipeline, open_store, pipeline_option
from syncd.commands.context import settings_of
from syncd.config import PipelineSettings, Settings
from syncd.deletes import delete_policy, delete_round
from syncd.engine.deletes import DeleteReport, breaker, delete_limit
from syncd.state.deletes import DeleteStore


@click.group("deletes")
def deletes() -> None:
    """Legacy rows that were deleted, and their CRM records (pipelines with on_delete).

    \b
    A round never deletes (or marks) more than max_deletes records without approval: when more
    legacy rows are gone at once (a truncated or mis-pointed table?), they all wait here.
    """


def _pipeline(settings: Settings, name: str | None) -> PipelineSettings:
    pipeline = settings.pipeline(chosen_pipeline(settings, name))
    if pipeline.on_delete == "keep":
        raise click.UsageError(
            f'pipeline {pipeline.name} has on_delete = "keep" (the default): its deleted rows '
            'keep their CRM records; set on_delete = "delete" or "mark" to change that'
        )
    return pipeline


@deletes.command("list")
@pipeline_option
@click.option("--limit", default=50, show_default=True, help="How many to show (oldest first).")
@click.pass_context
def list_deletes(ctx: click.Context, pipeline_name: str | None, limit: int) -> None:
    """Pending deletes: key, CRM record id, since when, approved or waiting."""
    settings = settings_of(ctx)
    pipeline = _pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        state = DeleteStore(store)
        every = state.pending(pipeline.name)
        max_deletes = delete_limit_of(pipeline, state)
    finally:
        store.close()
    _, held = breaker(every, max_deletes)
    approved = sum(p.approved_at is not None for p in every)
    click.echo(
        f"{len(every):,} pending delete(s) in pipeline {pipeline.name} "
        f"(on_delete = {pipeline.on_delete}; {approved:,} approved; max_deletes {max_deletes:,})"
    )
    if held:
        click.echo(
            f"{held:,} wait for approval: more than max_deletes at once. Check the legacy table, "
            "then `syncd deletes approve --all` (or name the keys)"
        )
    if every:
        click.echo(f"{'KEY':<20} {'CRM RECORD':<20} {'SINCE':<17} {'STATE':<9} TRIES  LAST ERROR")
    for item in every[:limit]:
        state_text = "approved" if item.approved_at is not None else "waiting"
        click.echo(
            f"{item.key:<20} {item.record_id:<20} {item.found_at:%Y-%m-%d %H:%M} "
            f"{state_text:<9} {item.attempts:>5}  {item.last_error or ''}"
        )


def delete_limit_of(pipeline: PipelineSettings, state: DeleteStore) -> int:
    policy = delete_policy(pipeline)
    assert policy is not None
    return delete_limit(policy, state.known_records(pipeline.name))


@deletes.command("approve")
@pipeline_option
@click.option("--all", "approve_all", is_flag=True, help="Approve every pending delete.")
@click.argument("keys", nargs=-1)
@click.pass_context
def approve(
    ctx: click.Context, pipeline_name: str | None, approve_all: bool, keys: tuple[str, ...]
) -> None:
    """Let pending deletes go past the breaker (the daemon sends them within a minute)."""
    if approve_all == bool(keys):
        raise click.UsageError("name the keys to approve, or give --all (not both)")
    settings = settings_of(ctx)
    pipeline = _pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        state = DeleteStore(store)
        pending = {p.key for p in state.pending(pipeline.name)}
        unknown = [k for k in keys if k not in pending]
        if unknown:
            raise click.ClickException(
                f"not pending in pipeline {pipeline.name}: {', '.join(unknown[:10])}"
                + (" …" if len(unknown) > 10 else "")
                + " (see `syncd deletes list`); nothing approved"
            )
        done = state.approve(pipeline.name, None if approve_all else list(keys), store_now())
    finally:
        store.close()
    click.echo(f"approved {done:,} delete(s) in pipeline {pipeline.name}")


def store_now() -> datetime:
    return datetime.now(UTC)


@deletes.command("scan")
@pipeline_option
@click.pass_context
def scan(ctx: click.Context, pipeline_name: str | None) -> None:
    """Run one delete round now: a full reconcile pass, then the deletes allowed or approved.

    Holds the pipeline's lease like the daemon, so it refuses while `syncd run` holds it.
    """
    settings = settings_of(ctx)
    pipeline = _pipeline(settings, pipeline_name)
    with App.open(settings) as app, app.pipeline_lease(pipeline.name):
        report = delete_round(app, pipeline, force_scan=True)
    assert report is not None
    _print_report(pipeline, report)


def _print_report(pipeline: PipelineSettings, report: DeleteReport) -> None:
    verb = "marked" if pipeline.on_delete == "mark" else "deleted"
    click.echo(
        f"pipeline {pipeline.name}: compared {report.compared:,} key(s), found {report.found:,} "
        f"deleted row(s); {report.done:,} CRM record(s) {verb}, {report.failed:,} failed"
    )
    if report.came_back:
        click.echo(f"{report.came_back:,} key(s) are back in the legacy table: not {verb}")
    if report.held:
        click.echo(
            f"{report.held:,} wait for approval (more than max_deletes = {report.limit:,}): "
            "`syncd deletes list`, then `syncd deletes approve`"
        )
    if report.skipped_for_budget:
        click.echo("the daily credit budget does not allow them now; they wait")


COMMANDS = [deletes]
