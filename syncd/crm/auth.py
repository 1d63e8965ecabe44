"""Access tokens: refresh-token grant, shared cache, and the 10-mints-per-10-minutes guard.

Zoho lets one refresh token mint at most 10 access tokens in any 10 minutes (reference §2.4), so a
token is minted once, stored in the state store under a hash of the credentials, and reused by
every thread and process until shortly before it expires.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from syncd.errors import CrmAuthError, CrmError, CrmFatalError, CrmRetriableError
from syncd.ports import CachedToken, Clock, TokenCache

if TYPE_CHECKING:
    from syncd.config import CrmSettings

logger = logging.getLogger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)
"""A cached token is replaced once less than this much of its life is left (a quarter of its
life for tokens that live less than 20 minutes: see ``refresh_margin``)."""

MINT_WINDOW = timedelta(minutes=10)
MINT_GUARD = 9
"""Mints allowed per window; one below Zoho's 10 so a manual ``syncd check`` still gets one."""

SCOPES = (
    "ZohoCRM.modules.ALL,ZohoCRM.bulk.ALL,ZohoCRM.settings.fields.READ,"
    "ZohoCRM.org.READ,ZohoFiles.files.ALL"
)

REGRANT_ADVICE = (
    "create a new grant code for this client in the Zoho API console (Self Client, scopes "
    f"{SCOPES}), exchange it for a refresh token and set crm.refresh_token"
)


def token_cache_key(client_id: str, refresh_token: str) -> str:
    """Where the token is cached: a hash, so the refresh token itself is never stored or shown."""
    digest = hashlib.sha256(f"{client_id}\x00{refresh_token}".encode()).hexdigest()
    return digest[:32]


class TokenManager:
    """Hands out a valid access token, minting one only when no shared one is usable."""

    def __init__(
        self, settings: CrmSettings, cache: TokenCache, clock: Clock, http: httpx.Client
    ) -> None:
        self._settings, self._cache, self._clock, self._http = settings, cache, clock, http
        self.cache_key = token_cache_key(
            settings.client_id.reveal(), settings.refresh_token.reveal()
        )
        self._lock = threading.Lock()
        self._token: CachedToken | None = None

    def token(self, rejected: str | None = None) -> CachedToken:
        """A token with more than ``REFRESH_MARGIN`` to live, other than the ``rejected`` one."""
        held = self._token
        if held is not None and self._usable(held, rejected):
            return held
        with self._lock, self._cache.token_lock(self.cache_key):
            stored = self._cache.load_token(self.cache_key)
            if stored is not None and self._usable(stored, rejected):
                self._token = stored
            else:
                self._token = self._mint()
            return self._token

    def _usable(self, token: CachedToken, rejected: str | None) -> bool:
        fresh = token.expires_at - self._clock.now() > refresh_margin(token)
        return fresh and token.access_token != rejected

    def _mint(self) -> CachedToken:
        now = self._clock.now()
        recent = self._cache.mints_since(self.cache_key, now - MINT_WINDOW)
        if recent >= MINT_GUARD:
            raise CrmRetriableError(
                f"{recent} access tokens were minted in the last 10 minutes; syncd waits rather "
                "than hit Zoho's limit of 10 (is another program using this refresh token?)",
                code="TOKEN_THROTTLE",
                retry_after=MINT_WINDOW.total_seconds(),
            )
        body, status = self._post_grant()
        if isinstance(body, dict) and body.get("access_token"):
            token = _parse_token(body, now)
            self._cache.save_token(self.cache_key, token, now)
            logger.info(
                "minted a Zoho access token",
                extra={"event": "crm_token_minted", "mints_last_10m": recent + 1},
            )
            return token
        raise _grant_error(body, status)

    def _post_grant(self) -> tuple[Any, int]:
        settings = self._settings
        url = settings.accounts_url.rstrip("/") + "/oauth/v2/token"
        form = {
            "grant_type": "refresh_token",
            "client_id": settings.client_id.reveal(),
            "client_secret": settings.client_secret.reveal(),
            "refresh_token": settings.refresh_token.reveal(),
        }
        try:
            response = unbound(self._http.post(url, data=form))
        except httpx.TransportError as exc:
            untrusted = certificate_error(exc, url)
            if untrusted is not None:
                raise untrusted from None
            raise CrmRetriableError(
                f"cannot reach the Zoho accounts server {settings.accounts_url}: "
                f"{type(exc).__name__}",
                code="ACCOUNTS_UNREACHABLE",
            ) from exc
        try:
            return response.json(), response.status_code
        except ValueError:
            return None, response.status_code


