"""Bulk Write jobs: status flow, result file, row rules, callback, faults (reference 5.3-5.8)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from syncd.emulator.schema import parse_schema
from syncd.emulator.server import EmulatorServer

if TYPE_CHECKING:
    from conftest import Zoho

Start = Callable[..., EmulatorServer]
MakeZoho = Callable[[EmulatorServer], "Zoho"]
# legacy column names as headers, key first, mapped in another order than the columns
LEGACY = ["order_id", "number", "total", "ordered_on", "placed_at", "state", "email", "qty", "paid"]
MAPPINGS = [
    {"api_name": "Name", "index": 1},
    {"api_name": "parent_id", "index": 0},
    {"api_name": "Amount", "index": 2},
    {"api_name": "Order_Date", "index": 3, "format": "dd.MM.yyyy"},
    {"api_name": "Ordered_At", "index": 4, "format": "yyyy-MM-dd'T'HH:mm:ssXXX"},
    {"api_name": "Status", "index": 5},
    {"api_name": "Customer_Email", "index": 6},
    {"api_name": "Quantity", "index": 7},
    {"api_name": "Paid", "index": 8},
]


def row(key: str, **cells: str) -> list[str]:
    base = {
        "number": f"SO-{key}",
        "total": "10.50",
        "ordered_on": "05.01.2024",
        "placed_at": "2024-01-05T10:00:00+02:00",
        "state": "Paid",
        "email": "a@example.com",
        "qty": "2",
        "paid": "TRUE",
    }
    base |= cells
    return [key, *(base[name] for name in LEGACY[1:])]


def poll_until_started(zoho: Zoho, job_id: str) -> dict[str, Any]:
    """The first job details whose status is no longer ADDED."""
    while True:
        details: dict[str, Any] = zoho.get(f"/crm/bulk/v8/write/{job_id}").json()
        if details["status"] != "ADDED":
            return details
        time.sleep(0.01)


def test_job_moves_added_in_progress_completed(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """Polls see ADDED, then IN PROGRESS with partial counts, then COMPLETED with a download_url."""
    server = start_emulator(bulk_rows_per_second=200, bulk_queue_seconds=0.2)
    zoho = make_zoho(server)
    created = zoho.create_job(zoho.file_id([row(f"K{i}") for i in range(100)], LEGACY), MAPPINGS)
    job_id = created.json()["details"]["id"]
    first = zoho.get(f"/crm/bulk/v8/write/{job_id}").json()
    assert first["status"] == "ADDED"
    assert first["resource"][0]["file"] == {"status": "IN PROGRESS"}
    assert "result" not in first
    middle = poll_until_started(zoho, job_id)
    assert middle["status"] == "IN PROGRESS"
    assert middle["resource"][0]["file"]["total_count"] < 100
    done = zoho.wait_job(job_id)
    file = done["resource"][0]["file"]
    assert (done["status"], done["resource"][0]["status"], file["status"]) == ("COMPLETED",) * 3
    counts = (
        file["added_count"],
        file["updated_count"],
        file["skipped_count"],
        file["total_count"],
    )
    assert counts == (100, 0, 0, 100)
    assert done["result"]["download_url"] == (
        f"{server.base_url}/v2/crm/808232144/bulk-write/{job_id}/{job_id}.zip"
    )
    assert (done["id"], done["operation"]) == (job_id, "upsert")
    assert done["resource"][0]["field_mappings"][3]["format"] == "dd.MM.yyyy"


def test_in_progress_spelling_is_a_setting(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """job_status_spelling='INPROGRESS' drops the space from the running status."""
    zoho = make_zoho(start_emulator(bulk_rows_per_second=100, job_status_spelling="INPROGRESS"))
    file_id = zoho.file_id([row(f"K{i}") for i in range(50)], LEGACY)
    job_id = zoho.create_job(file_id, MAPPINGS).json()["details"]["id"]
    assert poll_until_started(zoho, job_id)["status"] == "INPROGRESS"


def test_instant_jobs_complete_on_the_first_poll(zoho: Zoho) -> None:
    """With bulk_rows_per_second=None the first status poll already shows COMPLETED."""
    job_id = zoho.create_job(zoho.file_id([row("K1")], LEGACY), MAPPINGS).json()["details"]["id"]
    assert zoho.get(f"/crm/bulk/v8/write/{job_id}").json()["status"] == "COMPLETED"


def test_result_file_has_first_three_columns_and_outcomes(
    zoho: Zoho, emulator: EmulatorServer
) -> None:
    """Result CSV: the first three mapped columns (file headers) + STATUS, RECORD_ID, ERRORS."""
    zoho.run_job([row("K1")], LEGACY, MAPPINGS)
    rows = [
        row("K1", number="SO-new"),
        row("K2"),
        row("K3", total="ten"),
        row("K4", number="", ordered_on="2024-01-05"),
        row("", number="SO-x"),
    ]
    details = zoho.run_job(rows, LEGACY, MAPPINGS)
    name, header, result = zoho.result(details)
    stored = {r["parent_id"]: r for r in emulator.admin.records("Orders")}
    assert name == "Orders-orders.csv"
    assert header == ["order_id", "number", "total", "STATUS", "RECORD_ID", "ERRORS"]
    assert [(r["order_id"], r["STATUS"], r["ERRORS"]) for r in result] == [
        ("K1", "UPDATED", ""),
        ("K2", "ADDED", ""),
        ("K3", "SKIPPED", "INVALID_DATA-total"),
        ("K4", "SKIPPED", "INVALID_DATA-ordered_on:MANDATORY_NOT_FOUND-number"),
        ("", "SKIPPED", "MANDATORY_NOT_FOUND-order_id"),
    ]
    assert (
        result[0]["RECORD_ID"] == stored["K1"]["id"]
        and result[1]["RECORD_ID"] == stored["K2"]["id"]
    )
    assert result[2]["RECORD_ID"] == ""
    assert stored["K1"]["Name"] == "SO-new" and "K3" not in stored
    file = details["resource"][0]["file"]
    assert (
        file["added_count"],
        file["updated_count"],
        file["skipped_count"],
        file["total_count"],
    ) == (1, 1, 3, 5)


def test_declared_formats_and_types_are_honoured(zoho: Zoho, emulator: EmulatorServer) -> None:
    """Dates/datetimes parse per the column's format; numbers, booleans, picklists are typed."""
    zoho.run_job(
        [row("K1", qty="7", paid="false", placed_at="2024-01-05T23:30:00-01:00")], LEGACY, MAPPINGS
    )
    (stored,) = emulator.admin.records("Orders")
    assert stored["Order_Date"] == "2024-01-05"
    assert stored["Ordered_At"] == "2024-01-06T00:30:00+00:00"
    assert (stored["Amount"], stored["Quantity"], stored["Paid"], stored["Status"]) == (
        10.5,
        7,
        False,
        "Paid",
    )


