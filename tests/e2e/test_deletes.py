"""Deletes: legacy rows deleted by the database's own client get their CRM records deleted or
marked (or kept), found by the reconcile scan or a tombstone trigger, behind a breaker.

Legacy tables are made by plain DDL and written by psycopg, PyMySQL or sqlite3; the CRM is the
emulator over HTTP. Every test counts the CRM calls (and the ledger's credits) it expects.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.app import App
from syncd.config import PipelineSettings
from syncd.deletes import delete_round
from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.deletes import DeleteReport, scan
from syncd.engine.runs import run_drain
from syncd.engine.runtime import PipelineRuntime
from syncd.state.deletes import DeleteStore
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import FIELD_LINES, UPDATE_CALL, open_app, run_syncd, write_config
from tests.helpers.native import NativeDatabase, native
from tests.helpers.schemas import orders_schema

DELETE_CALL = "DELETE /crm/v8/{module}"
DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, order_number VARCHAR(40) NOT NULL,"
    " status VARCHAR(20), sync BOOLEAN NOT NULL DEFAULT FALSE)"
)
FIELDS = 'Name = "order_number"\nStatus = "status"'


def add_rows(url: str, keys: range | list[int], status: str = "New") -> None:
    """Pending rows, inserted by the database's own client as the legacy application would."""
    with native(url) as db:
        db.executemany(
            "INSERT INTO orders (id, order_number, status, sync) VALUES (%s, %s, %s, %s)",
            [(k, f"SO-{k}", status, False) for k in keys],
        )


def delete_rows(url: str, where: str = "") -> int:
    with native(url) as db:
        return db.execute(f"DELETE FROM orders {where}")


def config_for(directory: Path, legacy_url: str, base_url: str, pipeline: str, **kw: Any) -> Path:
    path = write_config(directory, legacy_url, base_url, pipeline=pipeline, **kw)
    path.write_text(path.read_text().replace(FIELD_LINES, FIELDS))
    return path


@dataclass
class Harness:
    legacy_url: str
    config: Path
    admin: EmulatorAdmin
    app: App

    @property
    def pipeline(self) -> PipelineSettings:
        return self.app.settings.pipeline("orders")

    @property
    def rt(self) -> PipelineRuntime:
        return self.app.runtime(self.pipeline)

    def sync(self) -> None:
        run_drain(self.rt, "interval")

    def round(self, *, force_scan: bool = True) -> DeleteReport:
        report = delete_round(self.app, self.pipeline, force_scan=force_scan)
        assert report is not None
        return report

    def crm(self) -> dict[str, dict[str, Any]]:
        records = self.admin.records("Orders")
        by_key = {r["parent_id"]: r for r in records}
        assert len(by_key) == len(records), "two CRM records hold the same key"
        return by_key

    def calls(self) -> dict[str, int]:
        return dict(self.admin.stats()["calls"])

    def restart(self) -> None:
        self.app.close()
        self.app = open_app(self.config)


@contextmanager
def harness(
    tmp_path: Path,
    legacy_url: str,
    pipeline: str,
    rows: int,
    *,
    schema_extra: tuple[dict[str, Any], ...] = (),
    state_url: str | None = None,
    crm: str = "",
) -> Iterator[Harness]:
    with native(legacy_url) as db:
        db.execute(DDL)
    add_rows(legacy_url, range(1, rows + 1))
    settings = EmulatorSettings(schema=orders_schema(extra=schema_extra))
    with EmulatorServer(settings) as server:
        config = config_for(
            tmp_path, legacy_url, server.base_url, pipeline, state_url=state_url, crm=crm
        )
        h = Harness(legacy_url, config, EmulatorAdmin(server.base_url), open_app(config))
        try:
            h.sync()
            yield h
        finally:
            h.app.close()


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_deleted_rows_lose_their_records_and_a_key_that_comes_back_is_written_again(
    tmp_path: Path, legacy_url: str
) -> None:
    """on_delete = "delete": the scan finds the 3 rows deleted by the DB's client; one Delete
    Records call (1 credit, in the ledger) removes their records; their identities are
    forgotten, so a key inserted again gets a new record; a second round sends nothing."""
    pipeline = 'on_delete = "delete"\nmax_deletes = 10'
    with harness(tmp_path, legacy_url, pipeline, 30) as h:
        old = h.crm()
        since = h.app.clock.now()
        before = h.calls()
        assert delete_rows(legacy_url, "WHERE id IN (3, 17, 25)") == 3
        report = h.round()
        spent = _delta(before, h.calls())
        ledger = h.app.store.calls_since(since)
        assert (report.compared, report.found, report.done, report.held) == (30, 3, 3, 0)
        assert spent == {DELETE_CALL: 1}
        assert h.admin.stats()["deletes"] == {"no_wf_trigger": 1}  # crm.trigger is empty
        assert ledger == {"delete": (1, 1)}
        assert sorted(h.crm(), key=int) == [str(k) for k in range(1, 31) if k not in (3, 17, 25)]
        assert h.app.store.record_ids("orders", ["3", "17", "25", "4"]) == {"4": old["4"]["id"]}
        assert DeleteStore(h.app.store).pending("orders") == []

        quiet_before = h.calls()
        quiet = h.round()
        assert (quiet.found, quiet.done) == (0, 0)
        assert _delta(quiet_before, h.calls()) == {}

        add_rows(legacy_url, [17], status="Shipped")
        h.sync()
        back = h.crm()["17"]
        assert back["Status"] == "Shipped" and back["id"] != old["17"]["id"]
        assert len(h.crm()) == 28


