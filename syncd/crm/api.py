"""The one way a request reaches Zoho: budget, limiter, token, send, classify, account, retry.

Every CRM call goes through ``ZohoApi.send``. Errors leave it typed (``syncd.errors``): httpx and
HTTP failures are translated here and nowhere else. Only ``CrmRetriableError`` is retried.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import stamina

from syncd.credits import BUDGET_WINDOW, check_budget
from syncd.crm.auth import REGRANT_ADVICE, TokenManager, certificate_error, unbound
from syncd.errors import CrmAuthError, CrmError, CrmFatalError, CrmRetriableError
from syncd.ports import CachedToken, Clock, CreditLedger

if TYPE_CHECKING:
    from syncd.config import CrmSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_REJECTED_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE", "INVALID_OAUTHTOKEN"})
DEFAULT_MAX_CONCURRENCY = 5
"""Calls in flight when neither crm.max_concurrency nor the org's edition sets the limit."""
NOT_SENT_CODES = frozenset({"CONNECT_FAILED", "ACCOUNTS_UNREACHABLE", "TOKEN_UNAVAILABLE"})
"""Failures after which Zoho surely did not act on the request (as after any 429)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long one call keeps trying (stamina: exponential backoff with jitter)."""

    attempts: int = 6
    timeout: timedelta = timedelta(minutes=5)
    wait_initial: timedelta = timedelta(seconds=1)
    wait_max: timedelta = timedelta(seconds=60)
    wait_jitter: timedelta = timedelta(seconds=1)


@dataclass(frozen=True, repr=False)
class Call:
    """One request. ``url`` is a path on the API domain or an absolute URL.

    Its repr (which stamina logs with each scheduled retry) names the call, never the body:
    record data does not belong in logs.
    """

    method: str
    url: str
    kind: str  # ledger kind and log field
    credits: int
    params: Mapping[str, str] | None = None
    json: Any = None
    upload: Path | None = None  # sent as the multipart part "file"
    headers: Mapping[str, str] = field(default_factory=dict)
    idempotent: bool = True  # False: repeat only when Zoho surely did not act on it
    accepts_data_errors: bool = False  # records API: a 4xx with data[] holds per-record answers

    def __repr__(self) -> str:
        return f"Call({self.method} {_where(self.url)}, kind={self.kind}, credits={self.credits})"


