"""One legacy row, one CRM record: no row ever takes over another row's record.

The module has a second unique field (Customer_Email, "do not allow duplicates") and a
case-insensitive unique key field, as Contacts and many custom modules do. Zoho's upsert would
match a new row to another row's record by either (reference §4.3); syncd inserts new keys and
updates known ones by record id, checks every answer against its record-identity map, and
repairs what a bulk job overwrote. Tables are made by plain DDL and filled by sqlite3.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.app import App
from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.identity import TAKEOVER_CODE
from syncd.engine.runs import run_drain
from syncd.engine.runtime import PipelineRuntime
from syncd.model import CrmRecord, RunCounts
from tests.helpers.e2e import INSERT_CALL, UPDATE_CALL, open_app, record_writes, write_config
from tests.helpers.schemas import orders_schema

GET_CALL = "GET /crm/v8/{module}"
DDL = (
    "CREATE TABLE orders (id VARCHAR(20) PRIMARY KEY, order_number VARCHAR(40),"
    " total NUMERIC(12,2), order_date DATE, ordered_at DATETIME, status VARCHAR(20),"
    " customer_email VARCHAR(255), quantity INTEGER, paid BOOLEAN, notes TEXT,"
    " sync BOOLEAN NOT NULL DEFAULT 0)"
)
BULK_PADDING = 6_000  # enough new rows that the planner sends them as one bulk job


def _add(db: Path, rows: list[tuple[str, str]], notes: str = "note") -> None:
    """Insert pending rows (key, e-mail) as the legacy application would."""
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, 10.50, '2025-03-01', '2025-03-01 10:00:00', 'New',"
        " ?, 2, 0, ?, 0)",
        [(key, f"SO-{key}", email, notes) for key, email in rows],
    )
    conn.commit()
    conn.close()


def _flags(db: Path) -> dict[str, bool]:
    conn = sqlite3.connect(db)
    try:
        return {k: bool(f) for k, f in conn.execute("SELECT id, sync FROM orders")}
    finally:
        conn.close()


@dataclass
class Harness:
    db: Path
    app: App
    rt: PipelineRuntime
    admin: EmulatorAdmin

    def drain(self) -> RunCounts:
        return run_drain(self.rt, "interval").counts

    def calls(self) -> dict[str, int]:
        return dict(self.admin.stats()["calls"])

    def crm(self) -> dict[str, dict[str, Any]]:
        """parent_id -> record; fails if two records hold the same parent_id."""
        records = self.admin.records("Orders")
        by_key = {r["parent_id"]: r for r in records}
        assert len(by_key) == len(records), "two CRM records hold the same key"
        return by_key


@contextmanager
def harness(tmp_path: Path, rows: list[tuple[str, str]]) -> Iterator[Harness]:
    db = tmp_path / "legacy.db"
    conn = sqlite3.connect(db)
    conn.execute(DDL)
    conn.close()
    _add(db, rows)
    schema = orders_schema(unique=["Customer_Email"])  # parent_id: unique, ignores case
    with EmulatorServer(EmulatorSettings(schema=schema, bulk_rows_per_second=None)) as server:
        config = write_config(tmp_path, f"sqlite:///{db}", server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            yield Harness(db, app, dataclasses.replace(rt), EmulatorAdmin(server.base_url))


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def test_a_new_row_with_another_rows_email_is_refused_and_takes_over_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 500 has row 1's e-mail: one insert call, refused, row 1's record untouched, the
    reject names key 1 and the field; unchanged, it is never sent again; fixed, it goes."""
    with harness(tmp_path, [(str(i), f"b{i}@example.com") for i in range(1, 11)]) as h:
        h.drain()
        crm_before, before = h.crm(), h.calls()
        _add(h.db, [("500", "b1@example.com")])
        with caplog.at_level(logging.WARNING):
            counts = h.drain()
        crm_after, spent = h.crm(), _delta(before, h.calls())
        reject = h.app.store.get_reject("orders", "500")
        again_before = h.calls()
        quiet = h.drain()
        quiet_calls = _delta(again_before, h.calls())
        conn = sqlite3.connect(h.db)
        conn.execute("UPDATE orders SET customer_email = 'own@example.com' WHERE id = '500'")
        conn.commit()
        conn.close()
        fixed = h.drain()
        crm_fixed = h.crm()
        identity = h.app.store.identity("orders", "500")

    assert spent == {INSERT_CALL: 1}
    assert crm_after == crm_before, "row 1's record changed"
    assert (counts.sent, counts.confirmed, counts.rejected, counts.collisions) == (1, 0, 1, 1)
    assert reject is not None and reject.code == "DUPLICATE_DATA"
    assert reject.field == "Customer_Email"
    assert reject.message is not None
    assert "the CRM record of key '1'" in reject.message and crm_before["1"]["id"] in reject.message
    (event,) = _events(caplog, "record_collision")
    assert (event.key, event.other_key, event.field) == ("500", "1", "Customer_Email")  # type: ignore[attr-defined]
    assert quiet.sent == 0 and quiet_calls == {}
    assert fixed.confirmed == 1 and crm_fixed["500"]["Customer_Email"] == "own@example.com"
    assert crm_fixed["1"] == crm_before["1"]
    assert identity is not None and identity.record_id == crm_fixed["500"]["id"]
    assert _flags(tmp_path / "legacy.db")["500"] is True


