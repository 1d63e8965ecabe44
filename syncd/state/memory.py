"""syncd's state held in memory (implements ``ports.EngineState``, ``CreditLedger`` and
``TokenCache``).

It keeps the promises of ``syncd.state.store.StateStore`` (the same contract tests run against
both: ``tests/contract/test_state_contract.py``) so the engine can be run and read without a
database. One process only: it is gone when the process is, so it suits tests, the demo and
tools, never a daemon that must survive a restart. Every method takes the lock: the CRM client
records credits from its own threads.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from syncd.model import Backoff, Identity, JobState, Reject, RunCounts
from syncd.ports import CachedToken, OpenJob

T = TypeVar("T")

OPEN_STATES = frozenset({JobState.PREPARED, JobState.SENDING, JobState.CREATED})


@dataclass
class _Entry:
    """A bulk-job journal entry."""

    pipeline: str
    run_id: int | None
    state: JobState
    job_id: str | None
    file_path: str
    manifest: dict[str, str]
    updated_at: datetime
    error: str | None = None


@dataclass
class _Buffered:
    first_seen_at: datetime
    attempts: int = 0
    not_before: datetime | None = None


@dataclass
class _Run:
    pipeline: str
    kind: str
    host: str
    started_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    counts: RunCounts = dataclasses.field(default_factory=RunCounts)
    error: str | None = None


class MemoryState:
    """Journal, buffer, rejects, identities, unconfirmed counts, backoffs, runs, credits and
    tokens, each a dict keyed as its table is."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entry_ids = itertools.count(1)
        self._run_ids = itertools.count(1)
        self._journal: dict[int, _Entry] = {}
        self._buffer: dict[tuple[str, str], _Buffered] = {}
        self._rejects: dict[tuple[str, str], Reject] = {}
        self._identities: dict[tuple[str, str], Identity] = {}
        self._unconfirmed: dict[tuple[str, str], tuple[str, int]] = {}  # -> (hash, times)
        self._backoffs: dict[tuple[str, str], Backoff] = {}
        self._runs: dict[int, _Run] = {}
        self._ledger: list[tuple[datetime, str, int]] = []  # (at, kind, credits)
        self._org: tuple[int, datetime] | None = None
        self._tokens: dict[str, CachedToken] = {}
        self._mints: list[tuple[str, datetime]] = []
        self._token_lock = threading.Lock()

    # -- bulk-job journal -----------------------------------------------------------------------

    def journal_prepare(
        self,
        pipeline: str,
        run_id: int | None,
        file_path: str,
        manifest: Mapping[str, str],
        now: datetime,
    ) -> int:
        with self._lock:
            entry_id = next(self._entry_ids)
            entry = _Entry(
                pipeline, run_id, JobState.PREPARED, None, file_path, dict(manifest), now
            )
            self._journal[entry_id] = entry
            return entry_id

    def journal_sending(self, entry_id: int, now: datetime) -> None:
        with self._entry(entry_id, now) as entry:
            entry.state = JobState.SENDING

    def journal_created(self, entry_id: int, job_id: str, now: datetime) -> None:
        with self._entry(entry_id, now) as entry:
            entry.state, entry.job_id = JobState.CREATED, job_id

    def journal_finish(
        self, entry_id: int, state: JobState, now: datetime, error: str | None = None
    ) -> None:
        with self._entry(entry_id, now) as entry:
            entry.state, entry.error = state, error

    @contextmanager
    def _entry(self, entry_id: int, now: datetime) -> Iterator[_Entry]:
        """The entry to change (an unknown id changes a throw-away copy: nothing, as in SQL)."""
        with self._lock:
            entry = self._journal.get(
                entry_id, _Entry("", None, JobState.FAILED, None, "", {}, now)
            )
            yield entry
            entry.updated_at = now

    def journal_open(self, pipeline: str) -> list[OpenJob]:
        """Entries not yet applied or failed, oldest first."""
        with self._lock:
            return [
                OpenJob(i, e.state, e.job_id, e.file_path, dict(e.manifest))
                for i, e in sorted(self._journal.items())
                if e.pipeline == pipeline and e.state in OPEN_STATES
            ]

    def count_uncertain(self, pipeline: str, since: datetime) -> int:
        with self._lock:
            return sum(
                1
                for e in self._journal.values()
                if e.pipeline == pipeline
                and e.state is JobState.UNCERTAIN
                and e.updated_at >= since
            )

    # -- realtime buffer ------------------------------------------------------------------------

    def buffer_add(self, pipeline: str, keys: Iterable[str], now: datetime) -> None:
        """Buffer keys; a key already buffered keeps its first-seen time."""
        with self._lock:
            for key in keys:
                self._buffer.setdefault((pipeline, key), _Buffered(now))

    def _ready(self, pipeline: str, ready_at: datetime | None) -> list[tuple[str, _Buffered]]:
        return [
            (key, b)
            for (p, key), b in self._buffer.items()
            if p == pipeline
            and (ready_at is None or b.not_before is None or b.not_before <= ready_at)
        ]

    def buffer_stats(
        self, pipeline: str, ready_at: datetime | None = None
    ) -> tuple[int, datetime | None]:
        with self._lock:
            ready = self._ready(pipeline, ready_at)
            return len(ready), min((b.first_seen_at for _, b in ready), default=None)

    def buffer_keys(
        self, pipeline: str, limit: int | None = None, ready_at: datetime | None = None
    ) -> list[str]:
        """Buffered keys, oldest first, then by key (as text)."""
        with self._lock:
            ready = sorted(
                self._ready(pipeline, ready_at), key=lambda kb: (kb[1].first_seen_at, kb[0])
            )
            return [key for key, _ in ready][:limit]

    def buffer_retry_later(
        self, pipeline: str, keys: Sequence[str], later: Callable[[int], datetime]
    ) -> None:
        with self._lock:
            for key in keys:
                if (b := self._buffer.get((pipeline, key))) is not None:
                    b.attempts += 1
                    b.not_before = later(b.attempts)

    def buffer_remove(self, pipeline: str, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._buffer.pop((pipeline, key), None)

    # -- rejects --------------------------------------------------------------------------------

    def record_rejects(self, items: Sequence[Reject]) -> None:
        """A key rejected again gets the new reason and one more attempt."""
        with self._lock:
            for item in items:
                known = self._rejects.get((item.pipeline, item.key))
                attempts = known.attempts + 1 if known else 1
                self._rejects[(item.pipeline, item.key)] = dataclasses.replace(
                    item, attempts=attempts
                )

    def reject_hashes(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {
                k: r.content_hash
                for k in keys
                if (r := self._rejects.get((pipeline, k))) is not None
            }

    def get_reject(self, pipeline: str, key: str) -> Reject | None:
        with self._lock:
            return self._rejects.get((pipeline, key))

    def release_rejects(self, pipeline: str, keys: Sequence[str] | None = None) -> int:
        with self._lock:
            if keys is None:
                keys = [k for p, k in self._rejects if p == pipeline]
            gone = [k for k in set(keys) if self._rejects.pop((pipeline, k), None) is not None]
            return len(gone)

    def count_rejects(self, pipeline: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self._rejects if p == pipeline)

    def reject_key_pages(self, pipeline: str, size: int) -> Iterator[list[str]]:
        """Every reject key in key order, ``size`` at a time (each page read when asked)."""
        after = ""
        while True:
            with self._lock:
                keys = sorted(k for p, k in self._rejects if p == pipeline and k > after)[:size]
            if not keys:
                return
            yield keys
            after = keys[-1]

    # -- the record-identity map ------------------------------------------------------------------

    def record_identities(self, pipeline: str, items: Sequence[Identity]) -> None:
        """A key given a record another key held takes it over; ``None`` confirmation fields
        keep what was known."""
        with self._lock:
            for item in items:  # first every other holder goes, as in one DELETE per chunk
                for (p, key), known in list(self._identities.items()):
                    if p == pipeline and known.record_id == item.record_id and key != item.key:
                        del self._identities[(p, key)]
            for item in items:
                before = self._identities.get((pipeline, item.key))
                self._identities[(pipeline, item.key)] = Identity(
                    item.key,
                    item.record_id,
                    item.seen_at,
                    _known(item.confirmed_at, before.confirmed_at if before else None),
                    _known(item.content_hash, before.content_hash if before else None),
                )

    def record_ids(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]:
        with self._lock:
            return {
                k: i.record_id
                for k in keys
                if (i := self._identities.get((pipeline, k))) is not None
            }

    def record_owners(self, pipeline: str, record_ids: Sequence[str]) -> dict[str, str]:
        wanted = set(record_ids)
        with self._lock:
            return {
                i.record_id: i.key
                for (p, _), i in self._identities.items()
                if p == pipeline and i.record_id in wanted
            }

    def identity(self, pipeline: str, key: str) -> Identity | None:
        with self._lock:
            return self._identities.get((pipeline, key))

    def forget_identities(self, pipeline: str, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._identities.pop((pipeline, key), None)

    # -- rows that did not stay confirmed -------------------------------------------------------

    def note_unconfirmed(
        self, pipeline: str, items: Sequence[tuple[str, str, str]], now: datetime
    ) -> dict[str, int]:
        """One more per (key, sent hash, columns); other content starts over at 1."""
        counts: dict[str, int] = {}
        with self._lock:
            for key, sent_hash, _columns in items:
                before = self._unconfirmed.get((pipeline, key))
                counts[key] = before[1] + 1 if before and before[0] == sent_hash else 1
                self._unconfirmed[(pipeline, key)] = (sent_hash, counts[key])
        return counts

    def clear_unconfirmed(self, pipeline: str, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._unconfirmed.pop((pipeline, key), None)

    # -- backoffs ---------------------------------------------------------------------------------

    def backoff(self, pipeline: str, scope: str) -> Backoff | None:
        with self._lock:
            return self._backoffs.get((pipeline, scope))

    def backoffs(self, pipeline: str, scopes: Sequence[str]) -> dict[str, Backoff]:
        """The backoffs of those of ``scopes`` that have one."""
        with self._lock:
            return {s: b for s in scopes if (b := self._backoffs.get((pipeline, s))) is not None}

    def backoff_failed(
        self, pipeline: str, scope: str, failures: int, next_at: datetime, error: str, now: datetime
    ) -> None:
        with self._lock:
            self._backoffs[(pipeline, scope)] = Backoff(failures, next_at, error)

    def backoff_clear(self, pipeline: str, scope: str) -> None:
        with self._lock:
            self._backoffs.pop((pipeline, scope), None)

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, pipeline: str, kind: str, host: str, now: datetime) -> int:
        with self._lock:
            run_id = next(self._run_ids)
            self._runs[run_id] = _Run(pipeline, kind, host, now)
            return run_id

    def finish_run(
        self, run_id: int, status: str, counts: RunCounts, now: datetime, error: str | None = None
    ) -> None:
        with self._lock:
            if (run := self._runs.get(run_id)) is not None:
                run.status, run.finished_at, run.counts, run.error = status, now, counts, error

    def has_succeeded(self, pipeline: str, kind: str) -> bool:
        with self._lock:
            return any(
                r.pipeline == pipeline and r.kind == kind and r.status == "succeeded"
                for r in self._runs.values()
            )

    # -- credits (ports.CreditLedger) -------------------------------------------------------------

    def record_credits(self, kind: str, credits: int, at: datetime, calls: int = 1) -> None:
        with self._lock:
            self._ledger.append((at, kind, credits))

    def credits_spent_since(self, since: datetime) -> int:
        with self._lock:
            return sum(credits for at, _, credits in self._ledger if at >= since)

    def record_org_remaining(self, remaining: int, at: datetime) -> None:
        with self._lock:
            self._org = (remaining, at)

    def org_remaining(self) -> tuple[int, datetime] | None:
        with self._lock:
            return self._org

    # -- tokens (ports.TokenCache) ----------------------------------------------------------------

    def load_token(self, cache_key: str) -> CachedToken | None:
        with self._lock:
            return self._tokens.get(cache_key)

    def save_token(self, cache_key: str, token: CachedToken, minted_at: datetime) -> None:
        with self._lock:
            self._tokens[cache_key] = dataclasses.replace(token, minted_at=minted_at)
            self._mints.append((cache_key, minted_at))

    def mints_since(self, cache_key: str, since: datetime) -> int:
        with self._lock:
            return sum(1 for key, at in self._mints if key == cache_key and at >= since)

    @contextmanager
    def token_lock(self, cache_key: str) -> Iterator[None]:
        """One lock for every key: refreshes are rare, and this store serves one process."""
        with self._token_lock:
            yield


def _known(new: T | None, before: T | None) -> T | None:
    """``coalesce(new, before)``: an identity recorded without it keeps what was known."""
    return before if new is None else new
