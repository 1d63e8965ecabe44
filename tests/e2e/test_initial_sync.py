"""`syncd initial-sync` as an operator runs it: the real command against the emulator over HTTP.

Acceptance (issue 6): every row ends up either confirmed with identical content in the CRM or
listed as a reject with Zoho's reason; the credits are those of the planned bulk jobs; a re-run
sends nothing; rejects are not re-sent until fixed or released; a dry run sends nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncd.emulator.server import EmulatorServer
from syncd.state.store import StateStore
from tests.helpers.e2e import (
    INSERT_CALL,
    RECORD_WRITES,
    assert_mirrored,
    crm_by_key,
    record_writes,
    run_syncd,
    write_config,
)
from tests.helpers.orders import change_orders, create_orders, order, orders_table, pending_keys

# Row i gets one of these faults when i % 1000 is the key; each is refused by Zoho for a reason
# the reject list must show (code, field).
INVALID: dict[int, tuple[dict[str, Any], tuple[str, str]]] = {
    1: ({"order_number": None}, ("MANDATORY_NOT_FOUND", "Name")),
    2: ({"customer_email": "not-an-email"}, ("INVALID_DATA", "Customer_Email")),
    3: ({"status": "Lost"}, ("INVALID_DATA", "Status")),
}
WRITE_CALLS = (*RECORD_WRITES, "POST /crm/v8/upload", "POST /crm/bulk/v8/write")


def orders_with_invalid(count: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(1, count + 1):
        fault = INVALID.get(i % 1000)
        rows.append(order(i, **(fault[0] if fault else {})))
    return rows


def expected_rejects(count: int) -> dict[str, tuple[str, str]]:
    return {str(i): INVALID[i % 1000][1] for i in range(1, count + 1) if i % 1000 in INVALID}


def actual_rejects(state: StateStore) -> dict[str, tuple[str, str | None]]:
    return {r.key: (r.code, r.field) for r in state.list_rejects("orders", limit=10**6)}


def write_calls(server: EmulatorServer) -> dict[str, int]:
    calls = server.admin.stats()["calls"]
    return {name: calls.get(name, 0) for name in WRITE_CALLS}


def summary_number(stdout: str, label: str) -> int:
    match = re.search(rf"^\s+{label}\s+([\d,]+)", stdout, re.MULTILINE)
    assert match, f"no '{label}' line in:\n{stdout}"
    return int(match.group(1).replace(",", ""))


@pytest.mark.parametrize(
    ("database", "rows", "jobs"),
    [("sqlite_url", 60_000, 3), ("pg_url", 6_000, 1), ("mysql_url", 6_000, 1)],
    ids=["sqlite-60k", "postgres-6k", "mariadb-6k"],
)
def test_every_row_is_mirrored_or_a_reject_with_zohos_reason(
    request: pytest.FixtureRequest, tmp_path: Path, database: str, rows: int, jobs: int
) -> None:
    """Initial sync: each row confirmed with identical CRM content or rejected with its reason."""
    url = str(request.getfixturevalue(database))
    create_orders(url, orders_with_invalid(rows)).dispose()
    with EmulatorServer() as server:
        config = write_config(tmp_path, url, server.base_url)
        result = run_syncd(config, "initial-sync")

        assert result.returncode == 0, result.stderr[-3000:]
        state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
        counts = assert_mirrored(url, server.base_url, state)
        rejects = expected_rejects(rows)
        assert actual_rejects(state) == rejects
        assert counts == {
            "synced": rows - len(rejects),
            "rejected": len(rejects),
            "crm_records": rows - len(rejects),
        }
        stats = server.admin.stats()
        assert stats["bulk"]["jobs_created"] == jobs
        assert record_writes(stats["calls"]) == 0
        ledger = state.calls_since(state.last_runs("orders")[0].started_at)
        assert ledger["bulk_job"] == (jobs, 500 * jobs)
        state.close()

    assert "initial sync of orders: done in" in result.stdout
    assert summary_number(result.stdout, "confirmed") == rows - len(rejects)
    assert summary_number(result.stdout, "rejected") == len(rejects)
    # 500 per job plus 1 per upload, status poll, download and the org lookup.
    assert 500 * jobs < summary_number(result.stdout, "credits") < 500 * jobs + 50
    assert "syncd rejects list --pipeline orders" in result.stdout


def test_rerun_on_a_synced_table_sends_nothing(tmp_path: Path, sqlite_url: str) -> None:
    """A second initial sync finds nothing to send and makes no write call at all."""
    create_orders(sqlite_url, orders_with_invalid(6_000)).dispose()
    with EmulatorServer() as server:
        config = write_config(tmp_path, sqlite_url, server.base_url)
        assert run_syncd(config, "initial-sync").returncode == 0
        before = server.admin.stats()

        again = run_syncd(config, "initial-sync")

        after = server.admin.stats()
    assert again.returncode == 0, again.stderr[-3000:]
    assert after["calls"] == before["calls"]
    assert after["credits"]["total"] == before["credits"]["total"]
    assert summary_number(again.stdout, "confirmed") == 0
    assert summary_number(again.stdout, "credits") == 0


def test_rejects_wait_for_a_fix_or_a_retry(tmp_path: Path, sqlite_url: str) -> None:
    """Unchanged rejects are not re-sent; a fixed row or `rejects retry KEY` goes out again."""
    engine = create_orders(sqlite_url, orders_with_invalid(6_000))
    table = orders_table()
    state_url = f"sqlite:///{tmp_path}/state.db"
    with EmulatorServer() as server:
        config = write_config(tmp_path, sqlite_url, server.base_url)
        assert run_syncd(config, "initial-sync").returncode == 0
        calls = write_calls(server)

        unchanged = run_syncd(config, "initial-sync")
        assert unchanged.returncode == 0
        assert write_calls(server) == calls, "unchanged rejects were sent again"

        # The legacy application fixes row 1001 (it sets the flag false, as it always does).
        change_orders(engine, [1001], order_number="SO-FIXED")
        fixed = run_syncd(config, "initial-sync")
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        assert summary_number(fixed.stdout, "confirmed") == 1
        assert write_calls(server)[INSERT_CALL] == 1  # 1001 never reached the CRM
        assert crm_by_key(server.base_url)["1001"]["Name"] == "SO-FIXED"
        state = StateStore.open(state_url)
        assert state.get_reject("orders", "1001") is None
        assert state.get_reject("orders", "2002") is not None

        shown = run_syncd(config, "rejects", "show", "2002")
        assert shown.returncode == 0
        assert "INVALID_DATA" in shown.stdout and "Customer_Email" in shown.stdout
        released = run_syncd(config, "rejects", "retry", "2002")
        assert released.returncode == 0
        assert "released 1 reject(s)" in released.stdout
        assert state.get_reject("orders", "2002") is None
        assert state.count_rejects("orders") == len(expected_rejects(6_000)) - 2

        retried = run_syncd(config, "initial-sync")
        assert retried.returncode == 0
        assert write_calls(server)[INSERT_CALL] == 2, "2002 was not re-sent"
        reject = state.get_reject("orders", "2002")
        assert reject is not None and reject.code == "INVALID_DATA"
        assert_mirrored(sqlite_url, server.base_url, state)
        state.close()
    with engine.connect() as conn:
        assert conn.scalar(select(table.c.sync).where(table.c.id == 1001)) is True
    engine.dispose()


def test_dry_run_prints_the_plan_and_sends_nothing(tmp_path: Path, sqlite_url: str) -> None:
    """--dry-run prints batches and credits, makes no CRM call and leaves every flag false."""
    engine = create_orders(sqlite_url, (order(i) for i in range(1, 12_001)))
    with EmulatorServer() as server:
        config = write_config(tmp_path, sqlite_url, server.base_url, pipeline="batch_size = 6000")

        result = run_syncd(config, "initial-sync", "--dry-run")

        stats = server.admin.stats()
    assert result.returncode == 0, result.stderr[-3000:]
    assert stats["calls"] == {}
    assert stats["credits"]["total"] == 0
    assert len(pending_keys(engine)) == 12_000
    engine.dispose()
    lines = result.stdout.splitlines()
    assert lines[0] == "dry run of orders: 12,000 row(s) to send in 2 batch(es), 1,000 credits"
    assert lines[1].startswith("  batch 1: 6,000 rows by bulk write: 1 job(s) = 500 credits")
    assert lines[2].startswith("  batch 2: 6,000 rows by bulk write: 1 job(s) = 500 credits")
    assert lines[-1] == "  nothing was sent"
    state = StateStore.open(f"sqlite:///{tmp_path}/state.db")
    assert state.count_rejects("orders") == 0
    assert state.journal_open("orders") == []
    state.close()
