"""Bulk Write through the CRM client against the emulator: files, jobs, polling, results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from syncd.crm import BulkLimits, CrmClient, bulk_format, to_csv_cell
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.errors import CrmFatalError, CrmRetriableError
from syncd.model import BulkColumn, BulkRow, CrmRecord, FieldType, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, SystemClock, crm_settings

BERLIN = ZoneInfo("Europe/Berlin")
TYPES = {
    "Name": FieldType.TEXT,
    "Amount": FieldType.DECIMAL,
    "Order_Date": FieldType.DATE,
    "Ordered_At": FieldType.DATETIME,
    "Quantity": FieldType.INTEGER,
    "Paid": FieldType.BOOLEAN,
    "Notes": FieldType.TEXT,
}
COLUMNS = [BulkColumn(name, bulk_format(ftype)) for name, ftype in TYPES.items()]


def _row(key: str, **values: Any) -> BulkRow:
    """A bulk row built the way the engine does: legacy values through to_csv_cell."""
    cells = [to_csv_cell(values.get(name), ftype, BERLIN) for name, ftype in TYPES.items()]
    return BulkRow(key, cells)


def _run(crm: CrmClient, rows: Sequence[BulkRow]) -> dict[str, Any]:
    """Build, start, wait and read one or more jobs; outcomes by key (one per key)."""
    outcomes = {}
    for file in crm.build_bulk_files("parent_id", COLUMNS, rows):
        job_id = crm.start_bulk_job("Orders", "parent_id", COLUMNS, file)
        status = crm.wait_bulk_job(job_id)
        outcomes |= {o.key: o for o in crm.bulk_job_outcomes(status, file.keys)}
        Path(file.path).unlink()
    return outcomes


def _records(server: EmulatorServer) -> dict[str, dict[str, Any]]:
    return {r["parent_id"]: r for r in server.admin.records("Orders")}


def test_roundtrip_with_skipped_rows(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Added, updated and skipped rows come back by key; values and formats land intact."""
    client.upsert("Orders", "parent_id", [CrmRecord("k2", {"Name": "old"})])
    outcomes = _run(
        client,
        [
            _row(
                "k1",
                Name='Grüße, "quoted"\nline',
                Amount=Decimal("1E+3"),
                Order_Date=date(2024, 2, 29),
                Ordered_At=datetime(2024, 7, 1, 12, 30),
                Quantity=3,
                Paid=True,
            ),
            _row("k2", Name="new"),
            _row("k3", Quantity=1),  # no Name: Zoho skips it
        ],
    )
    assert outcomes["k1"].kind is OutcomeKind.ADDED
    assert outcomes["k2"].kind is OutcomeKind.UPDATED
    assert (outcomes["k3"].kind, outcomes["k3"].code, outcomes["k3"].field) == (
        OutcomeKind.SKIPPED,
        "MANDATORY_NOT_FOUND",
        "Name",
    )
    records = _records(fresh_emulator)
    assert sorted(records) == ["k1", "k2"]
    k1 = records["k1"]
    assert k1["Name"] == 'Grüße, "quoted"\nline'
    assert (k1["Amount"], k1["Order_Date"], k1["Quantity"], k1["Paid"]) == (
        1000,
        "2024-02-29",
        3,
        True,
    )
    assert datetime.fromisoformat(k1["Ordered_At"]) == datetime(2024, 7, 1, 10, 30, tzinfo=UTC)
    assert records["k2"]["Name"] == "new"
    assert outcomes["k1"].record_id == k1["id"]
    spent = store.credits_spent_since(datetime.now(UTC) - timedelta(hours=24))
    assert spent == fresh_emulator.admin.stats()["credits"]["used"]


def test_empty_cells_clear_crm_fields(client: CrmClient, fresh_emulator: EmulatorServer) -> None:
    """A NULL in the legacy row blanks the CRM field (ignore_empty is false)."""
    client.upsert("Orders", "parent_id", [CrmRecord("k1", {"Name": "n", "Notes": "remove me"})])
    assert _run(client, [_row("k1", Name="n")])["k1"].kind is OutcomeKind.UPDATED
    assert _records(fresh_emulator)["k1"]["Notes"] is None


def test_large_input_is_split_and_every_file_applied(
    fresh_emulator: EmulatorServer, store: StateStore, tmp_path: Path
) -> None:
    """Rows beyond a file's limit go into further files and jobs; every key gets an outcome."""
    settings = crm_settings(fresh_emulator.base_url)
    with CrmClient(
        settings,
        store,
        store,
        SystemClock(),
        retry=FAST_RETRY,
        workdir=tmp_path,
        bulk_limits=BulkLimits(max_rows=40),
    ) as crm:
        outcomes = _run(crm, [_row(f"k{i:03}", Name=f"n{i}") for i in range(100)])
    assert len(fresh_emulator.admin.jobs()) == 3
    assert {o.kind for o in outcomes.values()} == {OutcomeKind.ADDED}
    assert len(outcomes) == len(_records(fresh_emulator)) == 100
    assert list(tmp_path.glob("syncd-bulk-*")) == []


