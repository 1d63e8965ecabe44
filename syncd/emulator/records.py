"""Insert, update and upsert through the JSON records API (reference 4).

Each call answers ``{"data": [...]}`` with one entry per input record in input order; a
refused record gets an error entry (INVALID_DATA, MANDATORY_NOT_FOUND, DUPLICATE_DATA,
MULTIPLE_OR_MULTI_ERRORS) whose ``json_path`` is ``$.data[i].Field``. HTTP status: 201 all
inserted, 200 all updated or upserted, 207 mixed, 400 all refused. Keys that are not field
API names are ignored, as Zoho ignores unknown keys. One error is reported per record: the
first bad value in the record's key order, then the first missing mandatory field in schema
order, then unique-field collisions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from typing import Any, Literal

from syncd.emulator.envelope import ApiError, error_body
from syncd.emulator.faults import FaultState
from syncd.emulator.schema import FieldSpec, ModuleSchema, stable_id
from syncd.emulator.settings import EmulatorSettings
from syncd.emulator.store import CREATED, ID, MODIFIED, IdSource, ModuleStore, Record
from syncd.emulator.values import FieldProblem, json_checker

Operation = Literal["insert", "update", "upsert"]


class RecordRefused(Exception):
    """One record's error entry."""

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry["code"])
        self.entry = entry


def parse_payload(payload: Any, limit: int, settings: EmulatorSettings) -> list[Any]:
    """The ``data`` array of a records call; ``ApiError`` for request-level problems."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ApiError(
            400,
            "MANDATORY_NOT_FOUND",
            "required field not found",
            {"api_name": "data", "json_path": "$.data"},
        )
    data: list[Any] = payload["data"]
    if not data:
        raise ApiError(
            400, "INVALID_DATA", "invalid data", {"api_name": "data", "json_path": "$.data"}
        )
    if len(data) > limit:
        raise ApiError(
            settings.over_limit_status,
            settings.over_limit_code,
            f"the number of records exceeds the limit of {limit}",
            {"limit": limit, "api_name": "data", "json_path": "$.data"},
        )
    return data


def check_order(schema: ModuleSchema, payload: dict[str, Any]) -> list[FieldSpec]:
    """Fields an upsert matches on, in order (reference 4.3); ``ApiError`` for bad names."""
    requested = payload.get("duplicate_check_fields")
    if requested is None:
        return list(schema.indexed_fields)
    allowed = {f.api_name: f for f in schema.indexed_fields}
    if not isinstance(requested, list):
        requested = [requested]
    for i, name in enumerate(requested):
        if name not in allowed:
            raise ApiError(
                400,
                "INVALID_DATA",
                "invalid data",
                {
                    "api_name": "duplicate_check_fields",
                    "json_path": f"$.duplicate_check_fields[{i}]",
                },
            )
    chosen = [allowed[n] for n in requested]
    return chosen + [f for f in schema.unique_fields if f not in chosen]


class RecordWriter:
    """Applies one records call to a module store; the caller holds the store lock."""

    def __init__(
        self,
        settings: EmulatorSettings,
        zone: tzinfo,
        ids: IdSource,
        faults: FaultState,
        modules: Callable[[str], ModuleStore | None] = lambda name: None,
    ) -> None:
        self.settings = settings
        self.modules = modules  # a lookup's module, to check the record it points at exists
        self.faults = faults
        self._zone = zone
        self.ids = ids
        self.user = {"name": settings.user_name, "id": stable_id("user", settings.user_name)}
        self._checkers: dict[tuple[str, str], Callable[[Any], Any]] = {}

    def write(
        self,
        op: Operation,
        store: ModuleStore,
        data: Sequence[Any],
        order: Sequence[FieldSpec] = (),
        record_id: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for a call whose request-level checks passed."""
        batch = _Batch(self, op, store, order)
        entries = [batch.one(i, raw, record_id) for i, raw in enumerate(data)]
        return self._status(op, entries), {"data": entries}

    def _status(self, op: Operation, entries: list[dict[str, Any]]) -> int:
        failed = sum(e["status"] == "error" for e in entries)
        if failed:
            return 400 if failed == len(entries) else 207
        if op == "insert":
            return 201
        inserted_only = all(e.get("action") == "insert" for e in entries)
        return self.settings.upsert_all_insert_status if op == "upsert" and inserted_only else 200

    def checker(self, module: str, spec: FieldSpec) -> Callable[[Any], Any]:
        key = (module, spec.api_name)
        if key not in self._checkers:
            strict = self.settings.strict_picklists
            self._checkers[key] = json_checker(spec, self._zone, strict)
        return self._checkers[key]

    def now(self) -> str:
        return datetime.now(self._zone).isoformat(timespec="seconds")

    def duplicate_record(self, store: ModuleStore, record: Record) -> dict[str, Any]:
        return {
            "Owner": self.user | {"zuid": self.settings.org_id},
            "module": {"api_name": store.schema.api_name, "id": store.schema.id},
            "id": record[ID],
        }


