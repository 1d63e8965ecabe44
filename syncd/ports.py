"""The small interfaces the engine and the CRM client depend on.

Adapters (``syncd.source``, ``syncd.crm``, ``syncd.state``) implement them; the engine never
imports an adapter, so it can be read (and tested) as decisions over these ports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from syncd.model import (
    Backoff,
    BulkColumn,
    BulkFile,
    BulkJobStatus,
    BulkRow,
    Confirmation,
    CrmRecord,
    DeleteOutcome,
    FieldMap,
    FieldType,
    Identity,
    JobState,
    Outcome,
    PendingRow,
    Reject,
    RunCounts,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@dataclass(frozen=True)
class CachedToken:
    access_token: str = field(repr=False)
    api_domain: str | None
    expires_at: datetime
    minted_at: datetime | None = None  # None: unknown (then the full refresh margin applies)


class TokenCache(Protocol):
    """Where access tokens are shared between every process and thread of syncd."""

    def load_token(self, cache_key: str) -> CachedToken | None: ...

    def save_token(self, cache_key: str, token: CachedToken, minted_at: datetime) -> None: ...

    def mints_since(self, cache_key: str, since: datetime) -> int:
        """How many tokens were minted for this refresh token since ``since``."""
        ...

    def token_lock(self, cache_key: str) -> AbstractContextManager[None]:
        """Serialise refreshes across processes sharing the store."""
        ...


class CreditLedger(Protocol):
    """Every API call's cost, for the rolling 24 h budget."""

    def record_credits(self, kind: str, credits: int, at: datetime, calls: int = 1) -> None: ...

    def record_org_remaining(self, remaining: int, at: datetime) -> None:
        """Zoho's X-API-CREDITS-REMAINING: what the whole org has left."""
        ...

    def credits_spent_since(self, since: datetime) -> int: ...


class Source(Protocol):
    """The legacy table of one pipeline."""

    @property
    def confirms_concurrently(self) -> bool:
        """Whether ``mark_synced`` may run on a thread of its own while the engine writes the
        state store: true where it mostly waits for a database server (the engine then
        overlaps the two; ``syncd.engine.confirm``)."""
        ...

    def pending_batch(
        self, after_key: Any | None, limit: int, *, ahead: bool = False
    ) -> list[PendingRow]:
        """Rows with flag false and key > ``after_key``, in key order (keyset pagination).
        ``ahead``: the caller asks for the part after these at once (a source may start
        reading it now; a part it read ahead and is not asked for next is dropped)."""
        ...

    def count_pending(self) -> int: ...

    def fetch_rows(self, keys: Sequence[Any], *, pending_only: bool = False) -> list[PendingRow]:
        """Current mapped values of these keys; missing (or, if asked, synced) keys left out."""
        ...

    def mark_synced(self, rows: Sequence[PendingRow]) -> Confirmation:
        """Compare-and-set flag := true where the row still holds the values in ``rows``.

        Says which keys (as text) were marked and why the others were not.
        """
        ...

    def column_types(self) -> dict[str, FieldType]:
        """The CRM value type derived from each mapped column's SQL type."""
        ...

    def unflag(self, keys: Sequence[Any]) -> int:
        """Flag := false for these keys (text or native), so they go again; rows changed."""
        ...


