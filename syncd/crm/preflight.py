"""``syncd check`` against the CRM: token, org, module, unique field, mapped fields and types.

``check_fields`` and ``unique_warnings`` are pure (metadata in, problems or warnings out);
``run_preflight`` fetches the metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.credits import OTHER_CALL_CREDITS, CallKind
from syncd.crm.api import Call, ZohoApi
from syncd.crm.edition import read_license
from syncd.errors import CrmFatalError
from syncd.model import FieldMap, FieldType

# A multi-select's list of values goes only to a multi-select picklist.
_ANY = frozenset(FieldType) - {FieldType.MULTISELECT}
ACCEPTED: Mapping[str, frozenset[FieldType]] = {
    # Text-like fields take any value in its text form.
    "text": _ANY,
    "textarea": _ANY,
    "email": frozenset({FieldType.TEXT}),
    "phone": frozenset({FieldType.TEXT, FieldType.INTEGER}),
    "website": frozenset({FieldType.TEXT}),
    "picklist": _ANY,
    "integer": frozenset({FieldType.INTEGER}),
    "bigint": frozenset({FieldType.INTEGER}),
    "double": frozenset({FieldType.INTEGER, FieldType.DECIMAL}),
    "decimal": frozenset({FieldType.INTEGER, FieldType.DECIMAL}),
    "currency": frozenset({FieldType.INTEGER, FieldType.DECIMAL}),
    "percent": frozenset({FieldType.INTEGER, FieldType.DECIMAL}),
    "boolean": frozenset({FieldType.BOOLEAN}),
    "date": frozenset({FieldType.DATE}),
    "datetime": frozenset({FieldType.DATETIME}),
    "multiselectpicklist": frozenset({FieldType.MULTISELECT}),
}
"""Which legacy value types each Zoho ``data_type`` can hold without guessing."""

UNIQUE_CAPABLE = frozenset({"text", "email", "phone", "integer", "bigint", "website"})
"""Field types Zoho lets be unique (reference §4.3), hence usable as the key field."""


@dataclass(frozen=True)
class PreflightReport:
    """What ``syncd check`` learned from the CRM; ``problems`` empty means ready to sync."""

    org_id: str
    module: str
    problems: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    key_case_insensitive: bool = False
    """The unique field matches values case-insensitively: legacy keys that differ only in
    case would share one CRM record (``syncd check`` then looks for such keys)."""

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class OrgInfo:
    """What ``GET /crm/v8/org`` told: the zgid, and the license (edition, users) if present."""

    org_id: str
    license: tuple[str, int] | None = None


def fetch_org(api: ZohoApi) -> OrgInfo:
    """The org's zgid (for ``X-CRM-ORG``) and license details from ``GET /crm/v8/org``."""
    body = api.send_json(Call("GET", "/crm/v8/org", CallKind.ORG, OTHER_CALL_CREDITS))
    orgs = body.get("org") if isinstance(body, Mapping) else None
    first = orgs[0] if isinstance(orgs, list) and orgs else None
    if not isinstance(first, Mapping) or first.get("zgid") is None:
        raise CrmFatalError("GET /crm/v8/org returned no org zgid; set crm.org_id", code="NO_ORG")
    return OrgInfo(str(first["zgid"]), read_license(first))


def fetch_org_id(api: ZohoApi) -> str:
    """The org's zgid (for ``X-CRM-ORG``) from ``GET /crm/v8/org``."""
    return fetch_org(api).org_id


def fetch_fields(api: ZohoApi, module: str) -> dict[str, Mapping[str, Any]]:
    """The module's fields by API name (``GET /crm/v8/settings/fields``)."""
    call = Call(
        "GET", "/crm/v8/settings/fields", CallKind.FIELDS, OTHER_CALL_CREDITS, {"module": module}
    )
    body = api.send_json(call)
    fields = body.get("fields") if isinstance(body, Mapping) else None
    if not isinstance(fields, list):
        raise CrmFatalError(f"module {module!r} has no field metadata", code="NO_FIELDS")
    return {str(f["api_name"]): f for f in fields if isinstance(f, Mapping) and "api_name" in f}


def run_preflight(
    api: ZohoApi,
    configured_org: str | None,
    module: str,
    unique_field: str,
    fields: Sequence[FieldMap],
    column_types: Mapping[str, FieldType],
    org: OrgInfo | None = None,
) -> PreflightReport:
    """Fetch org (unless given) and field metadata and check the pipeline's mapping."""
    org_id = (org or fetch_org(api)).org_id
    problems: list[str] = []
    if configured_org and configured_org != org_id:
        problems.append(
            f"crm.org_id is {configured_org} but the token belongs to org {org_id}: fix crm.org_id"
        )
    try:
        metadata = fetch_fields(api, module)
    except CrmFatalError as exc:
        problems.append(f"module {module!r} is not usable: {exc}")
        return PreflightReport(org_id, module, tuple(problems))
    problems += check_fields(module, unique_field, fields, column_types, metadata)
    parent_problems, parent_warnings = _check_parents(api, fields)
    return PreflightReport(
        org_id,
        module,
        tuple(problems + parent_problems),
        tuple(
            unique_warnings(module, unique_field, fields, metadata)
            + precision_warnings(module, fields, column_types, metadata)
            + picklist_warnings(module, fields, metadata)
            + parent_warnings
        ),
        is_case_insensitive(metadata.get(unique_field)),
    )


