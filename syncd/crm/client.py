"""``CrmClient``: syncd's only way to Zoho CRM (implements ``syncd.ports.Crm``).

One client per process, shared by every pipeline and thread: it owns one ``httpx.Client``, one
token manager and one concurrency limiter. Its parts:

    auth.py       access tokens (shared cache, mint guard)
    api.py        every request: budget, limiter, token, retries, error translation, ledger
    upsert.py     Upsert Records API
    bulk_csv.py   Bulk Write files and result parsing
    bulk.py       Bulk Write upload, job, poll, download
    preflight.py  ``syncd check`` against the CRM
    credits.py    the cost model     values.py   legacy values → Zoho values
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from syncd.credits import DELETE_MAX_RECORDS
from syncd.crm import bulk, bulk_csv, bulk_import, deletes, preflight, read, search, upsert
from syncd.crm.api import RetryPolicy, ZohoApi
from syncd.crm.auth import TokenManager
from syncd.crm.edition import OrgLimits, edition_limits
from syncd.errors import BudgetExceeded, CrmError, CrmRetriableError
from syncd.model import (
    BulkColumn,
    BulkFile,
    BulkJobStatus,
    BulkRow,
    CrmRecord,
    DeleteOutcome,
    FieldMap,
    FieldType,
    Outcome,
    OutcomeKind,
)
from syncd.ports import Clock, CreditLedger, TokenCache

if TYPE_CHECKING:
    from syncd.config import CrmSettings

logger = logging.getLogger(__name__)


class CrmClient:
    """Zoho CRM over HTTP: tokens, upsert, bulk write, retries, limits and credits."""

    def __init__(
        self,
        settings: CrmSettings,
        tokens: TokenCache,
        ledger: CreditLedger,
        clock: Clock,
        http: httpx.Client | None = None,
        *,
        retry: RetryPolicy | None = None,
        workdir: Path | None = None,
        bulk_limits: bulk_csv.BulkLimits | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``http`` defaults to a client with ``settings.request_timeout``; ``workdir`` holds
        bulk files (default: the system temp dir); ``sleep`` paces bulk-job polling."""
        self._settings, self._clock, self._sleep = settings, clock, sleep
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=settings.request_timeout.total_seconds())
        self._auth = TokenManager(settings, tokens, clock, self._http)
        self._api = ZohoApi(settings, self._auth, ledger, clock, self._http, retry or RetryPolicy())
        self._workdir = workdir
        self._bulk_limits = bulk_limits or bulk_csv.BulkLimits()
        self._org_id = settings.org_id
        self._org_lock = threading.Lock()
        self._org: preflight.OrgInfo | None = None
        self._org_failed = False
        self._limits: OrgLimits | None = None

    # -- records ---------------------------------------------------------------------------

    def upsert(self, module: str, unique_field: str, records: Sequence[CrmRecord]) -> list[Outcome]:
        """Upsert ``records`` in calls of 100; one outcome per distinct key (last version sent).

        Zoho may match a record by another unique field (``Outcome.matched_by``): the engine
        writes by ``insert`` and ``update`` instead, and this stays for tools and tests.
        """
        trigger = self._settings.trigger
        return self._in_chunks(
            records,
            lambda chunk: upsert.send_upsert(self._api, module, unique_field, chunk, trigger),
        )

    def insert(self, module: str, unique_field: str, records: Sequence[CrmRecord]) -> list[Outcome]:
        """Create ``records`` in calls of 100; a key already in the CRM is DUPLICATE_DATA."""
        trigger = self._settings.trigger
        return self._in_chunks(
            records,
            lambda chunk: upsert.send_insert(self._api, module, unique_field, chunk, trigger),
        )

    def update(
        self,
        module: str,
        unique_field: str,
        records: Sequence[CrmRecord],
        record_ids: Mapping[str, str],
    ) -> list[Outcome]:
        """Update each record's own CRM record by id, in calls of 100."""
        trigger = self._settings.trigger
        return self._in_chunks(
            records,
            lambda chunk: upsert.send_update(
                self._api, module, unique_field, chunk, record_ids, trigger
            ),
        )

    def _in_chunks(
        self,
        records: Sequence[CrmRecord],
        send: Callable[[list[CrmRecord]], list[Outcome]],
    ) -> list[Outcome]:
        """One outcome per distinct key (last version sent), in calls of 100.

        When a later call fails temporarily (or the budget runs out), the records already
        answered keep their outcomes and the rest come back as RETRY; a failure of the first
        call, and any fatal error, is raised.
        """
        distinct = upsert.collapse(records)
        outcomes: list[Outcome] = []
        for chunk in upsert.chunks(distinct):
            try:
                outcomes += send(chunk)
            except (CrmRetriableError, BudgetExceeded) as exc:
                if not outcomes:
                    raise
                code = exc.code if isinstance(exc, CrmRetriableError) else "BUDGET_EXCEEDED"
                left = distinct[len(outcomes) :]
                return outcomes + [
                    Outcome(r.key, OutcomeKind.RETRY, code=code, message=str(exc)) for r in left
                ]
        return outcomes

    def delete_records(self, module: str, record_ids: Sequence[str]) -> list[DeleteOutcome]:
        """Delete records by id in calls of 100 (Delete Records API, 1 credit a call); one
        outcome per distinct id. Workflow rules run on the deletion only when ``crm.trigger``
        names automations. A later call failing keeps the earlier answers; the rest retry."""
        distinct = list(dict.fromkeys(record_ids))
        outcomes: list[DeleteOutcome] = []
        wf_trigger = bool(self._settings.trigger)
        for start in range(0, len(distinct), DELETE_MAX_RECORDS):
            part = distinct[start : start + DELETE_MAX_RECORDS]
            try:
                outcomes += deletes.send_delete(self._api, module, part, wf_trigger=wf_trigger)
            except (CrmRetriableError, BudgetExceeded) as exc:
                if not outcomes:
                    raise
                code = exc.code if isinstance(exc, CrmRetriableError) else "BUDGET_EXCEEDED"
                left = distinct[len(outcomes) :]
                return outcomes + [
                    DeleteOutcome(i, gone=False, retry=True, code=code) for i in left
                ]
        return outcomes

    # -- bulk write ------------------------------------------------------------------------

    def build_bulk_files(
        self, unique_field: str, columns: Sequence[BulkColumn], rows: Iterable[BulkRow]
    ) -> Iterator[BulkFile]:
        """Stream rows into zipped CSVs (key first) within Zoho's limits.

        The caller owns each ``BulkFile.path`` and deletes it once the job's result is applied.
        """
        return bulk_csv.build_bulk_files(
            unique_field, columns, rows, self._workdir, self._bulk_limits
        )

    def start_bulk_job(
        self, module: str, unique_field: str, columns: Sequence[BulkColumn], file: BulkFile
    ) -> str:
        """Upload ``file`` and create its upsert job (``find_by`` = ``unique_field``); job id."""
        file_id = self.upload_bulk_file(file)
        return self.create_bulk_job(module, unique_field, columns, file_id, rows=file.rows)

    def upload_bulk_file(self, file: BulkFile) -> str:
        """Upload a zipped CSV (headers ``feature`` and ``X-CRM-ORG``); Zoho's file id."""
        return bulk.upload_file(self._api, self._settings.upload_url, self.org_id(), file)

    def create_bulk_job(
        self,
        module: str,
        unique_field: str,
        columns: Sequence[BulkColumn],
        file_id: str,
        rows: int | None = None,
    ) -> str:
        """Create the upsert job for an uploaded file (500 credits); the job id.

        Repeated only when Zoho surely did not get the request: after a lost reply it raises
        ``CrmRetriableError`` instead, since a second job would be paid for again.
        """
        request = bulk.job_request(module, unique_field, columns, file_id)
        job_id = bulk.create_job(self._api, request)
        logger.info(
            "created bulk job %s",
            job_id,
            extra={"event": "crm_bulk_job_created", "job_id": job_id, "rows": rows},
        )
        return job_id

    def bulk_job_status(self, job_id: str) -> BulkJobStatus:
        return bulk.job_status(self._api, job_id)

    def wait_bulk_job(self, job_id: str, deadline: datetime | None = None) -> BulkJobStatus:
        """Poll until COMPLETED; FAILED raises ``CrmFatalError``, the deadline (default
        ``bulk_job_timeout`` from now) ``CrmRetriableError``."""
        settings = self._settings
        return bulk.wait_job(
            self._api,
            job_id,
            deadline=deadline or self._clock.now() + settings.bulk_job_timeout,
            clock=self._clock,
            interval=settings.bulk_poll_interval,
            sleep=self._sleep,
        )

    def bulk_job_outcomes(
        self, status: BulkJobStatus, keys: Sequence[str] | None = None
    ) -> list[Outcome]:
        """Download and parse a completed job's result, keyed by legacy key.

        With ``keys`` (the file's keys) the list has exactly one outcome per key: keys missing
        from the result are RETRY. A result that stays unreadable, or names keys that were not
        in the file, raises ``CrmFatalError`` BAD_RESULT: none of it is applied.
        """
        return bulk.download_outcomes(self._api, status, keys)

    def create_import_job(
        self,
        module: str,
        operation: str,
        find_by: str | None,
        header: Sequence[str],
        file_id: str,
        *,
        ignore_empty: bool = False,
    ) -> str:
        """Create a ``syncd import`` job over an uploaded CSV whose header names the fields
        (500 credits); the job id. Never repeated after a lost reply, as ``create_bulk_job``."""
        request = bulk_import.import_job_request(
            module, operation, find_by, header, file_id, ignore_empty=ignore_empty
        )
        return bulk.create_job(self._api, request)

    def bulk_result_rows(self, status: BulkJobStatus) -> list[list[str]]:
        """A completed job's result CSV as Zoho wrote it, header first."""
        return bulk_import.download_result_rows(self._api, status)

    def module_fields(self, module: str) -> dict[str, Mapping[str, Any]]:
        """The module's field metadata by API name (``CrmFatalError`` for an unknown module)."""
        return preflight.fetch_fields(self._api, module)

    # -- metadata --------------------------------------------------------------------------

    def org_id(self) -> str:
        """The org's zgid for ``X-CRM-ORG``: configured, else fetched once from Zoho."""
        with self._org_lock:
            if self._org_id is None:
                self._org_id = self._learn_org(preflight.fetch_org(self._api)).org_id
            return self._org_id

    def org_limits(self) -> OrgLimits | None:
        """The org's edition limits, from ``GET /crm/v8/org`` asked once per process.

        Learning them sets the concurrency limit unless ``crm.max_concurrency`` is configured.
        None (logged once, and today's defaults stay) when the call fails or the edition is
        missing or unknown.
        """
        with self._org_lock:
            if self._org is None and not self._org_failed:
                try:
                    self._learn_org(preflight.fetch_org(self._api))
                except (CrmError, BudgetExceeded) as exc:
                    self._org_failed = True
                    logger.warning(
                        "cannot read the org's edition (%s); keeping the configured limits",
                        exc,
                        extra={"event": "org_edition_unknown", "reason": str(exc)},
                    )
            return self._limits

    def _learn_org(self, org: preflight.OrgInfo) -> preflight.OrgInfo:
        """Keep the org's answer; its edition's concurrency becomes the default limit."""
        if self._org is not None:
            return self._org
        self._org, self._org_id = org, self._org_id or org.org_id
        self._limits = edition_limits(*org.license) if org.license else None
        if self._limits is None:
            edition = org.license[0] if org.license else "not stated"
            logger.warning(
                "the org's edition (%s) has no known limits; keeping the configured limits",
                edition,
                extra={"event": "org_edition_unknown", "edition": edition},
            )
            return org
        if self._settings.max_concurrency is None:
            self._api.set_concurrency(self._limits.concurrency)
        logger.info(
            "org edition %s: %d calls in flight, %d credits a day",
            self._limits.edition,
            self._limits.concurrency,
            self._limits.daily_credits,
            extra={"event": "org_edition", "edition": self._limits.edition},
        )
        return org

    def preflight(
        self,
        module: str,
        unique_field: str,
        fields: Sequence[FieldMap],
        column_types: Mapping[str, FieldType],
    ) -> preflight.PreflightReport:
        """Get a token, confirm org, module, unique field, mapped fields and value types."""
        with self._org_lock:
            try:
                org = self._org or self._learn_org(preflight.fetch_org(self._api))
            except (CrmError, BudgetExceeded):
                self._org_failed = True  # check reports it; org_limits does not ask again
                raise
        return preflight.run_preflight(
            self._api, self._settings.org_id, module, unique_field, fields, column_types, org
        )

    @property
    def credits_remaining(self) -> int | None:
        """Zoho's last ``X-API-CREDITS-REMAINING`` (None until Zoho sends it, at 50 % used)."""
        return self._api.credits_remaining

    def records_by_id(
        self, module: str, ids: Sequence[str], fields: Sequence[str]
    ) -> dict[str, dict[str, object]]:
        """Record id -> current CRM values of ``fields``, for the ids that still exist.

        One Get Records call (1 credit) per 100 ids and 50 fields; a deleted record is simply
        missing from the answer.
        """
        return read.fetch_records(self._api, module, ids, fields)

    def search_records(
        self, module: str, field: str, values: Sequence[str]
    ) -> dict[str, tuple[str, ...]]:
        """Value -> ids of the ``module`` records whose ``field`` holds it, for the values some
        record holds. One Search Records call (1 credit) per 10 distinct values; none at all
        without values."""
        return search.search_by_field(self._api, module, field, values)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CrmClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
