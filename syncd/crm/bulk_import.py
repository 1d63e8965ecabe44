"""Bulk Write for ``syncd import``: a job over any CSV header, and its result rows as Zoho wrote
them (the legacy sync's ``bulk.py`` reads results as outcomes by legacy key instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.credits import OTHER_CALL_CREDITS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.crm.bulk_csv import result_rows
from syncd.errors import CrmFatalError
from syncd.model import BulkJobStatus

OPERATIONS = ("insert", "update", "upsert")


def import_job_request(
    module: str,
    operation: str,
    find_by: str | None,
    header: Sequence[str],
    file_id: str,
    *,
    ignore_empty: bool,
) -> dict[str, Any]:
    """The create-job body: each CSV column maps by index to the field its header names."""
    resource: dict[str, Any] = {
        "type": "data",
        "module": {"api_name": module},
        "file_id": file_id,
        "field_mappings": [{"api_name": name, "index": i} for i, name in enumerate(header)],
    }
    if find_by is not None:
        resource["find_by"] = find_by
    return {
        "operation": operation,
        "ignore_empty": ignore_empty,
        "character_encoding": "UTF-8",
        "resource": [resource],
    }


def download_result_rows(api: ZohoApi, status: BulkJobStatus) -> list[list[str]]:
    """The result CSV of a completed job, header first, upper-cased (its first three mapped
    columns, then STATUS, RECORD_ID, ERRORS: reference §5.4)."""
    if status.state != "COMPLETED" or not status.download_url:
        raise CrmFatalError(
            f"bulk job {status.job_id} has no result to download (state {status.state})",
            code="NO_RESULT",
        )
    data = api.send(Call("GET", status.download_url, CallKind.DOWNLOAD, OTHER_CALL_CREDITS)).content
    header, rows = result_rows(data)  # the sync's reader: BAD_RESULT for what it cannot read
    return [header, *rows]
