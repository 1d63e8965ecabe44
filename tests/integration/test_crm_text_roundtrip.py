"""Tricky text through the CRM client into the emulator, under every request fault.

Guards the exact-value promise for text (commas, quotes, CR/LF, backslashes, unicode, values at
the field's length) on both write paths: Bulk Write (syncd's CSV, the emulator's reader and its
sliced worker) and Upsert (a lost reply makes the retried request apply twice).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.crm import BulkLimits, CrmClient, RetryPolicy
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.errors import CrmRetriableError
from syncd.model import BulkColumn, BulkFile, BulkRow, CrmRecord, OutcomeKind
from syncd.state.store import StateStore
from tests.helpers.text import NOTES_LIMIT, tricky_texts
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import SystemClock, crm_settings

FAULTS = {"error_rate": 0.1, "rate_limit_rate": 0.1, "drop_rate": 0.1, "drop_after_rate": 0.1}
PATIENT = RetryPolicy(
    attempts=15,
    wait_initial=timedelta(milliseconds=1),
    wait_max=timedelta(milliseconds=5),
    wait_jitter=timedelta(milliseconds=1),
)
"""A 40 % fault rate cannot exhaust 15 attempts in practice (0.4**15 < 1e-5)."""
COLUMNS = [BulkColumn("Notes"), BulkColumn("Name")]  # Notes is echoed in the result file


@pytest.fixture(params=[None, 400], ids=["instant", "sliced"])
def faulty(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """An emulator running jobs at once or 20 rows per worker step, with every request fault."""
    settings = EmulatorSettings(seed=11, bulk_rows_per_second=request.param)
    with EmulatorServer(settings) as server:
        server.admin.set_faults(**FAULTS)
        yield server


@pytest.fixture
def crm(faulty: EmulatorServer, store: StateStore, tmp_path: Path) -> Iterator[CrmClient]:
    settings = crm_settings(faulty.base_url)
    limits = BulkLimits(max_rows=25)  # several files, jobs and result downloads per run
    with CrmClient(
        settings, store, store, SystemClock(), retry=PATIENT, workdir=tmp_path, bulk_limits=limits
    ) as client:
        yield client


def _notes(server: EmulatorServer) -> dict[str, object]:
    return {r["parent_id"]: r["Notes"] for r in server.admin.records("Orders")}


def _apply_file(crm: CrmClient, file: BulkFile) -> dict[str, OutcomeKind]:
    """Upload, run and read one file as the engine does: a lost create-job reply means a new
    upload and job (the first may still run: the same values land twice)."""
    for _ in range(10):
        try:
            status = crm.wait_bulk_job(crm.start_bulk_job("Orders", "parent_id", COLUMNS, file))
            return {o.key: o.kind for o in crm.bulk_job_outcomes(status, file.keys)}
        except CrmRetriableError:
            continue
    raise AssertionError("the job never completed under faults")


def test_bulk_write_keeps_tricky_text_exact(crm: CrmClient, faulty: EmulatorServer) -> None:
    """Every bulk-written text equals its source; one over the length is refused, not cut."""
    texts = tricky_texts(seed=810, count=80)
    rows = [BulkRow(str(i), [text, f"SO-{i}"]) for i, text in enumerate(texts)]
    rows.append(BulkRow("long", ["x" * (NOTES_LIMIT + 1), "SO-long"]))
    outcomes: dict[str, OutcomeKind] = {}
    for file in crm.build_bulk_files("parent_id", COLUMNS, rows):
        outcomes |= _apply_file(crm, file)
    assert outcomes.pop("long") is OutcomeKind.SKIPPED
    assert set(outcomes.values()) <= {OutcomeKind.ADDED, OutcomeKind.UPDATED}
    faulty.admin.set_faults(**dict.fromkeys(FAULTS, 0.0))
    assert _notes(faulty) == {row.key: row.cells[0] for row in rows if row.key != "long"}
    assert set(faulty.admin.stats()["faults"]) >= {"error", "drop", "drop_after"}


def test_upsert_keeps_tricky_text_exact_when_replies_are_lost(
    crm: CrmClient, faulty: EmulatorServer
) -> None:
    """Retried upserts (the first one applied, its reply lost) store each text exactly."""
    rng = random.Random(3)
    texts = tricky_texts(seed=3, count=240)
    expected: dict[str, str] = {}
    for start in range(0, len(texts), 5):  # many small calls: every fault strikes
        records = [
            CrmRecord(str(rng.randint(1, 90)), {"Name": "SO", "Notes": text})
            for text in texts[start : start + 5]
        ]
        for outcome in crm.upsert("Orders", "parent_id", records):
            assert outcome.kind in (OutcomeKind.ADDED, OutcomeKind.UPDATED), outcome
        expected |= {r.key: str(r.fields["Notes"]) for r in records}
    faulty.admin.set_faults(**dict.fromkeys(FAULTS, 0.0))
    assert _notes(faulty) == expected
    assert faulty.admin.stats()["faults"].get("drop_after", 0) > 0
