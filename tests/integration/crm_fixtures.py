"""Fixtures for the CRM client tests: the emulator over HTTP, a real state store, a client.

Each ``test_crm_*`` module star-imports this file, which registers the fixtures with pytest
for that module (so ``emulator`` is one server per test module).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.config import CrmSettings, Secret
from syncd.crm import CrmClient, RetryPolicy
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore

FAST_RETRY = RetryPolicy(
    attempts=5,
    wait_initial=timedelta(milliseconds=1),
    wait_max=timedelta(milliseconds=20),
    wait_jitter=timedelta(milliseconds=1),
)
"""Real retries with real (tiny) sleeps, so backoff and Retry-After paths run as in production."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ShiftedClock:
    """A clock the test can move forward (the budget's rolling window)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def crm_settings(base_url: str, **overrides: Any) -> CrmSettings:
    """CrmSettings pointing every Zoho host at the emulator, with its default credentials."""
    emulator = EmulatorSettings()
    settings = CrmSettings(
        data_center="custom",
        accounts_url=base_url,
        api_domain=base_url,
        upload_url=base_url + "/crm/v8/upload",
        org_id=None,
        client_id=Secret(emulator.client_id),
        client_secret=Secret(emulator.client_secret),
        refresh_token=Secret(emulator.refresh_token),
        daily_credit_budget=100_000,
        bulk_poll_interval=timedelta(milliseconds=20),
        bulk_job_timeout=timedelta(seconds=20),
    )
    return dataclasses.replace(settings, **overrides)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator per test module (seeded faults, instant-ish bulk jobs)."""
    with EmulatorServer(EmulatorSettings(seed=7, bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def fresh_emulator(emulator: EmulatorServer) -> EmulatorServer:
    """The module's emulator, emptied: no records, tokens, credits, jobs or faults."""
    emulator.admin.reset()
    return emulator


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    """A real state store on a fresh SQLite file (token cache and credit ledger)."""
    state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    yield state
    state.close()


@pytest.fixture
def client(
    fresh_emulator: EmulatorServer, store: StateStore, tmp_path: Path
) -> Iterator[CrmClient]:
    """A CrmClient on the emulator with fast real retries."""
    settings = crm_settings(fresh_emulator.base_url)
    with CrmClient(
        settings, store, store, SystemClock(), retry=FAST_RETRY, workdir=tmp_path
    ) as crm:
        yield crm
