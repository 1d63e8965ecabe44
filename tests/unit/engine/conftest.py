"""One pipeline for engine tests: in-memory legacy table and state, the real CRM client, the
bundled emulator over HTTP on 127.0.0.1, and a clock that moves only when a test moves it.

``syncd.source.memory`` and ``syncd.state.memory`` pass the same contract tests as the SQL
adapters (``tests/contract``), so what the engine does here it does on the databases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.config.settings import PipelineSettings, tunables_of
from syncd.crm import CrmClient
from syncd.crm.encoder import FieldEncoder
from syncd.emulator.server import EmulatorServer
from syncd.engine.runtime import PipelineRuntime
from syncd.model import TableSpec
from syncd.source.memory import MemoryTable
from syncd.state.memory import MemoryState
from tests.helpers.orders import FIELD_TYPES, FIELDS, order
from tests.integration.crm_fixtures import *  # noqa: F403  (registers the emulator fixtures)
from tests.integration.crm_fixtures import FAST_RETRY, crm_settings

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SPEC = TableSpec("orders", "orders", "id", "sync", FIELDS)


class ManualClock:
    """Time stands still until the test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


@dataclass
class Pipeline:
    """The ``orders`` pipeline: what the engine runs on, and what a test looks at.

    ``table`` plays the legacy application (``insert`` / ``update`` / ``delete``, the flag
    reset by the documented trigger); ``restart()`` is ``kill -9`` and a new start: the legacy
    table and the state survive (they are databases), the runtime and CRM client do not.
    """

    table: MemoryTable
    state: MemoryState
    clock: ManualClock
    emulator: EmulatorServer
    workdir: Path
    tunables: dict[str, Any]
    may_send: Callable[[], bool] = lambda: True
    rt: PipelineRuntime = field(init=False)
    _clients: list[CrmClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rt = self._runtime()

    def _runtime(self) -> PipelineRuntime:
        """The one place a runtime is built (keep it that way: its construction changes)."""
        crm_config = crm_settings(self.emulator.base_url)
        crm = CrmClient(
            crm_config,
            self.state,
            self.state,
            self.clock,
            retry=FAST_RETRY,
            workdir=self.workdir,
        )
        self._clients.append(crm)
        pipeline = PipelineSettings(
            name="orders",
            table="orders",
            key="id",
            flag="sync",
            module="Orders",
            unique_field="parent_id",
            fields=tuple(FIELDS),
        )
        tunables = replace(
            tunables_of(crm_config, pipeline),
            **{"bulk_poll_interval": timedelta(milliseconds=10), **self.tunables},
        )
        return PipelineRuntime(
            name="orders",
            module="Orders",
            unique_field="parent_id",
            host="test:1",
            tunables=tunables,
            source=self.table,
            crm=crm,
            state=self.state,
            encoder=FieldEncoder("parent_id", FIELDS, FIELD_TYPES, UTC),
            clock=self.clock,
            may_send=lambda: self.may_send(),
        )

    def restart(self) -> None:
        """The worker dies (nothing it held in memory survives) and a new one starts."""
        self.may_send = lambda: True
        self.rt = self._runtime()

    def crm(self) -> dict[str, dict[str, Any]]:
        """The CRM's Orders records by legacy key (asserted unique: one record per key)."""
        records = self.emulator.admin.records("Orders")
        by_key = {str(r["parent_id"]): r for r in records}
        assert len(by_key) == len(records), "two CRM records hold one legacy key"
        return by_key

    def calls(self, name: str) -> int:
        """How many calls of ``name`` (``"POST /crm/v8/Orders"``) Zoho answered so far."""
        calls: dict[str, int] = self.emulator.admin.stats()["calls"]
        return sum(n for call, n in calls.items() if call == name)

    def credits_spent(self) -> int:
        """Credits syncd's ledger booked in the last 24 h."""
        return self.state.credits_spent_since(self.clock.now() - timedelta(hours=24))

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def make_pipeline(
    fresh_emulator: EmulatorServer, tmp_path: Path
) -> Iterator[Callable[..., Pipeline]]:
    """``make_pipeline(keys, **tunables)``: ``order(k)`` pending for each key, nothing synced."""
    made: list[Pipeline] = []

    def make(keys: list[int], **tunables: Any) -> Pipeline:
        table = MemoryTable(SPEC, FIELD_TYPES)
        for key in keys:
            table.insert(order(key))
        pipeline = Pipeline(table, MemoryState(), ManualClock(), fresh_emulator, tmp_path, tunables)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
