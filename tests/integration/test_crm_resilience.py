"""The CRM client under the emulator's faults: 500s, 429 storms, drops, timeouts, limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stamina

from syncd.crm import CrmClient, RetryPolicy
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.errors import CrmRetriableError
from syncd.model import BulkColumn, BulkRow, CrmRecord, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, SystemClock, crm_settings

PATIENT = RetryPolicy(
    attempts=12,
    wait_initial=timedelta(milliseconds=1),
    wait_max=timedelta(milliseconds=10),
    wait_jitter=timedelta(milliseconds=1),
)
"""Enough attempts that a 40 % fault rate cannot exhaust them (0.4**12 < 2e-5)."""


@pytest.fixture
def patient(fresh_emulator: EmulatorServer, store: StateStore) -> Iterator[CrmClient]:
    settings = crm_settings(fresh_emulator.base_url, max_concurrency=4)
    with CrmClient(settings, store, store, SystemClock(), retry=PATIENT) as crm:
        yield crm


def _upsert_many(crm: CrmClient, calls: int = 12) -> set[OutcomeKind]:
    kinds: set[OutcomeKind] = set()
    for n in range(calls):
        records = [CrmRecord(f"k{n}-{i}", {"Name": "x"}) for i in range(5)]
        kinds |= {o.kind for o in crm.upsert("Orders", "parent_id", records)}
    return kinds


@pytest.mark.parametrize(
    ("fault", "counter"),
    [
        ("error_rate", ("faults", "error")),
        ("rate_limit_rate", ("throttled", "fault")),
        ("drop_rate", ("faults", "drop")),
        ("drop_after_rate", ("faults", "drop_after")),
    ],
)
def test_storms_are_ridden_out(
    patient: CrmClient,
    fresh_emulator: EmulatorServer,
    store: StateStore,
    fault: str,
    counter: tuple[str, str],
) -> None:
    """500s, 429s and dropped connections (before or after Zoho acted) are retried to success,
    and the ledger never counts less than Zoho charged (so the budget holds)."""
    fresh_emulator.admin.set_faults(**{fault: 0.4})
    # A retried lost reply finds the record written: updated, which is as good as added.
    assert _upsert_many(patient) <= {OutcomeKind.ADDED, OutcomeKind.UPDATED}
    stats = fresh_emulator.admin.stats()
    assert stats[counter[0]][counter[1]] > 0  # the storm really struck
    assert stats["records"]["Orders"] == 60  # and left no duplicates
    spent = store.credits_spent_since(datetime.now(UTC) - timedelta(hours=24))
    assert spent >= stats["credits"]["used"]


def test_429s_cost_nothing_in_the_ledger(
    patient: CrmClient, fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """Refused calls are not charged: the ledger matches what Zoho counted."""
    fresh_emulator.admin.set_faults(rate_limit_rate=0.4)
    _upsert_many(patient, calls=10)
    stats = fresh_emulator.admin.stats()
    assert stats["too_many_requests"] > 0
    spent = store.credits_spent_since(datetime.now(UTC) - timedelta(hours=24))
    assert spent == stats["credits"]["used"] == 10


def test_persistent_500s_end_in_a_retriable_error(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """When every attempt fails, the error says a retry can help, after exactly `attempts` calls."""
    fresh_emulator.admin.set_faults(error_rate=1.0)
    with pytest.raises(CrmRetriableError) as caught:
        client.upsert("Orders", "parent_id", [CrmRecord("a", {"Name": "x"})])
    assert caught.value.http_status == 500
    assert fresh_emulator.admin.stats()["faults"]["error"] == FAST_RETRY.attempts


def test_stamina_testing_mode_still_retries(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """Under stamina.set_testing the client retries (no sleeps) the number of attempts given."""
    client.org_id()  # the token is minted before the storm
    fresh_emulator.admin.set_faults(drop_rate=1.0)
    with stamina.set_testing(True, attempts=3), pytest.raises(CrmRetriableError) as caught:
        client.upsert("Orders", "parent_id", [CrmRecord("a", {"Name": "x"})])
    assert caught.value.code == "TRANSPORT_ERROR"
    assert fresh_emulator.admin.stats()["faults"]["drop"] == 3


def test_timeouts_are_retried_then_reported(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """A call slower than request_timeout is a retriable TIMEOUT after its attempts."""
    settings = crm_settings(fresh_emulator.base_url, request_timeout=timedelta(milliseconds=100))
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        crm.org_id()  # token and org fetched while the emulator is quick
        fresh_emulator.admin.set_faults(latency_ms=400)
        with pytest.raises(CrmRetriableError) as caught:
            crm.upsert("Orders", "parent_id", [CrmRecord("a", {"Name": "x"})])
    assert caught.value.code == "TIMEOUT"
    assert fresh_emulator.admin.stats()["calls"]["POST /crm/v8/{module}/upsert"] == 5


def test_concurrency_limiter_is_shared_by_all_calls(
    fresh_emulator: EmulatorServer, store: StateStore
) -> None:
    """However many threads call, no more than max_concurrency calls are in flight."""
    settings = crm_settings(fresh_emulator.base_url, max_concurrency=2)
    with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
        crm.org_id()
        fresh_emulator.admin.set_faults(latency_ms=40)
        with ThreadPoolExecutor(8) as pool:
            jobs = [
                pool.submit(crm.upsert, "Orders", "parent_id", [CrmRecord(str(i), {"Name": "x"})])
                for i in range(16)
            ]
            assert {j.result()[0].kind for j in jobs} == {OutcomeKind.ADDED}
    assert fresh_emulator.admin.stats()["concurrency"]["peak"] == 2


def test_bulk_job_is_not_created_twice_after_a_lost_reply(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """Job creation whose reply is lost raises instead of paying 500 credits for a second job."""
    columns = [BulkColumn("Name")]
    [file] = client.build_bulk_files("parent_id", columns, [BulkRow("a", ["x"])])
    file_id = client.upload_bulk_file(file)
    fresh_emulator.admin.set_faults(drop_after_rate=1.0)
    with pytest.raises(CrmRetriableError):
        client.create_bulk_job("Orders", "parent_id", columns, file_id)
    assert len(fresh_emulator.admin.jobs()) == 1


def test_bulk_job_creation_is_retried_when_refused(
    client: CrmClient, fresh_emulator: EmulatorServer
) -> None:
    """A refused job creation (429: Zoho did nothing) is safely repeated."""
    columns = [BulkColumn("Name")]
    [file] = client.build_bulk_files("parent_id", columns, [BulkRow("a", ["x"])])
    file_id = client.upload_bulk_file(file)
    fresh_emulator.admin.set_faults(rate_limit_rate=0.5)
    client.create_bulk_job("Orders", "parent_id", columns, file_id)
    assert len(fresh_emulator.admin.jobs()) == 1


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 waits that second (not the tiny backoff) before retrying;
    a Retry-After beyond wait_max is left to the caller, with the hint on the error."""
    with EmulatorServer(EmulatorSettings(retry_after_seconds=1)) as server:
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        settings = crm_settings(server.base_url)
        waits = RetryPolicy(
            attempts=2,
            wait_initial=timedelta(milliseconds=1),
            wait_max=timedelta(seconds=2),
            wait_jitter=timedelta(0),
        )
        with CrmClient(settings, state, state, SystemClock(), retry=waits) as crm:
            crm.org_id()
            server.admin.set_faults(rate_limit_rate=1.0)
            started = time.monotonic()
            with pytest.raises(CrmRetriableError) as caught:
                crm.upsert("Orders", "parent_id", [CrmRecord("a", {"Name": "x"})])
            assert 1.0 <= time.monotonic() - started < 2.0
            assert caught.value.retry_after == 1.0
            assert server.admin.stats()["too_many_requests"] == 2
        impatient = RetryPolicy(attempts=5, wait_max=timedelta(milliseconds=500))
        with CrmClient(settings, state, state, SystemClock(), retry=impatient) as crm:
            with pytest.raises(CrmRetriableError):
                crm.upsert("Orders", "parent_id", [CrmRecord("a", {"Name": "x"})])
            assert server.admin.stats()["too_many_requests"] == 3
        state.close()
