"""The Zoho routes: OAuth token, org, fields metadata, records (write, read by id, search), bulk
upload/job/status/result."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from syncd.emulator.bulk_files import read_upload, upload_success
from syncd.emulator.bulk_jobs import parse_job, regressed
from syncd.emulator.core import Emulator
from syncd.emulator.deletes import delete_records
from syncd.emulator.envelope import ApiError
from syncd.emulator.gateway import (
    DroppedResponse,
    Gateway,
    Handler,
    Scopes,
    hold_complex_slot,
    json_response,
)
from syncd.emulator.reads import requested_fields, requested_ids
from syncd.emulator.records import Operation, check_order, parse_payload
from syncd.emulator.search import search
from syncd.emulator.store import ModuleStore

ORG_SCOPES = ("ZohoCRM.org.ALL", "ZohoCRM.org.READ")
FIELD_SCOPES = (
    "ZohoCRM.settings.ALL",
    "ZohoCRM.settings.fields.ALL",
    "ZohoCRM.settings.fields.READ",
)
FILE_SCOPES = ("ZohoFiles.files.ALL",)
BULK_WRITE_SCOPES = ("ZohoCRM.bulk.ALL", "ZohoCRM.bulk.CREATE")
BULK_READ_SCOPES = (*BULK_WRITE_SCOPES, "ZohoCRM.bulk.READ")
_OP_SCOPES = {
    "insert": ("CREATE", "WRITE"),
    "update": ("UPDATE", "WRITE"),
    "upsert": ("CREATE", "WRITE"),
    "read": ("READ",),
    "delete": ("DELETE",),
}
_ALL_MODULE_SCOPES = {"read": ("ZohoCRM.modules.READ",)}
# the bulk upload host's own error shape, from the v8 OAS bulk_write.json API_Exception
UPLOAD_HEADER_ERROR = {
    "ERROR_CODE": 400,
    "ERROR_MESSAGE": "Bad Request",
    "x-error": "check if headers [feature, X-CRM-ORG] are present and valid",
    "info": "Forbidden",
    "x-info": "Link not valid",
    "http_status": 400,
}


def record_scopes(op: str) -> Scopes:
    """Records calls accept the all-modules scope or the module's own ALL or operation scope."""

    def scopes(request: Request) -> tuple[str, ...]:
        module = request.path_params.get("module", "")
        specific = tuple(f"ZohoCRM.modules.{module}.{level}" for level in ("ALL", *_OP_SCOPES[op]))
        return ("ZohoCRM.modules.ALL", *_ALL_MODULE_SCOPES.get(op, ()), *specific)

    return scopes


