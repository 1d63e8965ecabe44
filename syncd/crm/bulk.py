"""Bulk Write jobs: upload a zipped CSV, create the upsert job, poll it, read its result.

Files are built by ``syncd.crm.bulk_csv``; this module only talks to Zoho (through ``ZohoApi``).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from syncd.credits import BULK_JOB_CREDITS, OTHER_CALL_CREDITS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.crm.bulk_csv import complete_outcomes, parse_bulk_result
from syncd.errors import CrmFatalError, CrmRetriableError
from syncd.model import OUTCOME_KEY, BulkColumn, BulkFile, BulkJobStatus, Outcome
from syncd.ports import Clock

logger = logging.getLogger(__name__)

MAX_POLL_INTERVAL = timedelta(seconds=60)
POLL_GROWTH = 1.5


def upload_file(api: ZohoApi, upload_url: str, org_id: str, file: BulkFile) -> str:
    """Upload the zip; returns Zoho's ``file_id`` (as text, whatever type Zoho sent)."""
    call = Call(
        "POST",
        upload_url,
        kind=CallKind.UPLOAD,
        credits=OTHER_CALL_CREDITS,
        upload=Path(file.path),
        headers={"feature": "bulk-write", "X-CRM-ORG": org_id},
    )
    body = _mapping(api.send_json(call))
    details = _mapping(body.get("details"))
    # Zoho has answered upload errors with HTTP 200 (reference §5.1): read the body.
    if body.get("status") != "success" or details.get("file_id") is None:
        raise CrmFatalError(
            f"Zoho refused the bulk file upload ({body.get('code')}): {body.get('message')}",
            code=str(body.get("code") or "UPLOAD_FAILED"),
        )
    return str(details["file_id"])


def job_request(
    module: str, unique_field: str, columns: Sequence[BulkColumn], file_id: str
) -> dict[str, Any]:
    """The create-job body: upsert by ``find_by`` = the unique field (CSV column 0)."""
    mappings: list[dict[str, Any]] = [{"api_name": unique_field, "index": 0}]
    for index, column in enumerate(columns, start=1):
        mapping: dict[str, Any] = {"api_name": column.api_name, "index": index}
        if column.format is not None:
            mapping["format"] = column.format
        if column.find_by is not None:
            mapping["find_by"] = column.find_by
        mappings.append(mapping)
    return {
        "operation": "upsert",
        # Empty cells must clear CRM fields: the mirror holds what the legacy row holds, NULL too.
        "ignore_empty": False,
        "character_encoding": "UTF-8",
        "resource": [
            {
                "type": "data",
                "module": {"api_name": module},
                "file_id": file_id,
                "find_by": unique_field,
                "field_mappings": mappings,
            }
        ],
    }


def create_job(api: ZohoApi, body: Mapping[str, Any]) -> str:
    """Create the job; returns its id. Not repeated after an ambiguous failure (500 credits)."""
    call = Call(
        "POST",
        "/crm/bulk/v8/write",
        kind=CallKind.BULK_JOB,
        credits=BULK_JOB_CREDITS,
        json=body,
        idempotent=False,
    )
    # Not repeated: an unreadable answer (BAD_RESPONSE) leaves it open whether Zoho created
    # (and charged) the job, and the caller must treat it as it treats a lost reply.
    reply = _mapping(api.send_json(call))
    job_id = _mapping(reply.get("details")).get("id")
    if reply.get("status") != "success" or job_id is None:
        raise CrmFatalError(
            f"Zoho did not create the bulk job ({reply.get('code')}): {reply.get('message')}",
            code=str(reply.get("code") or "JOB_NOT_CREATED"),
        )
    return str(job_id)


def job_status(api: ZohoApi, job_id: str) -> BulkJobStatus:
    """One poll; the state is normalised (``IN PROGRESS`` and ``INPROGRESS`` alike)."""
    call = Call("GET", f"/crm/bulk/v8/write/{job_id}", CallKind.BULK_STATUS, OTHER_CALL_CREDITS)
    return parse_job_status(job_id, api.send_json(call))


def parse_job_status(job_id: str, body: Any) -> BulkJobStatus:
    """Read a job-details body; a resource that FAILED fails the job."""
    job = _mapping(body)
    if "data" in job and isinstance(job["data"], list) and job["data"]:
        job = _mapping(job["data"][0])  # tolerate a data-wrapped answer
    state = normalise_state(job.get("status"))
    resources = job.get("resource")
    if isinstance(resources, list) and any(
        normalise_state(_mapping(r).get("status")) == "FAILED" for r in resources
    ):
        state = "FAILED"
    url = _mapping(job.get("result")).get("download_url")
    return BulkJobStatus(job_id, state, str(url) if url else None, _processed(resources))


