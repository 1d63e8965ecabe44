"""The ``EngineState`` port's contract (with the credit ledger and token cache the CRM client
shares with it): every implementation passes every test here.

Run against the in-memory state (``syncd.state.memory``) and the state store on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from syncd.model import Identity, JobState, Reject, RunCounts
from syncd.ports import CachedToken, CreditLedger, EngineState, TokenCache
from syncd.state.memory import MemoryState
from syncd.state.store import StateStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class State(EngineState, CreditLedger, TokenCache, Protocol):
    """What both implementations offer beyond the engine's port, for these tests to look."""

    def get_reject(self, pipeline: str, key: str) -> Reject | None: ...

    def identity(self, pipeline: str, key: str) -> Identity | None: ...

    def has_succeeded(self, pipeline: str, kind: str) -> bool: ...


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def state(request: pytest.FixtureRequest) -> Iterator[State]:
    if request.param == "memory":
        yield MemoryState()
        return
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    store = StateStore.open(str(request.getfixturevalue(fixture)))
    yield store
    store.close()


def reject(key: str, code: str = "INVALID_DATA", content: str = "h1", at: datetime = T0) -> Reject:
    return Reject("orders", key, code, "Amount", f"{code} on Amount", content, at)


# -- bulk-job journal ---------------------------------------------------------------------------


def test_journal_entry_stays_open_until_applied(state: State) -> None:
    """An entry is open from PREPARED through SENDING and CREATED, with its manifest and job id."""
    entry = state.journal_prepare("orders", None, "/tmp/a.zip", {"1": "h1", "2": "h2"}, T0)
    [prepared] = state.journal_open("orders")
    assert (prepared.id, prepared.state, prepared.job_id) == (entry, JobState.PREPARED, None)
    assert (prepared.file_path, prepared.manifest) == ("/tmp/a.zip", {"1": "h1", "2": "h2"})
    state.journal_sending(entry, T0)
    assert [e.state for e in state.journal_open("orders")] == [JobState.SENDING]
    state.journal_created(entry, "job-42", T0)
    [created] = state.journal_open("orders")
    assert (created.state, created.job_id) == (JobState.CREATED, "job-42")
    state.journal_finish(entry, JobState.APPLIED, T0)
    assert state.journal_open("orders") == []


def test_journal_lists_a_pipelines_open_entries_oldest_first(state: State) -> None:
    """Only the pipeline's own entries, in the order they were made; closed ones are left out."""
    first = state.journal_prepare("orders", None, "/tmp/1.zip", {"1": "h"}, T0)
    other = state.journal_prepare("invoices", None, "/tmp/2.zip", {"1": "h"}, T0)
    failed = state.journal_prepare("orders", None, "/tmp/3.zip", {"2": "h"}, T0)
    last = state.journal_prepare("orders", None, "/tmp/4.zip", {"3": "h"}, T0)
    state.journal_finish(failed, JobState.FAILED, T0, "Zoho reported the job FAILED")
    assert [e.id for e in state.journal_open("orders")] == [first, last]
    assert [e.id for e in state.journal_open("invoices")] == [other]


def test_uncertain_jobs_are_counted_from_when_they_became_uncertain(state: State) -> None:
    """An entry closed UNCERTAIN counts for its pipeline from the time it was closed."""
    entry = state.journal_prepare("orders", None, "/tmp/a.zip", {"1": "h"}, T0)
    state.journal_sending(entry, T0)
    state.journal_finish(entry, JobState.UNCERTAIN, T0 + MINUTE, "the reply was lost")
    assert state.journal_open("orders") == []
    assert state.count_uncertain("orders", T0 + MINUTE) == 1
    assert state.count_uncertain("orders", T0 + 2 * MINUTE) == 0
    assert state.count_uncertain("invoices", T0) == 0


# -- realtime buffer ------------------------------------------------------------------------


def test_buffer_keeps_each_keys_first_sighting(state: State) -> None:
    """A key buffered twice is one entry whose age counts from the first sighting."""
    state.buffer_add("orders", ["2"], T0)
    state.buffer_add("orders", ["3", "2", "1"], T0 + MINUTE)
    state.buffer_add("invoices", ["9"], T0 - MINUTE)
    assert state.buffer_stats("orders") == (3, T0)
    assert state.buffer_keys("orders") == ["2", "1", "3"]  # oldest first, then by key
    assert state.buffer_keys("orders", limit=2) == ["2", "1"]
    state.buffer_remove("orders", ["1", "3"])
    assert state.buffer_stats("orders") == (1, T0)
    state.buffer_remove("orders", ["2"])
    assert state.buffer_stats("nothing") == (0, None)


