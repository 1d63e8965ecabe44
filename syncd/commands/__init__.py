"""The CLI's commands, one module per command group; ``syncd.cli`` registers them.

Helpers shared by the commands that read the state store directly (rejects, jobs).
"""

from __future__ import annotations

import click

from syncd.config import Settings
from syncd.state.store import StateStore


def open_store(settings: Settings) -> StateStore:
    return StateStore.open(settings.state.url)


def chosen_pipeline(settings: Settings, name: str | None) -> str:
    if name:
        return settings.pipeline(name).name
    if len(settings.pipelines) == 1:
        return settings.pipelines[0].name
    raise click.UsageError("several pipelines are configured: choose one with --pipeline NAME")


pipeline_option = click.option(
    "--pipeline",
    "pipeline_name",
    metavar="NAME",
    help="Pipeline (needed when several are configured).",
)
