"""Promise 1 on every interleaving Hypothesis tries: legacy writes between syncd's steps.

The legacy application (the database's own client, plain SQL, each statement committed)
inserts, updates and deletes rows of a small ``orders`` table, interleaved with syncd's own
steps, one at a time: read a batch of pending rows, send it (records API, emulator over HTTP),
confirm it (apply the outcomes: the compare-and-set), crash (what was read or sent and not
confirmed is forgotten, the adapters are dropped) and restart (a new ``App`` on the same state
store). The engine functions are syncd's own; nothing is mocked. After every step:

- a row whose flag is true holds exactly what its CRM record holds (no lost update);
- a confirm marks every row of its batch that the application did not touch since it was read,
  and none that it did (an unmodified row is always confirmed, a modified one goes again);

and once the interleaving ends, syncd drains and every row is synced with its current content
in the CRM (convergence), one record per key.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.app import App
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.apply import apply_outcomes, encode_records, sendable_pages
from syncd.engine.drain import drain
from syncd.engine.identity import write_records
from syncd.engine.runtime import PipelineRuntime
from syncd.model import Outcome, PendingRow
from syncd.state.store import StateStore
from tests.helpers.e2e import crm_by_key, open_app, write_config
from tests.helpers.native import NativeDatabase, native
from tests.helpers.sqlite_orders import DDL as SQLITE_DDL

KEYS = st.integers(1, 6)
LEGACY_WRITE = st.tuples(st.sampled_from(["insert", "update", "delete"]), KEYS)
# A round of syncd's steps with legacy writes between them, so that most examples change rows
# that are in flight; the round may end in a crash before its send or before its confirm.
ROUND = st.tuples(
    st.just("round"),
    st.integers(1, 6),  # a batch of at most this many rows
    st.lists(LEGACY_WRITE, max_size=2),  # between read and send
    st.lists(LEGACY_WRITE, max_size=2),  # between send and confirm
    st.sampled_from(["confirm", "crash before send", "crash before confirm"]),
)
STEP = st.one_of(
    LEGACY_WRITE,
    ROUND,
    st.tuples(st.sampled_from(["read", "send", "confirm", "crash"]), st.integers(1, 6)),
)
INTERLEAVINGS = settings(
    max_examples=30,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the working tree
    derandomize=os.environ.get("CI", "").lower() == "true",  # CI: the same 30 every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COLUMNS = (
    "id integer PRIMARY KEY, order_number varchar(40), total numeric(12,2), order_date date,"
    " ordered_at {timestamp}, status varchar(20), customer_email varchar(255),"
    " quantity integer, paid boolean, notes text, sync boolean NOT NULL DEFAULT {false}"
)
INSERT = (
    "INSERT INTO orders (id, order_number, total, status, quantity, paid, sync)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def ddl(dialect: str) -> str:
    if dialect == "sqlite":
        return SQLITE_DDL
    timestamp, false = ("timestamp", "false") if dialect == "postgresql" else ("datetime", "0")
    return f"CREATE TABLE orders ({COLUMNS.format(timestamp=timestamp, false=false)})"


@dataclass
class Legacy:
    """The legacy application, and what the test knows it wrote."""

    db: NativeDatabase
    quantity: dict[int, int] = field(default_factory=dict)  # key -> current quantity
    version: dict[int, int] = field(default_factory=dict)  # key -> writes so far
    counter: int = 0

    def insert(self, key: int) -> None:
        if key in self.quantity:
            return self.update(key)
        self.counter += 1
        self.db.execute(INSERT, (key, f"SO-{key}", 12.5, "New", self.counter, False, False))
        self._wrote(key, self.counter)
        return None

    def update(self, key: int) -> None:
        if key not in self.quantity:
            return
        self.counter += 1  # a new value every time: no write brings back a sent content
        self.db.execute(
            "UPDATE orders SET quantity = %s, sync = %s WHERE id = %s", (self.counter, False, key)
        )
        self._wrote(key, self.counter)

    def delete(self, key: int) -> None:
        if key in self.quantity:
            self.db.execute("DELETE FROM orders WHERE id = %s", (key,))
            del self.quantity[key]
            self.version[key] = self.version.get(key, 0) + 1

    def _wrote(self, key: int, quantity: int) -> None:
        self.quantity[key] = quantity
        self.version[key] = self.version.get(key, 0) + 1

    def flags(self) -> dict[int, bool]:
        return {int(k): bool(s) for k, s in self.db.query("SELECT id, sync FROM orders")}


@dataclass
class Syncd:
    """syncd's steps, one at a time, on a fresh ``App`` after every crash."""

    config: Path
    app: App | None = None
    batch: list[PendingRow] = field(default_factory=list)
    read_at: dict[str, int] = field(default_factory=dict)  # key -> legacy version when read
    outcomes: list[Outcome] | None = None
    sent: list[PendingRow] = field(default_factory=list)

    @property
    def rt(self) -> PipelineRuntime:
        if self.app is None:
            self.app = open_app(self.config)  # a start: the state store as the last one left it
        return self.app.runtime(self.app.settings.pipelines[0])

    def read(self, size: int, legacy: Legacy) -> None:
        if self.batch:
            return  # one batch in flight at a time, as one pipeline worker has
        self.batch = next(sendable_pages(self.rt, size), [])
        self.read_at = {r.key_text: legacy.version.get(int(r.key), 0) for r in self.batch}

    def send(self) -> None:
        if not self.batch or self.outcomes is not None:
            return
        encoded, records = encode_records(self.rt, self.batch)
        self.sent = encoded.rows
        self.outcomes = write_records(self.rt, records) if records else []

    def confirm(self, legacy: Legacy) -> None:
        if self.outcomes is None:
            return
        apply_outcomes(self.rt, self.sent, self.outcomes)
        confirmed = {o.key for o in self.outcomes if o.confirmed}
        flags = legacy.flags()
        for row in self.sent:
            key = int(row.key)
            untouched = legacy.version.get(key, 0) == self.read_at[row.key_text]
            if key in flags and row.key_text in confirmed:
                assert flags[key] is untouched, (
                    f"row {key}: {'not ' if untouched else ''}modified since it was read, "
                    f"yet its flag is {flags[key]} after the confirmation"
                )
        self.forget()

    def crash(self) -> None:
        self.forget()
        if self.app is not None:
            self.app.close()  # the adapters go; a process death releases nothing more
            self.app = None

    def forget(self) -> None:
        self.batch, self.sent, self.read_at, self.outcomes = [], [], {}, None


