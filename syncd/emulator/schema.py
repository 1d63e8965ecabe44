"""Module schemas: the fields a module has, their types and rules, loaded from TOML or JSON.

A schema file holds ``[[modules]]`` tables, each with ``[[modules.fields]]``::

    [[modules]]
    api_name = "Orders"
    duplicate_check = ["Name"]     # system-defined duplicate-check fields (upsert, reference 4.3)

    [[modules.fields]]
    api_name = "parent_id"
    type = "text"                   # a Zoho data_type, see FIELD_TYPES
    mandatory = true
    unique = true                   # "Do not allow duplicate values"
    case_sensitive = false          # default

``type`` is the ``data_type`` the fields metadata API reports; ``length`` defaults per type.
A ``picklist`` or ``multiselectpicklist`` lists its ``values``; a ``double`` or ``currency``
field may say its ``decimal_places`` (metadata ``decimal_place``). A ``lookup`` names the
``module`` whose records it points at (``module = "Accounts"``).
"""

from __future__ import annotations

import functools
import json
import tomllib
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# data_type -> default maximum length (None: not a text type)
FIELD_TYPES: dict[str, int | None] = {
    "text": 255,
    "textarea": 2000,
    "email": 100,
    "phone": 30,
    "website": 255,
    "picklist": None,
    "multiselectpicklist": None,
    "integer": None,
    "bigint": None,
    "double": None,
    "currency": None,
    "date": None,
    "datetime": None,
    "boolean": None,
    "lookup": None,
}
# reference 4.3: only these types may carry "Do not allow duplicate values"
UNIQUE_CAPABLE = frozenset({"text", "email", "phone", "integer", "bigint", "website"})
_JSON_TYPES = {
    "integer": "integer",
    "double": "double",
    "currency": "double",
    "boolean": "boolean",
    "multiselectpicklist": "jsonarray",  # UNCONFIRMED: not in the reference
    "lookup": "jsonobject",  # the value is {"id": "..."} (reference 4.7)
}
_PICKLISTS = frozenset({"picklist", "multiselectpicklist"})
_NUMBERS = frozenset({"double", "currency"})


class SchemaError(ValueError):
    """A schema file is unreadable or describes an impossible module; lists every problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = [f"{source}: {problem}" for problem in problems]
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class FieldSpec:
    """One field of a module, as its metadata describes it."""

    api_name: str
    label: str
    data_type: str
    length: int | None = None
    mandatory: bool = False
    unique: bool = False
    case_sensitive: bool = False
    picklist: tuple[str, ...] = ()
    custom: bool = True
    decimal_places: int | None = None  # reported as metadata "decimal_place" (UNCONFIRMED)
    lookup_module: str | None = None  # a lookup: the module its records are in

    def fold(self, value: object) -> str:
        """The key a unique index stores for ``value`` (case-folded unless case-sensitive)."""
        text = str(value)
        return text if self.case_sensitive else text.casefold()


@dataclass(frozen=True)
class ModuleSchema:
    """A module: its fields in order and its system-defined duplicate-check fields."""

    api_name: str
    singular_label: str
    plural_label: str
    fields: tuple[FieldSpec, ...]
    duplicate_check: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return stable_id(self.api_name)

    def field(self, api_name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.api_name == api_name), None)

    @property
    def unique_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.unique)

    @property
    def indexed_fields(self) -> tuple[FieldSpec, ...]:
        """Fields an upsert can match on: system duplicate-check fields, then unique ones."""
        system = tuple(f for f in self.fields if f.api_name in self.duplicate_check)
        return system + tuple(f for f in self.unique_fields if f not in system)

    def metadata(self) -> list[dict[str, Any]]:
        """The ``fields`` array of ``GET /crm/v8/settings/fields?module=`` (reference 7)."""
        return [_field_metadata(self.api_name, f) for f in self.fields] + [
            _system_metadata(self.api_name, name, label)
            for name, label in (
                ("Created_Time", "Created Time"),
                ("Modified_Time", "Modified Time"),
            )
        ]


@dataclass(frozen=True)
class Schema:
    """All modules the emulated org has."""

    modules: tuple[ModuleSchema, ...]

    def module(self, api_name: str) -> ModuleSchema | None:
        """Find a module by API name; Zoho matches module names case-insensitively."""
        wanted = api_name.casefold()
        return next((m for m in self.modules if m.api_name.casefold() == wanted), None)


def load_schema(path: Path) -> Schema:
    """Read a ``.toml`` or ``.json`` schema file; raises ``SchemaError`` naming each problem."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise SchemaError(path.name, [f"cannot read the schema: {exc}"]) from exc
    return parse_schema(data, path.name)


@functools.cache
def default_schema() -> Schema:
    """The shipped ``orders.toml``: an Orders module keyed by the unique ``parent_id``."""
    text = resources.files("syncd.emulator").joinpath("orders.toml").read_text(encoding="utf-8")
    return parse_schema(tomllib.loads(text), "orders.toml")


