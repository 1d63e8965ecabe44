"""Fault injection (at start and at run time) and the admin API (reference 8.6)."""

from __future__ import annotations

import io
import time
import zipfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import Faults

if TYPE_CHECKING:
    from conftest import Zoho

Start = Callable[..., EmulatorServer]
MakeZoho = Callable[[EmulatorServer], "Zoho"]
Order = Callable[..., dict[str, Any]]


def test_error_rate_answers_500_and_writes_nothing(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """error_rate=1: every call is 500 INTERNAL_ERROR and nothing is processed."""
    zoho.login()  # mint before the fault
    emulator.admin.set_faults(error_rate=1.0)
    response = zoho.upsert([order()])
    assert response.status_code == 500
    assert response.json() == {
        "code": "INTERNAL_ERROR",
        "details": {},
        "message": "Internal Server Error",
        "status": "error",
    }
    assert emulator.admin.records("Orders") == []
    assert emulator.admin.stats()["faults"] == {"error": 1}


def test_rate_limit_rate_answers_429(zoho: Zoho, emulator: EmulatorServer) -> None:
    """rate_limit_rate=1: every call is 429 TOO_MANY_REQUESTS."""
    zoho.login()
    emulator.admin.set_faults(rate_limit_rate=1.0)
    response = zoho.get("/crm/v8/org")
    assert (response.status_code, response.json()["code"]) == (429, "TOO_MANY_REQUESTS")


def test_drop_rate_breaks_the_connection_before_processing(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """drop_rate=1: the client sees a broken connection and nothing was written."""
    zoho.login()
    emulator.admin.set_faults(drop_rate=1.0)
    with pytest.raises(httpx.TransportError):
        zoho.upsert([order()])
    emulator.admin.set_faults(drop_rate=0.0)
    assert emulator.admin.records("Orders") == []
    assert emulator.admin.stats()["faults"] == {"drop": 1}
    assert zoho.get("/crm/v8/org").status_code == 200  # the client recovers with a new connection


def test_drop_after_processing_loses_only_the_reply(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """drop_after_rate=1: the write happens but its response never arrives."""
    zoho.login()
    emulator.admin.set_faults(drop_after_rate=1.0)
    with pytest.raises(httpx.TransportError):
        zoho.upsert([order()])
    assert [r["parent_id"] for r in emulator.admin.records("Orders")] == ["A-1"]


def test_latency_delays_every_call(zoho: Zoho, emulator: EmulatorServer) -> None:
    """latency_ms adds that much time to a call."""
    zoho.login()
    emulator.admin.set_faults(latency_ms=150)
    began = time.monotonic()
    assert zoho.get("/crm/v8/org").status_code == 200
    assert time.monotonic() - began >= 0.15


def test_faults_can_be_set_at_start(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """EmulatorSettings.faults hold from the first call; the token endpoint is faulted too."""
    zoho = make_zoho(start_emulator(faults=Faults(error_rate=1.0)))
    assert zoho.token_response().status_code == 500


def test_seeded_faults_repeat(start_emulator: Start, make_zoho: MakeZoho) -> None:
    """Two emulators with the same seed fail the same calls."""
    patterns = []
    for _ in range(2):
        server = start_emulator(seed=42)
        zoho = make_zoho(server)
        zoho.login()
        server.admin.set_faults(error_rate=0.5)
        patterns.append([zoho.get("/crm/v8/org").status_code for _ in range(20)])
    assert patterns[0] == patterns[1]
    assert {200, 500} == set(patterns[0])


@pytest.mark.parametrize("faults", [{"explode": 1}, {"error_rate": 2.0}, {"error_rate": "x"}])
def test_bad_faults_are_refused(emulator: EmulatorServer, faults: dict[str, Any]) -> None:
    """Unknown fault names and out-of-range values answer 400 and change nothing."""
    with pytest.raises(httpx.HTTPStatusError) as caught:
        emulator.admin.set_faults(**faults)
    assert caught.value.response.status_code == 400
    assert emulator.admin.faults()["error_rate"] == 0.0


def test_expire_tokens_fault(zoho: Zoho, emulator: EmulatorServer) -> None:
    """set_faults(expire_tokens=True) invalidates every live token."""
    assert zoho.get("/crm/v8/org").status_code == 200
    emulator.admin.set_faults(expire_tokens=True)
    assert zoho.get("/crm/v8/org").json()["code"] == "INVALID_TOKEN"


def test_reset_forgets_everything(zoho: Zoho, emulator: EmulatorServer, order: Order) -> None:
    """reset clears records, tokens, credits, stats and run-time faults."""
    zoho.upsert([order()])
    emulator.admin.set_faults(latency_ms=5)
    emulator.admin.reset()
    stats = emulator.admin.stats()
    assert emulator.admin.records("Orders") == []
    assert stats["credits"]["used"] == 0 and stats["calls"] == {} and stats["tokens"]["minted"] == 0
    assert emulator.admin.faults()["latency_ms"] == 0
    assert zoho.get("/crm/v8/org").json()["code"] == "INVALID_TOKEN"


def test_stats_count_calls_statuses_and_tokens(
    zoho: Zoho, emulator: EmulatorServer, order: Order
) -> None:
    """Stats count calls per endpoint, statuses, tokens minted and records per module."""
    zoho.upsert([order()])
    zoho.upsert([order(Quantity="x")])
    stats = emulator.admin.stats()
    assert stats["calls"] == {"POST /oauth/v2/token": 1, "POST /crm/v8/{module}/upsert": 2}
    assert stats["statuses"] == {"200": 2, "400": 1}
    assert stats["tokens"] == {"minted": 1, "live": 1}
    assert stats["records"] == {"Orders": 1}
    assert stats["concurrency"]["peak"] == 1


def test_admin_lists_jobs_and_records(zoho: Zoho, emulator: EmulatorServer) -> None:
    """The admin API lists bulk jobs with their details and a module's records."""
    details = zoho.run_job([["K1", "SO-1"]], ["parent_id", "Name"])
    (job,) = emulator.admin.jobs()
    assert (job["id"], job["status"]) == (details["id"], "COMPLETED")
    (record,) = emulator.admin.records("orders")
    assert record["parent_id"] == "K1" and len(record["id"]) == 19
    with pytest.raises(httpx.HTTPStatusError):
        emulator.admin.records("Nope")


# -- broken answers (issue 15, item 2) ---------------------------------------------------------

STATUS_CALL = "GET /crm/bulk/v8/write/{job_id}"
JOB_ROWS = [["K1", "SO-1"], ["K2", "SO-2"]]
JOB_HEADER = ["parent_id", "Name"]


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "body"),
    [
        ("truncated_json", 200, "application/json", None),
        ("html_200", 200, "text/html", b"<html>"),
        ("wrong_content_type", 200, "text/html", None),
        ("empty_body", 200, "application/json", b""),
    ],
)
def test_garble_breaks_the_answer_of_a_processed_call(
    zoho: Zoho,
    emulator: EmulatorServer,
    kind: str,
    status: int,
    content_type: str,
    body: bytes | None,
) -> None:
    """garble_next=1 on the org call: that one answer is broken as a proxy would break it; the
    call was processed and charged all the same; the next answer is whole."""
    zoho.login()
    whole = zoho.get("/crm/v8/org").content
    emulator.admin.set_faults(garble=kind, garble_next=1, garble_calls=["GET /crm/v8/org"])
    used = emulator.admin.stats()["credits"]["used"]
    broken = zoho.get("/crm/v8/org")
    assert broken.status_code == status
    assert broken.headers["content-type"].startswith(content_type)
    if kind == "truncated_json":
        assert broken.content == whole[: len(whole) // 2]
    elif kind == "wrong_content_type":
        assert broken.content == whole
    else:
        assert body is not None and broken.content.startswith(body)
    stats = emulator.admin.stats()
    assert stats["credits"]["used"] == used + 1, "a garbled answer was still processed"
    assert stats["faults"] == {f"garble_{kind}": 1}
    assert zoho.get("/crm/v8/org").content == whole


def test_garble_calls_limits_the_fault_to_the_named_calls(
    zoho: Zoho, emulator: EmulatorServer
) -> None:
    """A garble aimed at status polls leaves every other call alone and strikes N times."""
    zoho.login()
    emulator.admin.set_faults(garble="html_200", garble_next=2, garble_calls=[STATUS_CALL])
    assert zoho.get("/crm/v8/org").headers["content-type"].startswith("application/json")
    file_id = zoho.file_id(JOB_ROWS, JOB_HEADER)
    mappings = [{"api_name": n, "index": i} for i, n in enumerate(JOB_HEADER)]
    job_id = zoho.create_job(file_id, mappings).json()["details"]["id"]
    answers = [zoho.get(f"/crm/bulk/v8/write/{job_id}") for _ in range(3)]
    assert [a.headers["content-type"].split(";")[0] for a in answers] == [
        "text/html",
        "text/html",
        "application/json",
    ]
    assert emulator.admin.faults()["garble_next"] == 0


@pytest.mark.parametrize("kind", ["no_csv", "other_columns", "foreign_keys", "damaged_stream"])
def test_broken_results_write_the_records_but_not_a_usable_result(
    zoho: Zoho, emulator: EmulatorServer, kind: str
) -> None:
    """broken_results=1: the job writes its records, and every download of its result is the
    same broken file; the next job's result is whole."""
    zoho.login()
    emulator.admin.set_faults(broken_results=1, broken_result=kind)
    details = zoho.run_job(JOB_ROWS, JOB_HEADER)
    assert details["status"] == "COMPLETED"
    assert sorted(r["parent_id"] for r in emulator.admin.records("Orders")) == ["K1", "K2"]
    first = zoho.get(details["result"]["download_url"]).content
    assert zoho.get(details["result"]["download_url"]).content == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
        if kind == "damaged_stream":  # the archive opens; its CSV cannot be read to the end
            with pytest.raises((zipfile.BadZipFile, zlib.error)):
                archive.read(names[0])
        text = "" if kind in ("no_csv", "damaged_stream") else archive.read(names[0]).decode()
    if kind == "damaged_stream":
        assert names == ["Orders-result.csv"]
    elif kind == "no_csv":
        assert names == ["errors.log"]
    elif kind == "other_columns":
        assert text.splitlines()[0] == "parent_id,Name" and "STATUS" not in text
    else:
        lines = text.splitlines()
        assert lines[0] == "parent_id,Name,STATUS,RECORD_ID,ERRORS"
        assert [line.split(",")[0] for line in lines[1:]] == ["K1", "K2", "NOT-SENT-1"]
    assert emulator.admin.stats()["faults"] == {f"broken_result_{kind}": 1}
    _, header, _ = zoho.result(zoho.run_job([["K3", "SO-3"]], JOB_HEADER))
    assert header[-3:] == ["STATUS", "RECORD_ID", "ERRORS"]


def test_status_regressions_answer_added_for_a_finished_job(
    zoho: Zoho, emulator: EmulatorServer
) -> None:
    """A lagging replica: the next N polls say ADDED (no result) though the job completed."""
    zoho.login()
    details = zoho.run_job(JOB_ROWS, JOB_HEADER)
    emulator.admin.set_faults(status_regressions=2)
    polls = [zoho.get(f"/crm/bulk/v8/write/{details['id']}").json() for _ in range(3)]
    assert [p["status"] for p in polls] == ["ADDED", "ADDED", "COMPLETED"]
    assert "result" not in polls[0] and polls[0]["resource"][0]["status"] == "ADDED"
    assert polls[2]["result"] == details["result"]


def test_expire_tokens_on_a_named_call(zoho: Zoho, emulator: EmulatorServer) -> None:
    """The next N calls named in expire_tokens_on find the token revoked (401); others not."""
    zoho.login()
    emulator.admin.set_faults(expire_tokens_on=["GET /crm/v8/org"], expire_tokens_next=1)
    assert zoho.get("/crm/v8/settings/fields", params={"module": "Orders"}).status_code == 200
    refused = zoho.get("/crm/v8/org")
    assert (refused.status_code, refused.json()["code"]) == (401, "INVALID_TOKEN")
    zoho._token = None  # mint again, as a client does after a 401
    assert zoho.get("/crm/v8/org").status_code == 200
    assert emulator.admin.stats()["faults"] == {"token_expired": 1}


def test_token_errors_answer_200_with_an_error_body(zoho: Zoho, emulator: EmulatorServer) -> None:
    """token_errors=1: one token request is refused with HTTP 200 and {"error": ...}."""
    emulator.admin.set_faults(token_errors=1, token_error="invalid_code")
    refused = zoho.token_response()
    assert refused.status_code == 200 and refused.json()["error"] == "invalid_code"
    assert "access_token" not in refused.json()
    assert "access_token" in zoho.token_response().json()
    assert emulator.admin.stats()["tokens"]["minted"] == 1


def test_download_host_announces_results_elsewhere(zoho: Zoho, emulator: EmulatorServer) -> None:
    """download_host: the result's download_url points at another host."""
    zoho.login()
    emulator.admin.set_faults(download_host="https://files.example.net")
    details = zoho.run_job(JOB_ROWS, JOB_HEADER)
    assert details["result"]["download_url"].startswith("https://files.example.net/v2/crm/")


@pytest.mark.parametrize(
    "faults",
    [{"garble": "gzip_bomb"}, {"broken_result": "x"}, {"garble_next": -1}, {"garble_rate": 2}],
)
def test_bad_broken_answer_faults_are_refused(
    emulator: EmulatorServer, faults: dict[str, Any]
) -> None:
    with pytest.raises(httpx.HTTPStatusError):
        emulator.admin.set_faults(**faults)
