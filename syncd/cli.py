"""The `syncd` command line: parse, wire, call the engine, print for humans.

This is the one place that turns a ``SyncdError`` into a message and an exit code
(0 success, 1 runtime failure, 2 bad config or usage). Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import NoReturn

import click

from syncd import __version__
from syncd.commands import (
    check,
    db,
    ddl,
    deletes,
    demo,
    import_csv,
    initial,
    jobs,
    lookup,
    rejects,
    run,
    status,
)
from syncd.emulator.cli import emulator_command
from syncd.errors import SyncdError

logger = logging.getLogger(__name__)

_debug = False


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"syncd: {message}", err=True)
    sys.exit(code)


def _causes(exc: BaseException) -> Iterator[str]:
    seen = exc.__cause__
    while seen is not None:
        if not isinstance(seen, SyncdError):
            yield f"{type(seen).__name__}: {seen}".splitlines()[0]
        seen = seen.__cause__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="syncd")
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    envvar=None,
    help="Config file (default: $SYNCD_CONFIG, then /etc/syncd/config.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """syncd keeps a legacy SQL table mirrored into a Zoho CRM module.

    \b
    Start here:  syncd demo              (the whole flow, no account needed)
    Then:        syncd check -c FILE     (config, legacy DB, state store, CRM)
                 syncd initial-sync      (first full copy, by bulk write)
                 syncd run               (the daemon; see deploy/syncd.service)
    """
    global _debug
    _debug = debug
    ctx.obj = {"config_path": config_path, "debug": debug}


GC_THRESHOLD = (100_000, 10, 10)
"""The cyclic collector runs once the containers allocated outnumber those freed by this much
(700 by default). An initial sync makes millions of short-lived rows, dicts and outcomes that
reference counting frees; with 700 the collector ran every few hundred rows and walked every
live row each time: 25 % of syncd's CPU at 200,000 rows. At 25,000 it still ran 160 times in
an initial sync of 1,000,000 rows (1 s of CPU), set off by each job's 25,000 rows, outcomes
and identities made at once; at 100,000 it runs on garbage, not on a job's working set: 2
runs, 0.04 s (BENCHMARKS.md). Cycles are still collected, in batches: syncd's statements are
built once where they would carry large values, and its CRM answers are freed from httpx's
cycle (``syncd.crm.auth.unbound``), so what waits for the collector is small."""


def _tune_gc() -> None:
    """Freeze what start-up made (modules, the CLI: never garbage) out of the collector's
    walks, and collect every ``GC_THRESHOLD`` allocations. Once per process: a test calling
    ``main`` again must not freeze its own garbage."""
    if gc.get_threshold() != GC_THRESHOLD:
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to one line and an exit code."""
    # Every file and directory syncd creates (state store, bulk and dry-run files, lock files)
    # is its user's only: they hold tokens and order data. Set once, before anything is written.
    os.umask(0o077)
    _tune_gc()
    try:
        # Without standalone mode click returns the code of a click.exceptions.Exit.
        code = cli.main(args=argv, prog_name="syncd", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SyncdError as exc:
        if _debug:
            logger.exception("failed")
        lines = str(exc).splitlines() or [type(exc).__name__]
        for line in lines:
            click.echo(f"syncd: {line}", err=True)
        said = str(exc)
        for cause in _causes(exc):
            # "(psycopg.OperationalError) text" is SQLAlchemy's wrapper around the same text.
            detail = re.sub(r"^\([\w.]+\)\s*", "", cause.split(": ", 1)[-1])
            if detail not in said:  # drivers often wrap one error in a copy of itself
                said += "\n" + cause
                click.echo(f"  caused by {cause}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:  # last resort: an unexpected error is a bug; say so plainly
        if _debug:
            raise
        fail(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback "
            "and please report it)"
        )
    sys.exit(code if isinstance(code, int) else 0)


def _set_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_root().obj["config_path"] = value


def _accept_config_everywhere(command: click.Command) -> None:
    """`syncd check -c FILE` works as well as `syncd -c FILE check`."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_config_everywhere(sub)
        return
    command.params.append(
        click.Option(
            ["-c", "--config"],
            metavar="FILE",
            expose_value=False,
            callback=_set_config,
            is_eager=True,
            help="Config file (default: $SYNCD_CONFIG, then /etc/syncd/config.toml).",
        )
    )


def register(*commands: click.Command, reads_config: bool = True) -> None:
    for command in commands:
        if reads_config:
            _accept_config_everywhere(command)
        cli.add_command(command)


def _register_commands() -> None:
    for module in (check, db, ddl, initial, run, status, rejects, lookup, jobs, import_csv):
        register(*module.COMMANDS)
    register(*deletes.COMMANDS)
    # The emulator's own command; its heavy imports happen only when it runs.
    # The demo writes its own config, and the emulator needs none.
    register(*demo.COMMANDS, emulator_command, reads_config=False)


_register_commands()
