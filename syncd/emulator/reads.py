"""Get Records by id: ``GET /crm/v8/{module}?ids=a,b&fields=x,y`` and ``GET /crm/v8/{module}/{id}``.

From the v8 OAS (``record.json`` getRecords / getRecord): ``fields`` is a required
comma-separated list of at most 50 field API names for the list form (missing: 400
REQUIRED_PARAM_MISSING, ``details.param_name = "fields"``; more than 50: 400 LIMIT_EXCEEDED);
the single-record form has no ``fields`` parameter in the OAS and answers every field, so here
``fields`` is optional there and narrows the answer when given. ``ids`` takes up to 100 record
ids (the answer's ``data`` holds at most 100). The answer is ``{"data": [{"id", <fields>}]}`` in
the order the ids were asked, with each value as the records API stored it; when nothing
matches it is 204 with no body (documented as "no records match the specified criteria").

The emulator's own choices where Zoho says nothing (UNCONFIRMED): ids that match no record
are left out of ``data`` (204 only when none matches); more than 100 ids is 400 LIMIT_EXCEEDED
with ``param_name = "ids"``; a name in ``fields`` that is no field of the module is 400
INVALID_DATA naming it. The list form without ``ids`` (pages of a module's records) is not
emulated: it answers 400 REQUIRED_PARAM_MISSING for ``ids``.
"""

from __future__ import annotations

from starlette.datastructures import QueryParams

from syncd.emulator.envelope import ApiError
from syncd.emulator.store import ModuleStore

MAX_IDS = 100
MAX_FIELDS = 50


def requested_fields(
    store: ModuleStore, params: QueryParams, *, required: bool
) -> list[str] | None:
    """The field API names ``fields`` asks for (None: every field); ``ApiError`` if bad."""
    names = _split(params.get("fields"))
    if not names:
        if required:
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param is missing", {"param_name": "fields"}
            )
        return None
    if len(names) > MAX_FIELDS:
        raise _limit("fields", MAX_FIELDS)
    for name in names:
        if name not in store.slot:
            raise ApiError(
                400, "INVALID_DATA", "invalid data", {"param_name": "fields", "api_name": name}
            )
    return [name for name in names if name != "id"]


def requested_ids(params: QueryParams) -> list[str]:
    """The distinct record ids ``ids`` asks for, in order; ``ApiError`` if none or too many."""
    ids = _split(params.get("ids"))
    if not ids:
        raise ApiError(
            400,
            "REQUIRED_PARAM_MISSING",
            "required param is missing (the emulator serves Get Records by ids only)",
            {"param_name": "ids"},
        )
    if len(ids) > MAX_IDS:
        raise _limit("ids", MAX_IDS)
    return ids


def _split(value: str | None) -> list[str]:
    parts = (part.strip() for part in (value or "").split(","))
    return list(dict.fromkeys(part for part in parts if part))


def _limit(param: str, limit: int) -> ApiError:
    return ApiError(400, "LIMIT_EXCEEDED", "limit exceeded", {"limit": limit, "param_name": param})
