"""Pure decisions of the CRM client: field checks, job bodies and states, error classes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.crm.api import Call, raise_for_response, retry_after_seconds, token_rejected
from syncd.crm.bulk import job_request, normalise_state, parse_job_status
from syncd.crm.preflight import check_fields, is_case_insensitive
from syncd.errors import CrmAuthError, CrmFatalError, CrmRetriableError
from syncd.model import BulkColumn, FieldMap, FieldType

META = {
    "parent_id": {
        "api_name": "parent_id",
        "data_type": "text",
        "unique": {"case_sensitive": False},
    },
    "Name": {"api_name": "Name", "data_type": "text", "unique": {}},
    "Quantity": {"api_name": "Quantity", "data_type": "integer", "unique": {}},
    "Amount": {"api_name": "Amount", "data_type": "currency", "unique": {}},
    "Owner": {"api_name": "Owner", "data_type": "ownerlookup", "unique": {}},
    "Created_Time": {"api_name": "Created_Time", "data_type": "datetime", "read_only": True},
}


def test_check_fields_accepts_a_fitting_mapping() -> None:
    """A mapping whose fields exist and whose types convert has no problems."""
    fields = [FieldMap("Name", "number"), FieldMap("Quantity", "qty"), FieldMap("Amount", "total")]
    types = {"number": FieldType.TEXT, "qty": FieldType.INTEGER, "total": FieldType.DECIMAL}
    assert check_fields("Orders", "parent_id", fields, types, META) == []


def test_check_fields_reports_every_problem() -> None:
    """Missing, read-only and unsupported fields, and non-converting types are each reported."""
    fields = [
        FieldMap("Nope", "a"),
        FieldMap("Quantity", "note"),  # text column into an integer field
        FieldMap("Owner", "owner"),
        FieldMap("Created_Time", "ts"),
        FieldMap("Amount", "untyped"),
    ]
    types = {
        "a": FieldType.TEXT,
        "note": FieldType.TEXT,
        "owner": FieldType.TEXT,
        "ts": FieldType.DATETIME,
    }
    problems = check_fields("Orders", "Name", fields, types, META)
    text = "\n".join(problems)
    assert "Orders.Name is not unique" in text
    assert "Orders.Nope does not exist" in text
    assert "Orders.Quantity is a integer field but column 'note' holds text values" in text
    assert "Orders.Owner is a ownerlookup field" in text
    assert "Orders.Created_Time is read-only" in text
    assert "column 'untyped'" in text
    assert len(problems) == 6


def test_explicit_type_overrides_the_column_type() -> None:
    """A FieldMap type (e.g. integer for a text column) is what the check uses."""
    fields = [FieldMap("Quantity", "note", FieldType.INTEGER)]
    assert check_fields("Orders", "parent_id", fields, {"note": FieldType.TEXT}, META) == []


def test_job_request_maps_key_first_with_formats() -> None:
    """find_by = unique field at index 0, dates declare a format, empty cells clear fields."""
    columns = [BulkColumn("Name"), BulkColumn("Order_Date", "yyyy-MM-dd")]
    body = job_request("Orders", "parent_id", columns, "f1")
    resource = body["resource"][0]
    assert body["operation"] == "upsert"
    assert body["ignore_empty"] is False
    assert resource["find_by"] == "parent_id"
    assert resource["file_id"] == "f1"
    assert resource["field_mappings"] == [
        {"api_name": "parent_id", "index": 0},
        {"api_name": "Name", "index": 1},
        {"api_name": "Order_Date", "index": 2, "format": "yyyy-MM-dd"},
    ]


def test_job_states_are_normalised() -> None:
    """Both spellings of in-progress read the same; a failed resource fails the job."""
    assert normalise_state("IN PROGRESS") == normalise_state("INPROGRESS") == "INPROGRESS"
    assert normalise_state("in_progress") == "INPROGRESS"
    done = {"status": "COMPLETED", "result": {"download_url": "/v8/x.zip"}, "resource": []}
    assert parse_job_status("1", done).download_url == "/v8/x.zip"
    failed = {"status": "COMPLETED", "resource": [{"status": "FAILED"}]}
    assert parse_job_status("1", failed).state == "FAILED"


def test_a_running_jobs_processed_count_is_read_and_not_said_is_none() -> None:
    """The counts of reference 5.3's file object: total_count, else added + updated + skipped;
    the documented "Added" sample carries only a status, which is None, not 0."""

    def running(file: dict[str, object]) -> dict[str, object]:
        return {"status": "IN PROGRESS", "resource": [{"status": "IN PROGRESS", "file": file}]}

    counts = {"added_count": 9, "skipped_count": 2, "updated_count": 1}
    assert parse_job_status("1", running({**counts, "total_count": 12})).processed == 12
    assert parse_job_status("1", running(counts)).processed == 12
    assert parse_job_status("1", running({"status": "INPROGRESS"})).processed is None
    assert parse_job_status("1", {"status": "ADDED"}).processed is None


def _response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    request = httpx.Request("POST", "https://www.zohoapis.com/crm/v8/Orders/upsert?secret=x")
    return httpx.Response(status, json=body, headers=headers, request=request)


CALL = Call("POST", "/crm/v8/Orders/upsert", "upsert", 1, accepts_data_errors=True)


def test_error_classes_say_whether_a_retry_helps() -> None:
    """429/5xx are retriable, 401/403 auth errors, other 4xx fatal; data[] 400s are answers."""
    raise_for_response(CALL, _response(400, {"data": [{"status": "error"}]}))
    with pytest.raises(CrmRetriableError) as limited:
        raise_for_response(
            CALL, _response(429, {"code": "TOO_MANY_REQUESTS"}, {"Retry-After": "7"})
        )
    assert limited.value.retry_after == 7.0
    with pytest.raises(CrmRetriableError):
        raise_for_response(CALL, _response(503, {}))
    with pytest.raises(CrmAuthError, match="lacks a scope"):
        raise_for_response(CALL, _response(401, {"code": "OAUTH_SCOPE_MISMATCH"}))
    with pytest.raises(CrmAuthError):
        raise_for_response(CALL, _response(403, {"code": "NO_PERMISSION"}))
    with pytest.raises(CrmFatalError) as fatal:
        raise_for_response(CALL, _response(400, {"code": "INVALID_MODULE", "message": "bad"}))
    assert fatal.value.code == "INVALID_MODULE"
    assert "secret" not in str(fatal.value)  # query strings never reach messages


def test_retry_after_forms() -> None:
    """Retry-After is read as seconds or as an HTTP date; absent means no hint."""
    assert retry_after_seconds(_response(429, {}, {"Retry-After": "2.5"})) == 2.5
    past = retry_after_seconds(_response(429, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    assert past == 0.0
    assert retry_after_seconds(_response(429, {})) is None


def test_token_rejections_in_every_shape() -> None:
    """INVALID_TOKEN, AUTHENTICATION_FAILURE and the upload host's ERROR_CODE 401 mean
    "mint a new token"; a scope mismatch does not (a new token would lack it too)."""
    assert token_rejected(_response(401, {"code": "INVALID_TOKEN"}))
    assert token_rejected(_response(401, {"code": "AUTHENTICATION_FAILURE"}))
    assert token_rejected(_response(401, {"ERROR_CODE": 401, "ERROR_MESSAGE": "Unauthorized"}))
    assert not token_rejected(_response(401, {"code": "OAUTH_SCOPE_MISMATCH"}))
    assert not token_rejected(_response(400, {"code": "INVALID_TOKEN"}))


def test_call_repr_hides_body_and_query() -> None:
    """What stamina logs for a retried call names it without record data or query string."""
    call = Call("POST", "https://x.zoho.com/a?sig=s3cret", "upsert", 10, json={"data": ["pii"]})
    assert repr(call) == "Call(POST https://x.zoho.com/a, kind=upsert, credits=10)"


@pytest.mark.parametrize(
    ("meta", "insensitive"),
    [
        ({"unique": {"case_sensitive": False}}, True),
        ({"unique": {"case_sensitive": True}}, False),
        ({"unique": {"other": 1}}, True),  # unique, case sensitivity not said: Zoho's default
        ({"unique": {}}, False),  # not unique
        ({}, False),
        (None, False),  # no such field
    ],
)
def test_key_field_ignores_case_unless_metadata_says_otherwise(
    meta: dict[str, Any] | None, insensitive: bool
) -> None:
    """A unique field is case-insensitive when its metadata says so or says nothing."""
    assert is_case_insensitive(meta) is insensitive
