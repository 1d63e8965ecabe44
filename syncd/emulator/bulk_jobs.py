"""Bulk Write jobs: validating ``POST /crm/bulk/v8/write`` and rendering the job's details.

Creation errors follow reference 5.2: MANDATORY_NOT_FOUND (operation, resource, find_by),
MODULE_NOT_AVAILABLE, INVALID_FILE_ID, INVALID_FIELD (unknown api_name), COLUMN_INDEX_NOT_FOUND
(negative or past the last column), INVALID_FORMAT (date pattern), HEADER_LIMIT_EXCEEDED,
MANDATORY_FIELDS_NOT_MAPPED (insert/upsert without every mandatory field),
INVALID_CALLBACK_METHOD. One ``data`` resource per job: parent/child jobs are not emulated.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from urllib.parse import urlsplit

from syncd.emulator.bulk_files import UploadedFile
from syncd.emulator.envelope import ApiError
from syncd.emulator.formats import Kind, compile_pattern
from syncd.emulator.schema import FieldSpec, ModuleSchema, Schema
from syncd.emulator.settings import EmulatorSettings
from syncd.emulator.values import csv_converter

OPERATIONS = ("insert", "update", "upsert")
NO_DEFAULT = object()


@dataclass(frozen=True)
class Mapping:
    """One ``field_mappings`` entry, resolved against the file and the module."""

    api_name: str
    index: int | None
    header: str  # the CSV header of the column (the api_name for a default-only mapping)
    spec: FieldSpec | None  # None for the record ``id``
    format: str | None
    default: Any
    echo: dict[str, Any]  # as the job details show it


@dataclass(frozen=True)
class JobRequest:
    """A validated create-job body."""

    operation: str
    module: ModuleSchema
    file: UploadedFile
    find_by: str | None
    mappings: tuple[Mapping, ...]
    ignore_empty: bool
    callback: dict[str, Any] | None


@dataclass
class Job:
    """A bulk write job and its progress; ``state`` is ADDED, RUNNING, COMPLETED or FAILED."""

    id: str
    request: JobRequest
    created_time: str
    created_by: dict[str, str]
    queued_at: float
    rng: random.Random
    state: str = "ADDED"
    counts: dict[str, int] = field(
        default_factory=lambda: {"added": 0, "updated": 0, "skipped": 0, "total": 0}
    )
    result: bytes | None = None
    started_at: float | None = None  # when the worker took it up (RUNNING)
    rows_done: bool = False  # every row processed; completes once bulk_job_seconds passed
    finished_at: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def finished(self) -> bool:
        return self.state in ("COMPLETED", "FAILED")


def parse_job(
    payload: Any,
    schema: Schema,
    files: dict[str, UploadedFile],
    settings: EmulatorSettings,
    zone: tzinfo,
) -> JobRequest:
    """Validate a create-job body; ``ApiError`` with Zoho's code for the first problem."""
    if not isinstance(payload, dict):
        raise ApiError(400, "INVALID_DATA", "the request body is not a JSON object")
    operation = _operation(payload)
    callback = _callback(payload.get("callback"))
    resource = _resource(payload)
    module = _module(resource, schema)
    file = files.get(str(resource.get("file_id")))
    if file is None:
        raise ApiError(400, "INVALID_FILE_ID", "improper file id", {"api_name": "file_id"})
    find_by = _find_by(resource, module, operation)
    reader = _MappingReader(settings, zone, module, file)
    mappings = reader.read(resource.get("field_mappings"))
    _check_mapped(operation, module, find_by, mappings)
    ignore_empty = bool(payload.get("ignore_empty", resource.get("ignore_empty", False)))
    return JobRequest(operation, module, file, find_by, mappings, ignore_empty, callback)


def _operation(payload: dict[str, Any]) -> str:
    operation = payload.get("operation")
    if operation is None:
        raise ApiError(
            400,
            "MANDATORY_NOT_FOUND",
            "required key operation is not found in request body.",
            {"api_name": "operation"},
        )
    if operation not in OPERATIONS:
        raise ApiError(400, "INVALID_DATA", "invalid operation", {"api_name": "operation"})
    return str(operation)


