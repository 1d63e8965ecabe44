"""Delete Records API: ``DELETE /crm/v8/{module}?ids=a,b,...`` (at most 100 ids a call).

Zoho answers ``{"data": [...]}`` with one entry per id, ``details.id`` naming it: SUCCESS
("record deleted"), or an error such as INVALID_DATA for an id it does not know. An id Zoho
does not know is a record already gone (deleted in the CRM, or by an earlier attempt whose
reply was lost), so the call is safe to repeat. ``wf_trigger`` says whether workflow rules run
on the deletion; syncd sends ``false`` unless ``crm.trigger`` asks for automations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syncd.credits import DELETE_CALL_CREDITS, DELETE_MAX_RECORDS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.crm.upsert import RETRYABLE_CODES
from syncd.errors import CrmRetriableError
from syncd.model import DeleteOutcome

GONE_CODES = frozenset({"INVALID_DATA", "ENTITY_ID_INVALID", "RESOURCE_NOT_FOUND"})
"""Per-id codes meaning Zoho has no such record: for a delete, the wanted end state."""


def send_delete(
    api: ZohoApi, module: str, ids: Sequence[str], *, wf_trigger: bool
) -> list[DeleteOutcome]:
    """One Delete Records call for 1..100 ids; one outcome per id, in order."""
    if not 0 < len(ids) <= DELETE_MAX_RECORDS:
        raise ValueError(f"a delete call carries 1..{DELETE_MAX_RECORDS} ids, got {len(ids)}")
    params = {"ids": ",".join(ids), "wf_trigger": "true" if wf_trigger else "false"}
    call = Call(
        "DELETE",
        f"/crm/v8/{module}",
        CallKind.DELETE,
        DELETE_CALL_CREDITS,
        params=params,
        accepts_data_errors=True,
    )
    return parse_delete_response(ids, api.json(api.send(call)))


def parse_delete_response(ids: Sequence[str], body: object) -> list[DeleteOutcome]:
    """Match each ``data[]`` entry to its id by ``details.id`` (else by position)."""
    entries = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise CrmRetriableError("Zoho answered a delete without a data array", code="BAD_RESPONSE")
    found: dict[str, DeleteOutcome] = {}
    for position, entry in enumerate(entries):
        details = entry.get("details") if isinstance(entry, Mapping) else None
        named = details.get("id") if isinstance(details, Mapping) else None
        record_id = str(named) if named is not None else _at(ids, position)
        if record_id in ids and record_id not in found:
            found[record_id] = entry_outcome(record_id, entry)
    return [found.get(i) or DeleteOutcome(i, gone=False, retry=True, code="NO_RESULT") for i in ids]


def entry_outcome(record_id: str, entry: Any) -> DeleteOutcome:
    if not isinstance(entry, Mapping):
        return DeleteOutcome(record_id, gone=False, retry=True, code="BAD_RESPONSE")
    code = str(entry.get("code") or "UNKNOWN_ERROR")
    message = None if entry.get("message") is None else str(entry.get("message"))
    if str(entry.get("status", "")).lower() == "success" or code in GONE_CODES:
        return DeleteOutcome(record_id, gone=True, code=code, message=message)
    return DeleteOutcome(
        record_id, gone=False, retry=code in RETRYABLE_CODES, code=code, message=message
    )


def _at(ids: Sequence[str], position: int) -> str:
    return ids[position] if 0 <= position < len(ids) else ""
