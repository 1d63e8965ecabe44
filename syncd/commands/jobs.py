"""`syncd jobs list|forget`: the bulk-job journal, and settling an entry by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from syncd.commands import chosen_pipeline, open_store, pipeline_option
from syncd.commands.context import settings_of


@click.group("jobs")
def jobs() -> None:
    """Bulk jobs syncd journaled: open ones are finished (polled and applied) by the next
    start; ones that cannot finish are closed with their reason and their rows sent again."""


@jobs.command("list")
@pipeline_option
@click.option("--limit", default=20, show_default=True, help="How many to show, newest first.")
@click.pass_context
def list_jobs(ctx: click.Context, pipeline_name: str | None, limit: int) -> None:
    """List journal entries, newest first, with why a closed one failed."""
    settings = settings_of(ctx)
    name = chosen_pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        entries = store.journal_entries(name, limit)
    finally:
        store.close()
    click.echo(f"{len(entries)} journal entr{'y' if len(entries) == 1 else 'ies'} of {name}")
    if entries:
        click.echo(f"{'ID':>6}  {'STATE':<9} {'ZOHO JOB':<20} {'ROWS':>6}  UPDATED / REASON")
    for entry in entries:
        click.echo(
            f"{entry.id:>6}  {entry.state:<9} {entry.job_id or '-':<20} {entry.rows:>6}  "
            f"{entry.updated_at:%Y-%m-%d %H:%M:%S}" + (f"  {entry.error}" if entry.error else "")
        )


@jobs.command("forget")
@pipeline_option
@click.argument("entry_id", type=int)
@click.pass_context
def forget(ctx: click.Context, pipeline_name: str | None, entry_id: int) -> None:
    """Close open journal entry ENTRY_ID without applying it; its rows are sent again.

    Use it for a job you know Zoho will never finish. Stop the daemon first: a running one may
    be polling the job.
    """
    settings = settings_of(ctx)
    name = chosen_pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        path = store.journal_forget(
            name, entry_id, "forgotten by the operator (syncd jobs forget)", datetime.now(UTC)
        )
    finally:
        store.close()
    Path(path).unlink(missing_ok=True)
    click.echo(f"journal entry {entry_id} closed; its rows stay pending and go out again")


COMMANDS = [jobs]
