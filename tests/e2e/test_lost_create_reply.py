"""Promise 3 and 9: the one window Zoho leaves open is kept small and counted.

Zoho creates (and charges) the job but its reply never arrives. Zoho has no idempotency key
and no way to look a job up, so the rows must go again in a second job: paid twice, once.
Before, the journal entry stayed PREPARED and recovery called the job "never created"; the
second payment was not counted anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings, Faults
from tests.helpers.e2e import crm_by_key, run_syncd, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 6_000


def test_a_lost_create_reply_costs_one_more_job_and_is_counted(tmp_path: Path) -> None:
    """One extra job at most; the ledger, `status` and `jobs list` all show it."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, ROWS)
    settings = EmulatorSettings(faults=Faults(lose_job_create_replies=1))
    with EmulatorServer(settings) as server:
        admin = EmulatorAdmin(server.base_url)
        config = write_config(tmp_path, url, server.base_url)
        first = run_syncd(config, "initial-sync")
        second = run_syncd(config, "initial-sync")
        jobs = len(admin.jobs())
        crm_credits = admin.stats()["credits"]["used"]
        records = crm_by_key(server.base_url)  # fails on a duplicate record
        status = json.loads(run_syncd(config, "status", "--json").stdout)
        text = run_syncd(config, "status").stdout
        listed = run_syncd(config, "jobs", "list").stdout

    assert first.returncode == 1 and "Traceback" not in first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert jobs == 2  # the minimum (1) plus the one the API leaves open
    assert len(records) == ROWS and pending(db) == 0
    pipeline = status["pipelines"][0]
    assert pipeline["jobs_maybe_paid_twice_24h"] == 1
    assert "1 bulk job(s) in the last 24 h may have been paid twice" in text
    assert "uncertain" in listed and "reply to the create call was lost" in listed
    # syncd's ledger counts both jobs, as Zoho charged them: the budget errs on the safe side.
    assert status["credits"]["spent_24h"] >= 1_000 and crm_credits >= 1_000