class CrmHandlers:
    """The handlers; each raises ``ApiError`` for request-level errors."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    async def token(self, request: Request) -> Response:
        """Parameters may come as query, form body, or client id/secret in Basic auth [S26]."""
        params = _basic_credentials(request.headers.get("authorization", ""))
        params |= dict(request.query_params)
        async with request.form() as form:
            params |= {k: v for k, v in form.items() if isinstance(v, str)}
        status, body = self.emu.tokens.grant(params, self.emu.base_url)
        return json_response(status, body)

    async def org(self, request: Request) -> Response:
        self.emu.credits.charge(1)
        return json_response(200, {"org": [self.emu.org()]})

    async def fields(self, request: Request) -> Response:
        name = request.query_params.get("module")
        if not name:
            raise ApiError(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                {"param": "module"},
            )
        module = self.emu.settings.schema.module(name)
        if module is None:
            raise ApiError(
                400,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"param": "module"},
            )
        self.emu.credits.charge(1)
        return json_response(200, {"fields": module.metadata()})

    async def insert(self, request: Request) -> Response:
        return await self._write(request, "insert")

    async def update(self, request: Request) -> Response:
        return await self._write(request, "update", request.path_params.get("record_id"))

    async def upsert(self, request: Request) -> Response:
        return await self._write(request, "upsert")

    async def _write(
        self, request: Request, op: Operation, record_id: str | None = None
    ) -> Response:
        emu = self.emu
        store = self._module(request)
        payload = await _json(request)
        data = parse_payload(payload, emu.settings.max_records_per_call, emu.settings)
        order = check_order(store.schema, payload) if op == "upsert" else []
        if len(data) > 10:
            hold_complex_slot(request)
        emu.credits.charge(math.ceil(len(data) / 10))
        status, body = await run_in_threadpool(emu.write_records, op, store, data, order, record_id)
        return json_response(status, body)

    async def get_records(self, request: Request) -> Response:
        """``GET /crm/v8/{module}?ids=..&fields=..`` (see ``syncd.emulator.reads``)."""
        store = self._module(request)
        fields = requested_fields(store, request.query_params, required=True)
        return await self._read(store, requested_ids(request.query_params), fields)

    async def get_record(self, request: Request) -> Response:
        """``GET /crm/v8/{module}/{record_id}``: ``fields`` is optional here."""
        store = self._module(request)
        fields = requested_fields(store, request.query_params, required=False)
        return await self._read(store, [request.path_params["record_id"]], fields)

    async def search(self, request: Request) -> Response:
        """``GET /crm/v8/{module}/search?criteria=..`` (see ``syncd.emulator.search``)."""
        emu = self.emu
        store = self._module(request)
        emu.credits.charge(1)

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            with emu.store.lock:
                return search(store, request.query_params)

        data, info = await run_in_threadpool(run)
        if not data:
            return Response(status_code=204)
        return json_response(200, {"data": data, "info": info})

    async def delete(self, request: Request) -> Response:
        """``DELETE /crm/v8/{module}?ids=..`` (see ``syncd.emulator.deletes``)."""
        emu = self.emu
        store = self._module(request)
        ids = requested_ids(request.query_params)  # 1..100 ids, else 400 (as Get Records)
        emu.credits.charge(1)
        trigger = request.query_params.get("wf_trigger", "true").lower() != "false"
        emu.stats.bump("deletes", "wf_trigger" if trigger else "no_wf_trigger")
        locked = set(emu.faults.current.locked_records)

        def run() -> tuple[int, dict[str, Any]]:
            with emu.store.lock:
                return delete_records(store, ids, locked)

        status, body = await run_in_threadpool(run)
        return json_response(status, body)

    async def _read(self, store: ModuleStore, ids: list[str], fields: list[str] | None) -> Response:
        self.emu.credits.charge(1)
        data = await run_in_threadpool(self.emu.read_records, store, ids, fields)
        if not data:
            return Response(status_code=204)
        return json_response(200, {"data": data})

    def _module(self, request: Request) -> ModuleStore:
        store = self.emu.store.module(request.path_params["module"])
        if store is None:
            raise ApiError(
                400,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"resource_path_index": 0},
            )
        return store

    async def upload(self, request: Request) -> Response:
        emu, settings = self.emu, self.emu.settings
        feature, org = request.headers.get("feature"), request.headers.get("x-crm-org")
        if not feature or org != settings.org_id:
            raise ApiError(400, "", "", body=UPLOAD_HEADER_ERROR)
        if feature != "bulk-write":
            raise ApiError(200, "NOT_SUPPORTED_FEATURE", "Feature is not supported")
        if int(request.headers.get("content-length") or 0) > settings.max_upload_bytes + 65_536:
            raise ApiError(413, "FILE_TOO_LARGE", "File size too large to process")
        data = await _file_part(request, settings.max_upload_bytes)
        emu.credits.charge(settings.upload_credits)
        file = await run_in_threadpool(
            read_upload, data, settings, emu.store.ids.next_id(), emu.now()
        )
        emu.board.add_file(file)
        emu.stats.bump("bulk", "files_uploaded")
        return json_response(200, upload_success(file))

    async def create_job(self, request: Request) -> Response:
        emu = self.emu
        payload = await _json(request)
        job_request = parse_job(
            payload, emu.settings.schema, emu.board.files, emu.settings, emu.zone
        )
        emu.board.check_capacity(emu.settings.max_parallel_bulk_jobs)
        hold_complex_slot(request)
        emu.credits.charge(emu.settings.bulk_job_credits)
        job = emu.create_job(job_request)
        if emu.faults.take_lost_create_reply():  # created and charged; the reply never arrives
            emu.stats.bump("faults", "lost_create_reply")
            return DroppedResponse()
        body = {
            "status": "success",
            "code": "SUCCESS",
            "message": "success",
            "details": {"id": job.id, "created_by": job.created_by},
        }
        return json_response(201, body)

    async def job_status(self, request: Request) -> Response:
        emu = self.emu
        job = emu.board.jobs.get(request.path_params["job_id"])
        if job is None:
            raise self._not_found()
        emu.credits.charge(emu.settings.status_credits)
        if emu.settings.instant_jobs and not job.finished:
            await run_in_threadpool(emu.runner.run_to_end, job)
        details = emu.job_details(job)
        if emu.faults.take("status_regressions"):  # a lagging replica answers
            emu.stats.bump("faults", "status_regression")
            details = regressed(details)
        return json_response(200, details)

    async def download(self, request: Request) -> Response:
        emu = self.emu
        job = emu.board.jobs.get(request.path_params["job_id"])
        if job is None or job.result is None or not emu.result_available(job):
            raise self._not_found()
        emu.credits.charge(1)
        disposition = f'attachment; filename="{job.id}.zip"'
        return Response(
            job.result,
            media_type="application/octet-stream",
            headers={"Content-Disposition": disposition},
        )

    def _not_found(self) -> ApiError:
        status = self.emu.settings.resource_not_found_status
        return ApiError(status, "RESOURCE_NOT_FOUND", "The requested resource doesn't exist.", {})


def crm_routes(emulator: Emulator, gateway: Gateway) -> list[Route]:
    h = CrmHandlers(emulator)

    def crm(path: str, method: str, handler: Handler, scopes: Scopes) -> Route:
        name = f"{method} {path}"
        return Route(path, gateway.crm(name, handler, scopes), methods=[method], name=name)

    def fixed(scopes: tuple[str, ...]) -> Scopes:
        return lambda request: scopes

    return [
        Route(
            "/oauth/v2/token", gateway.accounts("POST /oauth/v2/token", h.token), methods=["POST"]
        ),
        crm("/crm/v8/org", "GET", h.org, fixed(ORG_SCOPES)),
        crm("/crm/v8/settings/fields", "GET", h.fields, fixed(FIELD_SCOPES)),
        crm("/crm/v8/upload", "POST", h.upload, fixed(FILE_SCOPES)),
        crm("/crm/bulk/v8/write", "POST", h.create_job, fixed(BULK_WRITE_SCOPES)),
        crm("/crm/bulk/v8/write/{job_id}", "GET", h.job_status, fixed(BULK_READ_SCOPES)),
        crm(
            "/{version}/crm/{org}/bulk-write/{job_id}/{file_name}",
            "GET",
            h.download,
            fixed(BULK_READ_SCOPES),
        ),
        crm("/crm/v8/{module}", "GET", h.get_records, record_scopes("read")),
        crm("/crm/v8/{module}/search", "GET", h.search, record_scopes("read")),
        crm("/crm/v8/{module}/{record_id}", "GET", h.get_record, record_scopes("read")),
        crm("/crm/v8/{module}", "POST", h.insert, record_scopes("insert")),
        crm("/crm/v8/{module}", "PUT", h.update, record_scopes("update")),
        crm("/crm/v8/{module}", "DELETE", h.delete, record_scopes("delete")),
        crm("/crm/v8/{module}/upsert", "POST", h.upsert, record_scopes("upsert")),
        crm("/crm/v8/{module}/{record_id}", "PUT", h.update, record_scopes("update")),
    ]


def _basic_credentials(header: str) -> dict[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return {}
    return {"client_id": client_id, "client_secret": secret}


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(400, "INVALID_DATA", "the request body is not valid JSON") from exc


async def _file_part(request: Request, limit: int) -> bytes:
    async with request.form(max_part_size=limit + 1) as form:
        part = form.get("file")
        if isinstance(part, UploadFile):
            data = await part.read()
        elif isinstance(part, str):
            data = part.encode()
        else:
            raise ApiError(
                400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "file"}
            )
    return data