def _callback(callback: Any) -> dict[str, Any] | None:
    if callback is None:
        return None
    url = callback.get("url") if isinstance(callback, dict) else None
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(400, "INVALID_DATA", "invalid callback url", {"api_name": "url"})
    if str(callback.get("method", "")).lower() != "post":
        raise ApiError(
            400,
            "INVALID_CALLBACK_METHOD",
            "invalid callback method",
            {"supported_callback_methods": ["post"]},
        )
    return {"url": callback["url"], "method": "post"}


def _resource(payload: dict[str, Any]) -> dict[str, Any]:
    resources = payload.get("resource")
    if not isinstance(resources, list) or not resources:
        raise ApiError(
            400,
            "MANDATORY_NOT_FOUND",
            "required key resource is not found in request body.",
            {"api_name": "resource"},
        )
    if len(resources) > 1 or not isinstance(resources[0], dict):
        raise ApiError(400, "INVALID_DATA", "the emulator takes one data resource per job")
    resource: dict[str, Any] = resources[0]
    if resource.get("type", "data") != "data":
        raise ApiError(400, "INVALID_DATA", "invalid resource type", {"api_name": "type"})
    return resource


def _module(resource: dict[str, Any], schema: Schema) -> ModuleSchema:
    raw = resource.get("module")
    name = raw.get("api_name") if isinstance(raw, dict) else raw
    module = schema.module(str(name)) if name else None
    if module is None:
        raise ApiError(400, "MODULE_NOT_AVAILABLE", f"Requested module '{name}' is not available.")
    return module


def _find_by(resource: dict[str, Any], module: ModuleSchema, operation: str) -> str | None:
    find_by = resource.get("find_by")
    if not find_by:
        if operation in ("update", "upsert"):
            raise ApiError(
                400,
                "MANDATORY_NOT_FOUND",
                "Required key find_by is not available",
                {"api_name": "find_by"},
            )
        return None
    spec = module.field(str(find_by))
    if find_by != "id" and (spec is None or not spec.unique):
        raise ApiError(
            400, "INVALID_DATA", f"find_by {find_by} is not a unique field", {"api_name": "find_by"}
        )
    return str(find_by)


class _MappingReader:
    """Resolves ``field_mappings`` against the module's fields and the uploaded file."""

    def __init__(
        self, settings: EmulatorSettings, zone: tzinfo, module: ModuleSchema, file: UploadedFile
    ) -> None:
        self.settings, self.zone, self.module, self.file = settings, zone, module, file

    def read(self, raw: Any) -> tuple[Mapping, ...]:
        if raw is None:  # no mappings: the header row holds the API names
            raw = [{"api_name": name, "index": i} for i, name in enumerate(self.file.header)]
        if not isinstance(raw, list) or not raw:
            raise ApiError(
                400, "INVALID_DATA", "invalid field_mappings", {"api_name": "field_mappings"}
            )
        limit = self.settings.max_bulk_columns
        if len(raw) > limit:
            raise ApiError(
                400, "HEADER_LIMIT_EXCEEDED", "the mapped fields exceed the limit", {"limit": limit}
            )
        return tuple(self._one(m) for m in raw)

    def _one(self, raw: Any) -> Mapping:
        name = raw.get("api_name") if isinstance(raw, dict) else None
        spec = self.module.field(str(name)) if name else None
        if not isinstance(raw, dict) or (spec is None and name != "id"):
            raise ApiError(400, "INVALID_FIELD", f"invalid mapping. invalid api_name {name}.")
        index = raw.get("index")
        has_default = isinstance(raw.get("default_value"), dict)
        columns = len(self.file.header)
        if (index is None and not has_default) or (
            index is not None and (type(index) is not int or not 0 <= index < columns)
        ):
            raise ApiError(
                400,
                "COLUMN_INDEX_NOT_FOUND",
                "column index not found",
                {"api_name": name, "index": index},
            )
        if spec is not None and spec.lookup_module is not None and not raw.get("find_by"):
            raise ApiError(  # reference 5.2: find_by is mandatory for lookup fields
                400,
                "MANDATORY_NOT_FOUND",
                f"find_by is mandatory for the lookup field {name}",
                {"api_name": name},
            )
        fmt = self._format(spec, raw.get("format"))
        default = self._default(spec, raw["default_value"], fmt) if has_default else NO_DEFAULT
        echo = {
            "api_name": name,
            "index": index,
            "format": raw.get("format"),
            "find_by": raw.get("find_by"),
            "module": None,
            "default_value": raw.get("default_value"),
        }
        header = self.file.header[index] if index is not None else str(name)
        return Mapping(str(name), index, header, spec, fmt, default, echo)

    def _format(self, spec: FieldSpec | None, declared: Any) -> str | None:
        if spec is None or spec.data_type not in ("date", "datetime"):
            return None
        kind: Kind = "date" if spec.data_type == "date" else "datetime"
        s = self.settings
        fmt = (
            str(declared)
            if declared
            else (s.bulk_default_date_format if kind == "date" else s.bulk_default_datetime_format)
        )
        try:
            compile_pattern(fmt, kind)
            if declared and s.bulk_date_formats is not None and fmt not in s.bulk_date_formats:
                raise ValueError(fmt)
        except ValueError as exc:
            raise ApiError(
                400,
                "INVALID_FORMAT",
                f"invalid format {fmt} for {spec.api_name}",
                {"api_name": spec.api_name},
            ) from exc
        return fmt

    def _default(self, spec: FieldSpec | None, raw: dict[str, Any], fmt: str | None) -> Any:
        value = raw.get("value")
        if spec is None or value is None:
            return value
        convert = csv_converter(spec, fmt, self.zone, self.settings.strict_picklists)
        try:
            return convert(str(value).lower() if isinstance(value, bool) else str(value))
        except ValueError as exc:
            raise ApiError(
                400, "INVALID_DATA", "invalid default_value", {"api_name": spec.api_name}
            ) from exc


