"""``EmulatorAdmin``: the client tests and the demo use for the ``/_emulator`` admin routes."""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every short-lived client: httpx builds a new one per client
    otherwise, which costs about 30 ms each time."""
    return httpx.create_ssl_context()


class EmulatorAdmin:
    """Inspect and steer a running emulator at ``base_url`` (no Zoho credentials needed)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout

    def records(self, module: str) -> list[dict[str, Any]]:
        """Every record of ``module`` with all its fields, ``id`` and timestamps."""
        data: list[dict[str, Any]] = self._call("GET", f"/_emulator/records/{module}")["data"]
        return data

    def delete_record(self, module: str, record_id: str) -> None:
        """Delete a record as a person in the CRM would (``HTTPStatusError`` 404 if none)."""
        self._call("DELETE", f"/_emulator/records/{module}/{record_id}")

    def stats(self) -> dict[str, Any]:
        """Calls per endpoint, statuses, credits, tokens, peak concurrency, 429s, bulk counts."""
        return self._call("GET", "/_emulator/stats")

    def jobs(self) -> list[dict[str, Any]]:
        """The details of every bulk job, as the job status route shows them."""
        jobs: list[dict[str, Any]] = self._call("GET", "/_emulator/jobs")["jobs"]
        return jobs

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "/_emulator/faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Change faults (``error_rate=0.2``, ``expire_tokens=True``); returns those in force."""
        return self._call("POST", "/_emulator/faults", json=faults)

    def expire_tokens(self) -> int:
        """Invalidate every live access token now; returns how many there were."""
        expired: int = self._call("POST", "/_emulator/expire-tokens")["expired"]
        return expired

    def spend_credits(self, credits: int) -> int:
        """Spend org credits as another integration would; returns the credits used now."""
        used: int = self._call("POST", "/_emulator/spend-credits", json={"credits": credits})[
            "used"
        ]
        return used

    def reset(self) -> None:
        """Forget records, tokens, credits, files, jobs, stats and run-time faults."""
        self._call("POST", "/_emulator/reset")

    def _call(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        response = httpx.request(
            method, self.base_url + path, json=json, timeout=self._timeout, verify=tls_context()
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body
