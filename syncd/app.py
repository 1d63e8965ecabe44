"""Wiring: from validated settings to the adapters and one engine runtime per pipeline.

The CLI and the daemon open an ``App``; nothing else builds adapters.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine

from syncd.config import PipelineSettings, Settings
from syncd.crm.client import CrmClient
from syncd.crm.encoder import FieldEncoder
from syncd.engine.runtime import PipelineRuntime
from syncd.errors import LeaseLost
from syncd.model import TableSpec
from syncd.source.table import LegacyTable, open_source_engine
from syncd.state.lease import lease_for
from syncd.state.store import StateStore


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def host_id() -> str:
    """Who holds a lease or ran a run: host name and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def table_spec(pipeline: PipelineSettings) -> TableSpec:
    return TableSpec(
        pipeline.name,
        pipeline.table,
        pipeline.key,
        pipeline.flag,
        pipeline.fields,
        pipeline.version_column,
    )


@dataclass
class App:
    settings: Settings
    store: StateStore
    clock: SystemClock = field(default_factory=SystemClock)
    workdir: Path | None = None
    _crm: CrmClient | None = None
    _source_engine: Engine | None = None
    _tables: dict[str, LegacyTable] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: Settings, *, workdir: Path | None = None) -> App:
        return cls(settings, StateStore.open(settings.state.url), workdir=workdir)

    @property
    def crm(self) -> CrmClient:
        if self._crm is None:
            self._crm = CrmClient(
                self.settings.crm, self.store, self.store, self.clock, workdir=self.workdir
            )
        return self._crm

    @property
    def source_engine(self) -> Engine:
        if self._source_engine is None:
            self._source_engine = open_source_engine(self.settings.source.url.reveal())
        return self._source_engine

    def table(self, pipeline: PipelineSettings) -> LegacyTable:
        if pipeline.name not in self._tables:
            self._tables[pipeline.name] = LegacyTable(self.source_engine, table_spec(pipeline))
        return self._tables[pipeline.name]

    def runtime(self, pipeline: PipelineSettings) -> PipelineRuntime:
        table = self.table(pipeline)
        encoder = FieldEncoder(
            pipeline.unique_field,
            pipeline.fields,
            table.column_types(),
            self.settings.source.timezone,
        )
        return PipelineRuntime(
            name=pipeline.name,
            module=pipeline.module,
            unique_field=pipeline.unique_field,
            host=host_id(),
            tunables=self.settings.tunables[pipeline.name],
            source=table,
            crm=self.crm,
            state=self.store,
            encoder=encoder,
            clock=self.clock,
        )

    @contextmanager
    def pipeline_lease(self, name: str) -> Iterator[None]:
        """Hold the pipeline's lease, as the daemon does, so two processes never both send."""
        lease = lease_for(self.store, name)
        if not lease.try_acquire():
            holder = self.store.lease_holder(name)
            who = holder.holder if holder else "another syncd process"
            raise LeaseLost(
                f"pipeline {name} is being synced by {who} (a running `syncd run`?); "
                "stop it first, or let it do the initial sync"
            )
        me = host_id()
        self.store.record_lease(name, me, self.clock.now())
        try:
            yield
        finally:
            self.store.clear_lease(name, me)
            lease.release()

    def close(self) -> None:
        if self._crm is not None:
            self._crm.close()
        if self._source_engine is not None:
            self._source_engine.dispose()
        self.store.close()

    def __enter__(self) -> App:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
