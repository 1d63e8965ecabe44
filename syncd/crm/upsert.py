"""Records API (insert, update by id, upsert): collapse duplicate keys, chunk to 100, and read
one outcome per record.

The building and parsing here are pure; the ``send_*`` functions are the only ones that talk to
Zoho. Per-record success is decided from each ``data[]`` entry, never from the HTTP status (200,
201, 207 and 400 all carry entries, reference §4.5). Every entry is read in full: the field an
upsert matched by (``duplicate_field``), the record it wrote (``details.id``) and the record
that already holds a duplicate value (``details.duplicate_record.id``) decide whether a row
kept to its own record (reference §4.3, §4.4).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from syncd.credits import UPSERT_MAX_RECORDS, CallKind, upsert_call_cost
from syncd.crm.api import Call, ZohoApi
from syncd.errors import CrmRetriableError
from syncd.model import RECORD_GONE_CODE, CrmRecord, Outcome, OutcomeKind

logger = logging.getLogger(__name__)

RETRYABLE_CODES = frozenset(
    {
        "INTERNAL_ERROR",  # Zoho failed, not the record
        "TOO_MANY_REQUESTS",  # a limit, not the record
        "UNPROCESSED",  # Zoho did not get to the record
        "CANNOT_PROCESS",  # Zoho's own "try again" (bulk result code, reference §5.4)
        "RECORD_LOCKED",  # locked by an approval or another edit; unlocks without our help
    }
)
"""Per-record error codes that a later re-send can fix; every other code is a skip."""

_JSON_PATH_INDEX = re.compile(r"^\$\.data\[(\d+)\]")


def collapse(records: Sequence[CrmRecord]) -> list[CrmRecord]:
    """One record per key, the last version winning, in order of each key's first appearance."""
    by_key: dict[str, CrmRecord] = {}
    for record in records:
        by_key[record.key] = record
    return list(by_key.values())


def chunks(
    records: Sequence[CrmRecord], size: int = UPSERT_MAX_RECORDS
) -> Iterator[list[CrmRecord]]:
    """Consecutive slices of at most ``size`` records."""
    for start in range(0, len(records), size):
        yield list(records[start : start + size])


def upsert_body(
    chunk: Sequence[CrmRecord], unique_field: str, trigger: Sequence[str]
) -> dict[str, object]:
    """The request body: each record carries its key in ``unique_field`` (unless already set)."""
    data = [{unique_field: record.key, **record.fields} for record in chunk]
    return {"data": data, "duplicate_check_fields": [unique_field], "trigger": list(trigger)}


def insert_body(
    chunk: Sequence[CrmRecord], unique_field: str, trigger: Sequence[str]
) -> dict[str, object]:
    """Insert creates records and never matches an existing one: a key or value that is
    already in the CRM comes back as DUPLICATE_DATA naming the record that holds it."""
    data = [{unique_field: record.key, **record.fields} for record in chunk]
    return {"data": data, "trigger": list(trigger)}


def update_body(
    chunk: Sequence[CrmRecord],
    unique_field: str,
    record_ids: Mapping[str, str],
    trigger: Sequence[str],
) -> dict[str, object]:
    """Update by record id: Zoho writes exactly that record and falls back on nothing. The key
    goes along, so a record whose unique field was edited in the CRM gets it back."""
    data = [
        {"id": record_ids[record.key], unique_field: record.key, **record.fields}
        for record in chunk
    ]
    return {"data": data, "trigger": list(trigger)}


def parse_upsert_response(chunk: Sequence[CrmRecord], body: object) -> list[Outcome]:
    """One outcome per record of ``chunk``, matched by position and ``details.json_path``."""
    entries = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise CrmRetriableError("Zoho answered an upsert without a data array", code="BAD_RESPONSE")
    found: dict[int, Outcome] = {}
    for position, entry in enumerate(entries):
        index = _entry_index(entry, position)
        if 0 <= index < len(chunk) and index not in found:
            found[index] = entry_outcome(chunk[index].key, entry)
        else:
            logger.warning(
                "upsert entry %d names no unanswered record",
                position,
                extra={"event": "crm_upsert_entry_unmatched", "position": position},
            )
    return [
        found.get(i)
        or Outcome(
            record.key,
            OutcomeKind.RETRY,
            code="NO_RESULT",
            message="Zoho returned no entry for this record",
        )
        for i, record in enumerate(chunk)
    ]


