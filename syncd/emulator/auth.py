"""Zoho Accounts' refresh-token grant and the access tokens it mints (reference 2).

Limits as documented: at most ``token_mint_limit`` (10) mints per refresh token in any
``token_mint_window_seconds`` (10 min), beyond that ``Access Denied``; at most
``max_live_tokens`` (15) live tokens, the next mint invalidating the oldest; tokens expire
after ``token_ttl_seconds``. Token-endpoint errors are 200 bodies without ``access_token``
(``token_error_status`` switches invalid_client and Access Denied to 400).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from syncd.emulator.settings import EmulatorSettings

logger = logging.getLogger(__name__)

ACCESS_DENIED = {
    "error_description": "You have made too many requests continuously. "
    "Please try again after some time.",
    "error": "Access Denied",
    "status": "failure",
}
_MESSAGES = {
    "AUTHENTICATION_FAILURE": "Authentication failed",
    "INVALID_TOKEN": "invalid oauth token",
    "OAUTH_SCOPE_MISMATCH": "invalid oauth scope to access this URL",
}
PREFIX = "Zoho-oauthtoken "


class AuthProblem(Exception):
    """Why a CRM call is unauthorised: a 401 with ``code`` and Zoho's message for it."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = _MESSAGES[code]


@dataclass(frozen=True)
class AccessToken:
    refresh_token: str
    expires_at: float
    scopes: frozenset[str]


class TokenIssuer:
    """Mints, tracks and checks access tokens; thread-safe."""

    def __init__(self, settings: EmulatorSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._live: OrderedDict[str, AccessToken] = OrderedDict()
        self._mints: dict[str, deque[float]] = {}
        self.minted = 0
        self.issued: list[str] = []  # every token minted, for tests that look for leaks

    def grant(self, params: Mapping[str, str], api_domain: str) -> tuple[int, dict[str, Any]]:
        """Answer ``POST /oauth/v2/token``: (HTTP status, JSON body)."""
        s = self._settings
        failed = s.token_error_status
        if params.get("grant_type") != "refresh_token":
            return failed, {"error": "unsupported_grant_type"}
        if (params.get("client_id"), params.get("client_secret")) != (s.client_id, s.client_secret):
            return failed, {"error": "invalid_client"}
        refresh = params.get("refresh_token", "")
        if refresh != s.refresh_token:
            return 200, {"error": "invalid_code"}  # 200 is observed Zoho behaviour [S46]
        with self._lock:
            token = self._mint(refresh)
        if token is None:
            logger.info("token mint throttled", extra={"event": "emulator_token_throttled"})
            return failed, ACCESS_DENIED
        return 200, {
            "access_token": token,
            "scope": s.scope,
            "api_domain": api_domain,
            "token_type": "Bearer",
            "expires_in": int(s.token_ttl_seconds),
        }

    def _mint(self, refresh: str) -> str | None:
        s, now = self._settings, self._clock()
        mints = self._mints.setdefault(refresh, deque())
        while mints and mints[0] <= now - s.token_mint_window_seconds:
            mints.popleft()
        if len(mints) >= s.token_mint_limit:
            return None
        mints.append(now)
        token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
        scopes = frozenset(s.scope.split())
        self._live[token] = AccessToken(refresh, now + s.token_ttl_seconds, scopes)
        mine = [t for t, a in self._live.items() if a.refresh_token == refresh]
        for oldest in mine[: max(0, len(mine) - s.max_live_tokens)]:
            del self._live[oldest]
        self.minted += 1
        self.issued.append(token)
        return token

    def check(self, header: str | None, needed: tuple[str, ...]) -> None:
        """Raise ``AuthProblem`` unless ``header`` carries a live token with a ``needed`` scope."""
        if not header or not header.startswith(PREFIX):
            raise AuthProblem("AUTHENTICATION_FAILURE")
        presented = header[len(PREFIX) :].strip()
        with self._lock:
            token = self._live.get(presented)
            if token is not None and token.expires_at <= self._clock():
                del self._live[presented]
                raise AuthProblem(self._settings.expired_token_code)
        if token is None:
            raise AuthProblem("INVALID_TOKEN")
        if needed and not token.scopes.intersection(needed):
            raise AuthProblem("OAUTH_SCOPE_MISMATCH")

    def expire_all(self) -> int:
        """Invalidate every live token now (forced expiry); returns how many there were."""
        with self._lock:
            count = len(self._live)
            self._live.clear()
        logger.info("tokens expired", extra={"event": "emulator_tokens_expired", "count": count})
        return count

    @property
    def live(self) -> int:
        with self._lock:
            return len(self._live)
