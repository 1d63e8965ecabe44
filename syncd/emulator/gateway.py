"""What every call goes through before its handler: stats, auth, concurrency, faults, headers.

Order for CRM routes: count the call; the token-expiry fault (every token revoked when the call
is named in ``expire_tokens_on``); check ``Authorization: Zoho-oauthtoken`` and scope (401);
enter the concurrency gate (429); injected drop, 500 and 429 faults; the handler (which charges
credits and may take a sub-concurrency slot, raising 429 itself); injected latency, still
holding both slots, as if Zoho were slow to process; the drop-after-processing fault; the
garble fault (the processed call's answer broken as a proxy breaks it); then the
``X-API-CREDITS-REMAINING`` header once ``credits_header_threshold`` of the budget is used.
The token endpoint gets the stats and faults only (``token_errors`` first: HTTP 200 with an
error body): it belongs to Zoho Accounts, not to CRM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from syncd.emulator.auth import AuthProblem
from syncd.emulator.core import Emulator
from syncd.emulator.envelope import ApiError, error_body
from syncd.emulator.limits import Throttled

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
Scopes = Callable[[Request], tuple[str, ...]]
DROP_LOG_MESSAGE = "ASGI callable returned without completing response."


class DroppedResponse(Response):
    """Starts a response and stops: uvicorn closes the socket and the client sees a broken
    connection (httpx raises ``RemoteProtocolError``), as when a load balancer drops it."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-length", b"64"), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})


def hold_complex_slot(request: Request) -> None:
    """Count this call against sub-concurrency until its response is ready (or raise 429)."""
    request.state.gate.acquire_complex()
    request.state.complex_slot = True  # released by Gateway.crm


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def token_error_body(error: str) -> dict[str, str]:
    """Zoho Accounts' refusal, answered with HTTP 200 (reference 2.3)."""
    return {"error": error, "error_description": f"{error} (injected fault)", "status": "failure"}


PROXY_ERROR_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)


def garbled(response: Response, kind: str) -> Response:
    """The answer as a misbehaving proxy passes it on (``Faults.garble``).

    truncated_json: the body cut in half, re-framed with a matching length, so the client reads
    it in full and finds it broken. html_200: an HTML error page with status 200, as a proxy or
    captive portal sends. wrong_content_type: the body intact, labelled text/html. empty_body:
    the status kept, the body gone.
    """
    body = bytes(response.body)
    if kind == "truncated_json":
        return Response(body[: len(body) // 2], response.status_code, media_type=_type(response))
    if kind == "html_200":
        return Response(PROXY_ERROR_PAGE, 200, media_type="text/html")
    if kind == "wrong_content_type":
        return Response(body, response.status_code, media_type="text/html; charset=UTF-8")
    return Response(b"", response.status_code, media_type=_type(response))


def _type(response: Response) -> str:
    return response.headers.get("content-type", "application/json")


class Gateway:
    """Wraps handlers with the steps above."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def crm(self, name: str, handler: Handler, scopes: Scopes) -> Handler:
        async def endpoint(request: Request) -> Response:
            emu = self.emulator
            # the call holds slots of the gate it started with, even if a reset replaces it
            gate = request.state.gate = emu.gate
            emu.stats.bump("calls", name)
            if emu.faults.take_token_expiry(name):  # revoked mid-job, say
                emu.stats.bump("faults", "token_expired")
                emu.tokens.expire_all()
            try:
                emu.tokens.check(request.headers.get("authorization"), scopes(request))
                with gate.call():
                    try:
                        response = await self._faulted(name, request, handler)
                    finally:
                        if getattr(request.state, "complex_slot", False):
                            gate.release_complex()
            except AuthProblem as problem:
                response = json_response(401, error_body(problem.code, problem.message))
            except Throttled as throttled:
                response = self._throttled(throttled)
            except ApiError as error:
                response = json_response(error.status, error.body, error.headers)
            return self._finish(response, credits_header=True)

        return endpoint

    def accounts(self, name: str, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            self.emulator.stats.bump("calls", name)
            if self.emulator.faults.take("token_errors"):
                self.emulator.stats.bump("faults", "token_error")
                error = self.emulator.faults.current.token_error
                refusal = json_response(200, token_error_body(error))
                return self._finish(refusal, credits_header=False)
            try:
                response = await self._faulted(name, request, handler)
            except Throttled as throttled:
                response = self._throttled(throttled)
            return self._finish(response, credits_header=False)

        return endpoint

    async def _faulted(self, name: str, request: Request, handler: Handler) -> Response:
        faults = self.emulator.faults
        if faults.roll("drop_rate"):
            return self._drop("drop")
        if faults.roll("error_rate"):
            self.emulator.stats.bump("faults", "error")
            return json_response(500, error_body("INTERNAL_ERROR", "Internal Server Error"))
        if faults.roll("rate_limit_rate"):
            self.emulator.stats.bump("faults", "rate_limit")
            raise Throttled("fault")
        response = await handler(request)
        if faults.current.latency_ms:
            await asyncio.sleep(faults.current.latency_ms / 1000)
        if faults.roll("drop_after_rate"):
            return self._drop("drop_after")
        if not isinstance(response, DroppedResponse) and faults.take_garble(name):
            kind = faults.current.garble
            self.emulator.stats.bump("faults", f"garble_{kind}")
            return garbled(response, kind)
        return response

    def _drop(self, fault: str) -> Response:
        self.emulator.stats.bump("faults", fault)
        logger.debug(
            "connection dropped by fault", extra={"event": "emulator_drop", "fault": fault}
        )
        return DroppedResponse()

    def _throttled(self, throttled: Throttled) -> Response:
        settings = self.emulator.settings
        self.emulator.stats.bump("throttled", throttled.reason)
        message = settings.throttle_message or throttled.message
        headers = {}
        if settings.retry_after_seconds is not None:
            headers["Retry-After"] = str(settings.retry_after_seconds)
        return json_response(429, error_body("TOO_MANY_REQUESTS", message), headers)

    def _finish(self, response: Response, *, credits_header: bool) -> Response:
        emu = self.emulator
        if isinstance(response, DroppedResponse):
            return response
        emu.stats.bump("statuses", str(response.status_code))
        if credits_header:
            used, daily = emu.credits.used(), emu.credits.daily
            if used >= emu.settings.credits_header_threshold * daily:
                response.headers["X-API-CREDITS-REMAINING"] = str(daily - used)
        return response