def test_default_formats_are_us_style(zoho: Zoho, emulator: EmulatorServer) -> None:
    """Without a format a date column is MM/dd/yyyy and a datetime column MM/dd/yyyy HH:mm:ss."""
    header = ["parent_id", "Name", "Order_Date", "Ordered_At"]
    details = zoho.run_job(
        [["K1", "SO-1", "01/31/2024", "01/31/2024 13:05:09"], ["K2", "SO-2", "2024-01-31", ""]],
        header,
    )
    _, _, result = zoho.result(details)
    assert [r["ERRORS"] for r in result] == ["", "INVALID_DATA-Order_Date"]
    stored = emulator.admin.records("Orders")[0]
    assert (stored["Order_Date"], stored["Ordered_At"]) == (
        "2024-01-31",
        "2024-01-31T13:05:09+00:00",
    )


@pytest.mark.parametrize(("cell", "valid"), [("Shipped", True), ("Lost", False), ("maybe", False)])
def test_bad_cells_are_invalid_data(zoho: Zoho, cell: str, valid: bool) -> None:
    """Picklist cells must be listed values; unknown ones are INVALID_DATA-<column>."""
    _, _, result = zoho.result(zoho.run_job([row("K1", state=cell)], LEGACY, MAPPINGS))
    assert result[0]["ERRORS"] == ("" if valid else "INVALID_DATA-state")


@pytest.mark.parametrize(("ignore_empty", "notes"), [(True, "keep me"), (False, None)])
def test_ignore_empty_decides_whether_blank_cells_clear(
    zoho: Zoho, emulator: EmulatorServer, ignore_empty: bool, notes: str | None
) -> None:
    """ignore_empty=true leaves a field alone on an empty cell; false clears it."""
    header = ["parent_id", "Name", "Notes"]
    zoho.run_job([["K1", "SO-1", "keep me"]], header)
    zoho.run_job([["K1", "SO-1", ""]], header, ignore_empty=ignore_empty)
    assert emulator.admin.records("Orders")[0]["Notes"] == notes