def parse_schema(data: dict[str, Any], source: str) -> Schema:
    problems: list[str] = []
    modules = data.get("modules")
    if not isinstance(modules, list) or not modules:
        raise SchemaError(source, ["modules: expected a non-empty list of module tables"])
    parsed = [_parse_module(m, f"modules[{i}]", problems) for i, m in enumerate(modules)]
    names = {m.api_name for m in parsed if m is not None}
    for i, module in enumerate(parsed):
        for spec in module.fields if module is not None else ():
            if spec.lookup_module is not None and spec.lookup_module not in names:
                problems.append(
                    f"modules[{i}].{spec.api_name}.module: no module {spec.lookup_module!r}"
                )
    if problems:
        raise SchemaError(source, problems)
    return Schema(tuple(m for m in parsed if m is not None))


def _parse_module(raw: Any, where: str, problems: list[str]) -> ModuleSchema | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("api_name"), str):
        problems.append(f"{where}.api_name: expected a string")
        return None
    fields = [
        _parse_field(f, f"{where}.fields[{i}]", problems)
        for i, f in enumerate(raw.get("fields", []))
    ]
    names = [f.api_name for f in fields if f is not None]
    if not names:
        problems.append(f"{where}.fields: expected at least one field")
    dup_check = tuple(raw.get("duplicate_check", ()))
    for name in dup_check:
        if name not in names:
            problems.append(f"{where}.duplicate_check: {name!r} is not a field of the module")
    name = raw["api_name"]
    return ModuleSchema(
        api_name=name,
        singular_label=str(raw.get("singular_label", name)),
        plural_label=str(raw.get("plural_label", name)),
        fields=tuple(f for f in fields if f is not None),
        duplicate_check=dup_check,
    )


def _parse_field(raw: Any, where: str, problems: list[str]) -> FieldSpec | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("api_name"), str):
        problems.append(f"{where}.api_name: expected a string")
        return None
    data_type = raw.get("type", "text")
    if data_type not in FIELD_TYPES:
        problems.append(f"{where}.type: expected one of {sorted(FIELD_TYPES)}, got {data_type!r}")
        return None
    unique = bool(raw.get("unique", False))
    if unique and data_type not in UNIQUE_CAPABLE:
        problems.append(f"{where}.unique: a {data_type} field cannot be unique")
    picklist = tuple(str(v) for v in raw.get("values", ()))
    if data_type in _PICKLISTS and not picklist:
        problems.append(f"{where}.values: a picklist needs its values")
    places = raw.get("decimal_places")
    if places is not None and (data_type not in _NUMBERS or not isinstance(places, int)):
        problems.append(f"{where}.decimal_places: only a double or currency field has them")
    target = raw.get("module")
    if (data_type == "lookup") != isinstance(target, str):
        problems.append(f"{where}.module: a lookup field (and only one) names its module")
    return FieldSpec(
        api_name=raw["api_name"],
        label=str(raw.get("label", raw["api_name"].replace("_", " "))),
        data_type=data_type,
        length=int(raw.get("length", FIELD_TYPES[data_type] or 0)) or None,
        mandatory=bool(raw.get("mandatory", False)),
        unique=unique,
        case_sensitive=bool(raw.get("case_sensitive", False)),
        picklist=picklist,
        custom=bool(raw.get("custom", True)),
        decimal_places=places if isinstance(places, int) else None,
        lookup_module=target if isinstance(target, str) else None,
    )


def stable_id(*parts: str) -> str:
    """A 19-digit id that stays the same across runs, like Zoho's metadata ids."""
    return f"5725767{zlib.crc32('/'.join(parts).encode()):012d}"


def _field_metadata(module: str, spec: FieldSpec) -> dict[str, Any]:
    lookup = spec.lookup_module
    metadata: dict[str, Any] = {
        "api_name": spec.api_name,
        "id": stable_id(module, spec.api_name),
        "field_label": spec.label,
        "display_label": spec.label,
        "data_type": spec.data_type,
        "json_type": _JSON_TYPES.get(spec.data_type, "string"),
        "length": spec.length or 0,
        "decimal_place": spec.decimal_places,
        "system_mandatory": spec.mandatory,
        "custom_field": spec.custom,
        "read_only": False,
        "visible": True,
        "unique": {"case_sensitive": spec.case_sensitive} if spec.unique else {},
        "pick_list_values": [
            {"display_value": v, "actual_value": v, "id": stable_id(module, spec.api_name, v)}
            for v in spec.picklist
        ],
    }
    if lookup is not None:
        metadata["lookup"] = {"module": {"api_name": lookup, "id": stable_id(lookup)}}
    return metadata


def _system_metadata(module: str, api_name: str, label: str) -> dict[str, Any]:
    spec = FieldSpec(api_name=api_name, label=label, data_type="datetime", custom=False)
    return _field_metadata(module, spec) | {"read_only": True}