class ZohoApi:
    """Sends calls for one client; shared by all of its threads."""

    def __init__(
        self,
        settings: CrmSettings,
        tokens: TokenManager,
        ledger: CreditLedger,
        clock: Clock,
        http: httpx.Client,
        retry: RetryPolicy,
    ) -> None:
        self._settings, self._tokens, self._ledger = settings, tokens, ledger
        self._clock, self._http, self._retry = clock, http, retry
        self._limiter = threading.BoundedSemaphore(
            settings.max_concurrency or DEFAULT_MAX_CONCURRENCY
        )
        self._budget_lock = threading.Lock()
        self._reserved = 0
        self._caller = stamina.RetryingCaller(
            attempts=retry.attempts,
            timeout=retry.timeout,
            wait_initial=retry.wait_initial,
            wait_max=retry.wait_max,
            wait_jitter=retry.wait_jitter,
        )
        self.credits_remaining: int | None = None
        """Zoho's ``X-API-CREDITS-REMAINING`` as last seen (sent once half the credits are used)."""

    def set_concurrency(self, limit: int) -> None:
        """Allow ``limit`` calls in flight from now on (the edition's limit, learnt at start).

        Calls already in flight release the limiter they took, so only they may briefly
        exceed the new limit.
        """
        self._limiter = threading.BoundedSemaphore(limit)

    def send(self, call: Call) -> httpx.Response:
        """Send ``call``, retrying temporary failures; raise a typed ``CrmError`` otherwise."""
        return self._caller(functools.partial(self._should_retry, call), self._send_once, call)

    def send_read(self, call: Call, read: Callable[[httpx.Response], T]) -> T:
        """Send ``call`` and ``read`` its answer, both inside the retries.

        An answer that arrives but cannot be read (a body cut short, an HTML page from a proxy,
        an empty body: ``read`` raises ``CrmRetriableError`` BAD_RESPONSE or BAD_RESULT) is
        retried like a 5xx, within the same budget of attempts and time, when the call may be
        repeated; a non-idempotent call is not repeated (Zoho may have acted on it).
        """
        return self._caller(
            functools.partial(self._should_retry, call), self._send_and_read, call, read
        )

    def send_json(self, call: Call) -> Any:
        """``send_read`` with the JSON body as the answer."""
        return self.send_read(call, self.json)

    def _send_and_read(self, call: Call, read: Callable[[httpx.Response], T]) -> T:
        return read(self._send_once(call))

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of a successful response (a temporary error when it is not JSON).

        The content type is not checked: a proxy that labels Zoho's JSON text/html does no
        harm, and the body alone says whether the answer is usable.
        """
        try:
            return response.json()
        except ValueError:
            raise CrmRetriableError(
                f"Zoho answered {_where(response.request.url)} with HTTP "
                f"{response.status_code} and a body that is not JSON ({_describe(response)}); "
                "a proxy between syncd and Zoho may have answered instead",
                code="BAD_RESPONSE",
                http_status=response.status_code,
            ) from None

    def _should_retry(self, call: Call, exc: Exception) -> bool | float:
        if not isinstance(exc, CrmRetriableError):
            return False
        refused = exc.http_status == 429 or exc.code in NOT_SENT_CODES
        if not call.idempotent and not refused:
            return False
        if exc.retry_after is None:
            return True
        # Long waits (token throttle, a far Retry-After) are left to the caller's schedule.
        return exc.retry_after if exc.retry_after <= self._retry.wait_max.total_seconds() else False

    def _send_once(self, call: Call) -> httpx.Response:
        with self._reserve(call.credits):
            token = self._tokens.token()
            try:
                response = self._exchange(call, token)
                if token_rejected(response):
                    logger.info(
                        "Zoho rejected the access token; minting a new one",
                        extra={"event": "crm_token_rejected", "kind": call.kind},
                    )
                    retoken = self._tokens.token(rejected=token.access_token)
                    response = self._exchange(call, retoken)
            except CrmRetriableError as exc:
                # A request that left may have been done (and charged) before the reply was
                # lost: count it, so the budget errs on the safe side.
                if exc.code in ("TIMEOUT", "TRANSPORT_ERROR"):
                    self._ledger.record_credits(call.kind, call.credits, self._clock.now())
                raise
            self._account(call, response)
        raise_for_response(call, response)
        return response

    @contextlib.contextmanager
    def _reserve(self, credits: int) -> Iterator[None]:
        """Refuse a call that would cross the budget, counting calls still in flight."""
        since = self._clock.now() - BUDGET_WINDOW
        with self._budget_lock:
            spent = self._ledger.credits_spent_since(since) + self._reserved
            check_budget(needed=credits, spent=spent, budget=self._settings.daily_credit_budget)
            self._reserved += credits
        try:
            yield
        finally:
            with self._budget_lock:
                self._reserved -= credits

    def _exchange(self, call: Call, token: CachedToken) -> httpx.Response:
        url = call.url
        if not url.startswith(("http://", "https://")):
            url = (token.api_domain or self._settings.api_domain).rstrip("/") + url
        else:
            self._check_host(call, url, token)
        headers = {"Authorization": f"Zoho-oauthtoken {token.access_token}", **call.headers}
        with self._limiter:
            started = time.monotonic()
            try:
                response = self._request(call, url, headers)
            except httpx.TransportError as exc:
                raise _transport_error(call, url, exc) from exc
        logger.debug(
            "%s %s -> %d",
            call.method,
            _where(url),
            response.status_code,
            extra={
                "event": "crm_call",
                "kind": call.kind,
                "status": response.status_code,
                "ms": round((time.monotonic() - started) * 1000),
            },
        )
        return response

    def _check_host(self, call: Call, url: str, token: CachedToken) -> None:
        """Refuse to send the access token to a host that is not one of Zoho's.

        Absolute URLs come from Zoho's answers (a bulk result's ``download_url``); an answer
        that points elsewhere (a tampering proxy, a poisoned cache) must not get the token.
        Fatal: asking again gets the same URL, and the token must never go there.
        """
        s = self._settings
        known = (s.api_domain, s.accounts_url, s.upload_url, token.api_domain or s.api_domain)
        if not token_may_go_to(url, known):
            raise CrmFatalError(
                f"{call.kind} call: Zoho's answer points to {_where(url)}, which is not a Zoho "
                f"host of this config ({', '.join(sorted({_origin(k) for k in known}))}); syncd "
                "does not send its access token there",
                code="UNTRUSTED_HOST",
            )

    def _request(self, call: Call, url: str, headers: dict[str, str]) -> httpx.Response:
        if call.upload is None:
            response = self._http.request(
                call.method, url, params=call.params, json=call.json, headers=headers
            )
        else:
            with call.upload.open("rb") as file:
                files = {"file": (call.upload.name, file, "application/zip")}
                response = self._http.request(call.method, url, files=files, headers=headers)
        return unbound(response)

    def _account(self, call: Call, response: httpx.Response) -> None:
        """Record what the call cost; refused calls (401, 429) did no work and cost nothing."""
        if response.status_code not in (401, 429):
            self._ledger.record_credits(call.kind, call.credits, self._clock.now())
        remaining = response.headers.get("X-API-CREDITS-REMAINING")
        if remaining is not None and remaining.strip().isdigit():
            self.credits_remaining = int(remaining)
            self._ledger.record_org_remaining(self.credits_remaining, self._clock.now())
            logger.debug(
                "Zoho reports %s credits remaining",
                remaining,
                extra={"event": "crm_credits_remaining", "remaining": self.credits_remaining},
            )


def raise_for_response(call: Call, response: httpx.Response) -> None:
    """Raise the typed error an unsuccessful response stands for."""
    status = response.status_code
    if status < 300:
        return
    body = _body(response)
    if call.accepts_data_errors and status < 500 and isinstance(body.get("data"), list):
        return
    code, message = error_code(body)
    what = f"{call.kind} call {_where(response.request.url)} got HTTP {status} {code}: {message}"
    if status in (408, 429) or status >= 500:
        raise CrmRetriableError(
            what, code=code, http_status=status, retry_after=retry_after_seconds(response)
        )
    if status == 401 and code == "OAUTH_SCOPE_MISMATCH":
        raise CrmAuthError(
            f"{what}; the grant lacks a scope: {REGRANT_ADVICE}", code=code, http_status=status
        )
    if status == 401:
        raise CrmAuthError(
            f"{what}; Zoho rejected a freshly minted token too: check that crm.api_domain and "
            "crm.accounts_url belong to the same data center",
            code=code,
            http_status=status,
        )
    if status == 403:
        raise CrmAuthError(
            f"{what}; the Zoho user who granted syncd access lacks the permission for this module",
            code=code,
            http_status=status,
        )
    raise CrmFatalError(what, code=code, http_status=status)


def error_code(body: Mapping[str, Any]) -> tuple[str, str]:
    """Code and message of both error shapes: CRM ``code``/``message``, upload ``ERROR_CODE``."""
    code = body.get("code") or body.get("ERROR_CODE") or body.get("error") or "UNKNOWN"
    message = body.get("message") or body.get("ERROR_MESSAGE") or body.get("x-error") or ""
    return str(code), str(message)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), when the server sent one."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time())
    return None


def token_rejected(response: httpx.Response) -> bool:
    if response.status_code != 401:
        return False
    code, _ = error_code(_body(response))
    # The upload host answers auth failures as {"ERROR_CODE": 401, ...} (reference §2.5).
    return code in TOKEN_REJECTED_CODES or code in ("401", "UNKNOWN")


def _body(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, Mapping) else {}


def _transport_error(call: Call, url: str, exc: httpx.TransportError) -> CrmError:
    untrusted = certificate_error(exc, url)
    if untrusted is not None:
        return untrusted
    # Connect failures mean the request never left; read/write failures may have been acted on.
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    timeout = isinstance(exc, httpx.TimeoutException)
    return CrmRetriableError(
        f"{call.kind} call {_where(url)} failed: {type(exc).__name__}",
        code="CONNECT_FAILED" if not_sent else "TIMEOUT" if timeout else "TRANSPORT_ERROR",
    )


def token_may_go_to(url: str, known: tuple[str, ...]) -> bool:
    """Whether the access token may be sent to ``url``: one of the ``known`` Zoho hosts, or a
    sibling under the same Zoho domain (Zoho serves bulk results from download-accl.zoho.com
    next to accounts.zoho.com), always with the scheme and port of the known host."""
    target = httpx.URL(url)
    for base in known:
        home = httpx.URL(base)
        if (target.scheme, target.port) != (home.scheme, home.port):
            continue
        if target.host == home.host:
            return True
        domain = _zoho_domain(home.host)
        if domain is not None and target.host.endswith("." + domain):
            return True
    return False


def _zoho_domain(host: str) -> str | None:
    """``zoho.com`` of ``accounts.zoho.com`` (``zohoapis.eu``, ``zohocloud.ca`` ...): the domain
    whose other hosts are Zoho's too; None for hosts outside a zoho* domain (a proxy, the
    emulator), which are trusted by their exact name only."""
    labels = host.split(".")
    if len(labels) >= 3 and labels[1].startswith("zoho"):
        return ".".join(labels[1:])
    return None


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def _describe(response: httpx.Response) -> str:
    """What came back instead of JSON, for the error line: type and size, never the body."""
    kind = response.headers.get("content-type", "no content type").split(";", 1)[0]
    return f"{kind}, {len(response.content)} bytes"


def _where(url: str | httpx.URL) -> str:
    """A URL fit for logs: scheme, host and path, never the query string."""
    parsed = httpx.URL(str(url))
    if not parsed.scheme:
        return parsed.path
    return f"{parsed.scheme}://{parsed.netloc.decode()}{parsed.path}"
