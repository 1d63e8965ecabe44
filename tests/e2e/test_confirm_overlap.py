"""A bulk job's rows are confirmed on a thread of their own while their identities are written
(``syncd.engine.confirm``).

On PostgreSQL and MariaDB the compare-and-set runs part by part (2,500 rows, one transaction
each) beside the recording of each committed part's identities. The legacy table is made by
plain DDL and filled by the database's own client, with a trigger that slows, or refuses, the
flag of one row: the identities of the parts before it are written during that wait, and a
refusal stops the drain with those parts' identities kept and nothing paid twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.credits import BULK_JOB_CREDITS, OTHER_CALL_CREDITS
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.confirm import PART
from syncd.engine.runs import run_drain
from syncd.errors import SyncdError
from tests.helpers.e2e import crm_by_key, open_app, write_config
from tests.helpers.native import NativeDatabase, native

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
UPLOAD, CREATE = "POST /crm/v8/upload", "POST /crm/bulk/v8/write"
DOWNLOAD = "GET /{version}/crm/{org}/bulk-write/{job_id}/{file_name}"
ROWS = 4 * PART  # one bulk job of four parts
HELD = PART + 1  # the first row of the second part
REFUSED = 2 * PART + 1  # the first row of the third part
SLEEP = 1.5  # seconds the trigger holds the flag of row HELD
DDL = {
    "postgresql": """CREATE TABLE orders (
        id bigint PRIMARY KEY, order_number varchar(40), total numeric(12,2), order_date date,
        ordered_at timestamp, status varchar(20), customer_email varchar(255),
        quantity integer, paid boolean, notes text, sync boolean NOT NULL DEFAULT false)""",
    "mysql": """CREATE TABLE orders (
        id bigint PRIMARY KEY, order_number varchar(40), total decimal(12,2), order_date date,
        ordered_at datetime, status varchar(20), customer_email varchar(255),
        quantity int, paid tinyint(1), notes text, sync tinyint(1) NOT NULL DEFAULT 0)""",
}
# When row HELD is flagged: wait, then note the time in seconds since the epoch. When row
# REFUSED is flagged and the table `refuse` has a row: refuse the change.
TRIGGER = {
    "postgresql": [
        f"""CREATE FUNCTION hold_or_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = {REFUSED} AND EXISTS (SELECT 1 FROM refuse) THEN
                RAISE EXCEPTION 'the legacy trigger refuses to flag row {REFUSED}';
            END IF;
            IF NEW.id = {HELD} THEN
                PERFORM pg_sleep({SLEEP});
                INSERT INTO held_until VALUES (extract(epoch FROM clock_timestamp()));
            END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER hold_or_refuse BEFORE UPDATE ON orders FOR EACH ROW"
        " WHEN (NEW.sync AND NOT OLD.sync) EXECUTE FUNCTION hold_or_refuse()",
    ],
    "mysql": [
        f"""CREATE TRIGGER hold_or_refuse BEFORE UPDATE ON orders FOR EACH ROW
        BEGIN
            IF NEW.sync = 1 AND OLD.sync = 0 THEN
                IF NEW.id = {REFUSED} AND (SELECT count(*) FROM refuse) > 0 THEN
                    SIGNAL SQLSTATE '45000'
                        SET MESSAGE_TEXT = 'the legacy trigger refuses to flag row {REFUSED}';
                END IF;
                IF NEW.id = {HELD} THEN
                    DO SLEEP({SLEEP});
                    -- SYSDATE: the time now, not when the statement began
                    INSERT INTO held_until VALUES (UNIX_TIMESTAMP(SYSDATE(6)));
                END IF;
            END IF;
        END""",
    ],
}


def _legacy_table(db: NativeDatabase, *, refuse: bool) -> str:
    dialect = "mysql" if db.dialect in ("mysql", "mariadb") else db.dialect
    db.execute(DDL[dialect])
    db.executemany(
        "INSERT INTO orders (id, order_number, total, order_date, status, quantity, paid)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(i, f"SO-{i}", f"{i % 900}.25", "2025-03-01", "New", i % 7, i % 2 == 0)
         for i in range(1, ROWS + 1)],
    )  # fmt: skip
    db.execute("CREATE TABLE held_until (at double precision)")
    db.execute("CREATE TABLE refuse (yes int)")
    if refuse:
        db.execute("INSERT INTO refuse VALUES (1)")
    for statement in TRIGGER[dialect]:
        db.execute(statement)
    return dialect


