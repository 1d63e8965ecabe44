"""`syncd run`: the daemon."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import click

from syncd.commands.context import settings_of
from syncd.config.durations import DURATION_HINT, parse_duration
from syncd.daemon.service import STOP_TIMEOUT, Daemon


def _duration(_ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise click.BadParameter(f"must be {DURATION_HINT}", param=param) from None


@click.command("run")
@click.option(
    "--stop-timeout",
    default=f"{int(STOP_TIMEOUT.total_seconds())}s",
    show_default=True,
    callback=_duration,
    metavar="DURATION",
    help="On SIGTERM, how long the flush in flight may take before syncd exits anyway "
    "(what Zoho did not confirm stays pending). Keep it below systemd's TimeoutStopSec.",
)
@click.pass_context
def run(ctx: click.Context, stop_timeout: timedelta) -> None:
    """Keep every pipeline in sync (the daemon; systemd Type=notify).

    Runs the initial sync first where it never completed, then realtime or interval mode.
    A second `syncd run` on the same state store waits as a standby. SIGTERM stops cleanly,
    SIGHUP reloads the config.
    """
    settings = settings_of(ctx)
    daemon = Daemon(settings.path, stop_timeout=stop_timeout)
    code = daemon.run()
    if daemon.abandoned:
        # A call still hangs on a worker thread; the interpreter would wait for it at exit.
        # Nothing is lost by not waiting: unconfirmed rows keep flag false.
        logging.shutdown()
        os._exit(code)
    raise click.exceptions.Exit(code)


COMMANDS = [run]