def test_unprocessed_rows_are_retried(client: CrmClient, fresh_emulator: EmulatorServer) -> None:
    """Rows Zoho reports UNPROCESSED come back as RETRY, never as confirmed."""
    fresh_emulator.admin.set_faults(unprocessed_rate=1.0)
    outcomes = _run(client, [_row("k1", Name="a"), _row("k2", Name="b")])
    assert {(o.kind, o.code) for o in outcomes.values()} == {(OutcomeKind.RETRY, "UNPROCESSED")}


def test_failed_job_is_an_error(client: CrmClient, fresh_emulator: EmulatorServer) -> None:
    """A job Zoho ends FAILED raises CrmFatalError; its rows were not written."""
    fresh_emulator.admin.set_faults(fail_jobs=1)
    with pytest.raises(CrmFatalError) as caught:
        _run(client, [_row("k1", Name="a")])
    assert caught.value.code == "BULK_JOB_FAILED"
    assert _records(fresh_emulator) == {}


@pytest.fixture(scope="module")
def variant() -> Iterator[EmulatorServer]:
    """The other spelling of everything: relative result URL, INPROGRESS, title-case status,
    shuffled result rows, jobs that take a few polls."""
    settings = EmulatorSettings(
        seed=3,
        download_url_form="relative",
        job_status_spelling="INPROGRESS",
        bulk_status_case="title",
        bulk_result_order="shuffled",
        bulk_rows_per_second=2000,
        bulk_queue_seconds=0.05,
    )
    with EmulatorServer(settings) as server:
        yield server


def test_other_result_forms_match_by_key(variant: EmulatorServer, store: StateStore) -> None:
    """Relative download URL, INPROGRESS and shuffled Title-case results still match by key."""
    variant.admin.reset()
    settings = crm_settings(variant.base_url)
    rows = [_row(f"k{i:03}", Name=f"n{i}" if i % 7 else "x" * 200, Quantity=i) for i in range(200)]
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        outcomes = _run(crm, rows)
    records = _records(variant)
    for i in range(200):
        outcome = outcomes[f"k{i:03}"]
        if i % 7:
            assert outcome.kind is OutcomeKind.ADDED
            assert records[f"k{i:03}"]["id"] == outcome.record_id
            assert records[f"k{i:03}"]["Quantity"] == i
        else:
            assert (outcome.kind, outcome.field) == (OutcomeKind.SKIPPED, "Name")  # too long
    assert variant.admin.stats()["calls"]["GET /crm/bulk/v8/write/{job_id}"] > 1


def test_stuck_job_times_out(tmp_path: Path) -> None:
    """A job that does not finish by the deadline raises a retriable BULK_JOB_TIMEOUT."""
    with EmulatorServer(EmulatorSettings(bulk_queue_seconds=60)) as server:
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        settings = crm_settings(server.base_url)
        with CrmClient(settings, state, state, SystemClock(), retry=FAST_RETRY) as crm:
            [file] = crm.build_bulk_files("parent_id", COLUMNS, [_row("k1", Name="a")])
            job_id = crm.start_bulk_job("Orders", "parent_id", COLUMNS, file)
            deadline = datetime.now(UTC) + timedelta(milliseconds=300)
            with pytest.raises(CrmRetriableError) as caught:
                crm.wait_bulk_job(job_id, deadline)
            assert caught.value.code == "BULK_JOB_TIMEOUT"
            assert crm.bulk_job_status(job_id).state == "ADDED"
        state.close()


def test_answers_are_freed_as_soon_as_they_are_read(
    client: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """A bulk job's upload, create, status and result answers (the result's zip in its body)
    are freed when the client is done with them, not left for the cyclic collector, which an
    initial sync runs rarely: httpx's stream refers back to its response."""
    import gc

    import httpx

    gc.collect()
    gc.disable()
    try:
        outcomes = _run(client, [_row("k1", Name="a"), _row("k2", Name="b")])
        left = [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
    finally:
        gc.enable()
    assert {key: o.kind for key, o in outcomes.items()} == {
        "k1": OutcomeKind.ADDED,
        "k2": OutcomeKind.ADDED,
    }
    assert [str(r.request.url) for r in left] == []  # each answer by its address
