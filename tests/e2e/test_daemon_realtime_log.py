"""What the realtime daemon's log says (issue 17, item 6): each flush's lines carry the run id
that `syncd status` shows for it, and a spent credit budget is said once per episode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, update

from syncd.emulator.server import EmulatorServer
from syncd.state.store import StateStore
from syncd.state.tables import credit_ledger
from tests.helpers.daemon import SyncdProcess
from tests.helpers.e2e import write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys

POLL, MAX_DELAY = 1.0, 3.0
TIMING = f'poll_interval = "{POLL:.0f}s"\nmax_delay = "{MAX_DELAY:.0f}s"'
BUDGET_EVENTS = ("budget_exceeded", "budget_available")


@pytest.fixture
def legacy(pg_url: str) -> Iterator[Engine]:
    engine = create_orders(pg_url, [])
    yield engine
    engine.dispose()


def runs_by_id(state_url: str) -> dict[int, Any]:
    state = StateStore.open(state_url)
    try:
        return {r.id: r for r in state.last_runs("orders", 20)}
    finally:
        state.close()


def a_day_passes(state_url: str) -> None:
    """Move every credit-ledger entry 25 hours back: the rolling 24 h budget is free again."""
    engine = create_engine(state_url)
    try:
        with engine.begin() as conn:
            for row in conn.execute(credit_ledger.select()).all():
                older = update(credit_ledger).where(credit_ledger.c.id == row.id)
                conn.execute(older.values(at=row.at - timedelta(hours=25)))
    finally:
        engine.dispose()


def test_flush_lines_carry_their_run_id_and_a_spent_budget_is_said_once_per_episode(
    tmp_path: Path, pg_url: str, legacy: Engine
) -> None:
    """Budget 12: the org call (1) and one call of 100 records (10) go, then sending waits.

    However many polls find the budget spent, `budget_exceeded` is logged once; when a day
    has passed the waiting rows go (`budget_available`, once), and when the budget runs out
    again that is a new episode, said once more.
    """
    state_url = f"sqlite:///{tmp_path}/state.db"
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path, pg_url, emulator.base_url, pipeline=TIMING, crm="daily_credit_budget = 12"
        )
        with SyncdProcess(config, tmp_path / "syncd.log") as daemon:
            daemon.wait_for("drain_finished")
            add_orders(legacy, (order(i) for i in range(1, 251)))
            daemon.wait_for("budget_exceeded")
            time.sleep(MAX_DELAY + 3 * POLL)  # every poll meanwhile finds the budget spent
            assert [e["event"] for e in daemon.events() if e.get("event") in BUDGET_EVENTS] == [
                "budget_exceeded"
            ]
            assert len(pending_keys(legacy)) == 150

            a_day_passes(state_url)
            daemon.wait_for("budget_exceeded", count=2)
            time.sleep(3 * POLL)
            events = [e["event"] for e in daemon.events() if e.get("event") in BUDGET_EVENTS]
            flushes = daemon.events("flush_sent")
            lines = daemon.events()
    assert events == ["budget_exceeded", "budget_available", "budget_exceeded"]
    assert len(pending_keys(legacy)) == 50

    # Each flush that went is one recorded realtime run; its lines carry that run's id.
    runs = runs_by_id(state_url)
    sent = [f for f in flushes if f["rows"] > 0]
    assert len(sent) == 2
    for flush in sent:
        run = runs[flush["run_id"]]
        assert (run.kind, run.status, run.counts.sent) == ("realtime", "succeeded", 100)
        assert run.counts.credits == 10
    assert sent[0]["run_id"] != sent[1]["run_id"]
    realtime_runs = [r for r in runs.values() if r.kind == "realtime"]
    assert len(realtime_runs) == 2, "a refused or quiet tick left a run"
    # Everything logged from a flush on, until its tick ends, names the same run.
    after = [
        line for line in lines[lines.index(sent[0]) :] if line.get("event") == "outcomes_applied"
    ]
    assert after and after[0].get("run_id") == sent[0]["run_id"]