def entry_outcome(key: str, entry: object) -> Outcome:
    """Read one ``data[]`` entry (success or error) as the outcome of ``key``."""
    if not isinstance(entry, Mapping):
        return Outcome(key, OutcomeKind.RETRY, code="BAD_RESPONSE", message=repr(entry)[:200])
    details = _details(entry)
    if str(entry.get("status", "")).lower() == "success":
        updated = entry.get("action") == "update" or entry.get("message") == "record updated"
        record_id = details.get("id")
        # Only an update names a real match; some insert answers carry a stale duplicate_field.
        matched = entry.get("duplicate_field") if entry.get("action") == "update" else None
        return Outcome(
            key,
            OutcomeKind.UPDATED if updated else OutcomeKind.ADDED,
            record_id=None if record_id is None else str(record_id),
            matched_by=None if matched is None else str(matched),
        )
    code, details = _first_error(entry, details)
    kind = OutcomeKind.RETRY if code in RETRYABLE_CODES else OutcomeKind.SKIPPED
    field = details.get("api_name") or _json_path_field(details.get("json_path"))
    message = entry.get("message")
    holder = details.get("duplicate_record")
    holder_id = holder.get("id") if isinstance(holder, Mapping) else None
    return Outcome(
        key,
        kind,
        code=code,
        field=None if field is None else str(field),
        message=None if message is None else str(message),
        holder_id=None if holder_id is None else str(holder_id),
    )


def gone_outcome(outcome: Outcome) -> Outcome:
    """An update whose record id Zoho does not know (deleted in the CRM) is not the row's fault:
    the engine forgets the id and creates the record again."""
    if outcome.code in ("INVALID_DATA", "ENTITY_ID_INVALID") and outcome.field == "id":
        return Outcome(
            outcome.key, OutcomeKind.RETRY, code=RECORD_GONE_CODE, message=outcome.message
        )
    return outcome


def send_upsert(
    api: ZohoApi, module: str, unique_field: str, chunk: Sequence[CrmRecord], trigger: Sequence[str]
) -> list[Outcome]:
    """One Upsert call for at most 100 distinct records."""
    body = upsert_body(chunk, unique_field, trigger)
    return _send(api, "POST", f"/crm/v8/{module}/upsert", CallKind.UPSERT, chunk, body)


def send_insert(
    api: ZohoApi, module: str, unique_field: str, chunk: Sequence[CrmRecord], trigger: Sequence[str]
) -> list[Outcome]:
    """One Insert call for at most 100 distinct records.

    Repeated after a lost reply, an insert answers DUPLICATE_DATA on the unique field, naming
    the record the first attempt made: the engine adopts it, so retrying it is safe.
    """
    body = insert_body(chunk, unique_field, trigger)
    return _send(api, "POST", f"/crm/v8/{module}", CallKind.INSERT, chunk, body)


def send_update(
    api: ZohoApi,
    module: str,
    unique_field: str,
    chunk: Sequence[CrmRecord],
    record_ids: Mapping[str, str],
    trigger: Sequence[str],
) -> list[Outcome]:
    """One Update call (by record id) for at most 100 distinct records."""
    body = update_body(chunk, unique_field, record_ids, trigger)
    outcomes = _send(api, "PUT", f"/crm/v8/{module}", CallKind.UPDATE, chunk, body)
    return [gone_outcome(o) for o in outcomes]


def _send(
    api: ZohoApi,
    method: str,
    path: str,
    kind: str,
    chunk: Sequence[CrmRecord],
    body: dict[str, object],
) -> list[Outcome]:
    """One records-API write; one outcome per record of ``chunk``."""
    call = Call(
        method, path, kind, upsert_call_cost(len(chunk)), json=body, accepts_data_errors=True
    )
    return parse_upsert_response(chunk, api.send_json(call))


def _details(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    details = entry.get("details")
    return details if isinstance(details, Mapping) else {}


def _first_error(
    entry: Mapping[str, Any], details: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any]]:
    """The code and details to report; MULTIPLE_OR_MULTI_ERRORS is read as its first error."""
    code = str(entry.get("code") or "UNKNOWN_ERROR")
    errors = details.get("errors")
    if code == "MULTIPLE_OR_MULTI_ERRORS" and isinstance(errors, list) and errors:
        first = errors[0]
        if isinstance(first, Mapping):
            return str(first.get("code") or code), _details(first)
    return code, details


def _entry_index(entry: object, position: int) -> int:
    """The record an entry answers: its ``json_path`` index when it has one, else its position."""
    if not isinstance(entry, Mapping):
        return position
    details = _details(entry)
    paths = [details.get("json_path")]
    errors = details.get("errors")
    if isinstance(errors, list):
        paths += [_details(e).get("json_path") for e in errors if isinstance(e, Mapping)]
    for path in paths:
        match = _JSON_PATH_INDEX.match(path) if isinstance(path, str) else None
        if match:
            return int(match.group(1))
    return position


def _json_path_field(path: object) -> str | None:
    if isinstance(path, str) and _JSON_PATH_INDEX.match(path) and "]." in path:
        return path.split("].", 1)[1]
    return None
