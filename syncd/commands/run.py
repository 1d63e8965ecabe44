"""`syncd run`: the daemon."""

from __future__ import annotations

import click

from syncd.cli import settings_of
from syncd.daemon import Daemon


@click.command("run")
@click.pass_context
def run(ctx: click.Context) -> None:
    """Keep every pipeline in sync (the daemon; systemd Type=notify).

    Runs the initial sync first where it never completed, then realtime or interval mode.
    A second `syncd run` on the same state store waits as a standby. SIGTERM stops cleanly,
    SIGHUP reloads the config.
    """
    settings = settings_of(ctx)
    raise click.exceptions.Exit(Daemon(settings.path).run())


COMMANDS = [run]
