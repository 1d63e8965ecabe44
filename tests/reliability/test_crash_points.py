"""Promise 3 at every named step: die there, restart, and nothing is lost or paid twice.

``SYNCD_CRASH_AT=<point>[:<n>]`` (``syncd.crashpoints``) makes the real `syncd` process exit
hard (``os._exit``) at a named step. Each case runs the command line against the emulator on a
real port until it dies there (exit 86, and the point named on stderr: a point never reached
fails the case), restarts it, lets it finish and then checks everything:

- every legacy row's current content is in the CRM exactly once, or the row is a listed reject;
- no CRM record is duplicated, none holds another key's content, the record-identity map names
  each row's own record;
- Zoho created the minimum number of bulk jobs, plus one only when the crash hit the create
  call's window, and that one is counted as "may have been paid twice" (`status`);
- syncd's credit ledger holds every call Zoho charged, and more only by that counted job.

`initial-sync` reaches every point but the daemon's (realtime poll and flush, lease
heartbeat); `syncd run` is checked at a representative subset of points (the budget of this
file is about 90 s on two cores): the daemon's own points, the records path of a realtime
flush, the bulk path of its initial sync, and a crash during a lease hand-over to a standby.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from syncd.crashpoints import CRASH_EXIT_CODE, ENV, POINTS
from syncd.credits import BULK_JOB_CREDITS
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from syncd.engine.runs import run_drain
from syncd.source.table import CONFIRM_CHUNK
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import assert_mirrored, crm_by_key, open_app, run_syncd, write_config
from tests.helpers.orders import order, orders_table
from tests.helpers.sqlite_orders import DDL

BULK_ROWS = 5_000  # one bulk job: the planner's break-even
ROWS = BULK_ROWS + 150  # then one records batch (two insert calls)
REJECTS = frozenset({777, 5_077})  # no order number: Zoho refuses them, one per path
WINDOW = frozenset({"after_journal_sending", "after_job_created"})  # the create call is out
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
TIMING = 'batch_size = 5000\npoll_interval = "1s"\nmax_delay = "1s"'

# In `initial-sync` the bulk job is created, the records batch sent and applied while it runs,
# then the job is applied: ":2" is the bulk job's pass through apply, ":4" the middle of its
# confirmation chunks (the records batch's one chunk is the first).
# (point, point of a first crashed run that leaves journaled work behind)
INITIAL_SYNC_CASES = [
    ("after_lease_acquired", None),
    ("after_batch_read", None),
    ("after_bulk_file_written", None),
    ("after_journal_prepared", None),
    ("after_upload", None),
    ("after_journal_sending", None),
    ("after_job_created", None),
    ("after_journal_created", None),
    ("after_records_insert_answer", None),
    ("after_records_sent", None),
    ("after_job_polled", None),
    ("after_result_downloaded", None),
    ("after_claims_checked:2", None),
    ("after_confirm_chunk:2", None),
    ("after_rows_confirmed:2", None),
    ("after_identities_written:2", None),
    ("after_rejects_recorded:2", None),
    ("after_outcomes_applied", None),
    ("after_journal_applied", None),
    ("before_job_resumed", "after_journal_created"),
]
# Reached only by the daemon, or (updates by record id) only once rows were synced and changed.
NOT_IN_INITIAL_SYNC = {
    "after_realtime_poll",
    "after_flush_applied",
    "after_lease_verified",
    "after_records_update_answer",
}


def point_name(point: str) -> str:
    return point.partition(":")[0]


def test_every_crash_point_is_tested_and_every_listed_point_exists_in_the_code() -> None:
    """POINTS, the crash_point() calls in syncd/ and the cases here name the same steps."""
    code = Path(__file__).parents[2] / "syncd"
    called = {
        line.split('crash_point("', 1)[1].split('"', 1)[0]
        for path in code.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if 'crash_point("' in line and "``" not in line
    }
    tested = {point_name(p) for p, _ in INITIAL_SYNC_CASES} | {
        point_name(p) for p in REALTIME_POINTS + DAEMON_INITIAL_POINTS
    }
    assert called == set(POINTS)
    assert BULK_ROWS > CONFIRM_CHUNK  # after_confirm_chunk:2 falls between two chunks of the job
    assert tested == set(POINTS)
    assert set(POINTS) - {point_name(p) for p, _ in INITIAL_SYNC_CASES} == NOT_IN_INITIAL_SYNC


def test_an_unknown_crash_point_is_refused_at_start(tmp_path: Path) -> None:
    """A typo in SYNCD_CRASH_AT stops the process at once instead of never crashing."""
    config = write_config(tmp_path, f"sqlite:///{tmp_path}/legacy.db", "http://127.0.0.1:9")
    done = run_with_crash(config, "after_jbo_created", "initial-sync")
    assert done.returncode == 2
    assert "after_jbo_created" in done.stderr and "Traceback" not in done.stderr


# -- the legacy table and the checks ------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The orders table by plain DDL and sqlite3, built once and copied for each case."""
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    fill_legacy(path, range(1, ROWS + 1))
    return path