def test_deletes_wait_for_the_org_reserve_and_the_budget_with_no_call(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Deletes pass the same budget rule as every send: with Zoho's figure at the org reserve
    a round finds the deleted rows, makes no CRM call and says it waits; with credits above it
    one Delete Records call goes; with syncd's daily budget spent, the next deletes wait too."""
    pipeline = 'on_delete = "delete"\nmax_deletes = 10'
    crm = "daily_credit_budget = 1000\ncredit_reserve = 500"
    with harness(tmp_path, sqlite_url, pipeline, 10, crm=crm) as h:
        delete_rows(sqlite_url, "WHERE id IN (2, 4)")
        before = h.calls()
        h.app.store.record_org_remaining(500, h.app.clock.now())  # the org is at the reserve
        at_reserve = h.round()
        assert (at_reserve.found, at_reserve.done, at_reserve.skipped_for_budget) == (2, 0, True)
        assert _delta(before, h.calls()) == {}

        h.app.store.record_org_remaining(600, h.app.clock.now())
        going = h.round()
        assert (going.done, going.skipped_for_budget) == (2, False)
        assert _delta(before, h.calls()) == {DELETE_CALL: 1}

        delete_rows(sqlite_url, "WHERE id = 6")
        now = h.app.clock.now()
        spent = h.app.store.credits_spent_since(now - timedelta(hours=24))
        h.app.store.record_credits("upsert", 1000 - spent, now)  # the daily budget is spent
        over_budget = h.round()
        assert (over_budget.found, over_budget.done, over_budget.skipped_for_budget) == (1, 0, True)
        assert _delta(before, h.calls()) == {DELETE_CALL: 1}


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("pg_url"))


def test_mark_sets_the_field_by_record_id_and_deletes_nothing(
    tmp_path: Path, sqlite_url: str, state_url: str
) -> None:
    """on_delete = "mark": one update by id sets Legacy_Deleted on the 2 records, no Delete
    Records call; the records stay; a key that comes back updates its own (marked) record."""
    mark = {"api_name": "Legacy_Deleted", "type": "boolean"}
    pipeline = 'on_delete = "mark"\nmark_field = "Legacy_Deleted"\nmax_deletes = 5'
    with harness(
        tmp_path, sqlite_url, pipeline, 10, schema_extra=(mark,), state_url=state_url
    ) as h:
        old = h.crm()
        before = h.calls()
        since = h.app.clock.now()
        delete_rows(sqlite_url, "WHERE id IN (2, 4)")
        report = h.round()
        crm = h.crm()
        assert (report.found, report.done) == (2, 2)
        assert _delta(before, h.calls()) == {UPDATE_CALL: 1}
        assert h.app.store.calls_since(since) == {"update": (1, 1)}
        assert len(crm) == 10
        assert {k for k, r in crm.items() if r.get("Legacy_Deleted")} == {"2", "4"}
        assert crm["2"]["id"] == old["2"]["id"] and crm["2"]["Name"] == "SO-2"
        assert h.app.store.record_ids("orders", ["2", "4"]) == {}

        add_rows(sqlite_url, [4], status="Shipped")
        h.sync()
        crm = h.crm()
        assert len(crm) == 10  # adopted, not duplicated
        assert crm["4"]["id"] == old["4"]["id"] and crm["4"]["Status"] == "Shipped"