class _Batch:
    """The records of one call, processed in order so later ones see earlier writes."""

    def __init__(
        self, writer: RecordWriter, op: Operation, store: ModuleStore, order: Sequence[FieldSpec]
    ):
        self.writer, self.op, self.store, self.order = writer, op, store, order
        self.schema = store.schema
        self.fields = {f.api_name: f for f in self.schema.fields}
        self.seen: set[tuple[str, str]] = set()
        self.strict_intra = writer.settings.intra_request_duplicates == "duplicate_data"

    def one(self, i: int, raw: Any, record_id: str | None) -> dict[str, Any]:
        try:
            if not isinstance(raw, dict):
                raise _refuse(
                    "INVALID_DATA",
                    "invalid data",
                    {"expected_data_type": "jsonobject"},
                    f"$.data[{i}]",
                )
            values = self._values(i, raw)
            target, matched = self._target(i, raw, values, record_id)
            self._check_locked(i, target)
            self._check_mandatory(i, values, target is None)
            self._check_unique(i, values, target)
        except RecordRefused as refused:
            return refused.entry
        return self._apply(values, target, matched)

    def _values(self, i: int, raw: dict[str, Any]) -> dict[int, Any]:
        values: dict[int, Any] = {}
        for name, value in raw.items():
            spec = self.fields.get(name)
            if spec is None:
                continue  # Zoho ignores keys that are not field API names
            check = self.writer.checker(self.schema.api_name, spec)
            try:
                values[self.store.slot[name]] = check(value)
            except FieldProblem as problem:
                raise _refuse(
                    "INVALID_DATA", "invalid data", problem.details, f"$.data[{i}].{name}", name
                ) from None
            if spec.lookup_module is not None:
                self._check_parent(i, spec, values[self.store.slot[name]])
        return values

    def _check_parent(self, i: int, spec: FieldSpec, record_id: str | None) -> None:
        """A lookup's id must be a record of its module (Zoho's wording: UNCONFIRMED)."""
        assert spec.lookup_module is not None
        parents = self.writer.modules(spec.lookup_module)
        if record_id is not None and (parents is None or parents.get(record_id) is None):
            raise _refuse(
                "INVALID_DATA",
                "the related id given seems to be invalid",
                {"expected_data_type": "lookup"},
                f"$.data[{i}].{spec.api_name}",
                spec.api_name,
            )

    def _target(
        self, i: int, raw: dict[str, Any], values: dict[int, Any], record_id: str | None
    ) -> tuple[Record | None, str | None]:
        if self.op == "update":
            wanted = record_id or raw.get("id")
            if not wanted:
                raise _refuse(
                    "MANDATORY_NOT_FOUND", "required field not found", {}, f"$.data[{i}].id", "id"
                )
            found = self.store.get(str(wanted))
            if found is None:
                raise _refuse(
                    "INVALID_DATA", "the id given seems to be invalid", {}, f"$.data[{i}].id", "id"
                )
            return found, None
        if self.op == "insert":
            return None, None
        for spec in self.order:
            value = values.get(self.store.slot[spec.api_name])
            if value is None or value == "":
                continue
            if self.strict_intra and (spec.api_name, spec.fold(value)) in self.seen:
                raise self._duplicate(i, spec.api_name, self.store.find(spec.api_name, value))
            found = self.store.find(spec.api_name, value)
            if found is not None:
                return found, spec.api_name
        return None, None

    def _check_locked(self, i: int, target: Record | None) -> None:
        locked = self.writer.faults.current.locked_records
        if target is None or not locked:
            return
        for spec in self.schema.unique_fields:
            if str(target[self.store.slot[spec.api_name]]) in locked:
                raise _refuse(
                    "RECORD_LOCKED", "the record is locked", {"id": target[ID]}, f"$.data[{i}]"
                )

    def _check_mandatory(self, i: int, values: dict[int, Any], inserting: bool) -> None:
        for spec in self.schema.fields:
            if not spec.mandatory:
                continue
            slot = self.store.slot[spec.api_name]
            if (inserting or slot in values) and values.get(slot) in (None, ""):
                raise _refuse(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    {},
                    f"$.data[{i}].{spec.api_name}",
                    spec.api_name,
                )

    def _check_unique(self, i: int, values: dict[int, Any], target: Record | None) -> None:
        errors = []
        for spec in self.schema.unique_fields:
            value = values.get(self.store.slot[spec.api_name])
            if value is None or value == "":
                continue
            holder = self.store.find(spec.api_name, value)
            if holder is not None and (target is None or holder[ID] != target[ID]):
                errors.append(self._duplicate(i, spec.api_name, holder).entry)
        if len(errors) == 1:
            raise RecordRefused(errors[0])
        if errors:
            raise RecordRefused(
                error_body(
                    "MULTIPLE_OR_MULTI_ERRORS", "Multiple errors in the request", {"errors": errors}
                )
            )

    def _duplicate(self, i: int, name: str, holder: Record | None) -> RecordRefused:
        details: dict[str, Any] = {"api_name": name, "json_path": f"$.data[{i}].{name}"}
        if holder is not None:
            details["duplicate_record"] = self.writer.duplicate_record(self.store, holder)
        details["more_records"] = False
        return RecordRefused(error_body("DUPLICATE_DATA", "duplicate data", details))

    def _apply(
        self, values: dict[int, Any], target: Record | None, matched: str | None
    ) -> dict[str, Any]:
        now = self.writer.now()
        inserted = target is None
        if target is None:
            target = self.store.insert(self.writer.ids.next_id(), values, now)
        else:
            target = self.store.update(target, values, now)
        for spec in self.schema.indexed_fields:
            value = target[self.store.slot[spec.api_name]]
            if value is not None and value != "":
                self.seen.add((spec.api_name, spec.fold(value)))
        return self._success(target, matched, inserted)

    def _success(self, record: Record, matched: str | None, inserted: bool) -> dict[str, Any]:
        user = self.writer.user
        details: dict[str, Any] = {
            "Modified_Time": record[MODIFIED],
            "Modified_By": user,
            "Created_Time": record[CREATED],
            "id": record[ID],
            "Created_By": user,
        }
        entry: dict[str, Any] = {"code": "SUCCESS"}
        if self.op == "upsert":
            entry |= {"duplicate_field": matched, "action": "insert" if inserted else "update"}
        elif self.op == "insert":
            details["$approval_state"] = "approved"
        added = self.op == "insert" or (self.op == "upsert" and inserted)
        return entry | {
            "details": details,
            "message": "record added" if added else "record updated",
            "status": "success",
        }


def _refuse(
    code: str, message: str, details: dict[str, Any], path: str, name: str | None = None
) -> RecordRefused:
    full = dict(details)
    if name is not None:
        full["api_name"] = name
    full["json_path"] = path
    return RecordRefused(error_body(code, message, full))
