"""`syncd import FILE.csv --module M`: a CSV file into any module, by Bulk Write, resumable.

Needs only the config's [crm] (and [state]): no legacy table, no pipeline. The file is checked
whole before anything is sent; a kill leaves its jobs in the journal, and the same command run
again applies them instead of paying for them again.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from syncd.config import CrmOnlySettings, find_config_path, load_crm_settings
from syncd.credits import BUDGET_WINDOW, BULK_JOB_CREDITS, BULK_MAX_ROWS, check_budget
from syncd.crm.bulk_csv import BulkLimits
from syncd.crm.bulk_import import OPERATIONS
from syncd.crm.client import CrmClient
from syncd.errors import BudgetExceeded, CrmFatalError, SyncdError, UsageError
from syncd.importing.files import (
    ImportSpec,
    check_records,
    fingerprint,
    merge_results,
    read_header,
    settled_records,
    write_parts,
)
from syncd.importing.run import (
    ImportRun,
    JobEvent,
    check_parts_dir,
    journal_name,
    run_import,
)
from syncd.logs import setup_logging
from syncd.state.lease import lease_for
from syncd.state.store import StateStore

logger = logging.getLogger(__name__)

RECORD_ID = "id"  # find_by may name the record id itself (reference §5.2)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--module", required=True, metavar="M", help="CRM module API name, e.g. Leads.")
@click.option(
    "--operation",
    type=click.Choice(OPERATIONS),
    default="upsert",
    show_default=True,
    help="insert: create every row; update: existing records only; upsert: both.",
)
@click.option(
    "--find-by",
    "find_by",
    metavar="FIELD",
    help="Unique field (a column of the file) that matches rows to records; needed for "
    "update and upsert.",
)
@click.option(
    "--ignore-empty",
    is_flag=True,
    help="Leave a field unchanged where its cell is empty (default: an empty cell clears it).",
)
@click.option(
    "--rows-per-job",
    type=click.IntRange(1, BULK_MAX_ROWS),
    default=BULK_MAX_ROWS,
    show_default=True,
    help="Rows per bulk job (500 credits each, whatever its size).",
)
@click.option("--dry-run", is_flag=True, help="Print the jobs and their credits; send nothing.")
@click.pass_context
def import_command(
    ctx: click.Context,
    file: Path,
    module: str,
    operation: str,
    find_by: str | None,
    ignore_empty: bool,
    rows_per_job: int,
    dry_run: bool,
) -> None:
    """Import FILE (CSV, UTF-8, header = field API names) into module M by Bulk Write.

    Per-row results go to FILE.results.csv beside it: the row, then STATUS, RECORD_ID, ERRORS.
    Exits 0 when Zoho answered every row (ADDED, UPDATED or SKIPPED), 1 when rows are left for
    a re-run of the same command, 2 for bad input.
    """
    if operation != "insert" and not find_by:
        raise UsageError(
            f"--find-by FIELD is required with --operation {operation}: the unique field "
            "(a column of the file) that matches each row to its record"
        )
    spec = ImportSpec(file.expanduser().absolute(), module, operation, find_by, ignore_empty)
    limits = BulkLimits(max_rows=rows_per_job)
    header = read_header(spec.path, limits)
    if find_by is not None and find_by not in header:
        raise UsageError(f"{spec.path}: line 1: no column {find_by!r}, the --find-by field")
    total = check_records(spec.path, header, find_by, fold=True)
    if dry_run:
        _dry_run(spec, header, total, limits)
        return
    settings = load_crm_settings(find_config_path(ctx.find_root().obj["config_path"]))
    debug = bool(ctx.find_root().obj.get("debug"))
    setup_logging("DEBUG" if debug else settings.log.level, settings.log.format)
    if not _import(spec, header, total, limits, settings):
        raise click.exceptions.Exit(1)


def _dry_run(spec: ImportSpec, header: list[str], total: int, limits: BulkLimits) -> None:
    resumed = check_parts_dir(spec, fingerprint(spec))
    settled = settled_records(spec.parts_dir) if resumed else set()
    outdir = Path(tempfile.mkdtemp(prefix="syncd-import-dry-run-"))
    parts = list(write_parts(spec.path, header, spec.find_by, outdir, skip=settled, limits=limits))
    rows = sum(len(p.records) for p in parts)
    click.echo(
        f"dry run of {spec.path.name} into {spec.module} ({_how(spec)}): {rows:,} of {total:,} "
        f"row(s) in {len(parts)} job(s), {len(parts) * BULK_JOB_CREDITS:,} credits "
        f"({BULK_JOB_CREDITS} a job, plus 1 a call for uploads, polls and result downloads)"
    )
    if settled:
        click.echo(f"  {len(settled):,} row(s) settled by an unfinished earlier run are not sent")
    for part in parts:
        click.echo(
            f"  job {part.number}: records {part.records[0]}-{part.records[-1]}, "
            f"{len(part.records):,} rows, {part.zipped_bytes:,} bytes zipped"
        )
    click.echo(f"  files written to {outdir}")
    click.echo("  nothing was sent")


def _import(
    spec: ImportSpec, header: list[str], total: int, limits: BulkLimits, settings: CrmOnlySettings
) -> bool:
    """Run the import under its own lease; True when Zoho answered every row."""
    clock = _Clock()
    print_id = fingerprint(spec)
    store = StateStore.open(settings.state.url)
    lease = lease_for(store, journal_name(spec, print_id))
    try:
        if not lease.try_acquire():
            raise UsageError(f"{spec.path}: another `syncd import` of this file is running")
        with CrmClient(settings.crm, store, store, clock, bulk_limits=limits) as crm:
            _check_budget(store, settings, clock, total, limits, spec)
            _check_module(crm, spec, header)
            run = ImportRun(
                spec,
                header,
                print_id,
                crm,
                store,
                clock,
                limits=limits,
                jobs_in_flight=settings.crm.bulk_jobs_in_flight,
                poll_interval=settings.crm.bulk_poll_interval,
                job_timeout=settings.crm.bulk_job_timeout,
                on_job=_print_job,
            )
            started = clock.now()
            try:
                run_import(run)
            except SyncdError:
                if spec.parts_dir.is_dir():
                    merge_results(spec, header)  # what is settled so far, for the operator
                raise
            credits = store.credits_spent_since(started)
        return _summary(run, merge_results(spec, header), credits)
    finally:
        lease.release()
        store.close()


def _check_module(crm: CrmClient, spec: ImportSpec, header: list[str]) -> None:
    """Every column a field of the module, and find_by one of its unique fields."""
    try:
        fields = crm.module_fields(spec.module)
    except CrmFatalError as exc:
        raise UsageError(f"module {spec.module!r} is not usable: {exc}") from None
    unknown = [name for name in header if name not in fields and name != RECORD_ID]
    if unknown:
        raise UsageError(
            f"{spec.path}: line 1: {', '.join(unknown)} not a field of {spec.module} (the "
            "header must hold field API names)"
        )
    find_by = spec.find_by
    if find_by is not None and find_by != RECORD_ID and not _unique(fields[find_by]):
        uniques = [name for name, meta in fields.items() if _unique(meta)]
        raise UsageError(
            f"--find-by {find_by}: {spec.module}.{find_by} is not a unique field, so it cannot "
            f"match rows to records (unique fields of {spec.module}: "
            f"{', '.join(uniques) or 'none'}; or use id)"
        )


def _unique(meta: Mapping[str, Any]) -> bool:
    return bool(meta.get("unique"))  # Zoho marks a field that is not unique with "unique": {}


def _check_budget(
    store: StateStore,
    settings: CrmOnlySettings,
    clock: _Clock,
    total: int,
    limits: BulkLimits,
    spec: ImportSpec,
) -> None:
    """Refuse up front an import whose jobs cannot all fit the daily budget (at least one job
    per ``rows_per_job`` rows), rather than stopping half-way."""
    left = total - len(settled_records(spec.parts_dir))
    needed = math.ceil(max(left, 0) / limits.max_rows) * BULK_JOB_CREDITS
    spent = store.credits_spent_since(clock.now() - BUDGET_WINDOW)
    budget = settings.crm.daily_credit_budget
    try:
        if needed:  # nothing left to send costs nothing, whatever was spent
            check_budget(needed=needed, spent=spent, budget=budget)
    except BudgetExceeded as exc:
        raise SyncdError(
            f"{spec.path.name}: the import needs {needed:,} credits for its jobs, but "
            f"{spent:,} of crm.daily_credit_budget {budget:,} are spent in the last 24 h: run "
            "it later, with fewer rows, or raise the budget"
        ) from exc


def _print_job(event: JobEvent) -> None:
    """One line per job, when it is settled; its creation is logged (``import_job_created``)."""
    if event.counts is None:
        logger.info(
            "import job %s created for %d rows",
            event.job_id,
            event.rows,
            extra={"event": "import_job_created", "job_id": event.job_id, "rows": event.rows},
        )
    elif event.error is not None:
        click.echo(f"job {event.part}: {event.error}; its rows go again on a re-run", err=True)
    else:
        done = ", ".join(f"{count:,} {status.lower()}" for status, count in event.counts.items())
        click.echo(f"job {event.part}: {event.rows:,} rows, {done} (bulk job {event.job_id})")


def _summary(run: ImportRun, counts: dict[str, int], credits: int) -> bool:
    spec = run.spec
    settled = sum(counts.get(status, 0) for status in ("ADDED", "UPDATED", "SKIPPED"))
    left = sum(counts.values()) - settled
    by_status = ", ".join(f"{n:,} {s.lower()}" for s, n in sorted(counts.items()))
    click.echo(f"import of {spec.path.name} into {spec.module}: {by_status}; {credits:,} credits")
    click.echo(f"  results: {spec.results_path}")
    if run.uncertain_jobs:
        click.echo(
            f"  {run.uncertain_jobs} job(s) may have been created without syncd seeing it "
            "(a lost reply or a kill during the create call): paid, maybe twice",
            err=True,
        )
    if left:
        click.echo(
            f"  {left:,} row(s) have no final answer yet; run the same command again to send "
            f"them (kept in {spec.parts_dir})",
            err=True,
        )
        return False
    shutil.rmtree(spec.parts_dir, ignore_errors=True)
    return True


def _how(spec: ImportSpec) -> str:
    return spec.operation + (f" by {spec.find_by}" if spec.find_by else "")


COMMANDS = [import_command]