def fill_legacy(path: Path, keys: range) -> None:
    conn = sqlite3.connect(path)
    conn.execute(DDL)
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [legacy_values(i) for i in keys],
    )
    conn.commit()
    conn.close()


def legacy_values(i: int, **overrides: object) -> tuple[object, ...]:
    row = order(i, order_number=None if i in REJECTS else f"SO-{i:07d}", **overrides)
    return (
        i,
        row["order_number"],
        str(row["total"]),
        row["order_date"].isoformat(),
        row["ordered_at"].isoformat(sep=" "),
        row["status"],
        row["customer_email"],
        row["quantity"],
        int(row["paid"]),
        row["notes"],
    )


@dataclass
class Case:
    tmp: Path
    legacy: Path
    server: EmulatorServer
    config: Path
    state_url: str

    @property
    def legacy_url(self) -> str:
        return f"sqlite:///{self.legacy}"


def sqlite_case(tmp: Path, legacy: Path, server: EmulatorServer) -> Case:
    config = write_config(tmp, f"sqlite:///{legacy}", server.base_url, pipeline=TIMING)
    return Case(tmp, legacy, server, config, f"sqlite:///{tmp}/state.db")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    """One emulator for the module, reset for each case: jobs finish at their first poll."""
    with EmulatorServer(EmulatorSettings(bulk_rows_per_second=None)) as server:
        yield server


@pytest.fixture
def case(tmp_path: Path, legacy_template: Path, emulator: EmulatorServer) -> Case:
    legacy = tmp_path / "legacy.db"
    shutil.copy(legacy_template, legacy)
    emulator.admin.reset()
    return sqlite_case(tmp_path, legacy, emulator)