def test_keep_leaves_the_records_and_the_commands_say_why(tmp_path: Path, sqlite_url: str) -> None:
    """on_delete = "keep" (the default): no round, no CRM call; `syncd deletes` says so."""
    with harness(tmp_path, sqlite_url, "", 5) as h:
        before = h.calls()
        delete_rows(sqlite_url)
        assert delete_round(h.app, h.pipeline) is None
        listed = run_syncd(h.config, "deletes", "list")
        assert _delta(before, h.calls()) == {}
        assert len(h.crm()) == 5
    assert listed.returncode == 2
    assert 'on_delete = "keep"' in listed.stderr and "Traceback" not in listed.stderr


def test_a_truncated_table_trips_the_breaker_until_the_operator_approves(
    tmp_path: Path, sqlite_url: str
) -> None:
    """300 records, table emptied: nothing is deleted (zero Delete calls) and `status` and
    `deletes list` say so; approving 2 keys deletes those 2 only; `approve --all` the rest in
    calls of 100, but for a row restored meanwhile. Each Delete call is 1 credit (ledger)."""
    with harness(tmp_path, sqlite_url, 'on_delete = "delete"', 300) as h:
        since = h.app.clock.now()
        h.app.close()
        delete_rows(sqlite_url)
        before = h.calls()
        scanned = run_syncd(h.config, "deletes", "scan")
        held_calls = _delta(before, h.calls())
        held_crm = len(h.crm())
        status = run_syncd(h.config, "status")
        listed = run_syncd(h.config, "deletes", "list", "--limit", "5")
        unknown = run_syncd(h.config, "deletes", "approve", "nope")
        some = run_syncd(h.config, "deletes", "approve", "1", "2")
        after_some = run_syncd(h.config, "deletes", "scan")
        some_calls = _delta(before, h.calls())
        left_after_some = sorted(h.crm(), key=int)
        add_rows(sqlite_url, [300])  # restored meanwhile: it must not be deleted
        approve_all = run_syncd(h.config, "deletes", "approve", "--all")
        last = run_syncd(h.config, "deletes", "scan")
        all_calls = _delta(before, h.calls())
        left_at_last = sorted(h.crm(), key=int)
        state = StateStore.open(h.app.settings.state.url)
        ledger = state.calls_since(since)
        state.close()
        h.app = open_app(h.config)  # for the harness to close

    assert scanned.returncode == 0, scanned.stderr
    assert "300 wait for approval (more than max_deletes = 3)" in scanned.stdout
    assert held_calls == {} and held_crm == 300
    assert "300 WAIT FOR APPROVAL" in status.stdout
    assert "300 pending delete(s) in pipeline orders" in listed.stdout
    assert "waiting" in listed.stdout
    assert unknown.returncode == 1 and "not pending in pipeline orders: nope" in unknown.stderr
    assert "approved 2 delete(s)" in some.stdout
    assert "2 CRM record(s) deleted" in after_some.stdout
    assert some_calls == {DELETE_CALL: 1}
    assert left_after_some == [str(k) for k in range(3, 301)]
    assert "approved 298 delete(s)" in approve_all.stdout
    assert "297 CRM record(s) deleted" in last.stdout
    assert "1 key(s) are back in the legacy table: not deleted" in last.stdout
    assert left_at_last == ["300"]
    assert all_calls == {DELETE_CALL: 4}  # 2, then 100 + 100 + 97
    assert ledger["delete"] == (4, 4)


def test_the_scan_resumes_where_it_stopped_after_a_restart(tmp_path: Path, sqlite_url: str) -> None:
    """A pass stopped after 2 chunks of 10 keys saves its place; after a restart the next round
    compares only the 30 keys left (in key order, as text) and finds the 6 deleted rows."""
    pipeline = 'on_delete = "delete"\nmax_deletes = 10'
    with harness(tmp_path, sqlite_url, pipeline, 50) as h:
        delete_rows(sqlite_url, "WHERE id >= 45")
        state = DeleteStore(h.app.store)
        first = scan(
            h.rt,
            state,
            h.app.table(h.pipeline),
            h.pipeline.delete_scan_interval,
            chunk=10,
            max_chunks=2,
        )
        saved = state.scan_position("orders")
        h.restart()
        report = h.round(force_scan=False)  # a pass in progress goes on, due or not
        position = DeleteStore(h.app.store).scan_position("orders")
        again = h.round(force_scan=False)  # the next pass is not due for an hour
        crm = h.crm()
    keys = sorted(str(k) for k in range(1, 51))
    assert first[:2] == (20, sum(int(k) >= 45 for k in keys[:20]))
    assert saved.after_key == keys[19] and saved.pass_started_at is not None
    assert report.compared == 30 and report.pass_finished
    assert report.done == 6 and sorted(crm, key=int) == [str(k) for k in range(1, 45)]
    assert position.after_key is None and position.last_pass_at is not None
    assert (again.compared, again.done) == (0, 0)


