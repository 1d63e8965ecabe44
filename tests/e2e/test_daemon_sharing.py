"""Several pipelines, several daemons: two hosts sharing a PostgreSQL state store split the
pipelines between them (one lease each), `status` shows who runs which, and when one host
dies the other takes its pipeline over."""

from __future__ import annotations

from pathlib import Path

from syncd.emulator.admin import EmulatorAdmin
from syncd.emulator.server import EmulatorServer
from syncd.state.store import StateStore
from tests.helpers.daemon import SyncdProcess, wait_until
from tests.helpers.e2e import FIELD_LINES, run_syncd, write_config
from tests.helpers.orders import add_orders, create_orders, order, pending_keys

TIMING = 'poll_interval = "1s"\nmax_delay = "1s"'
SECOND = f"""
[[pipelines]]
name = "orders_b"
table = "orders_b"
key = "id"
flag = "sync"
module = "Orders"
unique_field = "parent_id"
{TIMING}

[pipelines.fields]
{FIELD_LINES}
"""
PIPELINES = ("orders", "orders_b")


def test_two_daemons_split_two_pipelines_and_the_survivor_takes_both(
    tmp_path: Path, pg_url: str
) -> None:
    """The first daemon takes both leases, gives one back when a second daemon appears, and
    each then runs one pipeline (status says which); after kill -9 the survivor runs both."""
    legacy_url = f"sqlite:///{tmp_path}/legacy.db"
    legacy = create_orders(legacy_url, (order(i) for i in range(1, 11)))
    create_orders(legacy_url, (order(i) for i in range(1001, 1011)), name="orders_b")
    state = StateStore.open(pg_url)
    with EmulatorServer() as emulator:
        config = write_config(
            tmp_path,
            legacy_url,
            emulator.base_url,
            state_url=pg_url,
            pipeline=TIMING,
            extra=SECOND,
        )
        first = SyncdProcess(config, tmp_path / "first.log").start()
        second = SyncdProcess(config, tmp_path / "second.log")
        try:
            first.wait_for("lease_acquired", count=2)
            second.start()
            second.wait_for("lease_acquired", timeout=15)
            given = first.wait_for("lease_given_back")
            holders = wait_until(lambda: _holders(state), 5, "both lease records")
            status = run_syncd(config, "status")
            add_orders(legacy, (order(i) for i in range(11, 31)))
            add_orders(legacy, (order(i) for i in range(1011, 1031)), name="orders_b")
            wait_until(
                lambda: not pending_keys(legacy) and not pending_keys(legacy, "orders_b"),
                15,
                "both tables synced",
            )
            split_acquired = (
                len(first.events("lease_acquired")),
                len(second.events("lease_acquired")),
            )

            first.kill()
            second.wait_for("lease_acquired", count=2, timeout=25)
            add_orders(legacy, (order(i) for i in range(31, 41)))
            wait_until(lambda: not pending_keys(legacy), 15, "orders synced by the survivor")
            survivor = _holders(state)
            assert second.terminate() == 0
            records = EmulatorAdmin(emulator.base_url).records("Orders")
        finally:
            first.kill()
            second.kill()
            state.close()
    legacy.dispose()

    assert sorted(holders.values()) == sorted([first.host_id, second.host_id])
    assert holders[given[0]["pipeline"]] == second.host_id
    assert split_acquired == (2, 1), "a daemon took a lease beyond its share"
    for pipeline, host in holders.items():
        assert f"daemon {host}: runs {pipeline}" in status.stdout, status.stdout
        assert f"pipeline {pipeline} (realtime)" in status.stdout
    assert survivor == dict.fromkeys(PIPELINES, second.host_id)
    assert len(records) == 70 and len({r["parent_id"] for r in records}) == 70


def _holders(state: StateStore) -> dict[str, str]:
    found = {p: state.lease_holder(p) for p in PIPELINES}
    return {p: h.holder for p, h in found.items() if h is not None} if all(found.values()) else {}