def _check_mapped(
    operation: str, module: ModuleSchema, find_by: str | None, mappings: tuple[Mapping, ...]
) -> None:
    mapped = {m.api_name for m in mappings}
    if find_by is not None and find_by not in {m.api_name for m in mappings if m.index is not None}:
        raise ApiError(
            400,
            "INVALID_DATA",
            f"the find_by field {find_by} is not mapped",
            {"api_name": "find_by"},
        )
    missing = [f.api_name for f in module.fields if f.mandatory and f.api_name not in mapped]
    if operation != "update" and missing:
        raise ApiError(
            400,
            "MANDATORY_FIELDS_NOT_MAPPED",
            "All mandatory fields are not mapped for the layout",
            {"api_names": missing},
        )


def job_details(job: Job, settings: EmulatorSettings, download_url: str) -> dict[str, Any]:
    """The body of ``GET /crm/bulk/v8/write/{id}`` (and of the callback POST), reference 5.3."""
    running = settings.job_status_spelling
    request = job.request
    status = {"ADDED": "ADDED", "RUNNING": running}.get(job.state, job.state)
    resource_status = running if job.state in ("ADDED", "RUNNING") else job.state
    body: dict[str, Any] = {
        "status": status,
        "character_encoding": "UTF-8",
        "resource": [
            {
                "status": resource_status,
                "type": "data",
                "module": {"id": request.module.id, "api_name": request.module.api_name},
                "field_mappings": [m.echo for m in request.mappings],
                "file": _file_details(job, resource_status),
                "code": "ADDED" if job.state == "ADDED" else resource_status,
            }
        ],
        "id": job.id,
        "created_by": job.created_by,
        "operation": request.operation,
        "created_time": job.created_time,
        "ignore_empty": request.ignore_empty,
    }
    if request.callback is not None:
        body["callback"] = request.callback
    if job.state == "COMPLETED":
        body["result"] = {"download_url": download_url}
    return body


def regressed(details: dict[str, Any]) -> dict[str, Any]:
    """The details of a job as first created (ADDED, no result), whatever it has become."""
    body = {k: v for k, v in details.items() if k != "result"}
    body["status"] = "ADDED"
    body["resource"] = [
        {**r, "status": "ADDED", "code": "ADDED", "file": {"status": "ADDED"}}
        for r in details["resource"]
    ]
    return body


def _file_details(job: Job, status: str) -> dict[str, Any]:
    if job.state == "ADDED":
        return {"status": status}
    counts = job.counts
    return {
        "status": status,
        "name": job.request.file.csv_name,
        "added_count": counts["added"],
        "skipped_count": counts["skipped"],
        "updated_count": counts["updated"],
        "total_count": counts["total"],
    }