def test_buffer_retry_later_holds_a_key_back_until_it_is_due(state: State) -> None:
    """Each transient failure counts; a key is not ready before the time ``later`` gave it."""
    state.buffer_add("orders", ["1", "2"], T0)
    asked: list[int] = []

    def later(attempts: int) -> datetime:
        asked.append(attempts)
        return T0 + attempts * MINUTE

    state.buffer_retry_later("orders", ["1", "99"], later)
    state.buffer_retry_later("orders", ["1"], later)
    assert asked == [1, 2]  # keys not buffered are not counted
    assert state.buffer_keys("orders", ready_at=T0 + MINUTE) == ["2"]
    assert state.buffer_stats("orders", ready_at=T0 + MINUTE) == (1, T0)
    assert state.buffer_keys("orders", ready_at=T0 + 2 * MINUTE) == ["1", "2"]
    assert state.buffer_keys("orders") == ["1", "2"]  # without ready_at: every key


# -- rejects --------------------------------------------------------------------------------


def test_a_key_rejected_again_keeps_one_reject_with_the_new_reason(state: State) -> None:
    """Attempts count up; the reason and the content hash are the latest ones."""
    state.record_rejects([reject("7", "INVALID_DATA", "h1")])
    state.record_rejects([reject("7", "MANDATORY_NOT_FOUND", "h2", T0 + MINUTE)])
    found = state.get_reject("orders", "7")
    assert found is not None
    assert (found.code, found.content_hash, found.attempts) == ("MANDATORY_NOT_FOUND", "h2", 2)
    assert found.rejected_at == T0 + MINUTE
    assert state.count_rejects("orders") == 1


def test_reject_hashes_name_only_rejected_keys(state: State) -> None:
    """The hash of the refused version, for the asked keys that are rejects of this pipeline."""
    assert state.reject_hashes("orders", ["1"]) == {}
    state.record_rejects([reject("1", content="h1"), reject("2", content="h2")])
    assert state.reject_hashes("orders", ["1", "3"]) == {"1": "h1"}
    assert state.reject_hashes("invoices", ["1"]) == {}


def test_release_rejects_forgets_the_given_keys_or_all(state: State) -> None:
    """Released keys are no longer rejects; the count says how many were."""
    state.record_rejects([reject("1"), reject("2"), reject("3")])
    assert state.release_rejects("orders", ["1", "9"]) == 1
    assert state.count_rejects("orders") == 2
    assert state.release_rejects("orders") == 2
    assert state.count_rejects("orders") == 0


def test_reject_key_pages_cover_every_reject_in_key_order(state: State) -> None:
    """Pages of ``size`` keys, in key (text) order, each key once."""
    state.record_rejects([reject(k) for k in ["3", "10", "1", "2", "20"]])
    assert list(state.reject_key_pages("orders", 2)) == [["1", "10"], ["2", "20"], ["3"]]
    assert list(state.reject_key_pages("invoices", 2)) == []


# -- the record-identity map ----------------------------------------------------------------


def test_identity_map_answers_both_ways(state: State) -> None:
    """Key -> record id and record id -> key, for what the map knows."""
    state.record_identities("orders", [Identity("1", "r1", T0), Identity("2", "r2", T0, T0, "h2")])
    assert state.record_ids("orders", ["1", "2", "3"]) == {"1": "r1", "2": "r2"}
    assert state.record_owners("orders", ["r2", "r9"]) == {"r2": "2"}
    assert state.record_ids("invoices", ["1"]) == {}
    state.forget_identities("orders", ["1"])
    assert state.record_ids("orders", ["1", "2"]) == {"2": "r2"}


def test_a_record_given_to_another_key_leaves_its_old_holder(state: State) -> None:
    """The map never names one record twice: the new holder takes it over."""
    state.record_identities("orders", [Identity("1", "r1", T0)])
    state.record_identities("orders", [Identity("2", "r1", T0)])
    assert state.record_owners("orders", ["r1"]) == {"r1": "2"}
    assert state.record_ids("orders", ["1", "2"]) == {"2": "r1"}


