"""The org's edition, read from the emulator's GET /crm/v8/org, sets the concurrency default."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from syncd.crm import CrmClient
from syncd.crm.edition import OrgLimits
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import DEFAULT_SCOPE, EmulatorSettings
from syncd.model import CrmRecord, OutcomeKind
from syncd.state.store import StateStore
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the CRM fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, SystemClock, crm_settings


@contextmanager
def emulated(**settings: Any) -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None, **settings)) as server:
        yield server


def peak_in_flight(crm: CrmClient, emulator: EmulatorServer) -> int:
    """The most calls the emulator saw at once while 32 threads upsert one record each."""
    emulator.admin.set_faults(latency_ms=60)
    with ThreadPoolExecutor(32) as pool:
        jobs = [
            pool.submit(crm.upsert, "Orders", "parent_id", [CrmRecord(str(i), {"Name": "x"})])
            for i in range(64)
        ]
        assert {job.result()[0].kind for job in jobs} == {OutcomeKind.ADDED}
    return int(emulator.admin.stats()["concurrency"]["peak"])


def test_edition_sets_the_concurrency_limit(store: StateStore) -> None:
    """Standard edition with 10 users: 10 calls in flight (not the default 5), 52,500 credits."""
    with emulated(edition="standard", users_license_purchased=10, concurrency=25) as emulator:
        settings = crm_settings(emulator.base_url)
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            assert crm.org_limits() == OrgLimits("standard", 10, 10, 52_500)
            assert crm.org_id() == "808232144"
            assert peak_in_flight(crm, emulator) == 10
            assert emulator.admin.stats()["calls"]["GET /crm/v8/org"] == 1  # asked once


def test_configured_max_concurrency_wins_over_the_edition(store: StateStore) -> None:
    """crm.max_concurrency set in the config is kept whatever the edition allows."""
    with emulated(edition="ultimate", concurrency=25) as emulator:
        settings = crm_settings(emulator.base_url, max_concurrency=3)
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            limits = crm.org_limits()
            assert limits is not None
            assert limits.concurrency == 25
            assert peak_in_flight(crm, emulator) == 3


def test_unknown_edition_keeps_the_default_and_logs_once(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """An edition syncd has no table for leaves the default 5 in place, with one warning."""
    caplog.set_level(logging.WARNING, logger="syncd.crm.client")
    with emulated(edition="galactic", concurrency=25) as emulator:
        settings = crm_settings(emulator.base_url)
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            assert crm.org_limits() is None
            assert crm.org_limits() is None
            assert peak_in_flight(crm, emulator) == 5
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("org_edition_unknown") == 1
    assert "galactic" in caplog.text


def test_failed_org_call_keeps_the_default_and_logs_once(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A token without ZohoCRM.org.READ cannot read the edition: the default 5 stays."""
    caplog.set_level(logging.WARNING, logger="syncd.crm.client")
    scope = DEFAULT_SCOPE.replace("ZohoCRM.org.READ", "")
    with emulated(edition="enterprise", concurrency=25, scope=scope) as emulator:
        settings = crm_settings(emulator.base_url, org_id="808232144")
        with CrmClient(settings, store, store, SystemClock(), retry=FAST_RETRY) as crm:
            assert crm.org_limits() is None
            assert crm.org_limits() is None
            assert peak_in_flight(crm, emulator) == 5
            assert emulator.admin.stats()["calls"].get("GET /crm/v8/org", 0) <= 1
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events.count("org_edition_unknown") == 1
