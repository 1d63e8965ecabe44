"""Promise 11: the org's daily credits are shared; syncd keeps a reserve for the others.

The emulator's org has 10,000 daily credits and other integrations spent 8,000. Zoho then
reports X-API-CREDITS-REMAINING on every answer; syncd must not plan a send that would leave
less than crm.credit_reserve, and `status` shows the org's figure next to syncd's budget.
"""

from __future__ import annotations

import json
from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.emulator.settings import EmulatorSettings
from tests.helpers.e2e import run_syncd, write_config
from tests.helpers.sqlite_orders import pending, sqlite3_orders

ROWS = 10_000  # two 5,000-row bulk jobs of 500 credits


def test_a_send_that_would_cross_the_reserve_waits(tmp_path: Path) -> None:
    """The first job goes; the second would leave < 1,500 org credits and is not created."""
    db = tmp_path / "legacy.db"
    url = sqlite3_orders(db, ROWS)
    with EmulatorServer(EmulatorSettings(daily_credits=10_000)) as server:
        admin = EmulatorAdmin(server.base_url)
        admin.spend_credits(8_000)  # the company's other integrations
        config = write_config(
            tmp_path,
            url,
            server.base_url,
            crm="credit_reserve = 1500",
            pipeline="batch_size = 5000",
        )
        sync = run_syncd(config, "initial-sync")
        jobs, used = len(admin.jobs()), admin.stats()["credits"]["used"]
        left_after_first = pending(db)
        again = run_syncd(config, "initial-sync")
        assert (len(admin.jobs()), admin.stats()["credits"]["used"]) == (jobs, used)
        status = json.loads(run_syncd(config, "status", "--json").stdout)["credits"]["org"]
        text = run_syncd(config, "status").stdout

    assert sync.returncode == 1 and again.returncode == 1
    assert "credit reserve reached" in sync.stderr and "Traceback" not in sync.stderr
    assert "1500 are kept for other integrations" in again.stderr
    assert jobs == 1 and 8_500 <= used < 8_520  # one job; its upload and polls cost 1 each
    assert left_after_first == ROWS - 5_000  # the job already paid for was applied
    assert status["reserve"] == 1_500 and 10_000 - used <= status["remaining"] < 1_500 + 500
    assert "kept for other integrations" in text and f"{status['remaining']:,} left" in text
