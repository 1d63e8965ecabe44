"""Database faults: connections killed mid-drain and mid-flush, a row lock held by the legacy
application, a full disk for the bulk files. syncd reconnects and goes on, losing nothing.

A server restart is played by terminating the connections of the test's own database
(``pg_terminate_backend`` on PostgreSQL, ``KILL`` on MariaDB): the shared servers are never
restarted. The legacy application is played by the database's own client (psycopg, PyMySQL).
Each test counts what was paid: bulk jobs and records calls at the emulator, and syncd's ledger
against the emulator's credits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, crm_by_key, record_writes, write_config
from tests.helpers.native import NativeDatabase, native
from tests.helpers.orders import create_orders, order

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TIMING = 'batch_size = 5000\npoll_interval = "1s"\nmax_delay = "1s"'


# -- the database's side: kills and locks -------------------------------------------------------


def kill_connections(url: str) -> int:
    """Terminate every other session on the database at ``url``: what a restart does to them."""
    with native(url) as db:
        if db.dialect == "postgresql":
            return len(
                db.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        ids = db.query(
            "SELECT id FROM information_schema.processlist"
            " WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        for (session,) in ids:
            db.execute("KILL %s", (int(session),))
        return len(ids)


def kill_lock_waiters(url: str) -> int:
    """Terminate the sessions of this database that wait for a row lock."""
    with native(url) as db:
        if db.dialect == "postgresql":
            return len(
                db.query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        ids = lock_waiters_mysql(db)
        for session in ids:
            db.execute("KILL %s", (session,))
        return len(ids)


def lock_waiters(url: str) -> int:
    with native(url) as db:
        if db.dialect == "postgresql":
            rows = db.query(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(rows[0][0])
        return len(lock_waiters_mysql(db))


def lock_waiters_mysql(db: NativeDatabase) -> list[int]:
    rows = db.query(
        "SELECT t.trx_mysql_thread_id FROM information_schema.innodb_trx t"
        " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
        " WHERE t.trx_state = 'LOCK WAIT' AND p.db = DATABASE()"
    )
    return [int(r[0]) for r in rows]


class RowLock:
    """The legacy application inside a transaction that holds ``SELECT ... FOR UPDATE``."""

    def __init__(self, url: str, key: int) -> None:
        self.db = native(url)
        cursor = self.db.conn.cursor()
        cursor.execute("SELECT quantity FROM orders WHERE id = %s FOR UPDATE", (key,))
        cursor.fetchall()
        cursor.close()
        self.key = key

    def change_and_commit(self, quantity: int) -> None:
        cursor = self.db.conn.cursor()
        cursor.execute(
            "UPDATE orders SET quantity = %s, sync = %s WHERE id = %s",
            (quantity, False, self.key),
        )
        cursor.close()
        self.commit()

    def commit(self) -> None:
        self.db.conn.commit()
        self.db.close()


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=["postgres", "mysql"])
def server_legacy_url(request: pytest.FixtureRequest) -> str:
    """A fresh legacy database on each real server."""
    return str(request.getfixturevalue({"postgres": "pg_url", "mysql": "mysql_url"}[request.param]))


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


def start_initial_sync(
    config: Path, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    with log.open("a") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "syncd", "-c", str(config), "initial-sync"],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )


def ledger(state_url: str) -> tuple[int, dict[str, tuple[int, int]]]:
    state = StateStore.open(state_url, upgrade=False)
    try:
        return state.credits_spent_since(EPOCH), state.calls_since(EPOCH)
    finally:
        state.close()


def mirrored(legacy_url: str, emulator: EmulatorServer, state_url: str) -> dict[str, int]:
    state = StateStore.open(state_url, upgrade=False)
    try:
        return assert_mirrored(legacy_url, emulator.base_url, state)
    finally:
        state.close()


# -- a row lock held by the legacy application --------------------------------------------------

ROWS = 150  # one records batch: two insert calls, one confirmation chunk
LOCKED = 42


@pytest.mark.parametrize("kill", [False, True], ids=["waits", "killed-while-waiting"])
def test_confirmation_waits_for_a_row_the_legacy_application_holds(
    tmp_path: Path, server_legacy_url: str, emulator: EmulatorServer, kill: bool
) -> None:
    """syncd's confirmation waits for a row under the application's FOR UPDATE; if its
    connection dies while waiting (a restart), it reconnects and confirms on the same run.
    A row the application changed meanwhile goes again; nothing is sent twice otherwise."""
    engine = create_orders(server_legacy_url, (order(i) for i in range(1, ROWS + 1)))
    engine.dispose()
    config = write_config(tmp_path, server_legacy_url, emulator.base_url, pipeline=TIMING)
    lock = RowLock(server_legacy_url, LOCKED)
    sync = start_initial_sync(config, tmp_path / "syncd.log")
    try:
        wait_until(lambda: lock_waiters(server_legacy_url), 30, "syncd waiting for the row lock")
        if kill:
            assert kill_lock_waiters(server_legacy_url) == 1
            time.sleep(0.3)  # the retry waits for its backoff; it must find the lock still held
            lock.commit()  # unchanged: the row is confirmed as sent
        else:
            lock.change_and_commit(777)  # changed while syncd waited: sent again
        assert sync.wait(60) == 0, (tmp_path / "syncd.log").read_text()[-3000:]
    finally:
        sync.kill()
    state_url = f"sqlite:///{tmp_path}/state.db"
    counts = mirrored(server_legacy_url, emulator, state_url)
    assert counts == {"synced": ROWS, "rejected": 0, "crm_records": ROWS}
    calls = emulator.admin.stats()["calls"]
    assert emulator.admin.jobs() == []
    # Two inserts of 100 + 50; the changed row once more, by record id.
    assert record_writes(calls) == (2 if kill else 3)
    assert crm_by_key(emulator.base_url)[str(LOCKED)]["Quantity"] == (
        order(LOCKED)["quantity"] if kill else 777
    )
    spent, _ = ledger(state_url)
    assert spent == emulator.admin.stats()["credits"]["used"]
    if kill:
        log = (tmp_path / "syncd.log").read_text()
        assert '"legacy_db_retry"' in log  # the kill reached syncd, and syncd said so


# -- connections killed in the middle of a drain and of a realtime flush ------------------------

BULK = 5_150  # one bulk job of 5,000 and one records batch of 150
CHANGED = 30  # the realtime flush: 30 synced rows changed


@dataclass
class Daemon:
    legacy_url: str
    state_url: str
    victim: str  # the database whose connections are killed


@pytest.fixture(params=["legacy-postgres", "legacy-mysql", "state-postgres"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Daemon:
    """The legacy database and the state store; ``victim`` is the one that 'restarts'."""
    kind = request.param
    sqlite_legacy = f"sqlite:///{tmp_path}/legacy.db"
    sqlite_state = f"sqlite:///{tmp_path}/state.db"
    if kind == "legacy-postgres":
        url = str(request.getfixturevalue("pg_url"))
        return Daemon(url, sqlite_state, url)
    if kind == "legacy-mysql":
        url = str(request.getfixturevalue("mysql_url"))
        return Daemon(url, sqlite_state, url)
    state = str(request.getfixturevalue("pg_url"))
    return Daemon(sqlite_legacy, state, state)


def test_connections_killed_mid_drain_and_mid_flush_lose_nothing_and_pay_nothing_twice(
    tmp_path: Path, databases: Daemon
) -> None:
    """`syncd run`: the legacy DB or the PostgreSQL state store drops every connection while a
    bulk job is in flight and again while a realtime flush is out; the daemon reconnects (and
    takes its lease back), applies the job it has, and sends no job or record twice."""
    create_orders(databases.legacy_url, (order(i) for i in range(1, BULK + 1))).dispose()
    # A job that takes 2.5 s, so the kill lands while it runs.
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=2_000)) as emulator:
        config = write_config(
            tmp_path,
            databases.legacy_url,
            emulator.base_url,
            state_url=databases.state_url,
            pipeline=TIMING,
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("bulk_job_created", timeout=30)
            assert kill_connections(databases.victim) >= 1
            wait_until(lambda: not pending(databases.legacy_url), 60, "the initial sync", 0.3)
            daemon.wait_for("drain_finished")
            writes = record_writes(emulator.admin.stats()["calls"])
            emulator.admin.set_faults(latency_ms=1_500)  # the flush's call stays out a while
            change_quantity(databases.legacy_url, range(1, CHANGED + 1))
            wait_until(
                lambda: emulator.admin.stats()["concurrency"]["in_flight"], 20, "a flush out"
            )
            assert kill_connections(databases.victim) >= 1
            emulator.admin.set_faults(latency_ms=0)
            wait_until(lambda: not pending(databases.legacy_url), 60, "the flush applied", 0.3)
            assert daemon.terminate() == 0, daemon.tail()
        counts = mirrored(databases.legacy_url, emulator, databases.state_url)
        stats = emulator.admin.stats()
        jobs = emulator.admin.jobs()
        spent, calls = ledger(databases.state_url)
    assert counts == {"synced": BULK, "rejected": 0, "crm_records": BULK}
    assert len(jobs) == 1 and calls["bulk_job"][0] == 1  # resumed, never created again
    assert record_writes(stats["calls"]) == writes + 1  # the flush's one update call
    assert spent == stats["credits"]["used"]


def pending(url: str) -> int:
    """Pending rows, read by the database's own client (the test's connections are killed
    too, so it keeps none open)."""
    with native(url) as db:
        return int(db.query("SELECT count(*) FROM orders WHERE sync = %s", (False,))[0][0])


def change_quantity(url: str, keys: range) -> None:
    """The legacy application changes these rows (and sets their flag false), in one commit."""
    with native(url) as db:
        db.execute(
            "UPDATE orders SET quantity = quantity + 100, sync = %s WHERE id BETWEEN %s AND %s",
            (False, keys.start, keys.stop - 1),
        )


# -- a full disk for the bulk files ---------------------------------------------------------------


@dataclass
class SmallDisk:
    path: Path
    how: str  # how the full disk is played, for the failure message

    def make_room(self) -> None:
        if self.how == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=16m", str(self.path)], check=True)
        else:
            self.path.chmod(0o700)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A temp directory too small for a bulk file: a 32 KiB tmpfs where mounting is allowed
    (root), else a directory without write permission (EACCES instead of ENOSPC)."""
    path = tmp_path / "tmp"
    path.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=32k", "tmpfs", str(path)]
    if os.geteuid() == 0:
        done = subprocess.run(mount, capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs, and root ignores permissions: {done.stderr!r}")
        try:
            yield SmallDisk(path, "tmpfs")
        finally:
            subprocess.run(["umount", str(path)], check=False)
        return
    path.chmod(0o500)
    try:
        yield SmallDisk(path, "read-only directory")
    finally:
        path.chmod(0o700)


def test_a_full_temp_disk_sends_nothing_says_so_and_the_daemon_goes_on(
    tmp_path: Path, small_disk: SmallDisk, emulator: EmulatorServer
) -> None:
    """No room for the bulk file: `initial-sync` stops with one clear line and sends nothing;
    the daemon logs it, keeps running, and sends everything (one job) once there is room."""
    url = f"sqlite:///{tmp_path}/legacy.db"
    create_orders(url, (order(i) for i in range(1, BULK + 1))).dispose()
    config = write_config(tmp_path, url, emulator.base_url, pipeline=TIMING)
    env = {"TMPDIR": str(small_disk.path)}
    sync = start_initial_sync(config, tmp_path / "initial.log", env)
    assert sync.wait(60) == 1
    said = (tmp_path / "initial.log").read_text()
    assert f"syncd: cannot write a bulk file in {small_disk.path}" in said, small_disk.how
    assert "Traceback" not in said and "internal error" not in said
    assert emulator.admin.stats()["calls"].get("POST /crm/v8/upload", 0) == 0
    assert pending(url) == BULK and list(small_disk.path.iterdir()) == []
    with SyncdProcess(config, tmp_path / "syncd.log", env=env) as daemon:
        failed = daemon.wait_for("tick_failed")[0]["msg"]
        assert f"cannot write a bulk file in {small_disk.path}" in failed
        small_disk.make_room()
        wait_until(lambda: not pending(url), 60, "the rows sent once there is room", 0.3)
        assert daemon.terminate() == 0, daemon.tail()
    counts = mirrored(url, emulator, f"sqlite:///{tmp_path}/state.db")
    assert counts == {"synced": BULK, "rejected": 0, "crm_records": BULK}
    assert len(emulator.admin.jobs()) == 1
    assert ledger(f"sqlite:///{tmp_path}/state.db")[0] == emulator.admin.stats()["credits"]["used"]