def test_a_write_of_many_identities_moves_records_across_its_statements(state: State) -> None:
    """700 identities in one write (a store may split them into statements): every other one
    takes its record from a key the map knew; a third of them are not confirmed."""
    state.record_identities(
        "orders", [Identity(f"old{n}", f"r{n}", T0, T0, f"h{n}") for n in range(0, 700, 2)]
    )
    t1 = T0 + MINUTE
    confirmed = {n: t1 if n % 3 else None for n in range(700)}
    state.record_identities(
        "orders",
        [
            Identity(f"k{n}", f"r{n}", t1, confirmed[n], f"n{n}" if confirmed[n] else None)
            for n in range(700)
        ],
    )
    records = [f"r{n}" for n in range(700)]
    assert state.record_owners("orders", records) == {f"r{n}": f"k{n}" for n in range(700)}
    assert state.record_ids("orders", [f"old{n}" for n in range(0, 700, 2)]) == {}
    assert state.identity("orders", "k698") == Identity("k698", "r698", t1, t1, "n698")
    assert state.identity("orders", "k3") == Identity("k3", "r3", t1, None, None)


def test_an_identity_recorded_without_confirmation_keeps_the_last_one(state: State) -> None:
    """Confirmation time and content hash stay as known when a later record leaves them out."""
    state.record_identities("orders", [Identity("1", "r1", T0, T0, "h1")])
    state.record_identities("orders", [Identity("1", "r1", T0 + MINUTE)])
    known = state.identity("orders", "1")
    assert known == Identity("1", "r1", T0 + MINUTE, T0, "h1")


def test_records_move_between_keys_inside_one_write(state: State) -> None:
    """One write moves and swaps records between keys, with confirmed and unconfirmed rows."""
    t1 = T0 + MINUTE
    state.record_identities(
        "orders",
        [
            Identity("a", "r1", T0, T0, "ha"),
            Identity("b", "r2", T0, T0, "hb"),
            Identity("c", "r3", T0, T0, "hc"),
            Identity("d", "r4", T0, T0, "hd"),
            Identity("k", "r9", T0, T0, "hk"),  # another key, untouched
        ],
    )
    state.record_identities(
        "orders",
        [
            Identity("b", "r1", t1),  # takes a's record; b's own confirmation is kept
            Identity("a", "r5", t1, t1, "ha2"),  # a gets a new record
            Identity("c", "r4", t1),  # c and d swap: a record's confirmation is not kept
            Identity("d", "r3", t1, t1, "hd2"),
            Identity("e", "r6", T0, None, None),  # a new key, seen at another time
        ],
    )
    known = {k: state.identity("orders", k) for k in "abcdek"}
    assert known == {
        "a": Identity("a", "r5", t1, t1, "ha2"),
        "b": Identity("b", "r1", t1, T0, "hb"),
        "c": Identity("c", "r4", t1),
        "d": Identity("d", "r3", t1, t1, "hd2"),
        "e": Identity("e", "r6", T0),
        "k": Identity("k", "r9", T0, T0, "hk"),
    }
    owners = state.record_owners("orders", [f"r{n}" for n in range(1, 10)])
    assert owners == {"r1": "b", "r3": "d", "r4": "c", "r5": "a", "r6": "e", "r9": "k"}


def test_a_key_named_twice_in_one_write_ends_with_its_last_record(state: State) -> None:
    """A key named twice in one write ends with its last record, earlier confirmation kept."""
    t1, t2 = T0 + MINUTE, T0 + 2 * MINUTE
    state.record_identities(
        "orders", [Identity("c", "r3", T0, T0, "hc"), Identity("d", "r4", T0, T0, "hd")]
    )
    state.record_identities(
        "orders",
        [
            Identity("c", "r4", t1),  # c and d swap, as in any write
            Identity("d", "r3", t1),
            Identity("e", "r6", t2),  # named three times, twice with the same stamps
            Identity("e", "r5", t1, t1, "he"),
            Identity("e", "r7", t2),
        ],
    )
    known = {k: state.identity("orders", k) for k in "cde"}
    assert known == {
        "c": Identity("c", "r4", t1),
        "d": Identity("d", "r3", t1),
        "e": Identity("e", "r7", t2, t1, "he"),
    }
    assert state.record_owners("orders", ["r5", "r6", "r7"]) == {"r7": "e"}


