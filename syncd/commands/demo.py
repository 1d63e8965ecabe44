"""`syncd demo`: the whole flow on a made-up order system and the bundled emulator."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from syncd.commands.progress import progress_bar
from syncd.engine.progress import Progress, ProgressCallback
from syncd.logs import setup_logging

if TYPE_CHECKING:
    from syncd.demo import report
    from syncd.demo.scenario import DemoResult

DEFAULT_KEEP = Path(".syncd-demo")


class ConsoleNarrator:
    """Steps and lines on stdout; the progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self._steps = 0
        self.width = min(shutil.get_terminal_size((100, 24)).columns, 100)

    def step(self, title: str) -> None:
        self._steps += 1
        click.echo(click.style(f"\n{self._steps}. {title}", bold=True))

    def say(self, text: str) -> None:
        for line in text.splitlines():
            click.echo(self.wrap(line, "   "))

    def wrap(self, line: str, indent: str) -> str:
        """Wrap to the terminal; continuation lines indent past the line's own indent."""
        own = line[: len(line) - len(line.lstrip())]
        if line.lstrip().startswith("["):  # "[  1.2s] ..." lines of the realtime step
            own += " " * (line.index("]") + 2)
        return textwrap.fill(
            line,
            self.width,
            initial_indent=indent,
            subsequent_indent=indent + own + "  ",
            break_on_hyphens=False,
            break_long_words=False,
        )

    @contextmanager
    def progress(self, total: int) -> Iterator[ProgressCallback]:
        if sys.stderr.isatty():
            with progress_bar("orders", total) as update:
                yield update
            return
        shown = [0]

        def line(progress: Progress) -> None:
            done, credits = progress.settled, progress.counts.credits
            if done != shown[0]:
                shown[0] = done
                self.say(f"{done:,} of {total:,} rows settled, {credits:,} credits so far")

        yield line


