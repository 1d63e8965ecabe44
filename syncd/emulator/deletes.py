"""Delete Records: ``DELETE /crm/v8/{module}?ids=a,b,...&wf_trigger=true|false``.

From Zoho's Delete Records page (v2 to v8 alike): ``ids`` is mandatory, comma-separated, at
most 100 a call; ``wf_trigger`` (default true) says whether workflow rules run. The answer is
``{"data": [...]}``, one entry per id naming it in ``details.id``: ``SUCCESS`` / "record
deleted" / ``status: success`` for a deleted record. Each call costs 1 credit (no special
price is listed, reference §6.1).

The emulator's own choices where Zoho says nothing (UNCONFIRMED): an id that names no record
is an ``INVALID_DATA`` entry ("the id given seems to be invalid"); HTTP 200 when every id was
deleted, 207 when some were, 400 when none was (as the records API answers writes); more than
100 ids is 400 LIMIT_EXCEEDED with ``param_name = "ids"``; a record locked by the fault knob
``locked_records`` (by its unique value) is a ``RECORD_LOCKED`` entry. Calls are counted under
``stats["deletes"]`` by their ``wf_trigger`` value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syncd.emulator.envelope import error_body
from syncd.emulator.store import ID, ModuleStore


def delete_records(
    store: ModuleStore, ids: Sequence[str], locked: frozenset[str] | set[str]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) after deleting ``ids``; the caller holds the store lock."""
    entries = [_delete_one(store, record_id, locked) for record_id in ids]
    failed = sum(entry["status"] == "error" for entry in entries)
    status = 200 if not failed else 400 if failed == len(entries) else 207
    return status, {"data": entries}


def _delete_one(
    store: ModuleStore, record_id: str, locked: frozenset[str] | set[str]
) -> dict[str, Any]:
    record = store.get(record_id)
    if record is None:
        return error_body("INVALID_DATA", "the id given seems to be invalid", {"id": record_id})
    if locked and any(
        str(record[store.slot[spec.api_name]]) in locked for spec in store.schema.unique_fields
    ):
        return error_body("RECORD_LOCKED", "the record is locked", {"id": record_id})
    store.delete(record[ID])
    return {
        "code": "SUCCESS",
        "details": {"id": record_id},
        "message": "record deleted",
        "status": "success",
    }
