"""`syncd initial-sync`: the first full copy, with a progress bar on a terminal."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import click

from syncd.app import App
from syncd.commands.context import settings_of
from syncd.commands.progress import progress_bar
from syncd.config import PipelineSettings
from syncd.credits import upsert_cost
from syncd.engine import dryrun
from syncd.engine.backoff import BULK_SCOPE
from syncd.engine.lookups import count_waiting, lookup_fields, waits_for
from syncd.engine.runs import run_drain
from syncd.logs import log_context
from syncd.model import Api


@click.command("initial-sync")
@click.option("--pipeline", "pipeline_name", metavar="NAME", help="Sync one pipeline only.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Build the files and print the plan and its credit cost; send nothing.",
)
@click.pass_context
def initial_sync(ctx: click.Context, pipeline_name: str | None, dry_run: bool) -> None:
    """Copy every pending row to the CRM (bulk write, compare-and-set, rejects, resume).

    Exit code 0 only when every sendable row was confirmed.
    """
    settings = settings_of(ctx)
    pipelines = (
        [settings.pipeline(pipeline_name)] if pipeline_name else parents_first(settings.pipelines)
    )
    incomplete = 0
    if dry_run:
        outdir = Path(tempfile.mkdtemp(prefix="syncd-dry-run-"))
        with App.open(settings, workdir=outdir) as app:
            for pipeline in pipelines:
                _dry_run(app, pipeline, outdir)
        return
    with App.open(settings) as app:
        for pipeline in pipelines:
            incomplete += _sync(app, pipeline)
    if incomplete:
        raise click.exceptions.Exit(1)


def parents_first(pipelines: Sequence[PipelineSettings]) -> list[PipelineSettings]:
    """The pipelines in config order, except that a pipeline others look up goes before them
    (their rows wait for its records; sending it first spares them a second round). A lookup
    ``{ module, field }`` looks up the pipelines that sync that module."""
    ordered: dict[str, PipelineSettings] = {}

    def parents(pipeline: PipelineSettings) -> list[PipelineSettings]:
        named = {f.lookup.pipeline for f in pipeline.fields if f.lookup is not None}
        modules = {f.parent_field.module for f in pipeline.fields if f.parent_field is not None}
        return [
            p for p in pipelines if p is not pipeline and (p.name in named or p.module in modules)
        ]

    def visit(pipeline: PipelineSettings, path: frozenset[str]) -> None:
        if pipeline.name in ordered or pipeline.name in path:  # a cycle: config order decides
            return
        for parent in parents(pipeline):
            visit(parent, path | {pipeline.name})
        ordered[pipeline.name] = pipeline

    for pipeline in pipelines:
        visit(pipeline, frozenset())
    return list(ordered.values())


def _sync(app: App, pipeline: PipelineSettings) -> int:
    with app.pipeline_lease(pipeline.name):
        return _sync_leased(app, pipeline)


def _sync_leased(app: App, pipeline: PipelineSettings) -> int:
    rt = app.runtime(pipeline)
    total = rt.source.count_pending()
    started = time.monotonic()
    with log_context(pipeline=pipeline.name), progress_bar(pipeline.name, total) as update:
        result = run_drain(rt, "initial", update)
    counts = result.counts
    elapsed = time.monotonic() - started
    click.echo(
        f"\ninitial sync of {pipeline.name}: "
        f"{'done' if not result.left_pending else 'INCOMPLETE'} in {elapsed:,.1f}s"
    )
    click.echo(f"  confirmed  {counts.confirmed:>10,} rows")
    click.echo(
        f"  rejected   {counts.rejected:>10,} rows"
        + (f"  (see: syncd rejects list --pipeline {pipeline.name})" if counts.rejected else "")
    )
    if counts.stale or counts.retried:
        click.echo(
            f"  re-sent    {counts.stale + counts.retried:>10,} rows (changed meanwhile "
            "or transient)"
        )
    if lookups := lookup_fields(pipeline.fields):
        waiting = count_waiting(rt.source, rt.state, lookups, pipeline=pipeline.name)
        for parent, rows in sorted(waiting.items()):
            what, why = waits_for(parent)
            then = "they go once one has" if "." in what else "they go once it has"
            click.echo(f"  waiting    {rows:>10,} rows for {what} ({why}; {then})")
    naive = upsert_cost(counts.sent) if counts.sent else 0
    click.echo(
        f"  credits    {counts.credits:>10,}  (records API calls of 100 would cost ~{naive:,})"
    )
    if result.left_pending:
        click.echo(
            f"  {result.left_pending:,} row(s) still pending after {result.rounds} rounds; "
            "`syncd run` keeps sending them",
            err=True,
        )
        backoff = app.store.backoff(pipeline.name, BULK_SCOPE)
        if backoff is not None and backoff.blocks(app.clock.now()):
            click.echo(
                f"  bulk writes wait until {backoff.next_at:%Y-%m-%d %H:%M:%S} UTC after "
                f"{backoff.failures} failed job(s) in a row ({backoff.last_error})",
                err=True,
            )
    return 1 if result.left_pending else 0


def _dry_run(app: App, pipeline: PipelineSettings, outdir: Path) -> None:
    rt = app.runtime(pipeline)
    report = dryrun.dry_run(rt)
    bulk = [p for p in report.plans if p.api is Api.BULK]
    click.echo(
        f"dry run of {pipeline.name}: {report.rows:,} row(s) to send in "
        f"{len(report.plans)} batch(es), {report.credits:,} credits"
    )
    for index, plan in enumerate(report.plans, 1):
        click.echo(f"  batch {index}: {plan.rows:,} rows by {plan.reason}")
    if report.skipped_rejects:
        click.echo(f"  {report.skipped_rejects:,} unchanged reject(s) would not be re-sent")
    for key, reason in report.not_representable[:20]:
        click.echo(f"  row {key} would be rejected: {reason}")
    if bulk:
        click.echo(f"  files written to {outdir}:")
        for file in report.files:
            click.echo(
                f"    {Path(file.path).name}: {file.rows:,} rows, "
                f"{file.zipped_bytes:,} bytes zipped"
            )
    click.echo("  nothing was sent")


COMMANDS = [initial_sync]
