"""``syncd emulator``: serve the bundled Zoho CRM emulator until Ctrl-C or SIGTERM.

It prints the base URL, the credentials and a ``[crm]`` snippet, so a config can be pointed
at it to try a mapping before touching the real CRM. Heavy imports happen inside the command
so registering it does not slow the rest of the CLI down.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from syncd.emulator.settings import EmulatorSettings

_FAULT_OPTIONS = ("error_rate", "rate_limit_rate", "drop_rate", "latency_ms", "fail_jobs")


@click.command("emulator")
@click.option("--port", type=int, default=8976, show_default=True, help="0 picks a free port.")
@click.option(
    "--schema",
    "schema_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Module schema file (TOML or JSON); default: the bundled Orders module.",
)
@click.option("--daily-credits", type=int, help="Credits per rolling 24 h.")
@click.option("--concurrency", type=int, help="Concurrent CRM calls before 429.")
@click.option("--bulk-rows-per-second", type=float, help="Bulk job speed; 0 = done on first poll.")
@click.option("--token-ttl", "token_ttl_seconds", type=float, help="Access token lifetime (s).")
@click.option("--seed", type=int, help="Seed for fault injection.")
@click.option("--error-rate", type=float, help="Share of calls answered 500.")
@click.option("--rate-limit-rate", type=float, help="Share of calls answered 429.")
@click.option("--drop-rate", type=float, help="Share of connections dropped.")
@click.option("--latency-ms", type=int, help="Added latency per call.")
@click.option("--fail-jobs", type=int, help="The next N bulk jobs fail.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any EmulatorSettings field, e.g. --set job_status_spelling=INPROGRESS.",
)
def emulator_command(
    port: int, schema_path: Path | None, overrides: tuple[str, ...], **options: Any
) -> None:
    """Serve a local Zoho CRM (OAuth, records, bulk write, limits, faults) on 127.0.0.1."""
    from syncd.emulator.server import EmulatorServer

    settings = _settings(schema_path, overrides, options)
    server = EmulatorServer(settings, port=port)
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(banner(server.base_url, settings))
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("emulator stopped")


def _settings(
    schema_path: Path | None, overrides: tuple[str, ...], options: dict[str, Any]
) -> EmulatorSettings:
    from syncd.emulator.schema import SchemaError, load_schema
    from syncd.emulator.settings import EmulatorSettings, with_overrides

    faults = {k: v for k, v in options.items() if k in _FAULT_OPTIONS and v is not None}
    plain = {k: v for k, v in options.items() if k not in _FAULT_OPTIONS and v is not None}
    try:
        settings = EmulatorSettings(**plain)
        if schema_path is not None:
            settings = dataclasses.replace(settings, schema=load_schema(schema_path))
        settings = dataclasses.replace(
            settings, faults=dataclasses.replace(settings.faults, **faults)
        )
        return with_overrides(settings, dict(_pair(o) for o in overrides))
    except SchemaError as exc:
        raise click.BadParameter(str(exc), param_hint="--schema") from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(f"expected NAME=VALUE, got {text!r}", param_hint="--set")
    return name.strip(), value.strip()


def banner(base_url: str, settings: EmulatorSettings) -> str:
    """What the command prints: where it listens, the credentials, and a config snippet."""
    modules = ", ".join(
        f"{m.api_name} (unique: {', '.join(f.api_name for f in m.unique_fields) or '-'})"
        for m in settings.schema.modules
    )
    return f"""Zoho CRM emulator listening on {base_url}  (Ctrl-C to stop)

  client_id      {settings.client_id}
  client_secret  {settings.client_secret}
  refresh_token  {settings.refresh_token}
  org_id         {settings.org_id}
  modules        {modules}
  admin          {base_url}/_emulator/stats

Point a syncd config at it:

[crm]
data_center = "us"          # the three hosts below override the preset
accounts_url = "{base_url}"
api_domain = "{base_url}"
upload_url = "{base_url}/crm/v8/upload"
org_id = "{settings.org_id}"
client_id = "{settings.client_id}"
client_secret = "{settings.client_secret}"
refresh_token = "{settings.refresh_token}"
daily_credit_budget = {settings.daily_credits}
"""
