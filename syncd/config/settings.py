"""The validated, frozen settings the rest of syncd reads (built by ``load_settings``)."""

from __future__ import annotations

import difflib
import functools
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.durations import Schedule
from syncd.errors import UsageError
from syncd.model import FieldMap, Tunables

Mode = Literal["realtime", "interval"]
UTC = ZoneInfo("UTC")
LogFormat = Literal["auto", "text", "json"]
OnDelete = Literal["keep", "delete", "mark"]


class Secret:
    """A credential whose repr and str are masked; call ``reveal()`` where the value is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def display_url(url: str) -> str:
    """A database URL fit for logs: password masked, query string (which may hold one) dropped."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return "<unparseable database URL>"
    return parsed.set(query={}).render_as_string(hide_password=True)


def default_state_url() -> str:
    """SQLite under systemd's $STATE_DIRECTORY (its first entry) or ~/.local/state/syncd.

    The directory is not created here; the state store does that when it opens the database.
    """
    state_directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    directory = Path(state_directory) if state_directory else Path.home() / ".local/state/syncd"
    return f"sqlite:///{directory / 'state.db'}"


@dataclass(frozen=True)
class SourceSettings:
    """The legacy database; ``url`` may hold a password, so it is a ``Secret``."""

    url: Secret
    timezone: ZoneInfo = UTC  # zone of timestamps stored without one

    @property
    def display_url(self) -> str:
        return display_url(self.url.reveal())


@dataclass(frozen=True)
class StateSettings:
    """syncd's own store; a PostgreSQL URL may hold a password, so repr shows ``display_url``."""

    url: str = field(repr=False)

    @property
    def display_url(self) -> str:
        return display_url(self.url)

    def __repr__(self) -> str:
        return f"StateSettings(url={self.display_url!r})"


@dataclass(frozen=True)
class CrmSettings:
    """Zoho CRM: hosts (from the data-center preset unless set), credentials and limits."""

    data_center: str  # a key of presets.DATA_CENTERS, or "custom" when every host is explicit
    accounts_url: str
    api_domain: str
    upload_url: str
    org_id: str | None
    client_id: Secret
    client_secret: Secret
    refresh_token: Secret
    daily_credit_budget: int = 40000
    max_concurrency: int | None = None  # None: the edition's limit, else 5
    request_timeout: timedelta = timedelta(seconds=60)
    bulk_poll_interval: timedelta = timedelta(seconds=5)
    bulk_job_timeout: timedelta = timedelta(hours=2)
    trigger: tuple[str, ...] = ()  # sent as the upsert "trigger" list; () runs no automation
    bulk_jobs_in_flight: int = 2
    credit_reserve: int = 0  # org credits left to other integrations (X-API-CREDITS-REMAINING)
    org_daily_credits: int | None = None  # None: the edition's allowance, where Zoho tells it


@dataclass(frozen=True, kw_only=True)
class PipelineSettings:
    """One legacy table mirrored into one CRM module."""

    name: str
    table: str  # may be schema-qualified: "erp.orders"
    key: str
    flag: str
    module: str
    unique_field: str
    mode: Mode = "realtime"
    flush_size: int = 100
    max_delay: timedelta = timedelta(minutes=10)
    poll_interval: timedelta = timedelta(seconds=5)
    schedule: Schedule | None = None  # set exactly when mode is "interval"
    fields: tuple[FieldMap, ...]
    version_column: str | None = None
    batch_size: int = 25000
    # Legacy rows deleted: their CRM records are kept, deleted, or marked (mark_field := true).
    on_delete: OnDelete = "keep"
    mark_field: str | None = None  # set exactly when on_delete is "mark"
    max_deletes: int | None = None  # None: the smaller of 100 and 1 % of the known records
    delete_scan_interval: timedelta = timedelta(hours=1)
    tombstone_table: str | None = None

    @property
    def schema_name(self) -> str | None:
        schema, _, _ = self.table.rpartition(".")
        return schema or None

    @property
    def table_name(self) -> str:
        return self.table.rpartition(".")[2]


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    format: LogFormat = "auto"


NotifyKind = Literal["webhook", "slack"]
CONDITIONS = (
    "not_sending",
    "budget_reached",
    "org_reserve_reached",
    "bulk_failures",
    "rejects",
    "unfinished_jobs",
    "maybe_paid_twice",
    "deletes_waiting",
)
"""The conditions a ``[[notify]]`` target hears about (all of them unless it names some)."""


def display_webhook(url: str) -> str:
    """A webhook URL fit for logs and `status`: scheme and host only (the path is the secret)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        return "<webhook URL>"
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/****"


@dataclass(frozen=True)
class NotifyThresholds:
    """When a condition starts (defaults documented in config.example.toml)."""

    not_sending_after: timedelta = timedelta(minutes=30)
    budget_percent: int = 100  # of crm.daily_credit_budget spent in the rolling 24 h
    bulk_failures: int = 3  # failed bulk jobs in a row
    rejects_above: int = 100  # rows in a pipeline's reject list
    unfinished_jobs: int = 1  # journal entries closed as failed in the last 24 h
    maybe_paid_twice: int = 1  # bulk jobs whose create reply was lost in the last 24 h


@dataclass(frozen=True)
class NotifyTarget:
    """One ``[[notify]]`` table: where to post, and what about."""

    name: str
    kind: NotifyKind
    url: Secret
    headers: tuple[tuple[str, Secret], ...] = ()
    conditions: frozenset[str] = frozenset(CONDITIONS)
    thresholds: NotifyThresholds = field(default_factory=NotifyThresholds)

    @property
    def display_url(self) -> str:
        return display_webhook(self.url.reveal())


@dataclass(frozen=True)
class Settings:
    """Everything in one config file, validated."""

    path: Path
    source: SourceSettings
    state: StateSettings
    crm: CrmSettings
    pipelines: tuple[PipelineSettings, ...]
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    log: LogSettings = field(default_factory=LogSettings)
    notify: tuple[NotifyTarget, ...] = ()

    @functools.cached_property
    def tunables(self) -> Mapping[str, Tunables]:
        """Each pipeline's tunables, by name: built once, from the settings above only."""
        return {p.name: tunables_of(self.crm, p) for p in self.pipelines}

    def pipeline(self, name: str) -> PipelineSettings:
        """The pipeline called ``name``; ``UsageError`` (with a suggestion) if there is none."""
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        names = [pipeline.name for pipeline in self.pipelines]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f'did you mean "{close[0]}"?' if close else "configured: " + ", ".join(names)
        raise UsageError(f'{self.path.name}: no pipeline named "{name}" ({hint})')


def tunables_of(crm: CrmSettings, pipeline: PipelineSettings) -> Tunables:
    """What the engine of ``pipeline`` paces itself by, taken from the settings (which hold
    every default)."""
    return Tunables(
        batch_size=pipeline.batch_size,
        flush_size=pipeline.flush_size,
        max_delay=pipeline.max_delay,
        poll_interval=pipeline.poll_interval,
        jobs_in_flight=crm.bulk_jobs_in_flight,
        bulk_poll_interval=crm.bulk_poll_interval,
        bulk_job_timeout=crm.bulk_job_timeout,
        daily_credit_budget=crm.daily_credit_budget,
        credit_reserve=crm.credit_reserve,
    )


@dataclass(frozen=True)
class CrmOnlySettings:
    """What a command that talks to the CRM alone (``syncd import``) takes from the file."""

    path: Path
    state: StateSettings
    crm: CrmSettings
    log: LogSettings = field(default_factory=LogSettings)
