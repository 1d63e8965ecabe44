"""`syncd db upgrade|current`: the state store's migrations."""

from __future__ import annotations

import click

from syncd.commands.context import settings_of
from syncd.state import migrate
from syncd.state.store import StateStore


@click.group("db")
def db() -> None:
    """Manage syncd's own state store (its tables and migrations)."""


@db.command("upgrade")
@click.pass_context
def upgrade(ctx: click.Context) -> None:
    """Apply pending migrations to the state store."""
    settings = settings_of(ctx)
    store = StateStore.open(settings.state.url, upgrade=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    where = settings.state.display_url
    if before == after:
        click.echo(f"state store {where} is up to date (revision {after})")
    else:
        click.echo(f"state store {where} upgraded: {before or 'empty'} -> {after}")


@db.command("current")
@click.pass_context
def current(ctx: click.Context) -> None:
    """Show the state store's revision and the newest one this syncd knows."""
    settings = settings_of(ctx)
    store = StateStore.open(settings.state.url, upgrade=False)
    try:
        revision = store.revision()
    finally:
        store.close()
    click.echo(f"current: {revision or 'empty'}  head: {migrate.head_revision()}")


COMMANDS = [db]
