"""Bulk Write upload and job creation: headers, file limits, validation (reference 5.1-5.2)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

HEADER = ["parent_id", "Name", "Amount"]
MAPPINGS = [{"api_name": name, "index": i} for i, name in enumerate(HEADER)]


def test_upload_answers_file_upload_success(zoho: Zoho) -> None:
    """A zip with one CSV answers 200 FILE_UPLOAD_SUCCESS with a string file_id."""
    response = zoho.upload(zoho.zip_csv([["A-1", "SO-1", "1.00"]], HEADER))
    body = response.json()
    assert response.status_code == 200
    assert (body["status"], body["code"], body["message"]) == (
        "success",
        "FILE_UPLOAD_SUCCESS",
        "file uploaded.",
    )
    assert isinstance(body["details"]["file_id"], str) and len(body["details"]["file_id"]) == 19
    assert "created_time" in body["details"]


@pytest.mark.parametrize("headers", [{"feature": ""}, {"X-CRM-ORG": "1"}])
def test_upload_needs_feature_and_org_headers(zoho: Zoho, headers: dict[str, str]) -> None:
    """Missing feature or a wrong X-CRM-ORG gets the upload host's own 400 error shape."""
    response = zoho.upload(zoho.zip_csv([], HEADER), **headers)
    assert response.status_code == 400
    assert (
        response.json()["x-error"] == "check if headers [feature, X-CRM-ORG] are present and valid"
    )


def test_upload_with_another_feature_is_not_supported(zoho: Zoho) -> None:
    """feature other than bulk-write answers NOT_SUPPORTED_FEATURE (HTTP 200, as observed)."""
    response = zoho.upload(zoho.zip_csv([], HEADER), feature="bulk-read")
    assert (response.status_code, response.json()["code"]) == (200, "NOT_SUPPORTED_FEATURE")


@pytest.mark.parametrize("status", [400, 200])
def test_non_zip_is_invalid_file_format(
    status: int,
    start_emulator: Callable[..., EmulatorServer],
    make_zoho: Callable[[EmulatorServer], Zoho],
) -> None:
    """A CSV sent unzipped is INVALID_FILE_FORMAT with the configured HTTP status."""
    zoho = make_zoho(start_emulator(invalid_file_format_status=status))
    response = zoho.upload(b"parent_id,Name\nA,B\n")
    body = response.json()
    assert (response.status_code, body["code"], body["status"]) == (
        status,
        "INVALID_FILE_FORMAT",
        "error",
    )
    assert body["message"] == "invalid file format. only zip format is supported"


def test_zip_with_two_csvs_is_refused(zoho: Zoho) -> None:
    """A plain-module zip must hold exactly one CSV."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", "parent_id\nA\n")
        archive.writestr("b.csv", "parent_id\nB\n")
    response = zoho.upload(buffer.getvalue())
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_FILE_FORMAT")


def test_zip_over_the_size_limit_is_file_too_large(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """A zip larger than max_upload_bytes (25 MB by default) answers 413 FILE_TOO_LARGE."""
    zoho = make_zoho(start_emulator(max_upload_bytes=2_000))
    rows = [[f"K{i}", f"random-{i * 7919 % 10007}", i] for i in range(400)]
    response = zoho.upload(zoho.zip_csv(rows, HEADER))
    assert (response.status_code, response.json()["code"]) == (413, "FILE_TOO_LARGE")


def test_25000_rows_pass_and_25001_do_not(zoho: Zoho) -> None:
    """A CSV may hold 25,000 records after its header; one more is LIMIT_EXCEEDED."""
    rows = [[f"K{i}", "n", "1"] for i in range(25_000)]
    assert zoho.upload(zoho.zip_csv(rows, HEADER)).status_code == 200
    response = zoho.upload(zoho.zip_csv([*rows, ["K", "n", "1"]], HEADER))
    assert (response.status_code, response.json()["code"]) == (400, "LIMIT_EXCEEDED")


def test_more_than_200_columns_is_refused(zoho: Zoho) -> None:
    """A CSV may have 200 columns; 201 is HEADER_LIMIT_EXCEEDED."""
    assert zoho.upload(zoho.zip_csv([], [f"c{i}" for i in range(200)])).status_code == 200
    response = zoho.upload(zoho.zip_csv([], [f"c{i}" for i in range(201)]))
    assert (response.status_code, response.json()["code"]) == (400, "HEADER_LIMIT_EXCEEDED")


def test_semicolon_delimited_csv_is_detected(zoho: Zoho, emulator: EmulatorServer) -> None:
    """The delimiter is auto-detected from the header row."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("orders.csv", "parent_id;Name;Amount\nS-1;SO-1;2.50\n")
    file_id = zoho.upload(buffer.getvalue()).json()["details"]["file_id"]
    created = zoho.create_job(file_id, MAPPINGS)
    zoho.wait_job(created.json()["details"]["id"])
    assert emulator.admin.records("Orders")[0]["Amount"] == 2.5