@pytest.mark.parametrize(
    ("setting", "outcome"),
    [("skip", ("SKIPPED", "MANDATORY_NOT_FOUND-Legacy_Id")), ("insert", ("ADDED", ""))],
)
def test_empty_find_by_value(
    start_emulator: Start, make_zoho: MakeZoho, setting: str, outcome: tuple[str, str]
) -> None:
    """An empty find_by value is skipped, or inserted with bulk_empty_find_by='insert'."""
    schema = parse_schema(
        {
            "modules": [
                {
                    "api_name": "Leads",
                    "fields": [
                        {"api_name": "Legacy_Id", "unique": True},
                        {"api_name": "Last_Name", "mandatory": True},
                    ],
                }
            ]
        },
        "leads",
    )
    server = start_emulator(bulk_rows_per_second=None, bulk_empty_find_by=setting, schema=schema)
    zoho = make_zoho(server)
    header = ["Legacy_Id", "Last_Name"]
    details = zoho.run_job([["", "Smith"]], header, module="Leads", find_by="Legacy_Id")
    result = zoho.result(details)[2][0]
    assert (result["STATUS"], result["ERRORS"]) == outcome


def test_operation_insert_and_update_rules(zoho: Zoho, emulator: EmulatorServer) -> None:
    """insert skips existing keys (DUPLICATE_DATA), update unknown ones (RESOURCE_NOT_FOUND)."""
    header = ["parent_id", "Name"]
    zoho.run_job([["K1", "SO-1"]], header)
    _, _, inserted = zoho.result(
        zoho.run_job([["k1", "SO-x"], ["K2", "SO-2"]], header, operation="insert")
    )
    _, _, updated = zoho.result(
        zoho.run_job([["K2", "SO-22"], ["K3", "SO-3"]], header, operation="update")
    )
    assert [(r["STATUS"], r["ERRORS"]) for r in inserted] == [
        ("SKIPPED", "DUPLICATE_DATA-parent_id"),
        ("ADDED", ""),
    ]
    assert [(r["STATUS"], r["ERRORS"]) for r in updated] == [
        ("UPDATED", ""),
        ("SKIPPED", "RESOURCE_NOT_FOUND-parent_id"),
    ]
    assert sorted(r["Name"] for r in emulator.admin.records("Orders")) == ["SO-1", "SO-22"]


def test_update_by_record_id(zoho: Zoho, emulator: EmulatorServer) -> None:
    """find_by 'id' matches rows to records by their CRM id."""
    zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    record_id = emulator.admin.records("Orders")[0]["id"]
    mappings = [{"api_name": "id", "index": 0}, {"api_name": "Notes", "index": 1}]
    details = zoho.run_job(
        [[record_id, "by id"]], ["id", "Notes"], mappings, operation="update", find_by="id"
    )
    assert zoho.result(details)[2][0]["STATUS"] == "UPDATED"
    assert emulator.admin.records("Orders")[0]["Notes"] == "by id"


@pytest.mark.parametrize(
    ("mode", "second"), [("sequential", "UPDATED"), ("duplicate_data", "SKIPPED")]
)
def test_duplicate_keys_in_one_file(
    start_emulator: Start, make_zoho: MakeZoho, mode: str, second: str
) -> None:
    """A key twice in one file: the second row updates the first (or is DUPLICATE_DATA)."""
    zoho = make_zoho(start_emulator(bulk_rows_per_second=None, intra_request_duplicates=mode))
    _, _, result = zoho.result(
        zoho.run_job([["K1", "SO-1"], ["k1", "SO-2"]], ["parent_id", "Name"])
    )
    assert [r["STATUS"] for r in result] == ["ADDED", second]


def test_unknown_job_is_resource_not_found(zoho: Zoho) -> None:
    """Polling an unknown job id answers 404 RESOURCE_NOT_FOUND by default."""
    response = zoho.get("/crm/bulk/v8/write/5725767000000000009")
    assert (response.status_code, response.json()["code"]) == (404, "RESOURCE_NOT_FOUND")
    assert response.json()["message"] == "The requested resource doesn't exist."