class Crm(Protocol):
    """The Zoho CRM operations the engine needs."""

    def insert(self, module: str, unique_field: str, records: Sequence[CrmRecord]) -> list[Outcome]:
        """Create records (any number; chunked to 100 a call); one outcome per distinct key.
        Never touches an existing record: a duplicate value is DUPLICATE_DATA with its holder."""
        ...

    def update(
        self,
        module: str,
        unique_field: str,
        records: Sequence[CrmRecord],
        record_ids: Mapping[str, str],
    ) -> list[Outcome]:
        """Update each key's own record, by the id in ``record_ids``; one outcome per key."""
        ...

    def records_by_id(
        self, module: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """record id -> the values of ``fields``, for the ids that exist (one GET per 100)."""
        ...

    def delete_records(self, module: str, record_ids: Sequence[str]) -> list[DeleteOutcome]:
        """Delete records by id (Delete Records API, 100 a call); one outcome per id."""
        ...

    def search_records(
        self, module: str, field: str, values: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        """Each value -> the ids of the ``module`` records whose ``field`` holds it (values no
        record holds are left out). Search Records API: one call (1 credit) per 10 distinct
        values, none without values."""
        ...

    def build_bulk_files(
        self, unique_field: str, columns: Sequence[BulkColumn], rows: Iterable[BulkRow]
    ) -> Iterator[BulkFile]:
        """Stream rows into zipped CSVs within Zoho's limits (key first)."""
        ...

    def upload_bulk_file(self, file: BulkFile) -> str:
        """Upload a zipped CSV; Zoho's file id."""
        ...

    def create_bulk_job(
        self,
        module: str,
        unique_field: str,
        columns: Sequence[BulkColumn],
        file_id: str,
        rows: int | None = None,
    ) -> str:
        """Create the upsert job of an uploaded file (500 credits); the job id. Never repeated
        after an ambiguous failure (``CrmRetriableError`` with code TIMEOUT/TRANSPORT_ERROR)."""
        ...

    def bulk_job_status(self, job_id: str) -> BulkJobStatus: ...

    def bulk_job_outcomes(
        self, status: BulkJobStatus, keys: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Download and parse a completed job's result, keyed by legacy key; with ``keys`` (the
        job's file), one outcome per key, and a result naming other keys is refused."""
        ...


class RowEncoder(Protocol):
    """Turns legacy rows into CRM values (raises RowNotRepresentable for a value that can't go)."""

    @property
    def lookups(self) -> Sequence[FieldMap]:
        """The mapped fields that look up a parent pipeline's record (empty: no lookups)."""
        ...

    @property
    def parent_fields(self) -> Sequence[FieldMap]:
        """The mapped fields that look up a parent by a unique field of its module."""
        ...

    def record(
        self, row: PendingRow, parents: Mapping[str, Mapping[str, str]] | None = None
    ) -> CrmRecord:
        """``parents``: each lookup's parent pipeline (or ``Module.Field`` for a lookup by a
        field) -> (parent key or field value -> record id)."""
        ...

    def bulk_row(self, row: PendingRow) -> BulkRow: ...

    def bulk_rows(self, rows: Sequence[PendingRow]) -> list[BulkRow] | None:
        """Every row at once (faster), or None when one of them raises in ``bulk_row``."""
        ...

    def bulk_columns(self) -> list[BulkColumn]: ...


@dataclass(frozen=True)
class OpenJob:
    """A journaled bulk job the engine must finish (poll and apply) or drop."""

    id: int
    state: JobState
    job_id: str | None
    file_path: str
    manifest: dict[str, str]


class EngineState(Protocol):
    """The part of syncd's state store the engine uses."""

    def journal_prepare(
        self,
        pipeline: str,
        run_id: int | None,
        file_path: str,
        manifest: Mapping[str, str],
        now: datetime,
    ) -> int: ...

    def journal_sending(self, entry_id: int, now: datetime) -> None:
        """The create call of this entry's job goes out now."""
        ...

    def journal_created(self, entry_id: int, job_id: str, now: datetime) -> None: ...

    def journal_finish(
        self, entry_id: int, state: JobState, now: datetime, error: str | None = None
    ) -> None: ...

    def journal_open(self, pipeline: str) -> Sequence[OpenJob]: ...

    def buffer_add(self, pipeline: str, keys: Iterable[str], now: datetime) -> None: ...

    def buffer_stats(
        self, pipeline: str, ready_at: datetime | None = None
    ) -> tuple[int, datetime | None]: ...

    def buffer_keys(
        self, pipeline: str, limit: int | None = None, ready_at: datetime | None = None
    ) -> list[str]: ...

    def buffer_retry_later(
        self, pipeline: str, keys: Sequence[str], later: Callable[[int], datetime]
    ) -> None: ...

    def buffer_remove(self, pipeline: str, keys: Sequence[str]) -> None: ...

    def record_rejects(self, items: Sequence[Reject]) -> None: ...

    def reject_hashes(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]: ...

    def release_rejects(self, pipeline: str, keys: Sequence[str] | None = None) -> int: ...

    def count_rejects(self, pipeline: str) -> int: ...

    def reject_key_pages(self, pipeline: str, size: int) -> Iterator[list[str]]: ...

    def record_identities(self, pipeline: str, items: Sequence[Identity]) -> None: ...

    def record_ids(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]: ...

    def record_owners(self, pipeline: str, record_ids: Sequence[str]) -> dict[str, str]: ...

    def forget_identities(self, pipeline: str, keys: Sequence[str]) -> None: ...

    def note_unconfirmed(
        self, pipeline: str, items: Sequence[tuple[str, str, str]], now: datetime
    ) -> dict[str, int]:
        """One more "confirmed by Zoho, not synced" per (key, sent hash, columns) -> counts."""
        ...

    def clear_unconfirmed(self, pipeline: str, keys: Sequence[str]) -> None: ...

    def backoff(self, pipeline: str, scope: str) -> Backoff | None: ...

    def backoffs(self, pipeline: str, scopes: Sequence[str]) -> dict[str, Backoff]:
        """The backoffs of those of ``scopes`` that have one."""
        ...

    def backoff_failed(
        self, pipeline: str, scope: str, failures: int, next_at: datetime, error: str, now: datetime
    ) -> None:
        """``failures`` consecutive failures of ``scope``; not tried again before ``next_at``."""
        ...

    def backoff_clear(self, pipeline: str, scope: str) -> None: ...

    def start_run(self, pipeline: str, kind: str, host: str, now: datetime) -> int: ...

    def finish_run(
        self, run_id: int, status: str, counts: RunCounts, now: datetime, error: str | None = None
    ) -> None: ...

    def credits_spent_since(self, since: datetime) -> int: ...

    def record_credits(self, kind: str, credits: int, at: datetime, calls: int = 1) -> None: ...

    def org_remaining(self) -> tuple[int, datetime] | None: ...

    def count_uncertain(self, pipeline: str, since: datetime) -> int: ...