def test_an_edit_goes_to_the_rows_own_record_by_id(tmp_path: Path) -> None:
    """A known key is updated by record id: one PUT, no upsert, no other record touched, even
    when its e-mail becomes another row's (then it is refused, naming that row)."""
    with harness(tmp_path, [(str(i), f"b{i}@example.com") for i in range(1, 11)]) as h:
        h.drain()
        ids = {k: r["id"] for k, r in h.crm().items()}
        mapped = {k: h.app.store.identity("orders", k) for k in ids}
        before = h.calls()
        conn = sqlite3.connect(h.db)
        conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id = '3'")
        conn.execute("UPDATE orders SET customer_email = 'b4@example.com', sync = 0 WHERE id = '5'")
        conn.commit()
        conn.close()
        counts = h.drain()
        spent, crm = _delta(before, h.calls()), h.crm()
        reject = h.app.store.get_reject("orders", "5")

    assert all(i is not None and i.record_id == ids[k] for k, i in mapped.items())
    assert spent == {UPDATE_CALL: 1}
    assert crm["3"]["Status"] == "Paid" and crm["3"]["id"] == ids["3"]
    assert crm["5"]["Customer_Email"] == "b5@example.com" and crm["4"]["parent_id"] == "4"
    assert (counts.confirmed, counts.rejected, counts.collisions) == (1, 1, 1)
    assert reject is not None and "the CRM record of key '4'" in (reject.message or "")


def test_a_key_differing_only_in_case_is_refused_not_merged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """'ab-1' after 'AB-1' is synced: the insert is refused (the field ignores case), no GET is
    needed (the map knows whose record it is), and 'AB-1''s record keeps its content."""
    with harness(tmp_path, [("AB-1", "upper@example.com")]) as h:
        h.drain()
        crm_before, before = h.crm(), h.calls()
        _add(h.db, [("ab-1", "lower@example.com")])
        counts = h.drain()
        spent, crm_after = _delta(before, h.calls()), h.crm()
        reject = h.app.store.get_reject("orders", "ab-1")
        again = h.drain()

    assert spent == {INSERT_CALL: 1}
    assert crm_after == crm_before
    assert counts.rejected == 1 and again.sent == 0
    assert reject is not None and reject.code == TAKEOVER_CODE
    assert "the record of key 'AB-1'" in (reject.message or "")
    assert _flags(tmp_path / "legacy.db") == {"AB-1": True, "ab-1": False}


def test_a_record_made_before_syncd_knew_it_is_adopted_only_if_it_holds_exactly_the_key(
    tmp_path: Path,
) -> None:
    """Records already in the CRM (an earlier version, another tool): 'K-1' holds exactly the
    key and is adopted (insert refused, one GET, one update by id); 'x-2' is held as 'X-2' by a
    record nobody owns, so it is refused rather than written into that record."""
    with harness(tmp_path, []) as h:
        made = h.rt.crm.insert(
            "Orders",
            "parent_id",
            [
                CrmRecord("K-1", {"Name": "made elsewhere", "Customer_Email": "k@example.com"}),
                CrmRecord("X-2", {"Name": "someone else's", "Customer_Email": "x@example.com"}),
            ],
        )
        ids = {o.key: o.record_id for o in made}
        before = h.calls()
        _add(h.db, [("K-1", "k@example.com"), ("x-2", "x2@example.com")])
        counts = h.drain()
        spent, crm = _delta(before, h.calls()), h.crm()
        adopted = h.app.store.identity("orders", "K-1")
        reject = h.app.store.get_reject("orders", "x-2")

    assert spent == {INSERT_CALL: 1, GET_CALL: 1, UPDATE_CALL: 1}
    assert crm["K-1"]["id"] == ids["K-1"] and crm["K-1"]["Name"] == "SO-K-1"
    assert crm["X-2"]["Name"] == "someone else's"
    assert adopted is not None and adopted.record_id == ids["K-1"]
    assert adopted.confirmed_at is not None and adopted.content_hash
    assert counts.confirmed == 1 and counts.rejected == 1
    assert reject is not None and reject.code == TAKEOVER_CODE
    assert "'X-2'" in (reject.message or "")