def test_create_job_answers_201_with_the_job_id(zoho: Zoho, emulator: EmulatorServer) -> None:
    """POST /crm/bulk/v8/write answers 201 SUCCESS with details.id and charges 500 credits."""
    file_id = zoho.file_id([["A-1", "SO-1", "1"]], HEADER)
    before = emulator.admin.stats()["credits"]["used"]
    response = zoho.create_job(file_id, MAPPINGS)
    body = response.json()
    assert response.status_code == 201
    assert (body["status"], body["code"], body["message"]) == ("success", "SUCCESS", "success")
    assert len(body["details"]["id"]) == 19
    assert body["details"]["created_by"]["name"] == "syncd emulator"
    assert emulator.admin.stats()["credits"]["used"] - before == 500


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"operation": None}, "MANDATORY_NOT_FOUND"),
        ({"operation": "merge"}, "INVALID_DATA"),
        ({"find_by": None}, "MANDATORY_NOT_FOUND"),
        ({"find_by": "Name"}, "INVALID_DATA"),
        ({"module": "Invoices"}, "MODULE_NOT_AVAILABLE"),
        ({"file_id": "5725767000000000001"}, "INVALID_FILE_ID"),
        ({"mappings": [*MAPPINGS, {"api_name": "ast_Name", "index": 0}]}, "INVALID_FIELD"),
        ({"mappings": [*MAPPINGS, {"api_name": "Notes", "index": -1}]}, "COLUMN_INDEX_NOT_FOUND"),
        ({"mappings": [*MAPPINGS, {"api_name": "Notes", "index": 3}]}, "COLUMN_INDEX_NOT_FOUND"),
        (
            {"mappings": [*MAPPINGS, {"api_name": "Order_Date", "index": 2, "format": "yyyy-QQ"}]},
            "INVALID_FORMAT",
        ),
        (
            {"mappings": [*MAPPINGS, {"api_name": "Order_Date", "index": 2, "format": "HH:mm"}]},
            "INVALID_FORMAT",
        ),
        ({"mappings": [MAPPINGS[0], MAPPINGS[2]]}, "MANDATORY_FIELDS_NOT_MAPPED"),
        (
            {"callback": {"url": "http://127.0.0.1:9/cb", "method": "get"}},
            "INVALID_CALLBACK_METHOD",
        ),
    ],
)
def test_create_job_validation(zoho: Zoho, change: dict[str, Any], code: str) -> None:
    """Each documented create-job mistake answers 400 with its code."""
    file_id = zoho.file_id([["A-1", "SO-1", "1"]], HEADER)
    body: dict[str, Any] = {
        "operation": "upsert",
        "find_by": "parent_id",
        "module": "Orders",
        "file_id": file_id,
    }
    body |= change
    resource = {"type": "data", "module": {"api_name": body["module"]}, "file_id": body["file_id"]}
    resource |= {"find_by": body["find_by"], "field_mappings": body.get("mappings", MAPPINGS)}
    request: dict[str, Any] = {"operation": body["operation"], "resource": [resource]}
    if "callback" in body:
        request["callback"] = body["callback"]
    response = zoho.post("/crm/bulk/v8/write", json=request)
    assert (response.status_code, response.json()["code"]) == (400, code)
    assert response.json()["status"] == "error"


def test_allowed_format_list_is_a_setting(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """With bulk_date_formats set, a valid pattern outside the list is INVALID_FORMAT."""
    zoho = make_zoho(start_emulator(bulk_date_formats=("MM/dd/yyyy",)))
    file_id = zoho.file_id([["A-1", "SO-1", "2024-01-05"]], ["parent_id", "Name", "Order_Date"])
    mappings = [*MAPPINGS[:2], {"api_name": "Order_Date", "index": 2, "format": "yyyy-MM-dd"}]
    assert zoho.create_job(file_id, mappings).json()["code"] == "INVALID_FORMAT"
    assert zoho.create_job(file_id, mappings[:2]).status_code == 201


def test_parallel_job_cap_answers_429(
    start_emulator: Callable[..., EmulatorServer], make_zoho: Callable[[EmulatorServer], Zoho]
) -> None:
    """Creating a job while max_parallel_bulk_jobs are unfinished answers 429 TOO_MANY_REQUESTS."""
    zoho = make_zoho(start_emulator(max_parallel_bulk_jobs=1, bulk_queue_seconds=30))
    file_id = zoho.file_id([["A-1", "SO-1", "1"]], HEADER)
    assert zoho.create_job(file_id, MAPPINGS).status_code == 201
    response = zoho.create_job(file_id, MAPPINGS)
    assert (response.status_code, response.json()["code"]) == (429, "TOO_MANY_REQUESTS")


def test_unreadable_csv_is_invalid_file_format(zoho: Zoho) -> None:
    """A CSV the parser cannot read (a field over its size limit) is refused at upload."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("orders.csv", "parent_id,Name\n" + "x" * 200_000 + ",y\n")
    response = zoho.upload(buffer.getvalue())
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_FILE_FORMAT")


def test_callback_url_must_be_http(zoho: Zoho) -> None:
    """A callback URL that is not http(s) is refused when the job is created."""
    file_id = zoho.file_id([["A-1", "SO-1", "1"]], HEADER)
    response = zoho.create_job(file_id, MAPPINGS, callback={"url": "ftp://x", "method": "post"})
    assert (response.status_code, response.json()["code"]) == (400, "INVALID_DATA")
