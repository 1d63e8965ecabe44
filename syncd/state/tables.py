"""The state store's schema, defined once. Alembic migrations are generated from this metadata."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite keeps no zone, so one is attached on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("syncd passes only timezone-aware datetimes to the state store")
        utc = value.astimezone(UTC)
        # SQLite compares timestamps as text: store one naive UTC form so ordering holds.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

KEY = String(255)  # legacy keys are stored as text: the CRM unique field holds them as text

runs = Table(
    "syncd_runs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # initial | realtime | interval
    Column("status", String(20), nullable=False),  # running | succeeded | partial | failed
    Column("host", String(255), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("sent", Integer, nullable=False, default=0),
    Column("confirmed", Integer, nullable=False, default=0),
    Column("rejected", Integer, nullable=False, default=0),
    Column("retried", Integer, nullable=False, default=0),
    Column("stale", Integer, nullable=False, default=0),
    Column("credits", Integer, nullable=False, default=0),
    Column("error", Text),
    Index("ix_syncd_runs_pipeline_started", "pipeline", "started_at"),
)

# The bulk-job journal: a row exists before a job is waited on, so a restart polls and applies
# the job instead of paying for it again. ``manifest`` maps each key to the content hash that was
# sent, which is what the compare-and-set needs after a crash.
bulk_jobs = Table(
    "syncd_bulk_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("pipeline", String(100), nullable=False),
    Column("run_id", BigInteger),
    Column("state", String(20), nullable=False),  # syncd.model.JobState
    Column("job_id", String(64)),
    Column("file_path", Text, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("error", Text),
    Index("ix_syncd_bulk_jobs_pipeline_state", "pipeline", "state"),
)

buffer = Table(
    "syncd_buffer",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    # A key Zoho answered with a transient failure (RECORD_LOCKED, UNPROCESSED) waits for its
    # own backoff: consecutive failures, and the time before which it is not sent again.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("not_before", UtcDateTime()),
    Index("ix_syncd_buffer_pipeline_first_seen", "pipeline", "first_seen_at"),
)

rejects = Table(
    "syncd_rejects",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("code", String(64), nullable=False),
    Column("field", String(255)),
    Column("message", Text),
    Column("content_hash", String(64), nullable=False),
    Column("first_rejected_at", UtcDateTime(), nullable=False),
    Column("last_rejected_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
)

# Rows Zoho confirmed that did not stay confirmed although the same content was sent: a third
# time in a row is a defect signal (a trigger resetting the flag, a value that reads differently
# each time), and the row is parked as a reject instead of being re-sent for ever.
unconfirmed = Table(
    "syncd_unconfirmed",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("content_hash", String(64), nullable=False),  # of what was sent
    Column("times", Integer, nullable=False),
    Column("columns", Text, nullable=False),  # the columns involved, comma-separated
    Column("last_at", UtcDateTime(), nullable=False),
)

# The record-identity map: which CRM record each legacy key owns (from every bulk result and
# records-API reply), and what was last confirmed there. A record belongs to one key only, so a
# reply naming a record another key owns is a take-over, never silently accepted.
identities = Table(
    "syncd_identities",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("record_id", String(32), nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),  # when Zoho last named this record
    Column("confirmed_at", UtcDateTime()),  # when the row was last marked synced
    Column("content_hash", String(64)),  # fingerprint of what was then confirmed
    Index("ix_syncd_identities_record", "pipeline", "record_id", unique=True),
)

# Backoff that survives a restart, per pipeline and scope ("bulk": creating bulk jobs). A scope
# with a ``next_at`` in the future is not tried again before then.
backoffs = Table(
    "syncd_backoffs",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("scope", String(100), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("next_at", UtcDateTime(), nullable=False),
    Column("last_error", Text),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# What Zoho last said of the whole org's credits (X-API-CREDITS-REMAINING): shared by every
# integration of the company, so syncd keeps a reserve of it for the others.
org_credits = Table(
    "syncd_org_credits",
    metadata,
    Column("org", String(64), primary_key=True),
    Column("remaining", Integer, nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
)

tokens = Table(
    "syncd_tokens",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("access_token", Text, nullable=False),
    Column("api_domain", String(255)),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("minted_at", UtcDateTime(), nullable=False),
)

token_mints = Table(
    "syncd_token_mints",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("cache_key", String(64), nullable=False),
    Column("minted_at", UtcDateTime(), nullable=False),
    Index("ix_syncd_token_mints_key_at", "cache_key", "minted_at"),
)

credit_ledger = Table(
    "syncd_credit_ledger",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("calls", Integer, nullable=False),
    Column("credits", Integer, nullable=False),
    Index("ix_syncd_credit_ledger_at", "at"),
)

# Who holds each pipeline, for `status`; mutual exclusion itself is the advisory/file lock.
leases = Table(
    "syncd_leases",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", UtcDateTime(), nullable=False),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
)

# Which notification conditions each [[notify]] target has been told about ("started" sent,
# "ended" not yet), so a restart neither repeats a "started" nor forgets a recovery.
alerts = Table(
    "syncd_alerts",
    metadata,
    Column("target", String(100), primary_key=True),
    Column("condition", String(200), primary_key=True),  # e.g. "rejects:orders"
    Column("started_at", UtcDateTime(), nullable=False),
    Column("summary", Text, nullable=False),
)

# Legacy rows gone from the legacy table whose CRM records are still to be deleted (or marked):
# found by the reconcile scan or the tombstone table, kept until Zoho confirms. A batch larger
# than the pipeline's max_deletes waits here for `syncd deletes approve` (``approved_at``).
pending_deletes = Table(
    "syncd_deletes",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("key", KEY, primary_key=True),
    Column("record_id", String(32), nullable=False),
    Column("found_at", UtcDateTime(), nullable=False),
    Column("approved_at", UtcDateTime()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
)

# Where the reconcile scan of each pipeline's identity map has got to, so a restart continues
# there: ``after_key`` is the last key compared (NULL: the next pass starts from the first).
delete_scans = Table(
    "syncd_delete_scans",
    metadata,
    Column("pipeline", String(100), primary_key=True),
    Column("after_key", KEY),
    Column("pass_started_at", UtcDateTime()),
    Column("last_pass_at", UtcDateTime()),  # when the last full pass ended
)

# Every running daemon, with a heartbeat: the active ones share the pipelines between them
# (each takes at most its fair share of the leases while others are alive).
hosts = Table(
    "syncd_hosts",
    metadata,
    Column("host", String(255), primary_key=True),
    Column("heartbeat_at", UtcDateTime(), nullable=False),
)
