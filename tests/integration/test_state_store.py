"""StateStore behaviour on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from syncd.model import JobState, Reject, RunCounts
from syncd.ports import CachedToken
from syncd.state.store import StateStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    opened = StateStore.open(str(request.getfixturevalue(fixture)))
    yield opened
    opened.close()


def test_buffer_collapses_repeated_keys_and_keeps_first_seen(store: StateStore) -> None:
    """A key buffered twice is one entry whose age counts from the first sighting."""
    store.buffer_add("orders", ["1", "2"], T0)
    store.buffer_add("orders", ["2", "3"], T0 + timedelta(minutes=5))
    count, oldest = store.buffer_stats("orders")
    assert count == 3
    assert oldest == T0
    assert store.buffer_keys("orders") == ["1", "2", "3"]
    store.buffer_remove("orders", ["1", "2"])
    assert store.buffer_stats("orders") == (1, T0 + timedelta(minutes=5))


def test_credit_ledger_sums_a_rolling_window(store: StateStore) -> None:
    """Credits older than the window start do not count."""
    store.record_credits("upsert", 10, T0 - timedelta(hours=25))
    store.record_credits("bulk_job", 500, T0 - timedelta(hours=1))
    store.record_credits("upsert", 3, T0)
    assert store.credits_spent_since(T0 - timedelta(hours=24)) == 503
    assert store.calls_since(T0 - timedelta(hours=24)) == {"bulk_job": (1, 500), "upsert": (1, 3)}


def test_token_cache_round_trip_and_mint_count(store: StateStore) -> None:
    """A saved token is loaded back intact and every save counts as one mint."""
    token = CachedToken("1000.abc", "https://www.zohoapis.eu", T0 + timedelta(hours=1))
    store.save_token("k", token, T0)
    store.save_token("k", token, T0 + timedelta(minutes=1))
    # Loaded back with the time of the latest mint (its lifetime sets the refresh margin).
    assert store.load_token("k") == dataclasses.replace(token, minted_at=T0 + timedelta(minutes=1))
    assert store.mints_since("k", T0) == 2
    assert store.mints_since("k", T0 + timedelta(seconds=30)) == 1
    with store.token_lock("k"):
        assert store.load_token("other") is None


def test_journal_tracks_jobs_until_applied(store: StateStore) -> None:
    """Journal entries stay open until applied and keep their manifest."""
    entry = store.journal_prepare("orders", None, "/tmp/x.zip", {"1": "h1", "2": "h2"}, T0)
    store.journal_created(entry, "job-42", T0)
    [open_entry] = store.journal_open("orders")
    assert (open_entry.job_id, open_entry.state, open_entry.manifest) == (
        "job-42",
        JobState.CREATED,
        {"1": "h1", "2": "h2"},
    )
    assert store.jobs_in_flight("orders") == 1
    store.journal_finish(entry, JobState.APPLIED, T0)
    assert store.journal_open("orders") == []


def test_rejects_count_attempts_and_release(store: StateStore) -> None:
    """A key rejected twice keeps one entry with two attempts; release forgets it."""
    first = Reject("orders", "7", "INVALID_DATA", "Amount", "invalid data", "h1", T0)
    again = Reject("orders", "7", "MANDATORY_NOT_FOUND", "Name", "required", "h2", T0)
    store.record_rejects([first])
    store.record_rejects([again])
    found = store.get_reject("orders", "7")
    assert found is not None and (found.code, found.attempts, found.content_hash) == (
        "MANDATORY_NOT_FOUND",
        2,
        "h2",
    )
    assert store.reject_hashes("orders", ["7", "8"]) == {"7": "h2"}
    assert store.release_rejects("orders", ["7"]) == 1
    assert store.count_rejects("orders") == 0


def test_runs_record_counts_and_order(store: StateStore) -> None:
    """Finished runs keep their counts and are listed newest first."""
    first = store.start_run("orders", "initial", "host-a", T0)
    store.finish_run(first, "succeeded", RunCounts(sent=5, confirmed=5, credits=500), T0)
    second = store.start_run("orders", "realtime", "host-a", T0 + timedelta(minutes=1))
    runs = store.last_runs("orders")
    assert [r.id for r in runs] == [second, first]
    assert runs[1].counts.confirmed == 5 and runs[1].status == "succeeded"
    assert store.has_succeeded("orders", "initial")
    assert not store.has_succeeded("orders", "interval")


def test_a_new_lease_holder_closes_runs_left_running_by_a_dead_one(store: StateStore) -> None:
    """Runs a killed worker left 'running' show as interrupted once another takes over."""
    dead = store.start_run("orders", "realtime", "host-a:1", T0)
    mine = store.start_run("orders", "realtime", "host-b:2", T0)
    store.record_lease("orders", "host-b:2", T0 + timedelta(minutes=1))
    status = {r.id: r.status for r in store.last_runs("orders")}
    assert status == {dead: "interrupted", mine: "running"}


def test_identities_are_written_as_the_dialect_stores_timestamps(store: StateStore) -> None:
    """Identities go in as one JSON parameter per statement (a VALUES list on SQLite), their
    timestamps bound once: the timestamps must land exactly as SQLAlchemy itself writes them
    (on SQLite: text with microseconds, which orders correctly), a record moves to its new
    key, and a second write of a key keeps what was confirmed when it brings nothing new."""
    from sqlalchemy import select

    from syncd.model import Identity
    from syncd.state.tables import identities

    whole = datetime(2026, 1, 1, tzinfo=UTC)
    later = whole + timedelta(microseconds=1)
    store.record_identities(
        "orders",
        [Identity(str(k), f"r{k}", whole, whole, f"h{k}") for k in range(1, 6001)],
    )
    store.record_identities("orders", [Identity("1", "r1", later, None, None)])
    store.record_identities("orders", [Identity("7001", "r2", later, later, "h7001")])
    assert store.record_ids("orders", ["1", "2", "7001"]) == {"1": "r1", "7001": "r2"}
    assert store.count_identities("orders") == 6000
    with store.engine.connect() as conn:
        rows = {
            key: (seen, confirmed, fingerprint)
            for key, seen, confirmed, fingerprint in conn.execute(
                select(
                    identities.c.key,
                    identities.c.seen_at,
                    identities.c.confirmed_at,
                    identities.c.content_hash,
                )
            )
        }
        newer = conn.execute(select(identities.c.key).where(identities.c.seen_at > whole)).scalars()
        assert sorted(newer) == ["1", "7001"]
        if store.engine.dialect.name == "sqlite":
            raw = conn.exec_driver_sql(
                "SELECT seen_at FROM syncd_identities WHERE key = '3'"
            ).scalar_one()
            assert raw == "2026-01-01 00:00:00.000000"
    assert rows["1"] == (later, whole, "h1")  # confirmation kept
    assert rows["3"] == (whole, whole, "h3")


def test_a_refused_identity_write_changes_nothing(store: StateStore) -> None:
    """One write is one transaction: when its upsert is refused (two keys given one record),
    the other holders it had forgotten are back and none of its rows is written. On SQLite its
    statements ran each in a transaction of their own, so the forgetting stayed."""
    from syncd.errors import StateError
    from syncd.model import Identity

    store.record_identities("orders", [Identity("1", "r1", T0), Identity("5", "r5", T0)])
    refused = [Identity("2", "r2", T0), Identity("3", "r1", T0), Identity("4", "r1", T0)]
    with pytest.raises(StateError):
        store.record_identities("orders", refused)
    assert store.record_owners("orders", ["r1", "r2", "r5"]) == {"r1": "1", "r5": "5"}
    assert store.count_identities("orders") == 2
