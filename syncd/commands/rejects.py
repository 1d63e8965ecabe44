"""`syncd rejects list|show|retry`: what Zoho refused, and releasing it."""

from __future__ import annotations

import click

from syncd.commands import chosen_pipeline, identity_lines, open_store, pipeline_option
from syncd.commands.context import settings_of


@click.group("rejects")
def rejects() -> None:
    """Rows Zoho refused (or syncd could not represent), kept with the reason.

    A reject is not re-sent while its row is unchanged; fixing the row in the legacy
    database sends it again on the next round. `retry` re-sends it as it is.
    """


@rejects.command("list")
@pipeline_option
@click.option("--limit", default=50, show_default=True, help="How many to show.")
@click.option("--offset", default=0, help="Skip this many (newest first).")
@click.pass_context
def list_rejects(ctx: click.Context, pipeline_name: str | None, limit: int, offset: int) -> None:
    """List rejects, newest first."""
    settings = settings_of(ctx)
    name = chosen_pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        total = store.count_rejects(name)
        items = store.list_rejects(name, limit, offset)
    finally:
        store.close()
    click.echo(f"{total:,} reject(s) in pipeline {name}")
    if items:
        click.echo(f"{'KEY':<16} {'CODE':<22} {'FIELD':<18} {'TRIES':>5}  LAST SEEN / MESSAGE")
    for item in items:
        click.echo(
            f"{item.key:<16} {item.code:<22} {item.field or '-':<18} {item.attempts:>5}  "
            f"{item.rejected_at:%Y-%m-%d %H:%M} {item.message or ''}"
        )


@rejects.command("show")
@pipeline_option
@click.argument("key")
@click.pass_context
def show(ctx: click.Context, pipeline_name: str | None, key: str) -> None:
    """Show one reject in full, with the key's CRM record when syncd knows it."""
    settings = settings_of(ctx)
    name = chosen_pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        item = store.get_reject(name, key)
        identity = store.identity(name, key) if item is not None else None
    finally:
        store.close()
    if item is None:
        raise click.ClickException(f"no reject with key {key!r} in pipeline {name}")
    for label, value in (
        ("pipeline", item.pipeline),
        ("key", item.key),
        ("code", item.code),
        ("field", item.field or "-"),
        ("message", item.message or "-"),
        ("attempts", item.attempts),
        ("last rejected", item.rejected_at.isoformat()),
        ("content hash", item.content_hash),
        *(identity_lines(identity) if identity is not None else ()),
    ):
        click.echo(f"{label:>14}: {value}")
    click.echo(
        "\nFix the row in the legacy database and it is sent again on the next round; "
        f"or: syncd rejects retry --pipeline {name} {key}"
    )


@rejects.command("retry")
@pipeline_option
@click.argument("keys", nargs=-1)
@click.option("--all", "all_keys", is_flag=True, help="Release every reject of the pipeline.")
@click.pass_context
def retry(
    ctx: click.Context, pipeline_name: str | None, keys: tuple[str, ...], all_keys: bool
) -> None:
    """Release rejects so their rows are sent again as they are."""
    if not keys and not all_keys:
        raise click.UsageError("name the KEYS to release, or pass --all")
    settings = settings_of(ctx)
    name = chosen_pipeline(settings, pipeline_name)
    store = open_store(settings)
    try:
        released = store.release_rejects(name, None if all_keys else list(keys))
    finally:
        store.close()
    click.echo(
        f"released {released} reject(s) of pipeline {name}; they go out on the next "
        "round (`syncd run`, or `syncd initial-sync`)"
    )


COMMANDS = [rejects]
