"""Every knob of the emulator, with Zoho's documented values as defaults.

Behaviours the reference (``shared/reference/zoho-crm-api.md`` section 9) marks UNCONFIRMED
or conflicting are switches here, each tagged with its item number, so a test can pin syncd
against every plausible variant of the real API.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.emulator.schema import Schema, default_schema

DEFAULT_SCOPE = (
    "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.org.READ ZohoCRM.bulk.ALL ZohoFiles.files.ALL"
)


GarbleKind = Literal["truncated_json", "html_200", "wrong_content_type", "empty_body"]
GARBLE_KINDS: tuple[str, ...] = typing.get_args(GarbleKind)
BrokenResult = Literal["no_csv", "other_columns", "foreign_keys", "damaged_stream"]
BROKEN_RESULTS: tuple[str, ...] = typing.get_args(BrokenResult)


@dataclass(frozen=True)
class Faults:
    """Injected failures; set at start (``EmulatorSettings.faults``) or at run time (admin API).

    Rates are probabilities per request (or per bulk row for ``unprocessed_rate``), drawn from
    one ``random.Random(seed)`` so a seeded run fails the same calls every time.
    """

    error_rate: float = 0.0  # 500 INTERNAL_ERROR before the call is processed
    rate_limit_rate: float = 0.0  # 429 TOO_MANY_REQUESTS before the call is processed
    drop_rate: float = 0.0  # connection closed without a response, call not processed
    drop_after_rate: float = 0.0  # call processed, then the connection closed: the lost reply
    latency_ms: int = 0  # added to every call, while it counts against concurrency
    fail_jobs: int = 0  # the next N bulk jobs end FAILED without writing anything
    fail_job_rate: float = 0.0  # each bulk job ends FAILED with this probability
    unprocessed_rate: float = 0.0  # bulk rows reported UNPROCESSED (not written)
    # Records (by any unique field value, e.g. parent_id) locked as by an approval process:
    # every records-API write to them answers RECORD_LOCKED until the value is taken out.
    locked_records: tuple[str, ...] = ()
    lose_job_create_replies: int = 0  # the next N bulk jobs are created, then the reply is lost

    # --- broken answers: what a proxy, a load balancer or Zoho itself sends back when it
    # misbehaves. Counted faults (``*_next``, ``broken_results`` ...) strike the next N matching
    # calls, so a test knows exactly which calls failed and what they cost.
    # ``garble`` replaces the answer of a call that WAS processed (and charged): the worst case
    # for a client, which cannot tell whether Zoho acted.
    garble: GarbleKind = "truncated_json"
    garble_next: int = 0
    garble_rate: float = 0.0
    garble_calls: tuple[str, ...] = ()  # call names as the stats count them; (): every call
    # The next N bulk jobs complete with a broken result file, the same at every download.
    broken_results: int = 0
    broken_result: BrokenResult = "no_csv"
    # The next N status polls answer ADDED without a result, whatever the job's state (a
    # lagging replica behind a load balancer): the job's status goes backwards.
    status_regressions: int = 0
    # The next N calls named in ``expire_tokens_on`` find every access token revoked (401
    # INVALID_TOKEN), e.g. in the middle of a bulk job.
    expire_tokens_on: tuple[str, ...] = ()
    expire_tokens_next: int = 0
    # The next N token requests answer HTTP 200 with ``{"error": token_error}`` (Zoho Accounts
    # says "no" with status 200: reference 2.3).
    token_errors: int = 0
    token_error: str = "Access Denied"
    # Completed jobs announce their download_url on this base URL (another host) instead.
    download_host: str | None = None

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "drop_rate", "drop_after_rate"):
            _check_rate(name, getattr(self, name))
        _check_rate("fail_job_rate", self.fail_job_rate)
        _check_rate("unprocessed_rate", self.unprocessed_rate)
        _check_rate("garble_rate", self.garble_rate)
        counts = (
            "latency_ms",
            "fail_jobs",
            "lose_job_create_replies",
            "garble_next",
            "broken_results",
            "status_regressions",
            "expire_tokens_next",
            "token_errors",
        )
        for name in counts:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        for name, choices in (("garble", GARBLE_KINDS), ("broken_result", BROKEN_RESULTS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class EmulatorSettings:
    """How the emulator behaves; the defaults mirror a real Zoho org as documented."""

    # --- identity and credentials (printed by `syncd emulator`) ---
    client_id: str = "syncd-emulator-client"
    client_secret: str = "syncd-emulator-secret"
    refresh_token: str = "syncd-emulator-refresh"
    org_id: str = "808232144"
    scope: str = DEFAULT_SCOPE  # granted to every access token; drop one to test scope errors
    user_name: str = "syncd emulator"
    time_zone: str = "UTC"  # org time zone: naive bulk datetimes and all timestamps use it
    schema: Schema = field(default_factory=default_schema)
    public_url: str | None = None  # announced base (api_domain, download_url); None: served URL
    seed: int | None = None  # seeds fault injection and result shuffling

    # --- OAuth (reference 2.4) ---
    token_ttl_seconds: float = 3600
    token_mint_limit: int = 10  # access tokens per refresh token per window
    token_mint_window_seconds: float = 600
    max_live_tokens: int = 15  # the next mint invalidates the oldest
    token_error_status: int = 200  # [9.6] HTTP status of invalid_client / Access Denied
    expired_token_code: Literal["INVALID_TOKEN", "AUTHENTICATION_FAILURE"] = "INVALID_TOKEN"

    # --- edition (GET /crm/v8/org license_details; reference 6.2, 6.3) ---
    # paid_type as Zoho spells it: "free" and "enterprise" appear in Zoho's examples; the
    # spelling of the others ("standard", "professional", "ultimate") is UNCONFIRMED.
    edition: str = "professional"
    users_license_purchased: int = 10

    # --- limits (reference 6) ---
    daily_credits: int = 100_000
    credit_window_seconds: float = 86_400  # rolling window of the credit ledger
    concurrency: int = 15  # [9.15] in-flight CRM calls (Professional edition)
    sub_concurrency: int = 10  # [9.15] in-flight record writes of > 10 records and bulk jobs
    max_parallel_bulk_jobs: int = 10  # [9.10] unfinished jobs before create answers 429
    credits_header_threshold: float = 0.5  # [9.5] share used before X-API-CREDITS-REMAINING
    retry_after_seconds: int | None = None  # [9.4] Retry-After on 429; None: not sent
    throttle_message: str | None = None  # [9.4] one 429 message for all causes; None: per cause
    upload_credits: int = 1  # [9.17]
    status_credits: int = 1  # [9.17] job status polls
    bulk_job_credits: int = 500

    # --- records API (reference 4) ---
    max_records_per_call: int = 100
    over_limit_code: str = "LIMIT_EXCEEDED"  # [9.3]
    over_limit_status: int = 400  # [9.3]
    upsert_all_insert_status: int = 200  # [9.1] 200 or 201 when an upsert only inserted
    intra_request_duplicates: Literal["sequential", "duplicate_data"] = "sequential"  # [9.2]
    strict_picklists: bool = True  # False: any string is accepted (unrestricted picklists)

    # --- bulk write (reference 5) ---
    bulk_rows_per_second: float | None = 200_000  # None or 0: the first poll completes the job
    bulk_queue_seconds: float = 0.0  # time a job stays ADDED before the worker starts it
    bulk_job_seconds: float = 0.0  # a started job finishes no sooner than this (bench: T)
    bulk_parallel_jobs: int = 1  # jobs the worker runs at once (bench: k)
    bulk_fast: bool = False  # bench only: every row ADDED, nothing checked or stored
    max_upload_bytes: int = 25 * 1024 * 1024
    max_bulk_rows: int = 25_000
    max_bulk_columns: int = 200
    bulk_default_date_format: str = "MM/dd/yyyy"  # [9.14]
    bulk_default_datetime_format: str = "MM/dd/yyyy HH:mm:ss"  # [9.14]
    bulk_date_formats: tuple[str, ...] | None = None  # [9.14] allowed list; None: any valid
    bulk_empty_find_by: Literal["skip", "insert"] = "skip"  # [9.18] skip: MANDATORY_NOT_FOUND
    bulk_status_case: Literal["upper", "title", "lower"] = "upper"  # [9.7] ADDED / Added / added
    bulk_result_order: Literal["input", "shuffled"] = "input"  # result rows vs input rows
    job_status_spelling: Literal["IN PROGRESS", "INPROGRESS"] = "IN PROGRESS"  # [9.11]
    resource_not_found_status: int = 404  # [9.12] unknown job id: 404 (doc v7) or 400 (OAS)
    invalid_file_format_status: int = 400  # [9.13] non-zip upload: 400 (doc) or 200 (observed)
    download_url_form: Literal["absolute", "relative"] = "absolute"  # [9.16]
    result_retention_seconds: float | None = None  # [9.9] None: results never expire
    callback_attempts: int = 1  # [9.8] POSTs tried per callback
    callback_timeout_seconds: float = 5.0

    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        for name, choices in _literal_fields().items():
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {getattr(self, name)!r}")
        if self.upsert_all_insert_status not in (200, 201):
            raise ValueError("upsert_all_insert_status must be 200 or 201")
        _check_rate("credits_header_threshold", self.credits_header_threshold)
        for name in (
            "concurrency",
            "sub_concurrency",
            "max_parallel_bulk_jobs",
            "daily_credits",
            "bulk_parallel_jobs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.bulk_job_seconds < 0:
            raise ValueError("bulk_job_seconds must be >= 0")

    @property
    def instant_jobs(self) -> bool:
        """Whether bulk jobs complete on their first status poll instead of in the background."""
        return not self.bulk_rows_per_second and not self.bulk_job_seconds


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@functools.cache
def _literal_fields() -> dict[str, tuple[object, ...]]:
    """Each Literal-typed setting and its allowed values."""
    hints = typing.get_type_hints(EmulatorSettings)
    return {n: typing.get_args(h) for n, h in hints.items() if typing.get_origin(h) is Literal}


def with_overrides(settings: EmulatorSettings, overrides: dict[str, str]) -> EmulatorSettings:
    """Apply ``name=value`` text overrides (from the command line), typed by each field."""
    hints = typing.get_type_hints(EmulatorSettings)
    names = {f.name for f in dataclasses.fields(EmulatorSettings)} - {"schema", "faults"}
    changes: dict[str, Any] = {}
    for name, text in overrides.items():
        if name not in names:
            raise ValueError(f"unknown emulator setting {name!r}")
        changes[name] = _parse_value(hints[name], text)
    return dataclasses.replace(settings, **changes)


def _parse_value(hint: object, text: str) -> object:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if text.lower() in ("none", "null") and type(None) in typing.get_args(hint):
        return None
    kind = args[0] if typing.get_origin(hint) in (typing.Union, _UnionType) and args else hint
    if kind is bool:
        return text.lower() in ("1", "true", "yes", "on")
    if kind in (int, float):
        return kind(text)
    if typing.get_origin(kind) is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


_UnionType = type(int | None)