def certificate_error(exc: httpx.TransportError, url: str) -> CrmFatalError | None:
    """The error for a TLS certificate that failed verification, else None.

    Fatal, not retried: a certificate that does not verify will not verify in a minute, and
    it is what a man-in-the-middle looks like. syncd has no switch to skip verification; a
    proxy that re-signs traffic on purpose is trusted through its CA file (SSL_CERT_FILE).
    """
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLCertVerificationError):
        seen = seen.__cause__ or seen.__context__
    if seen is None and "CERTIFICATE_VERIFY_FAILED" not in str(exc):
        return None
    reason = getattr(seen, "verify_message", None) or "certificate verify failed"
    host = httpx.URL(url).netloc.decode()
    return CrmFatalError(
        f"the TLS certificate of {host} failed verification ({reason}); syncd always verifies "
        "TLS: if a proxy re-signs traffic on purpose, point SSL_CERT_FILE at its CA bundle",
        code="TLS_UNVERIFIED",
    )


def unbound(response: httpx.Response) -> httpx.Response:
    """``response`` without the stream httpx binds to it, which refers back to the response.

    That reference cycle kept every answer until the cyclic collector ran, which an initial
    sync lets run rarely (``syncd.cli.GC_THRESHOLD``): its body (a bulk result's zip) and its
    request (the token exchange's holds the client secret), about 0.3 MiB per bulk job, 12 MiB
    at 1,000,000 rows (BENCHMARKS.md). httpx read the body whole and closed the stream, so a
    plain stream of the body takes its place, and the answer is freed when its caller drops
    it."""
    response.stream = httpx.ByteStream(response.content)
    return response


def refresh_margin(token: CachedToken) -> timedelta:
    """How much life a token must have left to be used: ``REFRESH_MARGIN``, or a quarter of its
    lifetime when that is shorter. A token that lives less than the margin (an org that issues
    short-lived tokens) would otherwise be replaced at once, one mint per call, until the mint
    guard stops every call."""
    if token.minted_at is None:
        return REFRESH_MARGIN
    return min(REFRESH_MARGIN, (token.expires_at - token.minted_at) / 4)


def _parse_token(body: dict[str, Any], now: datetime) -> CachedToken:
    # Old responses carried expires_in_sec, with expires_in then in milliseconds (reference §2.2).
    seconds = body.get("expires_in_sec", body.get("expires_in", 3600))
    api_domain = body.get("api_domain")
    return CachedToken(
        access_token=str(body["access_token"]),
        api_domain=str(api_domain).rstrip("/") if api_domain else None,
        expires_at=now + timedelta(seconds=float(seconds)),
        minted_at=now,
    )


def _grant_error(body: Any, status: int) -> CrmError:
    """The error for a token response without ``access_token`` (Zoho may say so with HTTP 200)."""
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    if error == "invalid_code":
        return CrmAuthError(
            "Zoho rejected the refresh token (invalid_code): it was revoked, or belongs to another "
            f"data center or environment; {REGRANT_ADVICE}",
            code=error,
            http_status=status,
        )
    if error == "invalid_client":
        return CrmAuthError(
            "Zoho rejected the client (invalid_client): check crm.client_id and "
            "crm.client_secret, and that crm.data_center / crm.accounts_url is the data center "
            "the client was registered in",
            code=error,
            http_status=status,
        )
    if error == "Access Denied":
        return CrmRetriableError(
            "Zoho refused to mint an access token (Access Denied: too many tokens for this "
            "refresh token in 10 minutes); syncd waits. Give syncd a refresh token of its own.",
            code="ACCESS_DENIED",
            http_status=status,
            retry_after=MINT_WINDOW.total_seconds(),
        )
    if status == 429 or status >= 500 or not error:
        return CrmRetriableError(
            f"the Zoho accounts server answered HTTP {status} without a token",
            code="TOKEN_UNAVAILABLE",
            http_status=status,
        )
    return CrmAuthError(
        f"Zoho refused to mint an access token ({error}); {REGRANT_ADVICE}",
        code=error,
        http_status=status,
    )
