"""The CLI's commands, one module per command group; ``syncd.cli`` registers them.

Helpers shared by the commands that read the state store directly (rejects, jobs, lookup).
"""

from __future__ import annotations

import click

from syncd.config import Settings
from syncd.model import Identity
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


def identity_lines(identity: Identity) -> list[tuple[str, str]]:
    """(label, value) lines naming the key's CRM record and what was last confirmed there."""
    confirmed = "never"
    if identity.confirmed_at is not None:
        confirmed = identity.confirmed_at.isoformat()
        if identity.content_hash:
            confirmed += f", fingerprint {identity.content_hash}"
    return [("CRM record", identity.record_id), ("last confirmed", confirmed)]