@pytest.fixture(params=["postgres", "mysql"])
def server_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue({"postgres": "pg_url", "mysql": "mysql_url"}[request.param]))


def _config(tmp_path: Path, url: str, base_url: str) -> Path:
    return write_config(
        tmp_path, url, base_url, crm="bulk_jobs_in_flight = 1", pipeline=f"batch_size = {ROWS}"
    )


def _flagged(url: str) -> set[int]:
    with native(url) as db:
        return {int(k) for (k,) in db.query("SELECT id FROM orders WHERE sync = %s", (True,))}


def test_identities_are_written_while_the_next_part_is_confirmed(
    tmp_path: Path, server_url: str
) -> None:
    """Row HELD's flag waits 1.5 s in a trigger: the first part's identities are written
    before that wait ends (one after the other, they would be written after it). Every row
    is confirmed and has its identity, with one job."""
    with native(server_url) as db:
        _legacy_table(db, refuse=False)
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, server_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            result = run_drain(app.runtime(app.settings.pipeline("orders")), "initial")
            first_part = [app.store.identity("orders", str(k)) for k in (1, PART)]
            later_part = app.store.identity("orders", str(HELD))
            identities = app.store.count_identities("orders")
        stats = server.admin.stats()
        crm = crm_by_key(server.base_url)
    with native(server_url) as db:
        held_until = datetime.fromtimestamp(float(db.query("SELECT at FROM held_until")[0][0]), UTC)
    assert all(i is not None for i in first_part) and later_part is not None
    written = max(i.seen_at for i in first_part if i is not None)
    assert written < held_until - timedelta(seconds=SLEEP / 2)
    assert later_part.seen_at > held_until - timedelta(seconds=0.1)
    assert result.counts.confirmed == ROWS and result.left_pending == 0
    assert _flagged(server_url) == set(range(1, ROWS + 1)) and len(crm) == ROWS
    assert identities == ROWS and stats["bulk"]["jobs_created"] == 1


def test_a_refused_part_stops_the_apply_with_the_parts_before_it_remembered(
    tmp_path: Path, server_url: str
) -> None:
    """The trigger refuses row REFUSED's flag: the drain stops with that error; the two parts
    before it are flagged and their identities written, the rest neither. The next run,
    without the refusal, applies the journaled job: no second job, every row confirmed."""
    with native(server_url) as db:
        _legacy_table(db, refuse=True)
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        config = _config(tmp_path, server_url, server.base_url)
        with open_app(config, bulk_poll_interval=timedelta(milliseconds=50)) as app:
            rt = app.runtime(app.settings.pipeline("orders"))
            began = time.monotonic()
            with pytest.raises(SyncdError, match=f"refuses to flag row {REFUSED}"):
                run_drain(rt, "initial")
            assert time.monotonic() - began < 60  # stopped, not retried for ever
            flagged_first = _flagged(server_url)
            remembered_first = app.store.count_identities("orders")
            last_before = app.store.identity("orders", str(REFUSED - 1))
            refused = app.store.identity("orders", str(REFUSED))
            with native(server_url) as db:
                db.execute("DELETE FROM refuse")
            result = run_drain(rt, "initial")
            remembered = app.store.count_identities("orders")
            booked = app.store.credits_spent_since(EPOCH)
            ledger = app.store.calls_since(EPOCH)
        stats = server.admin.stats()
        crm = crm_by_key(server.base_url)
    assert flagged_first == set(range(1, REFUSED))
    assert remembered_first == REFUSED - 1
    assert last_before is not None and last_before.confirmed_at is not None
    assert refused is None
    assert stats["bulk"]["jobs_created"] == 1  # the journaled job was applied, not sent again
    # Paid: one upload, one job, and per run one status call and one download (the org is
    # read once); syncd booked exactly what Zoho charged.
    calls = stats["calls"]
    assert (calls[UPLOAD], calls[CREATE], calls[DOWNLOAD]) == (1, 1, 2)
    assert {kind: n for kind, (n, _) in ledger.items()} == {
        "upload": 1,
        "bulk_job": 1,
        "bulk_status": 2,
        "download": 2,
        "org": 1,
    }
    assert booked == stats["credits"]["used"] == BULK_JOB_CREDITS + 6 * OTHER_CALL_CREDITS
    assert _flagged(server_url) == set(range(1, ROWS + 1)) and len(crm) == ROWS
    assert remembered == ROWS and result.counts.confirmed == ROWS  # the whole job, again
