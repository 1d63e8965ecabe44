"""The small interfaces the engine and the CRM client depend on.

Adapters (``syncd.source``, ``syncd.crm``, ``syncd.state``) implement them; the engine never
imports an adapter, so it can be read (and tested) as decisions over these ports.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from syncd.model import (
    BulkColumn,
    BulkFile,
    BulkJobStatus,
    BulkRow,
    CrmRecord,
    FieldType,
    Outcome,
    PendingRow,
)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    api_domain: str | None
    expires_at: datetime


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

    def credits_spent_since(self, since: datetime) -> int: ...


class Source(Protocol):
    """The legacy table of one pipeline."""

    def pending_batch(self, after_key: Any | None, limit: int) -> list[PendingRow]:
        """Rows with flag false and key > ``after_key``, in key order (keyset pagination)."""
        ...

    def count_pending(self) -> int: ...

    def fetch_rows(self, keys: Sequence[Any]) -> list[PendingRow]:
        """Current mapped values of these keys (flag ignored); missing keys are left out."""
        ...

    def mark_synced(self, rows: Sequence[PendingRow]) -> set[str]:
        """Compare-and-set flag := true where the row still holds the values in ``rows``.

        Returns the keys (as text) that were marked; the others changed meanwhile.
        """
        ...

    def column_types(self) -> dict[str, FieldType]:
        """The CRM value type derived from each mapped column's SQL type."""
        ...


class Crm(Protocol):
    """The Zoho CRM operations the engine needs."""

    def upsert(self, module: str, unique_field: str, records: Sequence[CrmRecord]) -> list[Outcome]:
        """Upsert records (any number; chunked to 100 a call); one outcome per distinct key."""
        ...

    def build_bulk_files(
        self, unique_field: str, columns: Sequence[BulkColumn], rows: Iterable[BulkRow]
    ) -> Iterator[BulkFile]:
        """Stream rows into zipped CSVs within Zoho's limits (key first)."""
        ...

    def start_bulk_job(
        self, module: str, unique_field: str, columns: Sequence[BulkColumn], file: BulkFile
    ) -> str:
        """Upload the file and create the upsert job; returns the job id."""
        ...

    def bulk_job_status(self, job_id: str) -> BulkJobStatus: ...

    def bulk_job_outcomes(self, status: BulkJobStatus) -> list[Outcome]:
        """Download and parse a completed job's result, keyed by legacy key."""
        ...
