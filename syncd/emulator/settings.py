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

    def __post_init__(self) -> None:
        for name in ("error_rate", "rate_limit_rate", "drop_rate", "drop_after_rate"):
            _check_rate(name, getattr(self, name))
        _check_rate("fail_job_rate", self.fail_job_rate)
        _check_rate("unprocessed_rate", self.unprocessed_rate)
        if self.latency_ms < 0 or self.fail_jobs < 0 or self.lose_job_create_replies < 0:
            raise ValueError("latency_ms, fail_jobs and lose_job_create_replies must be >= 0")


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
        for name in ("concurrency", "sub_concurrency", "max_parallel_bulk_jobs", "daily_credits"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def instant_jobs(self) -> bool:
        """Whether bulk jobs complete on their first status poll instead of in the background."""
        return not self.bulk_rows_per_second


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