# -- rows that did not stay confirmed ------------------------------------------------------------


def test_unconfirmed_counts_run_on_only_for_the_same_content(state: State) -> None:
    """The same content not sticking counts up; other content starts over at 1."""
    assert state.note_unconfirmed("orders", [("1", "h1", "status")], T0) == {"1": 1}
    assert state.note_unconfirmed("orders", [("1", "h1", "status"), ("2", "h", "x")], T0) == {
        "1": 2,
        "2": 1,
    }
    assert state.note_unconfirmed("orders", [("1", "h2", "status")], T0) == {"1": 1}
    state.clear_unconfirmed("orders", ["1"])
    assert state.note_unconfirmed("orders", [("1", "h2", "status")], T0) == {"1": 1}


# -- backoffs, runs, credits, tokens --------------------------------------------------------------


def test_backoff_is_kept_per_pipeline_and_scope_until_cleared(state: State) -> None:
    """The last recorded failures and next attempt of a scope; none once cleared."""
    assert state.backoff("orders", "bulk") is None
    state.backoff_failed("orders", "bulk", 1, T0 + MINUTE, "job failed", T0)
    state.backoff_failed("orders", "bulk", 2, T0 + 2 * MINUTE, "failed again", T0)
    found = state.backoff("orders", "bulk")
    assert found is not None
    assert (found.failures, found.next_at, found.last_error) == (2, T0 + 2 * MINUTE, "failed again")
    assert found.blocks(T0 + MINUTE) and not found.blocks(T0 + 2 * MINUTE)
    assert state.backoff("invoices", "bulk") is None
    assert set(state.backoffs("orders", ["bulk", "other"])) == {"bulk"}
    state.backoff_clear("orders", "bulk")
    assert state.backoff("orders", "bulk") is None


def test_a_run_counts_as_succeeded_once_finished_so(state: State) -> None:
    """Runs get distinct ids; only a run finished "succeeded" makes its kind succeeded."""
    failed = state.start_run("orders", "initial", "host:1", T0)
    succeeded = state.start_run("orders", "initial", "host:1", T0)
    assert failed != succeeded
    state.finish_run(failed, "failed", RunCounts(), T0, "boom")
    assert not state.has_succeeded("orders", "initial")
    state.finish_run(succeeded, "succeeded", RunCounts(sent=3, confirmed=3), T0)
    assert state.has_succeeded("orders", "initial")
    assert not state.has_succeeded("orders", "interval")


def test_credits_are_summed_over_a_rolling_window(state: State) -> None:
    """Credits spent at or after ``since`` count, older ones do not."""
    state.record_credits("upsert", 10, T0 - timedelta(hours=25))
    state.record_credits("bulk_job", 500, T0 - timedelta(hours=1))
    state.record_credits("upsert", 3, T0, calls=3)
    assert state.credits_spent_since(T0 - timedelta(hours=24)) == 503
    assert state.credits_spent_since(T0) == 3


def test_org_remaining_is_the_last_figure_zoho_reported(state: State) -> None:
    """None before Zoho said anything; then the latest remaining credits and when."""
    assert state.org_remaining() is None
    state.record_org_remaining(9000, T0)
    state.record_org_remaining(8500, T0 + MINUTE)
    assert state.org_remaining() == (8500, T0 + MINUTE)


def test_token_cache_round_trip_and_mint_count(state: State) -> None:
    """A saved token loads back with its mint time, and every save counts as one mint."""
    token = CachedToken("1000.abc", "https://www.zohoapis.eu", T0 + timedelta(hours=1))
    state.save_token("k", token, T0)
    state.save_token("k", token, T0 + MINUTE)
    assert state.load_token("k") == CachedToken(
        "1000.abc", "https://www.zohoapis.eu", T0 + timedelta(hours=1), T0 + MINUTE
    )
    assert state.mints_since("k", T0) == 2
    assert state.mints_since("k", T0 + timedelta(seconds=30)) == 1
    with state.token_lock("k"):
        assert state.load_token("other") is None