def run_with_crash(config: Path, point: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``syncd -c CONFIG ARGS...`` with the crash point set."""
    return subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, ENV: point},
    )


def assert_crashed_at(point: str, returncode: int | None, stderr: str) -> None:
    assert returncode == CRASH_EXIT_CODE, f"did not crash at {point} ({returncode}):\n{stderr}"
    assert f"crash point {point_name(point)} reached" in stderr


def full_check(case: Case, point: str, *, min_jobs: int, rejects: frozenset[int]) -> None:
    """Everything promise 3 says, after the restart finished."""
    name = point_name(point)
    state = StateStore.open(case.state_url, upgrade=False)
    try:
        counts = assert_mirrored(case.legacy_url, case.server.base_url, state)
        listed = {r.key for r in state.list_rejects("orders", limit=1000)}
        crm = crm_by_key(case.server.base_url)  # fails on a key held by two records
        known = state.record_ids("orders", sorted(crm))
        uncertain = state.count_uncertain("orders", EPOCH)
        ledger = state.calls_since(EPOCH)
        spent = state.credits_spent_since(EPOCH)
        still_open = state.journal_open("orders")
    finally:
        state.close()
    keys = legacy_keys(case.legacy_url)
    assert counts["rejected"] == len(rejects) and listed == {str(k) for k in rejects}
    assert counts["crm_records"] == counts["synced"] == len(keys) - len(rejects)
    assert set(crm) == {str(k) for k in keys} - listed  # no record of a key that is not synced
    # The identity map names each row's own record: nothing was taken over.
    assert {k: crm[k]["id"] for k in known} == known
    assert still_open == []
    jobs = case.server.admin.jobs()
    stats = case.server.admin.stats()
    assert uncertain == (1 if name in WINDOW else 0), f"{point}: {uncertain} uncertain"
    assert len(jobs) == min_jobs + (1 if name == "after_job_created" else 0)
    # syncd's ledger holds every job Zoho charged; the one uncertain job is booked on top.
    assert ledger.get("bulk_job", (0, 0))[0] == len(jobs)
    assert spent == stats["credits"]["used"] + uncertain * BULK_JOB_CREDITS


def legacy_keys(url: str) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        keys = [int(k) for k in conn.execute(select(orders_table().c.id)).scalars()]
    engine.dispose()
    return keys


def assert_status_counts_the_window(config: Path, point: str) -> None:
    status = json.loads(run_syncd(config, "status", "--json").stdout)
    expected = 1 if point_name(point) in WINDOW else 0
    assert status["pipelines"][0]["jobs_maybe_paid_twice_24h"] == expected


# -- `syncd initial-sync` at every point ---------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "before"), INITIAL_SYNC_CASES, ids=[p for p, _ in INITIAL_SYNC_CASES]
)
def test_initial_sync_crashed_at_a_point_and_restarted_loses_nothing(
    case: Case, point: str, before: str | None
) -> None:
    """initial-sync dies at the point; the restart finishes; nothing lost, nothing paid twice."""
    if before is not None:  # leave journaled work behind for the point to crash in
        first = run_with_crash(case.config, before, "initial-sync")
        assert_crashed_at(before, first.returncode, first.stderr)
    crashed = run_with_crash(case.config, point, "initial-sync")
    assert_crashed_at(point, crashed.returncode, crashed.stderr)
    again = run_syncd(case.config, "initial-sync")
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    full_check(case, point, min_jobs=1, rejects=REJECTS)
    if point_name(point) in WINDOW:
        assert_status_counts_the_window(case.config, point)


# -- `syncd run` ---------------------------------------------------------------------------------

# The daemon's initial sync (bulk job and records batch as above).
DAEMON_INITIAL_POINTS = ["after_job_created"]
# A realtime flush of changed and new rows after the initial sync (records API only).
REALTIME_POINTS = [
    "after_realtime_poll",
    "after_records_update_answer",
    "after_records_sent",  # the flush is answered, not applied
    "after_flush_applied",
    "after_lease_verified",
]
SYNCED, CHANGED, ADDED = 150, 60, 60  # realtime: rows synced first, then changed and added


def run_until_done(case: Case, log: Path, expected_pending: int) -> None:
    """A daemon without crash point, until only the rejects are pending; then SIGTERM."""
    with SyncdProcess(case.config, log) as daemon:
        daemon.wait_for("daemon_ready")  # its signal handlers are in place
        wait_until(
            lambda: pending(case.legacy) == expected_pending and settled(case.state_url),
            45,
            "the restarted daemon to finish",
            0.2,
        )
        assert daemon.terminate() == 0, daemon.tail()


def pending(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM orders WHERE sync = 0").fetchone()[0])
    finally:
        conn.close()


def settled(state_url: str) -> bool:
    """Nothing journaled, nothing buffered, the initial sync recorded as done."""
    state = StateStore.open(state_url, upgrade=False)
    try:
        return (
            state.has_succeeded("orders", "initial")
            and not state.journal_open("orders")
            and state.buffer_stats("orders")[0] == 0
        )
    finally:
        state.close()


def crash_daemon(case: Case, point: str, log: Path) -> None:
    with SyncdProcess(case.config, log, env={ENV: point}) as daemon:
        code = daemon.wait(30)
        assert_crashed_at(point, code, daemon.tail(60))


@pytest.mark.parametrize("point", DAEMON_INITIAL_POINTS)
def test_daemon_crashed_in_its_initial_sync_and_restarted_loses_nothing(
    case: Case, point: str
) -> None:
    """`syncd run` dies at the point of its initial sync; the next start finishes it."""
    crash_daemon(case, point, case.tmp / "crashed.log")
    run_until_done(case, case.tmp / "restarted.log", len(REJECTS))
    full_check(case, point, min_jobs=1, rejects=REJECTS)


@pytest.fixture
def realtime_case(tmp_path: Path, emulator: EmulatorServer) -> Case:
    """150 rows synced (in-process), then 60 of them changed and 60 added, all pending."""
    legacy = tmp_path / "legacy.db"
    fill_legacy(legacy, range(1, SYNCED + 1))
    emulator.admin.reset()
    case = sqlite_case(tmp_path, legacy, emulator)
    with open_app(case.config) as app:
        pipeline = app.settings.pipelines[0]
        with app.pipeline_lease(pipeline.name):
            run_drain(app.runtime(pipeline), "initial")
    conn = sqlite3.connect(legacy)
    conn.execute("UPDATE orders SET quantity = quantity + 100, sync = 0 WHERE id <= ?", (CHANGED,))
    conn.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
        [legacy_values(i) for i in range(SYNCED + 1, SYNCED + ADDED + 1)],
    )
    conn.commit()
    conn.close()
    return case


@pytest.mark.parametrize("point", REALTIME_POINTS)
def test_daemon_crashed_in_a_realtime_flush_and_restarted_loses_nothing(
    realtime_case: Case, point: str
) -> None:
    """`syncd run` dies at the point of a realtime flush; the next start sends the rest."""
    rejects = frozenset(k for k in REJECTS if k <= SYNCED + ADDED)
    crash_daemon(realtime_case, point, realtime_case.tmp / "crashed.log")
    run_until_done(realtime_case, realtime_case.tmp / "restarted.log", len(rejects))
    full_check(realtime_case, point, min_jobs=0, rejects=rejects)


@pytest.mark.postgres
def test_a_standby_that_crashes_while_taking_over_the_lease_loses_nothing(
    tmp_path: Path, legacy_template: Path, pg_url: str
) -> None:
    """Active worker killed inside a bulk job; the standby dies as it takes the lease (the
    PostgreSQL advisory lock); a third worker takes over and applies the journaled job."""
    legacy = tmp_path / "legacy.db"
    shutil.copy(legacy_template, legacy)
    slow = EmulatorSettings(bulk_rows_per_second=2_000)  # the job runs 2.5 s: a kill lands in it
    with EmulatorServer(slow) as server:
        config = write_config(
            tmp_path, f"sqlite:///{legacy}", server.base_url, state_url=pg_url, pipeline=TIMING
        )
        case = Case(tmp_path, legacy, server, config, pg_url)
        active = SyncdProcess(config, tmp_path / "active.log").start()
        standby = SyncdProcess(config, tmp_path / "standby.log", env={ENV: "after_lease_acquired"})
        try:
            active.wait_for("lease_acquired")
            standby.start().wait_for("daemon_ready")
            active.wait_for("bulk_job_created")
            active.kill()
            assert_crashed_at("after_lease_acquired", standby.wait(20), standby.tail(60))
        finally:
            active.kill()
            standby.kill()
        run_until_done(case, tmp_path / "third.log", len(REJECTS))
        third = (tmp_path / "third.log").read_text(encoding="utf-8")
        assert '"bulk_job_resumed"' in third  # the kill landed inside the job
        full_check(case, "after_lease_acquired", min_jobs=1, rejects=REJECTS)