def _tombstone_ddl(config: Path) -> str:
    out = run_syncd(config, "ddl").stdout
    section = out.split("note deleted keys in orders_deleted", 1)[1].split("\n", 1)[1]
    return section.split("\n\n", 1)[0]


def _run_ddl(db: NativeDatabase, ddl: str) -> None:
    if db.dialect == "sqlite":
        db.conn.executescript(ddl)
    elif db.dialect == "postgresql":
        db.conn.execute(ddl)  # one simple-protocol query: the function body has semicolons
    else:
        for statement in ddl.split(";\n"):
            db.conn.cursor().execute(statement.rstrip(";"))
    db.conn.commit()


def test_the_tombstone_trigger_names_deleted_rows_without_a_scan(
    tmp_path: Path, legacy_url: str
) -> None:
    """With tombstone_table, the DDL `syncd ddl` prints (run by the operator) records deleted
    keys; the next round deletes their records without scanning, and clears the tombstones."""
    pipeline = 'on_delete = "delete"\nmax_deletes = 10\ntombstone_table = "orders_deleted"'
    with harness(tmp_path, legacy_url, pipeline, 12) as h:
        ddl = _tombstone_ddl(h.config)
        with native(legacy_url) as db:
            _run_ddl(db, ddl)
        h.round()  # a full pass now: the next is not due for an hour
        before = h.calls()
        delete_rows(legacy_url, "WHERE id IN (5, 6)")
        with native(legacy_url) as db:
            tombstones = sorted(
                int(k) for (k,) in db.query("SELECT legacy_key FROM orders_deleted")
            )
        report = h.round(force_scan=False)
        with native(legacy_url) as db:
            left = db.query("SELECT count(*) FROM orders_deleted")
        crm = h.crm()
        spent = _delta(before, h.calls())
    assert "orders_deleted" in ddl and "AFTER DELETE" in ddl
    assert tombstones == [5, 6]
    assert (report.compared, report.found, report.done) == (0, 2, 2)
    assert spent == {DELETE_CALL: 1}
    assert left == [(0,)]
    assert "5" not in crm and "6" not in crm and len(crm) == 10


def test_the_daemon_deletes_and_holds_a_mass_delete_for_approval(
    tmp_path: Path, sqlite_url: str
) -> None:
    """`syncd run`: 2 deleted rows lose their records within seconds; then the table is
    emptied and nothing more is deleted until `syncd deletes approve --all`."""
    with native(sqlite_url) as db:
        db.execute(DDL)
    add_rows(sqlite_url, range(1, 21))
    pipeline = (
        'poll_interval = "1s"\nmax_delay = "1s"\non_delete = "delete"\n'
        'max_deletes = 5\ndelete_scan_interval = "1s"'
    )
    with EmulatorServer() as server:
        config = config_for(tmp_path, sqlite_url, server.base_url, pipeline)
        admin = EmulatorAdmin(server.base_url)
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            wait_until(lambda: len(admin.records("Orders")) == 20, 20, "the initial sync")
            delete_rows(sqlite_url, "WHERE id IN (7, 8)")
            wait_until(lambda: len(admin.records("Orders")) == 18, 10, "2 records deleted")
            delete_rows(sqlite_url)
            daemon.wait_for("deletes_held", timeout=10)
            held = len(admin.records("Orders"))
            approved = run_syncd(config, "deletes", "approve", "--all")
            wait_until(lambda: not admin.records("Orders"), 10, "the approved deletes")
            assert daemon.terminate() == 0
    assert held == 18
    assert "approved 18 delete(s)" in approved.stdout
    assert _delete_calls_in_ledger(tmp_path / "state.db") == 2  # the 2 rows, then the 18


def _delete_calls_in_ledger(state_db: Path) -> int:
    conn = sqlite3.connect(state_db)
    try:
        (calls,) = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM syncd_credit_ledger WHERE kind = 'delete'"
        ).fetchone()
    finally:
        conn.close()
    return int(calls)
