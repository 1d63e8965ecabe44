"""Search Records by one field: which records of a module hold each of some values.

``GET /crm/v8/{module}/search?criteria=((F:equals:a)or(F:equals:b))`` (reference §7.1):
at most 10 criteria a call, values with ``(``, ``)`` or ``,`` escaped by a backslash, at most
200 records a page, 204 with no body when nothing matches, 1 credit a call (UNCONFIRMED: Zoho
lists no price of its own for search, so it costs what "all other APIs" do). With several
``equals`` conditions Zoho may also answer records whose value merely contains one asked for,
so the answer is matched to the asked values here, exactly (then ignoring case, as a
case-insensitive unique field matches). Building and parsing are pure; ``send_search`` is the
only function that talks to Zoho.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence

from syncd.credits import OTHER_CALL_CREDITS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.errors import CrmRetriableError

logger = logging.getLogger(__name__)

SEARCH_MAX_CRITERIA = 10
"""Most conditions Zoho takes in one search ``criteria`` (reference §7.1)."""

SEARCH_PAGE_SIZE = 200
"""Most records one search page holds (``per_page``, reference §7.1)."""

SEARCH_MAX_PAGES = 5
"""Pages read for one call's values at most: 10 values of a unique field match at most 10
records, so more pages mean loose ``equals`` matches; the rest is logged, not paid for."""

_ESCAPED = str.maketrans({"\\": "\\\\", "(": "\\(", ")": "\\)", ",": "\\,"})


def criteria(field: str, values: Sequence[str]) -> str:
    """``((field:equals:v1)or(field:equals:v2))``; one value is ``(field:equals:v1)``.

    Parentheses and commas in a value are escaped with a backslash (documented); a backslash
    itself is doubled (UNCONFIRMED). httpx percent-encodes the result as a query parameter.
    """
    if not 0 < len(values) <= SEARCH_MAX_CRITERIA:
        raise ValueError(f"a search takes 1..{SEARCH_MAX_CRITERIA} values, got {len(values)}")
    parts = [f"({field}:equals:{value.translate(_ESCAPED)})" for value in values]
    return parts[0] if len(parts) == 1 else "(" + "or".join(parts) + ")"


def search_by_field(
    api: ZohoApi, module: str, field: str, values: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Each asked value -> the ids of the ``module`` records whose ``field`` holds it (none:
    the value is left out). One call per 10 distinct non-empty values (more for a page past
    200 records); no call at all without values."""
    wanted = list(dict.fromkeys(v for v in values if v != ""))
    found: dict[str, tuple[str, ...]] = {}
    for part in _parts(wanted, SEARCH_MAX_CRITERIA):
        records: list[Mapping[str, object]] = []
        for page in range(1, SEARCH_MAX_PAGES + 1):
            entries, more = send_search(api, module, field, part, page)
            records.extend(entries)
            if not more:
                break
        else:
            logger.warning(
                "search of %s.%s still had more records after %d pages; the rest is not read",
                module,
                field,
                SEARCH_MAX_PAGES,
                extra={"event": "crm_search_truncated", "crm_module": module, "field": field},
            )
        found.update(match_values(part, field, records))
    return found


def send_search(
    api: ZohoApi, module: str, field: str, values: Sequence[str], page: int = 1
) -> tuple[list[Mapping[str, object]], bool]:
    """One Search Records call: the page's records and whether Zoho has more."""
    call = Call(
        "GET",
        f"/crm/v8/{module}/search",
        CallKind.SEARCH,
        OTHER_CALL_CREDITS,
        params={
            "criteria": criteria(field, values),
            "fields": field,
            "page": str(page),
            "per_page": str(SEARCH_PAGE_SIZE),
        },
    )
    response = api.send(call)
    if response.status_code == 204:  # Zoho's "no content": no record matches
        return [], False
    return parse_search_response(api.json(response))


def parse_search_response(body: object) -> tuple[list[Mapping[str, object]], bool]:
    """The records of a search answer (each with an id) and ``info.more_records``."""
    entries = body.get("data") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        raise CrmRetriableError(
            "Zoho answered a search call without a data array", code="BAD_RESPONSE"
        )
    records: list[Mapping[str, object]] = []
    for position, entry in enumerate(entries):
        record_id = entry.get("id") if isinstance(entry, Mapping) else None
        if not isinstance(record_id, str | int) or isinstance(record_id, bool):
            raise CrmRetriableError(
                f"Zoho answered a search call with entry {position} lacking a record id",
                code="BAD_RESPONSE",
            )
        records.append(entry)
    assert isinstance(body, Mapping)
    info = body.get("info")
    more = isinstance(info, Mapping) and info.get("more_records") is True
    return records, more


def match_values(
    values: Sequence[str], field: str, records: Sequence[Mapping[str, object]]
) -> dict[str, tuple[str, ...]]:
    """Asked value -> ids of the records holding exactly it, else holding it in another case."""
    by_value: dict[str, list[str]] = {}
    for record in records:
        held = record.get(field)
        if held is not None:
            by_value.setdefault(str(held), []).append(str(record["id"]))
    found: dict[str, tuple[str, ...]] = {}
    for value in values:
        ids = by_value.get(value)
        if ids is None:
            folded = value.casefold()
            ids = [i for held, some in by_value.items() if held.casefold() == folded for i in some]
        if ids:
            found[value] = tuple(dict.fromkeys(ids))
    return found


def _parts(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