def _processed(resources: object) -> int | None:
    """Rows processed so far, summed over ``resource[].file`` (reference 5.3). Before a job
    starts Zoho may give only ``{"status": ...}``: None then, so "not said" is not "none done"."""
    files = resources if isinstance(resources, list) else []
    said = [
        n for r in files if (n := _file_processed(_mapping(_mapping(r).get("file")))) is not None
    ]
    return sum(said) if said else None


def _file_processed(file: Mapping[str, Any]) -> int | None:
    """``total_count``, else added + updated + skipped, of whichever counts the file carries."""

    def count(key: str) -> int | None:
        value = file.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    total = count("total_count")
    if total is not None:
        return total
    parts = [
        n for k in ("added_count", "updated_count", "skipped_count") if (n := count(k)) is not None
    ]
    return sum(parts) if parts else None


def normalise_state(value: object) -> str:
    """``in progress`` / ``IN_PROGRESS`` / ``INPROGRESS`` → ``INPROGRESS``."""
    return re.sub(r"[\s_]", "", str(value or "")).upper()


def wait_job(
    api: ZohoApi,
    job_id: str,
    *,
    deadline: datetime,
    clock: Clock,
    interval: timedelta,
    sleep: Callable[[float], None],
) -> BulkJobStatus:
    """Poll until the job is COMPLETED (returned) or FAILED, or ``deadline`` passes (raised)."""
    wait = interval
    while True:
        status = job_status(api, job_id)
        if status.state == "FAILED":
            raise CrmFatalError(
                f"Zoho failed bulk job {job_id}; its rows stay pending (see the job in Zoho's "
                "Data Administration > Bulk Write log for the reason)",
                code="BULK_JOB_FAILED",
            )
        if status.state == "COMPLETED":
            return status
        left = (deadline - clock.now()).total_seconds()
        if left <= 0:
            raise CrmRetriableError(
                f"bulk job {job_id} is still {status.state or 'unknown'} at its deadline; "
                "it may finish later: poll it again before sending its rows anew",
                code="BULK_JOB_TIMEOUT",
            )
        sleep(min(wait.total_seconds(), left))
        wait = min(wait * POLL_GROWTH, MAX_POLL_INTERVAL)


def download_outcomes(
    api: ZohoApi, status: BulkJobStatus, keys: Sequence[str] | None
) -> list[Outcome]:
    """Download and parse the result; with ``keys``, exactly one outcome per key."""
    if status.state != "COMPLETED" or not status.download_url:
        raise CrmFatalError(
            f"bulk job {status.job_id} has no result to download (state {status.state})",
            code="NO_RESULT",
        )
    # An absolute URL is used as given; a relative one is on the API domain (reference §5.4).
    # ZohoApi refuses to send the token to a host that is not Zoho's (UNTRUSTED_HOST, fatal).
    call = Call("GET", status.download_url, CallKind.DOWNLOAD, OTHER_CALL_CREDITS)
    try:
        outcomes = api.send_read(call, functools.partial(_read_result, status.job_id, keys))
    except CrmRetriableError as exc:
        if exc.code != "BAD_RESULT":
            raise  # Zoho or the network is away: the job stays journaled and is fetched later
        # Every download within the retry budget was unreadable or untrustworthy: the same
        # file will come back next time, so waiting cannot help. Fatal for this job: it is
        # closed, nothing of it is applied, and its rows (still pending) go again.
        raise CrmFatalError(
            f"{exc}, at every download the retry budget allows; nothing of it is applied",
            code="BAD_RESULT",
        ) from None
    logger.info(
        "bulk job %s result: %d rows",
        status.job_id,
        len(outcomes),
        extra={"event": "crm_bulk_result", "job_id": status.job_id, "rows": len(outcomes)},
    )
    return outcomes


def _read_result(
    job_id: str, keys: Sequence[str] | None, response: httpx.Response
) -> list[Outcome]:
    """The outcomes of one downloaded result; ``CrmRetriableError`` BAD_RESULT when it cannot
    be read, or names a key that was not in the job's file.

    A result naming keys that were not sent belongs (at least partly) to something else: a
    cache serving another job's file, a mix-up at Zoho. None of its rows can be trusted, the
    ones naming our keys included, so none is applied: confirming a row on such evidence
    could mark synced a row Zoho never wrote.
    """
    try:
        outcomes = parse_bulk_result(response.content)
    except CrmRetriableError as exc:
        raise CrmRetriableError(f"bulk job {job_id}: {exc}", code="BAD_RESULT") from None
    if keys is None:
        return outcomes
    if list(map(OUTCOME_KEY, outcomes)) == list(keys):  # the usual result: the file's order
        return outcomes
    foreign = sorted(set(map(OUTCOME_KEY, outcomes)).difference(keys))  # no Python step a row
    if foreign:
        raise CrmRetriableError(
            f"bulk job {job_id}: the result names {len(foreign)} key(s) that were not in the "
            f"job's file (first: {foreign[0]!r})",
            code="BAD_RESULT",
        )
    return complete_outcomes(keys, outcomes)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
