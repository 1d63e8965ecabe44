"""Posting one message to one target: httpx, a short timeout, a bounded retry with backoff.

A webhook URL is a credential (anyone holding a Slack URL may post to the channel), so the URL
never appears in a log line or an error: only ``NotifyTarget.display_url`` (scheme and host).
httpx's own exceptions name the URL, so they are reduced to their class name here.
"""

from __future__ import annotations

from typing import Any

import httpx
import stamina

from syncd.config.settings import NotifyTarget
from syncd.errors import SyncdError

TIMEOUT = httpx.Timeout(5.0)
ATTEMPTS = 3
RETRY_TIMEOUT = 30.0  # seconds, all attempts together: an evaluation never hangs for long


class NotifyError(SyncdError):
    """A target did not take a message (after the retries); says which one, never its URL."""

    def __init__(self, target: NotifyTarget, reason: str) -> None:
        super().__init__(f"notify target {target.name} ({target.display_url}): {reason}")
        self.target = target.name
        self.reason = reason


class _Retriable(Exception):
    """A 429 or 5xx answer, or no answer at all: worth another try."""


def post(client: httpx.Client, target: NotifyTarget, body: dict[str, Any]) -> None:
    """Deliver ``body``, or raise ``NotifyError``."""
    headers = {name: value.reveal() for name, value in target.headers}
    try:
        for attempt in stamina.retry_context(
            on=_Retriable, attempts=ATTEMPTS, timeout=RETRY_TIMEOUT, wait_initial=0.5, wait_max=5.0
        ):
            with attempt:
                _post_once(client, target, body, headers)
    except _Retriable as exc:
        raise NotifyError(target, str(exc)) from None


def _post_once(
    client: httpx.Client, target: NotifyTarget, body: dict[str, Any], headers: dict[str, str]
) -> None:
    try:
        response = client.post(target.url.reveal(), json=body, headers=headers, timeout=TIMEOUT)
    except httpx.HTTPError as exc:  # its message and its request name the URL: drop both
        raise _Retriable(f"no answer ({type(exc).__name__})") from None
    if response.status_code == 429 or response.status_code >= 500:
        raise _Retriable(f"answered HTTP {response.status_code}")
    if response.status_code >= 400:
        raise NotifyError(target, f"refused the message: HTTP {response.status_code}")