def assert_no_lost_update(legacy: Legacy, base_url: str) -> None:
    """Every row flagged synced holds what its CRM record holds."""
    crm = crm_by_key(base_url)  # also fails on two records for one key
    for key, synced in legacy.flags().items():
        if synced:
            record = crm.get(str(key))
            assert record is not None, f"row {key} is flagged synced but has no CRM record"
            assert int(record["Quantity"]) == legacy.quantity[key], (
                f"row {key} is flagged synced with quantity {legacy.quantity[key]}, "
                f"the CRM holds {record['Quantity']}"
            )


# -- the world each example starts from ---------------------------------------------------------


@dataclass
class World:
    legacy_url: str
    config: Path
    state: Path
    template: Path
    emulator: EmulatorServer


@pytest.fixture
def world(tmp_path: Path, legacy_url: str) -> Iterator[World]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as emulator:
        state = tmp_path / "state.db"
        template = tmp_path / "state-template.db"
        StateStore.open(f"sqlite:///{template}").close()  # migrated once, copied per example
        config = write_config(
            tmp_path, legacy_url, emulator.base_url, state_url=f"sqlite:///{state}"
        )
        yield World(legacy_url, config, state, template, emulator)


def fresh(world: World) -> Legacy:
    """An empty CRM, a migrated empty state store, and rows 1-3 pending."""
    world.emulator.admin.reset()
    for leftover in world.state.parent.glob(f"{world.state.name}*"):
        leftover.unlink()
    shutil.copy(world.template, world.state)
    db = native(world.legacy_url)
    db.execute("DROP TABLE IF EXISTS orders")
    db.execute(ddl(db.dialect))
    legacy = Legacy(db)
    for key in (1, 2, 3):
        legacy.insert(key)
    return legacy


@given(steps=st.lists(STEP, min_size=1, max_size=12))
@INTERLEAVINGS
def test_no_lost_update_and_convergence_on_every_interleaving(
    world: World, steps: list[tuple[Any, ...]]
) -> None:
    """Legacy inserts, updates and deletes between read, send, confirm, crash and restart:
    a synced flag always means the CRM has the row's current content, and syncd converges."""
    legacy = fresh(world)
    syncd = Syncd(world.config)
    try:
        for step in steps:
            for single in expand(step):
                run_step(single, legacy, syncd)
                assert_no_lost_update(legacy, world.emulator.base_url)
        syncd.crash()  # whatever was in flight is gone; a restart drains the rest
        result = drain(syncd.rt, None)
        assert result.left_pending == 0
        flags = legacy.flags()
        assert all(flags.values()), f"rows still pending after the drain: {flags}"
        assert_no_lost_update(legacy, world.emulator.base_url)
        assert set(flags) <= {int(k) for k in crm_by_key(world.emulator.base_url)}
    finally:
        syncd.crash()
        legacy.db.close()


def expand(step: tuple[Any, ...]) -> list[tuple[str, int]]:
    """A round as the single steps it is made of."""
    if step[0] != "round":
        return [(step[0], step[1])]
    _, size, before_send, before_confirm, end = step
    if end == "crash before send":
        return [("read", size), *before_send, ("crash", 0)]
    last = ("confirm", 0) if end == "confirm" else ("crash", 0)
    return [("read", size), *before_send, ("send", 0), *before_confirm, last]


def run_step(step: tuple[str, int], legacy: Legacy, syncd: Syncd) -> None:
    name, arg = step
    if name in ("insert", "update", "delete"):
        getattr(legacy, name)(arg)
    elif name == "read":
        syncd.read(arg, legacy)
    elif name == "send":
        syncd.send()
    elif name == "confirm":
        syncd.confirm(legacy)
    else:
        syncd.crash()
