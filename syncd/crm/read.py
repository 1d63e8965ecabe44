"""Get Records by id: the current CRM values of records whose ids syncd knows.

``GET /crm/v8/{module}?ids=..&fields=..`` takes up to 100 ids and up to 50 field API names a
call (``fields`` is mandatory in v8) and costs 1 credit. Ids Zoho does not know (a record
deleted in the CRM) are missing from the answer, and an answer without any record is 204 with
no body. The building and parsing here are pure; ``send_get_records`` is the only function that
talks to Zoho.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

from syncd.credits import OTHER_CALL_CREDITS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.errors import CrmRetriableError

logger = logging.getLogger(__name__)

GET_RECORDS_MAX_IDS = 100
"""Most record ids Zoho takes in one Get Records call."""

GET_RECORDS_MAX_FIELDS = 50
"""Most field API names Zoho takes in one Get Records call's ``fields`` (v8 OAS)."""

RecordValues = dict[str, object]
"""A record's values by field API name, as Zoho's JSON has them."""


def fetch_records(
    api: ZohoApi, module: str, ids: Sequence[str], fields: Sequence[str]
) -> dict[str, RecordValues]:
    """Record id -> the values of ``fields``, for the ids that exist in ``module``.

    One call per 100 distinct ids (times one per 50 fields); ids Zoho does not know are left
    out. ``CrmRetriableError`` when an answer is malformed.
    """
    names = list(dict.fromkeys(fields))
    if not names:
        raise ValueError("Get Records needs at least one field API name")
    found: dict[str, RecordValues] = {}
    for id_part in _parts(list(dict.fromkeys(ids)), GET_RECORDS_MAX_IDS):
        for field_part in _parts(names, GET_RECORDS_MAX_FIELDS):
            for record_id, values in send_get_records(api, module, id_part, field_part).items():
                found.setdefault(record_id, {}).update(values)
    return found


def send_get_records(
    api: ZohoApi, module: str, ids: Sequence[str], fields: Sequence[str]
) -> dict[str, RecordValues]:
    """One Get Records call for at most 100 ids and 50 fields."""
    call = Call(
        "GET",
        f"/crm/v8/{module}",
        CallKind.GET_RECORDS,
        OTHER_CALL_CREDITS,
        params={"ids": ",".join(ids), "fields": ",".join(fields)},
    )
    response = api.send(call)
    if response.status_code == 204:  # Zoho's "no content": none of the ids exists
        return {}
    return parse_get_records_response(ids, fields, api.json(response))


def parse_get_records_response(
    ids: Sequence[str], fields: Sequence[str], body: object
) -> dict[str, RecordValues]:
    """Record id -> the values of ``fields`` it has, for each entry that answers an asked id."""
    entries = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise CrmRetriableError(
            "Zoho answered a get-records call without a data array", code="BAD_RESPONSE"
        )
    asked = set(ids)
    found: dict[str, RecordValues] = {}
    for position, entry in enumerate(entries):
        record_id = entry.get("id") if isinstance(entry, Mapping) else None
        if not isinstance(record_id, str | int) or isinstance(record_id, bool):
            raise CrmRetriableError(
                f"Zoho answered a get-records call with entry {position} lacking a record id",
                code="BAD_RESPONSE",
            )
        if str(record_id) not in asked:
            logger.warning(
                "get-records entry %d names a record that was not asked for",
                position,
                extra={"event": "crm_get_records_unasked", "position": position},
            )
            continue
        found[str(record_id)] = {name: entry[name] for name in fields if name in entry}
    return found


def _parts(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
