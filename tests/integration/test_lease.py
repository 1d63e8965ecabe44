"""The one-active-worker lease on real state stores: SQLite file lock, PostgreSQL advisory lock."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from syncd.state.lease import AdvisoryLease, FileLease, Lease, lease_for
from syncd.state.store import StateStore


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """A migrated state store of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = str(request.getfixturevalue("pg_url"))
    state = StateStore.open(url)
    yield state
    state.close()


def on_thread(call: object) -> object:
    """Run ``call`` on a thread of its own (the daemon's jobs run on pool threads)."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()))  # type: ignore[operator]
    thread.start()
    thread.join(10)
    return result[0]


def test_lease_kind_follows_the_state_store(store: StateStore) -> None:
    """SQLite gets a file lock next to the database, PostgreSQL an advisory lock."""
    lease = lease_for(store, "orders")
    assert isinstance(lease, FileLease if store.is_sqlite else AdvisoryLease)


def test_only_one_holder_until_it_releases(store: StateStore) -> None:
    """A second lease on the same pipeline waits; after release it can take over."""
    first, second = lease_for(store, "orders"), lease_for(store, "orders")
    other = lease_for(store, "invoices")
    try:
        assert first.try_acquire() and first.held
        assert not second.try_acquire() and not second.held
        assert other.try_acquire(), "pipelines have leases of their own"
        assert first.verify()
        first.release()
        assert not first.held
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        for lease in (first, second, other):
            lease.release()


def test_taken_on_one_thread_held_and_released_from_any(store: StateStore) -> None:
    """The lease belongs to the process: acquired by the lease job, seen by every tick thread."""
    lease: Lease = lease_for(store, "orders")
    contender = lease_for(store, "orders")
    try:
        assert on_thread(lease.try_acquire) is True
        assert on_thread(lambda: lease.held) is True
        assert lease.held and lease.verify()
        assert not contender.try_acquire()
        on_thread(lease.release)
        assert not lease.held
        assert contender.try_acquire(), "a release on another thread left the lock held"
    finally:
        lease.release()
        contender.release()


HOLDER = """
import sys, time
from syncd.state.store import StateStore
from syncd.state.lease import lease_for
lease = lease_for(StateStore.open(sys.argv[1]), "orders")
assert lease.try_acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_killed_holder_loses_the_lease_at_once(store: StateStore) -> None:
    """kill -9 of the holding process frees the lease for the standby without any timeout."""
    url = store.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url], stdout=subprocess.PIPE, text=True
    )
    standby = lease_for(store, "orders")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not standby.try_acquire()
        holder.kill()
        holder.wait(10)
        assert standby.try_acquire()
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()  # type: ignore[union-attr]
        standby.release()


def test_advisory_lease_lost_with_its_connection(pg_url: str) -> None:
    """A dropped PostgreSQL session loses the lease: verify() says so and another may take it."""
    store = StateStore.open(pg_url)
    lease, standby = lease_for(store, "orders"), lease_for(store, "orders")
    admin = create_engine(pg_url, poolclass=NullPool)
    try:
        assert lease.try_acquire()
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            )
            conn.commit()
        assert not lease.verify()
        assert not lease.held
        assert standby.try_acquire()
    finally:
        lease.release()
        standby.release()
        admin.dispose()
        store.close()
