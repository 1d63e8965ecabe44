"""`syncd check`: config, legacy DB, state store and CRM, each reported on its own lines."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import click

from syncd.app import App
from syncd.commands.context import settings_of
from syncd.config import CrmSettings, Settings
from syncd.crm.api import DEFAULT_MAX_CONCURRENCY
from syncd.crm.edition import OrgLimits
from syncd.errors import SyncdError
from syncd.source.table import LegacyTable


def _mark(ok: bool) -> str:
    return click.style("ok", fg="green") if ok else click.style("FAILED", fg="red", bold=True)


def _warn(text: str) -> None:
    first, *rest = text.splitlines()
    click.echo(f"    {click.style('warning', fg='yellow')}: {first}")
    for line in rest:
        click.echo(f"    {line}")


def secrets_exposed(path: Path) -> bool:
    """True when others may read a config file that holds a secret inline (not ${ENV}/_file)."""
    try:
        if not path.stat().st_mode & stat.S_IROTH:
            return False
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    crm = raw.get("crm", {})
    inline = [crm.get(k) for k in ("client_secret", "refresh_token")]
    url = str(raw.get("source", {}).get("url", ""))
    has_password = "@" in url and ":" in url.split("@")[0].split("//")[-1]
    inline.append(url if has_password else None)
    return any(isinstance(v, str) and v and "${" not in v for v in inline)


@click.command("check")
@click.option("--pipeline", "pipeline_name", metavar="NAME", help="Check one pipeline only.")
@click.option("--skip-crm", is_flag=True, help="Do not contact Zoho (offline check).")
@click.pass_context
def check(ctx: click.Context, pipeline_name: str | None, skip_crm: bool) -> None:
    """Validate the config and reach the legacy DB, the state store and the CRM."""
    settings = settings_of(ctx)
    pipelines = [settings.pipeline(pipeline_name)] if pipeline_name else list(settings.pipelines)
    click.echo(f"config   {settings.path}: {_mark(True)} ({len(settings.pipelines)} pipeline(s))")
    if secrets_exposed(settings.path):
        _warn(
            f"{settings.path} holds secrets and is readable by other users: "
            f"chmod 600 {settings.path} (or use ${{ENV}} / *_file secrets)"
        )
    failures = 0
    with App.open(settings) as app:
        click.echo(
            f"state    {settings.state.display_url}: {_mark(True)} "
            f"(revision {app.store.revision()})"
        )
        for pipeline in pipelines:
            failures += _check_source(app, pipeline.name)
        if not skip_crm:
            failures += _check_crm(app, settings, [p.name for p in pipelines])
            _show_edition(app.crm.org_limits(), settings.crm)
    if failures:
        raise click.exceptions.Exit(1)
    click.echo("all checks passed")


def _check_source(app: App, name: str) -> int:
    pipeline = app.settings.pipeline(name)
    try:
        report = app.table(pipeline).inspect()
    except SyncdError as exc:
        click.echo(
            f"source   {app.settings.source.display_url} [{name}]: {_mark(False)}\n    {exc}"
        )
        return 1
    ok = not report.problems
    pending = "" if report.pending is None else f", {report.pending:,} row(s) pending"
    click.echo(
        f"source   {app.settings.source.display_url} [{name}] table {pipeline.table}: "
        f"{_mark(ok)}{pending}"
    )
    for problem in report.problems:
        click.echo(f"    {problem}")
    for warning in report.warnings:
        _warn(warning)
    return 0 if ok else 1


def _check_crm(app: App, settings: Settings, names: list[str]) -> int:
    failures = 0
    for name in names:
        pipeline = settings.pipeline(name)
        try:
            types = app.table(pipeline).column_types()
            report = app.crm.preflight(
                pipeline.module, pipeline.unique_field, pipeline.fields, types
            )
        except SyncdError as exc:
            click.echo(f"crm      {settings.crm.api_domain} [{name}]: {_mark(False)}\n    {exc}")
            failures += 1
            continue
        click.echo(
            f"crm      {settings.crm.api_domain} [{name}] org {report.org_id}, module "
            f"{report.module}: {_mark(report.ok)}"
        )
        for problem in report.problems:
            click.echo(f"    {problem}")
        for warning in report.warnings:
            _warn(warning)
        if report.key_case_insensitive:
            _check_key_case(app.table(pipeline), f"{report.module}.{pipeline.unique_field}")
        failures += 0 if report.ok else 1
    return failures


def _show_edition(limits: OrgLimits | None, crm: CrmSettings) -> None:
    """The org's edition and its limits, and the ones syncd uses (the config's win)."""
    concurrency = crm.max_concurrency or (limits.concurrency if limits else None)
    credits = crm.org_daily_credits or (limits.daily_credits if limits else None)
    if limits is None:
        click.echo("edition  unknown (Zoho did not say, or syncd does not know it)")
    else:
        click.echo(
            f"edition  {limits.edition}, {limits.users:,} user(s): concurrency limit "
            f"{limits.concurrency}, daily credits {limits.daily_credits:,}"
        )
    click.echo(
        f"    syncd uses max_concurrency {concurrency or DEFAULT_MAX_CONCURRENCY} "
        f"({_origin(crm.max_concurrency, limits)}), org_daily_credits "
        f"{f'{credits:,}' if credits else 'unknown'} ({_origin(crm.org_daily_credits, limits)})"
    )


def _origin(configured: int | None, limits: OrgLimits | None) -> str:
    if configured is not None:
        return "config"
    return "edition" if limits is not None else "default"


def _check_key_case(table: LegacyTable, unique_field: str) -> None:
    """Warn about legacy keys that differ only in case: a case-insensitive unique field
    matches them to one CRM record."""
    try:
        groups, examples = table.case_colliding_keys()
    except SyncdError as exc:
        _warn(f"could not look for keys that differ only in case: {exc}")
        return
    if not groups:
        return
    shown = ", ".join(" / ".join(repr(key) for key in group) for group in examples)
    if groups > len(examples):
        shown += f" (the first {len(examples)} shown)"
    _warn(
        f"{unique_field} ignores case, and column {table.spec.key!r} holds {groups:,} "
        f"group(s) of keys that differ only in case: {shown}\n"
        "Such keys share one CRM record in Zoho; syncd keeps the first one sent and lists the "
        "others as rejects."
    )


COMMANDS = [check]