def check_fields(
    module: str,
    unique_field: str,
    fields: Sequence[FieldMap],
    column_types: Mapping[str, FieldType],
    metadata: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """Every problem of the mapping against the module's field metadata."""
    problems = _check_unique(module, unique_field, metadata)
    for mapped in fields:
        meta = metadata.get(mapped.api_name)
        if meta is None:
            problems.append(
                f"{module}.{mapped.api_name} does not exist (mapped from column "
                f"{mapped.column!r}); use the field's API name"
            )
            continue
        if meta.get("read_only") or meta.get("field_read_only"):
            problems.append(f"{module}.{mapped.api_name} is read-only in the CRM")
        ftype = mapped.type or column_types.get(mapped.column)
        if ftype is None:
            problems.append(
                f"column {mapped.column!r} (for {module}.{mapped.api_name}) has no type"
            )
            continue
        problems += _check_type(
            module, mapped, ftype, str(meta.get("data_type", "")), _lookup_module(meta)
        )
    return problems


def _check_parents(api: ZohoApi, fields: Sequence[FieldMap]) -> tuple[list[str], list[str]]:
    """Problems and warnings of the lookups by a field: the parent module's field metadata
    (one call per parent module) must have the field, and it should be unique."""
    problems: list[str] = []
    warnings: list[str] = []
    read: dict[str, dict[str, Mapping[str, Any]] | None] = {}
    for mapped in fields:
        parent = mapped.parent_field
        if parent is None:
            continue
        if parent.module not in read:
            try:
                read[parent.module] = fetch_fields(api, parent.module)
            except CrmFatalError as exc:
                read[parent.module] = None
                warnings.append(
                    f"cannot read the fields of {parent.module} ({exc}): whether "
                    f"{parent.key} exists and is unique is not checked"
                )
        parent_fields = read[parent.module]
        if parent_fields is not None:
            problems += parent_field_problems(mapped, parent_fields)
            warnings += parent_field_warnings(mapped, parent_fields)
    return problems, warnings


def parent_field_problems(
    mapped: FieldMap, parent_fields: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A lookup by a field names a field the parent module has."""
    assert mapped.parent_field is not None
    if mapped.parent_field.field in parent_fields:
        return []
    return [
        f"{mapped.parent_field.key} does not exist (lookup of {mapped.api_name}); name a "
        f"unique field of {mapped.parent_field.module} by its API name"
    ]


def parent_field_warnings(
    mapped: FieldMap, parent_fields: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A lookup by a field that is not unique: two parents holding one value make a reject."""
    assert mapped.parent_field is not None
    meta = parent_fields.get(mapped.parent_field.field)
    if meta is None or meta.get("unique"):
        return []
    return [
        f"{mapped.parent_field.key} is not unique (lookup of {mapped.api_name}): a value two "
        "parent records hold makes the row a reject (syncd does not guess), and Bulk Write "
        'may refuse it as find_by; enable "Do not allow duplicate values" on it in the CRM'
    ]


def _check_unique(
    module: str, unique_field: str, metadata: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    meta = metadata.get(unique_field)
    if meta is None:
        return [f"unique field {module}.{unique_field} does not exist"]
    problems = []
    if not meta.get("unique"):  # Zoho marks a non-unique field with "unique": {}
        problems.append(
            f'{module}.{unique_field} is not unique: enable "Do not allow duplicate values" on '
            "it in the CRM, or syncd cannot upsert by it"
        )
    if str(meta.get("data_type", "")) not in UNIQUE_CAPABLE:
        problems.append(
            f"{module}.{unique_field} is a {meta.get('data_type')} field; the key field must be "
            f"one of {', '.join(sorted(UNIQUE_CAPABLE))}"
        )
    return problems


def unique_warnings(
    module: str,
    unique_field: str,
    fields: Sequence[FieldMap],
    metadata: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """A warning naming the module's unique fields other than the key field, if it has any.

    Zoho's upsert checks every unique field, not only the one it was asked to match on
    (reference §4.3), so each of them can refuse a row. The fields metadata does not say which
    fields are system duplicate-check fields, so only fields marked unique are named.
    """
    others = [
        name for name, meta in metadata.items() if name != unique_field and meta.get("unique")
    ]
    if not others:
        return []
    columns = {f.api_name: f.column for f in fields}
    named = [
        f"{name} (mapped from column {columns[name]!r})"
        if name in columns
        else f"{name} (not mapped)"
        for name in others
    ]
    return [
        f"{module} has unique fields besides {unique_field}: {', '.join(named)}\n"
        "Zoho's upsert would match a row to another record by them; syncd writes by record "
        "id and insert instead, so a row whose value is already on another record is refused "
        "(DUPLICATE_DATA) and listed as a reject naming that record's key."
    ]


def precision_warnings(
    module: str,
    fields: Sequence[FieldMap],
    column_types: Mapping[str, FieldType],
    metadata: Mapping[str, Mapping[str, Any]],
) -> list[str]:
    """A warning for each mapped number field whose metadata keeps fewer decimal places
    (``decimal_place``; UNCONFIRMED in the reference, read when present) than the mapping
    lets through: the encoder does not see the metadata, so ``decimal_places`` on the field
    is what turns such a value into a reject instead of a CRM rounding."""
    warnings = []
    for mapped in fields:
        places = (metadata.get(mapped.api_name) or {}).get("decimal_place")
        if not isinstance(places, int) or isinstance(places, bool):
            continue
        if (mapped.type or column_types.get(mapped.column)) is not FieldType.DECIMAL:
            continue  # whole numbers and texts have no places to lose
        allowed = mapped.decimal_places
        if allowed is None or allowed > places:
            warnings.append(
                f"{module}.{mapped.api_name} keeps {places} decimal places, but values with "
                f"more from column {mapped.column!r} would be sent and rounded by the CRM: "
                f"set decimal_places = {places} on the field to make them rejects"
            )
    return warnings


def picklist_warnings(
    module: str, fields: Sequence[FieldMap], metadata: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A warning for each value a field's ``map`` or ``default`` writes to a picklist that the
    picklist does not list: a restricted picklist refuses it on every row that has it."""
    warnings = []
    for mapped in fields:
        meta = metadata.get(mapped.api_name) or {}
        listed = meta.get("pick_list_values")
        if not isinstance(listed, list) or not listed:
            continue
        known = {str(v.get("actual_value")) for v in listed if isinstance(v, Mapping)}
        written = [v for _, v in mapped.value_map] + [mapped.default]
        unknown = sorted({str(v) for v in written if v is not None and str(v) not in known})
        if unknown:
            warnings.append(
                f"{module}.{mapped.api_name} does not list {', '.join(map(repr, unknown))}, "
                f"which its map or default writes: Zoho refuses such a value if the picklist "
                "is restricted; add it to the picklist or fix the mapping"
            )
    return warnings


def _lookup_module(meta: Mapping[str, Any]) -> str | None:
    """The module a lookup field's metadata says it points at (``lookup.module.api_name``)."""
    lookup = meta.get("lookup")
    module = lookup.get("module") if isinstance(lookup, Mapping) else None
    name = module.get("api_name") if isinstance(module, Mapping) else None
    return name if isinstance(name, str) else None


def is_case_insensitive(meta: Mapping[str, Any] | None) -> bool:
    """Whether a unique field matches values case-insensitively: metadata
    ``"unique": {"case_sensitive": false}``, or a unique field that does not say (Zoho's
    default); False for a missing or non-unique field."""
    unique = meta.get("unique") if meta is not None else None
    return isinstance(unique, Mapping) and bool(unique) and not unique.get("case_sensitive")


def _check_parent_lookup(
    module: str, mapped: FieldMap, data_type: str, lookup_module: str | None
) -> list[str]:
    assert mapped.parent_field is not None
    parent = mapped.parent_field
    form = f'lookup = {{ module = "{parent.module}", field = "{parent.field}" }}'
    if data_type != "lookup":
        return [
            f"{module}.{mapped.api_name} is a {data_type or 'untyped'} field, not a lookup: "
            f"{form} needs a lookup field"
        ]
    if lookup_module is not None and lookup_module != parent.module:
        return [
            f"{module}.{mapped.api_name} looks up {lookup_module}, not {parent.module}: fix "
            f"the module of {form}"
        ]
    return []


def _check_type(
    module: str,
    mapped: FieldMap,
    ftype: FieldType,
    data_type: str,
    lookup_module: str | None = None,
) -> list[str]:
    if mapped.lookup is not None:  # the column holds a parent's legacy key, not a value
        if data_type == "lookup":
            return []
        return [
            f"{module}.{mapped.api_name} is a {data_type or 'untyped'} field, not a lookup: "
            f'lookup = "{mapped.lookup.pipeline}" needs a lookup field'
        ]
    if mapped.parent_field is not None:  # the column holds the parent's field value
        return _check_parent_lookup(module, mapped, data_type, lookup_module)
    accepted = ACCEPTED.get(data_type)
    if accepted is None:
        return [
            f"{module}.{mapped.api_name} is a {data_type or 'untyped'} field, which syncd "
            "does not write (lookups, multi-selects, formulas, files ...)"
        ]
    if ftype not in accepted:
        return [
            f"{module}.{mapped.api_name} is a {data_type} field but column "
            f"{mapped.column!r} holds {ftype} values, which will not convert; map another "
            "column or set the field's type explicitly"
        ]
    return []
