"""Zoho's error envelope and the exception that carries a request-level error to the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"code", "details", "message", "status": "error"}``: every CRM error (reference 3.2)."""
    return {"code": code, "details": dict(details or {}), "message": message, "status": "error"}


class ApiError(Exception):
    """A request-level error: the whole call is answered with ``status`` and ``body``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.body = body if body is not None else error_body(code, message, details)
        self.headers = dict(headers or {})
