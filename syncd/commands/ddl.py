"""`syncd ddl`: the index and trigger DDL for the legacy table, to review and run by hand."""

from __future__ import annotations

import click

from syncd.app import App
from syncd.commands.context import settings_of
from syncd.deletes import tombstones


@click.command("ddl")
@click.option("--pipeline", "pipeline_name", metavar="NAME", help="One pipeline only.")
@click.pass_context
def ddl(ctx: click.Context, pipeline_name: str | None) -> None:
    """Print DDL for the legacy table: an index for pending rows, and a trigger that sets the
    flag false on every insert and on every change of a mapped column; with tombstone_table,
    that table and an AFTER DELETE trigger writing each deleted row's key into it.

    syncd never runs DDL on the legacy database; review this and run it yourself.
    """
    settings = settings_of(ctx)
    pipelines = [settings.pipeline(pipeline_name)] if pipeline_name else list(settings.pipelines)
    with App.open(settings) as app:
        for pipeline in pipelines:
            table = app.table(pipeline)
            click.echo(f"-- pipeline {pipeline.name}: index for `{pipeline.flag} = false` lookups")
            click.echo(table.index_ddl())
            click.echo(f"\n-- pipeline {pipeline.name}: keep {pipeline.flag} false after changes")
            click.echo(table.trigger_ddl() + "\n")
            if (found := tombstones(app, pipeline)) is not None:
                click.echo(
                    f"-- pipeline {pipeline.name}: note deleted keys in {found.name} "
                    "(on_delete acts on them within a minute; syncd clears what it read)"
                )
                click.echo(found.ddl() + "\n")


COMMANDS = [ddl]