def test_a_record_deleted_in_the_crm_is_created_again(tmp_path: Path) -> None:
    """An update by id whose record is gone forgets the id and inserts the row again."""
    with harness(tmp_path, [("1", "b1@example.com"), ("2", "b2@example.com")]) as h:
        h.drain()
        old = h.crm()["1"]["id"]
        h.admin.delete_record("Orders", old)
        conn = sqlite3.connect(h.db)
        conn.execute("UPDATE orders SET status = 'Paid', sync = 0 WHERE id = '1'")
        conn.commit()
        conn.close()
        before = h.calls()
        counts = h.drain()
        spent, crm = _delta(before, h.calls()), h.crm()
        identity = h.app.store.identity("orders", "1")

    assert spent == {UPDATE_CALL: 1, INSERT_CALL: 1}
    assert counts.confirmed == 1 and crm["1"]["Status"] == "Paid" and crm["1"]["id"] != old
    assert identity is not None and identity.record_id == crm["1"]["id"]


def test_a_bulk_job_that_merged_two_case_variants_is_repaired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bulk Write's find_by ignores case too: 'AB-1' (synced, in the map) and a new 'ab-1' in a
    bulk job land on one record. syncd sees the record id belongs to 'AB-1', rejects 'ab-1',
    and sends 'AB-1' again, which restores its record. No record is lost or duplicated."""
    with harness(tmp_path, [("AB-1", "upper@example.com")]) as h:
        h.drain()
        owner_id = h.crm()["AB-1"]["id"]
        padding = [(f"P-{i:05d}", f"p{i}@example.com") for i in range(BULK_PADDING)]
        _add(h.db, [("ab-1", "lower@example.com"), *padding], notes="bulk")
        with caplog.at_level(logging.ERROR):
            counts = h.drain()
        jobs = len(h.admin.jobs())
        crm = h.crm()
        reject = h.app.store.get_reject("orders", "ab-1")
        flags = _flags(h.db)
        identity = h.app.store.identity("orders", "AB-1")

    assert jobs == 1
    assert counts.takeovers == 1
    record = crm["AB-1"]  # restored: its own key and content again
    assert record["id"] == owner_id and record["Customer_Email"] == "upper@example.com"
    assert "ab-1" not in crm and len(crm) == 1 + BULK_PADDING
    assert reject is not None and reject.code == TAKEOVER_CODE
    assert "the record of key 'AB-1'" in (reject.message or "")
    (event,) = _events(caplog, "record_takeover")
    assert (event.key, event.other_key) == ("ab-1", "AB-1")  # type: ignore[attr-defined]
    assert flags["AB-1"] is True and flags["ab-1"] is False
    assert identity is not None and identity.record_id == owner_id


def test_two_new_case_variants_in_one_bulk_job_keep_one_record_and_one_reject(
    tmp_path: Path,
) -> None:
    """Both new in the same job: the row that created the record keeps it, the other becomes a
    reject, and the keeper is sent again so the record holds its own content."""
    padding = [(f"P-{i:05d}", f"p{i}@example.com") for i in range(BULK_PADDING)]
    rows = [("CD-2", "upper@example.com"), ("cd-2", "lower@example.com"), *padding]
    with harness(tmp_path, rows) as h:
        counts = h.drain()
        crm = h.crm()
        rejects = {r.key: r for r in h.app.store.list_rejects("orders", limit=10)}
        flags = _flags(h.db)

    assert counts.takeovers == 1 and len(rejects) == 1
    ((loser, reject),) = rejects.items()
    keeper = ({"CD-2", "cd-2"} - {loser}).pop()
    assert reject.code == TAKEOVER_CODE and f"the record of key {keeper!r}" in (
        reject.message or ""
    )
    kept = crm.get(keeper)
    assert kept is not None, "the keeper's record is lost"
    expected = "upper@example.com" if keeper == "CD-2" else "lower@example.com"
    assert kept["Customer_Email"] == expected
    assert loser not in crm and len(crm) == 1 + BULK_PADDING
    assert flags[keeper] is True and flags[loser] is False


def test_upsert_would_have_taken_over_the_record(tmp_path: Path) -> None:
    """The emulator does what the issue measured: an upsert of row 500 with row 1's e-mail
    overwrites row 1's record, and the answer says so (duplicate_field). This is why syncd
    never upserts, and why the answer's matched_by is read."""
    with harness(tmp_path, [("1", "b1@example.com")]) as h:
        h.drain()
        record_id = h.crm()["1"]["id"]
        (outcome,) = h.rt.crm.upsert(  # type: ignore[attr-defined]
            "Orders",
            "parent_id",
            [CrmRecord("500", {"Name": "x", "Customer_Email": "b1@example.com"})],
        )
        crm = h.crm()
        writes = record_writes(h.calls())

    assert outcome.matched_by == "Customer_Email" and outcome.record_id == record_id
    assert "1" not in crm and crm["500"]["id"] == record_id
    assert writes == 2
