"""The README's upgrade, tried on a state store the previous release left (issue 17, item 7).

The store is built by Alembic up to the revision before the newest (what the previous release
created), and filled with plain SQL as that release would have left it: run history, credit
ledger, a buffered key, a reject, a journal entry, a record identity, an announced alert.
Then `syncd db upgrade` (the README's command) brings it to head; what the old release wrote
must still show in `status` and `lookup` and be in the store, and an initial sync must work.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

from syncd.emulator.server import EmulatorServer
from syncd.state import migrate
from syncd.state.store import StateStore
from tests.helpers.e2e import crm_by_key, run_syncd, write_config
from tests.helpers.orders import create_orders, order

NOTIFY = '[[notify]]\nname = "ops"\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"'


def previous_revision() -> str:
    """The newest revision's parent: the head of the release before this one."""
    config = Config()
    config.set_main_option("script_location", str(migrate.script_location()))
    script = ScriptDirectory.from_config(config)
    head = script.get_revision(script.get_current_head())
    assert head is not None and isinstance(head.down_revision, str), "no previous revision"
    return head.down_revision


def stamp(engine: Engine, when: datetime) -> object:
    """A timestamp as the old release stored it: naive UTC text on SQLite, timestamptz else."""
    if engine.dialect.name == "sqlite":
        return when.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return when


def fill_like_the_previous_release(engine: Engine, now: datetime) -> None:
    hour_ago, earlier = (
        stamp(engine, now - timedelta(hours=1)),
        stamp(engine, now - timedelta(hours=2)),
    )
    statements = [
        (
            "INSERT INTO syncd_runs (pipeline, kind, status, host, started_at, finished_at, sent,"
            " confirmed, rejected, retried, stale, credits, error) VALUES ('orders', 'realtime',"
            " 'succeeded', 'old-host:1', :earlier, :hour_ago, 40, 39, 1, 0, 0, 4, NULL)"
        ),
        (
            "INSERT INTO syncd_credit_ledger (at, kind, calls, credits)"
            " VALUES (:hour_ago, 'insert', 1, 4), (:hour_ago, 'org', 1, 1)"
        ),
        (
            "INSERT INTO syncd_buffer (pipeline, key, first_seen_at, last_seen_at, attempts,"
            " not_before) VALUES ('orders', '77', :hour_ago, :hour_ago, 0, NULL)"
        ),
        (
            "INSERT INTO syncd_rejects (pipeline, key, code, field, message, content_hash,"
            " first_rejected_at, last_rejected_at, attempts) VALUES ('orders', '901',"
            " 'INVALID_DATA', 'Customer_Email', 'invalid email', 'feed', :earlier, :hour_ago, 1)"
        ),
        (
            "INSERT INTO syncd_bulk_jobs (pipeline, run_id, state, job_id, file_path, rows,"
            " manifest, created_at, updated_at, error) VALUES ('orders', 1, 'APPLIED',"
            " '5725767000000999001', '/tmp/gone.zip', 40, '{}', :earlier, :hour_ago, NULL)"
        ),
        (
            "INSERT INTO syncd_identities (pipeline, key, record_id, seen_at, confirmed_at,"
            " content_hash) VALUES ('orders', '900', '5725767000000123456', :earlier, :hour_ago,"
            " 'abc')"
        ),
        (
            "INSERT INTO syncd_alerts (target, condition, started_at, summary)"
            " VALUES ('ops', 'rejects:orders', :hour_ago, '150 rows rejected')"
        ),
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), {"hour_ago": hour_ago, "earlier": earlier})


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return str(request.getfixturevalue("pg_url"))


def test_the_readme_upgrade_keeps_what_the_previous_release_stored(
    tmp_path: Path, state_url: str
) -> None:
    old = previous_revision()
    engine = create_engine(state_url)
    migrate.upgrade(engine, old)  # Alembic, as the previous release ran it
    assert migrate.current_revision(engine) == old
    fill_like_the_previous_release(engine, datetime.now(UTC))
    engine.dispose()

    legacy = f"sqlite:///{tmp_path}/legacy.db"
    create_orders(legacy, [order(i) for i in (1, 2, 3)]).dispose()
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path, legacy, emulator.base_url, state_url=state_url, extra=NOTIFY
        )
        upgraded = run_syncd(config, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        head = migrate.head_revision()
        assert f"upgraded: {old} -> {head}" in upgraded.stdout

        status = run_syncd(config, "status", "--json")
        assert status.returncode == 0, status.stderr
        data = json.loads(status.stdout)
        (orders,) = data["pipelines"]
        assert (orders["buffered"], orders["rejects"], orders["pending"]) == (1, 1, 3)
        assert [(r["kind"], r["sent"], r["confirmed"]) for r in orders["last_runs"]] == [
            ("realtime", 40, 39)
        ]
        assert data["credits"]["spent_24h"] == 5
        assert data["credits"]["calls_24h"]["insert"] == {"calls": 1, "credits": 4}
        assert data["notify"][0]["active"] == ["rejects:orders"]

        lookup = run_syncd(config, "lookup", "900", "--json")
        assert lookup.returncode == 0, lookup.stderr
        assert json.loads(lookup.stdout)["identity"]["record_id"] == "5725767000000123456"

        # And syncd works on it: the initial sync sends the legacy rows and records its run.
        synced = run_syncd(config, "initial-sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        assert set(crm_by_key(emulator.base_url)) == {"1", "2", "3"}

    state = StateStore.open(state_url, upgrade=False)
    try:
        assert state.revision() == head
        runs = state.last_runs("orders", 10)
        assert sorted((r.kind, r.status) for r in runs) == [
            ("initial", "succeeded"),
            ("realtime", "succeeded"),
        ]
        assert state.identity("orders", "900") is not None
        assert list(state.alerts_active("ops")) == ["rejects:orders"]
        entries = state.journal_entries("orders")
        assert [(e.job_id, e.state) for e in entries] == [("5725767000000999001", "APPLIED")]
    finally:
        state.close()