def test_resource_not_found_status_is_a_setting(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """resource_not_found_status=400 follows the v8 OAS instead of the v7 docs."""
    zoho = make_zoho(start_emulator(resource_not_found_status=400))
    assert zoho.get("/crm/bulk/v8/write/5725767000000000009").status_code == 400


def test_relative_download_url_works_against_the_api_domain(
    start_emulator: Start, make_zoho: MakeZoho
) -> None:
    """download_url_form='relative' gives a path that the SDK prefixes with the API domain."""
    zoho = make_zoho(start_emulator(bulk_rows_per_second=None, download_url_form="relative"))
    details = zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    url = details["result"]["download_url"]
    assert url == f"/v2/crm/org808232144/bulk-write/{details['id']}/{details['id']}.zip"
    assert zoho.result(details)[2][0]["STATUS"] == "ADDED"


def test_result_expires_after_retention(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """With result_retention_seconds the download answers RESOURCE_NOT_FOUND once it passed."""
    zoho = make_zoho(start_emulator(bulk_rows_per_second=None, result_retention_seconds=0.1))
    details = zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    time.sleep(0.15)
    assert zoho.get(details["result"]["download_url"]).json()["code"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(("case", "cell"), [("title", "Added"), ("lower", "added")])
def test_status_cell_case_is_a_setting(
    start_emulator: Start, make_zoho: MakeZoho, case: str, cell: str
) -> None:
    """bulk_status_case changes how STATUS cells are spelled."""
    zoho = make_zoho(start_emulator(bulk_rows_per_second=None, bulk_status_case=case))
    assert (
        zoho.result(zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"]))[2][0]["STATUS"] == cell
    )


def test_shuffled_results_still_carry_every_key(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """bulk_result_order='shuffled' reorders result rows, so clients must match by key."""
    zoho = make_zoho(
        start_emulator(bulk_rows_per_second=None, bulk_result_order="shuffled", seed=3)
    )
    keys = [f"K{i:03d}" for i in range(50)]
    result = zoho.result(zoho.run_job([[k, "SO"] for k in keys], ["parent_id", "Name"]))[2]
    assert [r["parent_id"] for r in result] != keys
    assert sorted(r["parent_id"] for r in result) == keys


def test_fail_jobs_fault_fails_the_next_job(zoho: Zoho, emulator: EmulatorServer) -> None:
    """fail_jobs=1: the next job ends FAILED with no result and no records; the one after runs."""
    emulator.admin.set_faults(fail_jobs=1)
    failed = zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    assert (failed["status"], failed["resource"][0]["status"]) == ("FAILED", "FAILED")
    assert "result" not in failed and emulator.admin.records("Orders") == []
    assert zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])["status"] == "COMPLETED"


def test_unprocessed_fault_marks_rows_unprocessed(zoho: Zoho, emulator: EmulatorServer) -> None:
    """unprocessed_rate=1 reports every row UNPROCESSED and writes nothing."""
    emulator.admin.set_faults(unprocessed_rate=1.0)
    details = zoho.run_job([["K1", "SO-1"], ["K2", "SO-2"]], ["parent_id", "Name"])
    assert {r["STATUS"] for r in zoho.result(details)[2]} == {"UNPROCESSED"}
    assert emulator.admin.records("Orders") == []


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what arrived."""


@pytest.fixture
def callback_url() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/bulk-callback", received
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("fail", [False, True])
def test_callback_posts_the_job_details(
    zoho: Zoho, emulator: EmulatorServer, callback_url: tuple[str, list[Any]], fail: bool
) -> None:
    """A job with a callback POSTs its details (JSON) when it completes or fails."""
    url, received = callback_url
    if fail:
        emulator.admin.set_faults(fail_jobs=1)
    details = zoho.run_job(
        [["K1", "SO-1"]], ["parent_id", "Name"], callback={"url": url, "method": "post"}
    )
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    ((content_type, body),) = received
    assert content_type == "application/json"
    assert (body["id"], body["status"]) == (details["id"], "FAILED" if fail else "COMPLETED")
    assert body["callback"] == {"url": url, "method": "post"}


def test_bulk_fast_answers_every_row_added_without_checking_or_storing(
    start_emulator: Start, make_zoho: MakeZoho
) -> None:
    """The benchmarks' mode: the upload reads the file's header only (its rows are not
    counted: three pass a limit of two), and the job answers
    every row ADDED with a record id of its own (a row Zoho would refuse too: nothing is
    checked), echoing the first three columns of rows whose cells hold commas and line
    breaks; nothing is stored. A file that is not a zip is still refused."""
    server = start_emulator(bulk_fast=True, bulk_rows_per_second=None, max_bulk_rows=2)
    zoho = make_zoho(server)
    header = [*LEGACY, "notes"]
    rows = [[*row("K1"), ""], [*row("K2", total="ten"), "x"], [*row("K3"), 'a,"b"\r\nc']]
    details = zoho.run_job(rows, header, MAPPINGS)
    _, result_header, result = zoho.result(details)
    assert result_header == ["order_id", "number", "total", "STATUS", "RECORD_ID", "ERRORS"]
    assert [(r["order_id"], r["STATUS"]) for r in result] == [
        ("K1", "ADDED"),
        ("K2", "ADDED"),
        ("K3", "ADDED"),
    ]
    assert len({r["RECORD_ID"] for r in result}) == 3 and all(r["RECORD_ID"] for r in result)
    assert server.admin.records("Orders") == []
    assert zoho.upload(b"not a zip").json()["code"] == "INVALID_FILE_FORMAT"
