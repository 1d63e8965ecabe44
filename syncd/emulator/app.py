"""The ASGI application: Zoho routes, the ``/_emulator`` admin routes, and Zoho-shaped 404/405.

Admin routes (no auth, never faulted, never charged)::

    GET  /_emulator/records/{module}   {"module", "count", "data": [record, ...]}
    DELETE /_emulator/records/{module}/{record_id}
                                       {"deleted": 1}, or 404: someone deleted it in the CRM
    GET  /_emulator/stats              calls, statuses, credits, tokens, concurrency, 429s, ...
    GET  /_emulator/jobs               {"jobs": [job details, ...]}
    GET  /_emulator/faults             the faults in force
    POST /_emulator/faults             {"error_rate": 0.1, ..., "expire_tokens": true}
    POST /_emulator/expire-tokens      {"expired": n}
    POST /_emulator/reset              forget everything (records, tokens, credits, jobs, stats)
    POST /_emulator/spend-credits      {"credits": n}: another integration of the org spends them
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.emulator.core import Emulator
from syncd.emulator.envelope import error_body
from syncd.emulator.gateway import Gateway
from syncd.emulator.limits import Throttled
from syncd.emulator.routes import crm_routes


class AdminHandlers:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator

    async def records(self, request: Request) -> Response:
        store = self.emu.store.module(request.path_params["module"])
        if store is None:
            return JSONResponse({"error": "unknown module"}, status_code=404)
        with self.emu.store.lock:
            data = list(store.records())
        return JSONResponse({"module": store.schema.api_name, "count": len(data), "data": data})

    async def delete_record(self, request: Request) -> Response:
        """A record deleted in the CRM by a person (frees its unique values)."""
        store = self.emu.store.module(request.path_params["module"])
        if store is None:
            return JSONResponse({"error": "unknown module"}, status_code=404)
        with self.emu.store.lock:
            deleted = store.delete(request.path_params["record_id"])
        if not deleted:
            return JSONResponse({"error": "no such record"}, status_code=404)
        return JSONResponse({"deleted": 1})

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.emu.snapshot())

    async def jobs(self, request: Request) -> Response:
        jobs = [self.emu.job_details(job) for job in list(self.emu.board.jobs.values())]
        return JSONResponse({"jobs": jobs})

    async def faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                changes: dict[str, Any] = json.loads(await request.body() or b"{}")
                if changes.pop("expire_tokens", False):
                    self.emu.tokens.expire_all()
                self.emu.faults.update(changes)
            except (ValueError, AttributeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(dataclasses.asdict(self.emu.faults.current))

    async def expire_tokens(self, request: Request) -> Response:
        return JSONResponse({"expired": self.emu.tokens.expire_all()})

    async def spend_credits(self, request: Request) -> Response:
        """The company's other integrations spend org credits (the daily pool is shared)."""
        try:
            credits = int(json.loads(await request.body() or b"{}")["credits"])
            self.emu.credits.charge(credits)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"credits: {exc}"}, status_code=400)
        except Throttled:
            return JSONResponse({"error": "not that many credits left"}, status_code=409)
        return JSONResponse({"used": self.emu.credits.used()})

    async def reset(self, request: Request) -> Response:
        self.emu.reset()
        return JSONResponse({"status": "reset"})


def create_app(emulator: Emulator) -> Starlette:
    """The Starlette app over ``emulator``; its lifespan runs the bulk worker."""
    admin = AdminHandlers(emulator)
    routes = [
        *crm_routes(emulator, Gateway(emulator)),
        Route("/_emulator/records/{module}", admin.records, methods=["GET"]),
        Route("/_emulator/records/{module}/{record_id}", admin.delete_record, methods=["DELETE"]),
        Route("/_emulator/stats", admin.stats, methods=["GET"]),
        Route("/_emulator/jobs", admin.jobs, methods=["GET"]),
        Route("/_emulator/faults", admin.faults, methods=["GET", "POST"]),
        Route("/_emulator/expire-tokens", admin.expire_tokens, methods=["POST"]),
        Route("/_emulator/reset", admin.reset, methods=["POST"]),
        Route("/_emulator/spend-credits", admin.spend_credits, methods=["POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        emulator.start()
        try:
            yield
        finally:
            emulator.stop()

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    """Zoho's bodies for unknown URLs (404 INVALID_URL_PATTERN) and wrong methods (400)."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        body = error_body(
            "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )
    elif status == 405:
        status, body = (
            400,
            error_body("INVALID_REQUEST_METHOD", "The http request method type is not a valid one"),
        )
    else:
        detail = exc.detail if isinstance(exc, HTTPException) else "error"
        body = error_body("INVALID_REQUEST", str(detail))
    return JSONResponse(body, status_code=status)