@click.command("demo")
@click.option(
    "--rows",
    type=click.IntRange(2_000, 200_000),
    default=30_000,
    show_default=True,
    help="Orders in the legacy table.",
)
@click.option(
    "--keep",
    metavar="DIR",
    is_flag=False,
    flag_value=str(DEFAULT_KEEP),
    default=None,
    help=f"Keep legacy.db, state.db and config.toml in DIR (default {DEFAULT_KEEP}).",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the made-up data.")
@click.option(
    "--max-delay",
    "max_delay",
    type=click.IntRange(1, 60),
    default=10,
    show_default=True,
    metavar="SECONDS",
    help="How long a lone change may wait in realtime mode (production default: 10 minutes).",
)
@click.pass_context
def demo(ctx: click.Context, rows: int, keep: str | None, seed: int, max_delay: int) -> None:
    """See syncd work, with no Zoho account: a made-up legacy orders table is mirrored into
    the bundled Zoho CRM emulator, first by an initial sync, then in realtime mode while the
    "shop" edits rows. Ends with what it cost and a check of the result (well under a minute).

    Exit code 0 when the CRM mirrors the table, 1 when the check finds a difference.
    """
    # Imported here: the emulator and the daemon are heavy, and only this command needs them.
    from syncd.demo.scenario import DemoOptions, check_keep_directory, run_demo

    setup_logging("DEBUG" if ctx.find_root().obj["debug"] else "WARNING", "text")
    keep_dir = Path(keep).expanduser() if keep is not None else None
    if keep_dir is not None:
        try:
            check_keep_directory(keep_dir)
        except FileExistsError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(click.style("syncd demo", bold=True) + ": a legacy orders table → Zoho CRM")
    options = DemoOptions(rows=rows, seed=seed, max_delay_seconds=max_delay, keep=keep_dir)
    narrator = ConsoleNarrator()
    result = run_demo(options, narrator)
    _print_report(result, narrator)
    if not result.ok:
        raise click.exceptions.Exit(1)


def _print_report(result: DemoResult, narrator: ConsoleNarrator) -> None:
    facts, check = result.facts, result.verification
    assert facts is not None and check is not None
    click.echo(click.style("\nWhat happened", bold=True))
    out = _Report(narrator)
    _rows(out, facts)
    _credits(out, facts)
    _timing(out, result)
    _check(out, check)
    _next(out, result)


class _Report:
    """Lines of the report: a label column, then text wrapped under itself."""

    def __init__(self, narrator: ConsoleNarrator) -> None:
        self.width = narrator.width

    def line(self, label: str, text: str, hang: int = 0) -> None:
        click.echo(
            textwrap.fill(
                text,
                self.width,
                initial_indent=f"   {label:<11}",
                subsequent_indent=" " * (14 + hang),
                break_on_hyphens=False,
                break_long_words=False,
            )
        )

    def more(self, text: str, hang: int = 0) -> None:
        self.line("", text, hang)


def _rows(out: _Report, facts: report.Facts) -> None:
    rejected = sum(g.count for g in facts.rejects)
    width = len(f"{facts.rows:,}")
    out.line("Rows", f"{facts.rows:>{width},} in the legacy table")
    out.more(f"{facts.synced:>{width},} confirmed by Zoho and flagged synced")
    out.more(f"{rejected:>{width},} refused by Zoho, kept in the reject list; by reason:")
    fields = max((len(g.field or "-") for g in facts.rejects), default=0)
    codes = max((len(g.code) for g in facts.rejects), default=0)
    for group in facts.rejects:
        value = "empty" if group.example_value is None else repr(group.example_value)
        example = f"e.g. order {group.example_key}"
        if group.example_column:
            example += f": {value}"
        said = group.message or ""
        if said and not said.startswith(group.code):  # bulk results only repeat the code
            example += f' (Zoho: "{said}")'
        out.more(
            f"{group.count:>{width},}  {group.code:<{codes}}  {group.field or '-':<{fields}}  "
            f"{example}",
            hang=width + codes + fields + 6,
        )


def _credits(out: _Report, facts: report.Facts) -> None:
    initial = sum(credits for _, credits in facts.initial_calls.values())
    realtime = sum(credits for _, credits in facts.realtime_calls.values())
    out.line("Credits", f"{facts.credits:,} spent: initial sync {initial:,}, realtime {realtime:,}")
    out.more(
        f"{facts.naive_credits:,} to send the same {facts.rows_sent:,} rows in upsert calls of "
        f"100 ({facts.naive_calls:,} calls, 10 credits each)"
    )
    listed = [f"{count:,} {kind} ({credits:,})" for kind, (count, credits) in facts.calls.items()]
    out.line("API calls", ", ".join(listed).replace(")", " credits)", 1))


def _timing(out: _Report, result: DemoResult) -> None:
    realtime = result.realtime
    if realtime is not None and realtime.flushes:
        sizes = [f"{n:,}" for n in realtime.flushes]
        listed = ", ".join(sizes[:-1]) + (" and " if len(sizes) > 1 else "") + sizes[-1]
        out.line("Realtime", f"{len(sizes)} flushes of {listed} rows")
    timing = f"{result.seconds:.0f}s in all: initial sync {result.initial_seconds:.1f}s"
    if realtime is not None:
        timing += f", realtime {realtime.seconds:.1f}s"
    out.line("Time", timing)


def _check(out: _Report, check: report.Verification) -> None:
    if check.ok:
        out.line(
            "Check",
            f"✓ the CRM holds one record per synced row ({check.crm_records:,}), "
            "equal to the legacy row",
        )
        out.more(f"✓ every other row ({check.rejects:,}) is a reject; nothing is left to send")
        return
    out.line("Check", "✗ the CRM does not mirror the legacy table:")
    for problem in check.problems:
        out.more(f"- {problem}")
    if check.more_problems:
        out.more(f"... and {check.more_problems:,} more")


def _next(out: _Report, result: DemoResult) -> None:
    click.echo(click.style("\nWhere to look next", bold=True))
    if result.kept:
        config = result.directory / "config.toml"
        out.line("Files", f"kept in {result.directory}; try:")
        facts = result.facts
        example = facts.rejects[0].example_key if facts and facts.rejects else "KEY"
        for command in ("status", "rejects list", f"rejects show {example}", "ddl"):
            click.echo(f"{'':14}syncd -c {config} {command}")  # never wrapped: copy and paste
    else:
        out.line("Files", "removed (`syncd demo --keep [DIR]` keeps them)")
    out.line("Docs", "README.md: preparing the table, the Zoho self-client, the config, systemd")
    out.more("config.example.toml: every setting, with its default")
    out.line("Commands", "syncd check -c FILE: your config against your database and Zoho")
    out.more("syncd emulator: a local Zoho CRM to try your mapping on first")


COMMANDS = [demo]
