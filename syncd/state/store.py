"""StateStore: every statement against syncd's own tables lives here.

Time always comes in as an argument (``now``), so callers and tests decide what "now" is.
Driver errors are translated into ``StateError`` here and never leak upwards.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock
from sqlalchemy import (
    Engine,
    String,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from syncd import jsontext
from syncd.dbretry import retried
from syncd.errors import StateError
from syncd.model import Backoff, Identity, JobState, Reject, RunCounts
from syncd.ports import CachedToken, OpenJob
from syncd.state import migrate
from syncd.state.tables import (
    alerts,
    backoffs,
    buffer,
    bulk_jobs,
    credit_ledger,
    identities,
    leases,
    org_credits,
    rejects,
    runs,
    token_mints,
    tokens,
    unconfirmed,
)

logger = logging.getLogger(__name__)

OPEN_STATES = (JobState.PREPARED.value, JobState.SENDING.value, JobState.CREATED.value)

_CHUNK = 500  # keys per IN (...) list: well below every driver's parameter limit


@dataclass(frozen=True)
class RunRecord:
    id: int
    pipeline: str
    kind: str
    status: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    counts: RunCounts
    error: str | None


@dataclass(frozen=True)
class JournalEntry:
    id: int
    state: str
    job_id: str | None
    rows: int
    created_at: datetime
    updated_at: datetime
    error: str | None


@dataclass(frozen=True)
class LeaseRecord:
    pipeline: str
    holder: str
    acquired_at: datetime
    heartbeat_at: datetime


@functools.cache
def _identity_statements() -> tuple[Any, Any]:
    """(forget the other holders, upsert) for ``record_identities`` on PostgreSQL, each taking
    the chunk's rows as ONE JSON parameter ``rows`` (an array of ``[key, record_id,
    content_hash]``) the database expands (SQLite binds a ``VALUES`` list instead:
    ``_sqlite_identity_sql``).

    The DELETE forgets every key that holds a record of its rows without being that record's
    key among them. It differs from one ``record_id = r AND key != k`` per row only for rows
    naming one record for two keys, which the upsert refuses either way (the record is unique)
    and so rolls back. The upsert takes ``seen_at`` and ``confirmed_at`` once for all its rows;
    ``None`` confirmation fields keep what was known.
    """
    given = bindparam("rows", type_=String())
    rows = func.json_array_elements(cast(given, postgresql.JSON())).table_valued("value")
    key, record_id, content_hash = [
        rows.c.value.op("->>")(literal_column(str(n))) for n in range(3)
    ]
    pipeline = bindparam("pipeline", type_=String())
    delete_other = delete(identities).where(
        identities.c.pipeline == pipeline,
        identities.c.record_id.in_(select(record_id).select_from(rows)),
        tuple_(identities.c.record_id, identities.c.key).not_in(
            select(record_id, key).select_from(rows)
        ),
    )
    stamped = [
        bindparam(name, type_=identities.c[name].type) for name in ("seen_at", "confirmed_at")
    ]
    values = select(pipeline, key, record_id, *stamped, content_hash).select_from(rows)
    columns = ["pipeline", "key", "record_id", "seen_at", "confirmed_at", "content_hash"]
    upsert = postgresql.insert(identities).from_select(columns, values)
    upsert = upsert.on_conflict_do_update(
        index_elements=["pipeline", "key"],
        set_={
            "record_id": upsert.excluded.record_id,
            "seen_at": upsert.excluded.seen_at,
            "confirmed_at": func.coalesce(upsert.excluded.confirmed_at, identities.c.confirmed_at),
            "content_hash": func.coalesce(upsert.excluded.content_hash, identities.c.content_hash),
        },
    )
    return delete_other, upsert


_ROW_OF = operator.attrgetter("key", "record_id", "content_hash")
_STAMPS_OF = operator.attrgetter("seen_at", "confirmed_at")


def _identity_rows(items: Iterable[Identity]) -> str:
    """``items`` as the JSON parameter of ``_identity_statements``: ``[key, record_id,
    content_hash]`` each, picked without a Python call per identity."""
    return jsontext.dumps(list(map(_ROW_OF, items)))


def _stamp_groups(
    part: Sequence[Identity],
) -> list[tuple[datetime, datetime | None, Sequence[Identity]]]:
    """The identities of one chunk by (seen_at, confirmed_at): usually one or two groups, and
    their order does not matter (the keys are distinct and, once the other holders are gone,
    their records free). A key named twice (rare) is written one row at a time, in order."""
    if len(set(map(operator.attrgetter("key"), part))) < len(part):
        return [(i.seen_at, i.confirmed_at, [i]) for i in part]
    stamps = list(map(_STAMPS_OF, part))
    if len(set(stamps)) == 1:  # an initial sync's chunk: every row confirmed at once
        return [(*stamps[0], part)]
    groups: dict[tuple[datetime, datetime | None], list[Identity]] = {}
    for stamp, item in zip(stamps, part, strict=True):
        groups.setdefault(stamp, []).append(item)
    return [(seen_at, confirmed_at, group) for (seen_at, confirmed_at), group in groups.items()]


_LOOKUP_CHUNK = 5000

_SQLITE_IDENTITY_ROWS = 300
"""Identities per SQLite statement: 3 parameters each and 3 more stay under the 999 variables
of SQLite before 3.32."""


def _record_identities_sqlite(conn: Connection, pipeline: str, items: Sequence[Identity]) -> None:
    """``record_identities`` on SQLite: the rows are bound as a ``VALUES`` list, which SQLite
    reads as it is, where a JSON parameter was parsed once and each of its rows again for
    every ``json_extract`` (SQLite before 3.45 keeps no parse): 0.4 s less at 1,000,000
    identities (BENCHMARKS.md). The statements mean what PostgreSQL's do, the
    other holders forgotten by key, not as a set: the two differ only for a chunk naming one
    record for two keys, which the upsert refuses either way."""
    # As SQLAlchemy binds the column: its dialect's form (on SQLite, text with microseconds).
    stamp = identities.c.seen_at.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    assert stamp is not None  # UtcDateTime always converts
    for part in _chunks(list(items), _SQLITE_IDENTITY_ROWS):
        forget, _ = _sqlite_identity_sql(len(part))
        conn.exec_driver_sql(forget, (*itertools.chain.from_iterable(map(_ROW_OF, part)), pipeline))
        for seen_at, confirmed_at, group in _stamp_groups(part):
            _, upsert = _sqlite_identity_sql(len(group))
            rows = itertools.chain.from_iterable(map(_ROW_OF, group))
            conn.exec_driver_sql(upsert, (pipeline, stamp(seen_at), stamp(confirmed_at), *rows))


@functools.cache
def _sqlite_identity_sql(rows: int) -> tuple[str, str]:
    """(forget the other holders, upsert) for ``rows`` identities bound as ``(key, record_id,
    content_hash)`` triples: the forgetting takes the triples, then the pipeline; the upsert
    the pipeline and its two stamps, then the triples.

    Each statement begins with its verb: Python's sqlite3 opens the transaction before an
    INSERT, UPDATE, DELETE or REPLACE only, so a statement beginning ``WITH`` ran in a
    transaction of its own, committed at once (18 commits per 2,500 identities, and the two
    statements not atomic). CROSS JOIN makes SQLite walk the bound rows and look each record
    up in its index, whatever it estimates; ``WHERE true`` keeps ON CONFLICT from being read
    as a join's ON."""
    given = "(VALUES " + ", ".join(["(?, ?, ?)"] * rows) + ") AS r"
    # Only placeholders are joined in: every value is bound. VALUES names its columns
    # column1 (key), column2 (record id), column3 (content hash).
    forget = (
        "DELETE FROM syncd_identities WHERE rowid IN (SELECT i.rowid FROM "  # noqa: S608
        f"{given} CROSS JOIN syncd_identities AS i ON i.pipeline = ? "
        'AND i.record_id = r.column2 AND i."key" != r.column1)'
    )
    upsert = (
        'INSERT INTO syncd_identities (pipeline, "key", record_id, seen_at, '  # noqa: S608
        f"confirmed_at, content_hash) SELECT ?, r.column1, r.column2, ?, ?, r.column3 FROM {given} "
        'WHERE true ON CONFLICT (pipeline, "key") DO UPDATE SET record_id = excluded.record_id, '
        "seen_at = excluded.seen_at, "
        "confirmed_at = coalesce(excluded.confirmed_at, syncd_identities.confirmed_at), "
        "content_hash = coalesce(excluded.content_hash, syncd_identities.content_hash)"
    )
    return forget, upsert


def _one_param_in(conn: Connection, column: Any, values: list[str]) -> Any:
    """``column IN (values)`` bound as one parameter (a JSON array on SQLite, an array on
    PostgreSQL): one statement text for every lookup, cached and prepared, instead of a
    list of placeholders rendered for each chunk."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("values", values, type_=postgresql.ARRAY(String())))
    listed = func.json_each(bindparam("values", jsontext.dumps(values), type_=String()))
    return column.in_(select(literal_column("value")).select_from(listed))


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite state file readable by its owner only (0600; a new directory 0700).

    It holds the access token: other users of the host must not read it. SQLite gives its
    -wal and -shm files the database file's mode. A file an older syncd left readable by
    others is tightened, and said so.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(mode & 0o700)
        logger.warning(
            "state store %s was readable by other users (mode %o); made it %o",
            path,
            mode,
            mode & 0o700,
            extra={"event": "state_file_tightened", "path": str(path)},
        )


def create_state_engine(url: str) -> Engine:
    """An engine for the state store; SQLite gets WAL and a busy timeout for multi-thread use."""
    from sqlalchemy import create_engine

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        private_sqlite_file(Path(parsed.database).expanduser())
    engine = create_engine(
        url, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


class StateStore:
    """syncd's tables: runs, bulk-job journal, realtime buffer, rejects, tokens, credits, leases."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> StateStore:
        """Connect and (by default) apply pending migrations."""
        try:
            engine = create_state_engine(url)
            if upgrade:
                migrate.upgrade(engine)
        except (SQLAlchemyError, OSError) as exc:
            shown = make_url(url).render_as_string(hide_password=True)
            raise StateError(f"state store {shown}: {exc}") from exc
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def revision(self) -> str | None:
        """The applied migration revision (None for an empty store)."""
        try:
            return migrate.current_revision(self.engine)
        except SQLAlchemyError as exc:
            raise StateError(f"state store {self.display_url}: {driver_reason(exc)}") from exc

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply pending migrations; returns the revision before and after."""
        before = self.revision()
        try:
            migrate.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise StateError(f"state store {self.display_url}: {driver_reason(exc)}") from exc
        return before, self.revision()

    @property
    def display_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(f"state store: {driver_reason(exc)}") from exc

    def _insert_or_update(
        self,
        conn: Connection,
        table: Any,
        rows: list[dict[str, Any]],
        keys: list[str],
        update_cols: list[str],
    ) -> None:
        if not rows:
            return
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={c: stmt.excluded[c] for c in update_cols}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        conn.execute(stmt, rows)

    # -- tokens (ports.TokenCache) -------------------------------------------------------------

    def load_token(self, cache_key: str) -> CachedToken | None:
        with self._tx() as conn:
            row = conn.execute(select(tokens).where(tokens.c.cache_key == cache_key)).first()
        if row is None:
            return None
        return CachedToken(row.access_token, row.api_domain, row.expires_at, row.minted_at)

    def save_token(self, cache_key: str, token: CachedToken, minted_at: datetime) -> None:
        row = {
            "cache_key": cache_key,
            "access_token": token.access_token,
            "api_domain": token.api_domain,
            "expires_at": token.expires_at,
            "minted_at": minted_at,
        }
        with self._tx() as conn:
            self._insert_or_update(
                conn,
                tokens,
                [row],
                ["cache_key"],
                ["access_token", "api_domain", "expires_at", "minted_at"],
            )
            conn.execute(insert(token_mints), [{"cache_key": cache_key, "minted_at": minted_at}])

    def mints_since(self, cache_key: str, since: datetime) -> int:
        query = select(func.count()).where(
            token_mints.c.cache_key == cache_key, token_mints.c.minted_at >= since
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def token_lock(self, cache_key: str) -> AbstractContextManager[None]:
        return self._named_lock(f"token:{cache_key}")

    @contextmanager
    def _named_lock(self, name: str) -> Iterator[None]:
        """A lock shared by every process using this store (advisory lock or lock file)."""
        if self.is_sqlite:
            with filelock.FileLock(self.lock_path(name), timeout=120):
                yield
            return
        lock_id_ = lock_id(name)
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": lock_id_})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id_})
                conn.commit()

    def lock_path(self, name: str) -> str:
        database = self.engine.url.database or "syncd-memory"
        safe = "".join(ch if ch.isalnum() else "_" for ch in name)[:80]
        return f"{database}.{safe}.lock"

    # -- credits (ports.CreditLedger) ----------------------------------------------------------

    @retried("state_store_retry")  # a paid call's credits must not be lost to a reconnect
    def record_credits(self, kind: str, credits: int, at: datetime, calls: int = 1) -> None:
        row = {"at": at, "kind": kind, "calls": calls, "credits": credits}
        with self._tx() as conn:
            conn.execute(insert(credit_ledger), [row])

    def record_org_remaining(self, remaining: int, at: datetime) -> None:
        """Zoho's X-API-CREDITS-REMAINING: what the whole org has left."""
        row = {"org": "org", "remaining": remaining, "seen_at": at}
        with self._tx() as conn:
            self._insert_or_update(conn, org_credits, [row], ["org"], ["remaining", "seen_at"])

    def org_remaining(self) -> tuple[int, datetime] | None:
        """The org's remaining credits as Zoho last reported them, and when."""
        query = select(org_credits.c.remaining, org_credits.c.seen_at)
        with self._tx() as conn:
            row = conn.execute(query).first()
        return None if row is None else (int(row.remaining), row.seen_at)

    def credits_spent_since(self, since: datetime) -> int:
        query = select(func.coalesce(func.sum(credit_ledger.c.credits), 0)).where(
            credit_ledger.c.at >= since
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    def calls_since(self, since: datetime) -> dict[str, tuple[int, int]]:
        """Calls and credits per kind since ``since``."""
        query = (
            select(
                credit_ledger.c.kind,
                func.sum(credit_ledger.c.calls),
                func.sum(credit_ledger.c.credits),
            )
            .where(credit_ledger.c.at >= since)
            .group_by(credit_ledger.c.kind)
        )
        with self._tx() as conn:
            return {kind: (int(c), int(cr)) for kind, c, cr in conn.execute(query)}

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self, pipeline: str, kind: str, host: str, now: datetime) -> int:
        row = {
            "pipeline": pipeline,
            "kind": kind,
            "status": "running",
            "host": host,
            "started_at": now,
        }
        with self._tx() as conn:
            result = conn.execute(insert(runs).returning(runs.c.id), [row])
            return int(result.scalar_one())

    def finish_run(
        self, run_id: int, status: str, counts: RunCounts, now: datetime, error: str | None = None
    ) -> None:
        values = {
            "status": status,
            "finished_at": now,
            "error": error,
            "sent": counts.sent,
            "confirmed": counts.confirmed,
            "rejected": counts.rejected,
            "retried": counts.retried,
            "stale": counts.stale,
            "credits": counts.credits,
        }
        with self._tx() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def last_runs(self, pipeline: str, limit: int = 5) -> list[RunRecord]:
        query = (
            select(runs)
            .where(runs.c.pipeline == pipeline)
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        with self._tx() as conn:
            return [_run_record(row) for row in conn.execute(query)]

    def has_succeeded(self, pipeline: str, kind: str) -> bool:
        query = select(func.count()).where(
            runs.c.pipeline == pipeline, runs.c.kind == kind, runs.c.status == "succeeded"
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one()) > 0

    # -- bulk-job journal -----------------------------------------------------------------------

    def journal_prepare(
        self,
        pipeline: str,
        run_id: int | None,
        file_path: str,
        manifest: Mapping[str, str],
        now: datetime,
    ) -> int:
        row = {
            "pipeline": pipeline,
            "run_id": run_id,
            "state": JobState.PREPARED.value,
            "job_id": None,
            "file_path": file_path,
            "rows": len(manifest),
            "manifest": jsontext.dumps(manifest),
            "created_at": now,
            "updated_at": now,
        }
        with self._tx() as conn:
            return int(
                conn.execute(insert(bulk_jobs).returning(bulk_jobs.c.id), [row]).scalar_one()
            )

    @retried("state_store_retry")
    def journal_sending(self, entry_id: int, now: datetime) -> None:
        self._journal_set(entry_id, now, state=JobState.SENDING.value)

    def count_uncertain(self, pipeline: str, since: datetime) -> int:
        """Jobs whose create reply was lost since ``since``: each may have been paid twice."""
        query = select(func.count()).where(
            bulk_jobs.c.pipeline == pipeline,
            bulk_jobs.c.state == JobState.UNCERTAIN.value,
            bulk_jobs.c.updated_at >= since,
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    @retried("state_store_retry")  # else a job Zoho created is paid again
    def journal_created(self, entry_id: int, job_id: str, now: datetime) -> None:
        self._journal_set(entry_id, now, state=JobState.CREATED.value, job_id=job_id)

    def journal_finish(
        self, entry_id: int, state: JobState, now: datetime, error: str | None = None
    ) -> None:
        self._journal_set(entry_id, now, state=state.value, error=error)

    def _journal_set(self, entry_id: int, now: datetime, **values: Any) -> None:
        stmt = update(bulk_jobs).where(bulk_jobs.c.id == entry_id)
        with self._tx() as conn:
            conn.execute(stmt.values(updated_at=now, **values))

    def journal_open(self, pipeline: str) -> list[OpenJob]:
        """Entries not yet applied or failed, oldest first (PREPARED and CREATED)."""
        query = (
            select(bulk_jobs)
            .where(
                bulk_jobs.c.pipeline == pipeline,
                bulk_jobs.c.state.in_(OPEN_STATES),
            )
            .order_by(bulk_jobs.c.id)
        )
        with self._tx() as conn:
            return [_journal_entry(row) for row in conn.execute(query)]

    def journal_entries(self, pipeline: str, limit: int = 20) -> list[JournalEntry]:
        """The newest journal entries of any state, for `syncd jobs list`."""
        query = (
            select(
                bulk_jobs.c.id,
                bulk_jobs.c.state,
                bulk_jobs.c.job_id,
                bulk_jobs.c.rows,
                bulk_jobs.c.created_at,
                bulk_jobs.c.updated_at,
                bulk_jobs.c.error,
            )
            .where(bulk_jobs.c.pipeline == pipeline)
            .order_by(bulk_jobs.c.id.desc())
            .limit(limit)
        )
        with self._tx() as conn:
            return [JournalEntry(*row) for row in conn.execute(query)]

    def journal_forget(self, pipeline: str, entry_id: int, reason: str, now: datetime) -> str:
        """Close an open entry (its rows stay pending and go again); returns its file path."""
        query = select(bulk_jobs.c.state, bulk_jobs.c.file_path).where(
            bulk_jobs.c.pipeline == pipeline, bulk_jobs.c.id == entry_id
        )
        with self._tx() as conn:
            row = conn.execute(query).first()
            if row is None:
                raise StateError(f"pipeline {pipeline} has no journal entry {entry_id}")
            if row.state not in OPEN_STATES:
                raise StateError(f"journal entry {entry_id} is already closed ({row.state})")
            conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == entry_id)
                .values(state=JobState.FAILED.value, error=reason, updated_at=now)
            )
        return str(row.file_path)

    def jobs_in_flight(self, pipeline: str) -> int:
        query = select(func.count()).where(
            bulk_jobs.c.pipeline == pipeline, bulk_jobs.c.state == JobState.CREATED.value
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # -- realtime buffer ------------------------------------------------------------------------

    def buffer_add(self, pipeline: str, keys: Iterable[str], now: datetime) -> None:
        """Buffer keys; a key already buffered keeps its first-seen time (changes collapse)."""
        rows = [
            {"pipeline": pipeline, "key": k, "first_seen_at": now, "last_seen_at": now}
            for k in keys
        ]
        with self._tx() as conn:
            for part in _chunks(rows):
                self._insert_or_update(
                    conn, buffer, list(part), ["pipeline", "key"], ["last_seen_at"]
                )

    def buffer_stats(
        self, pipeline: str, ready_at: datetime | None = None
    ) -> tuple[int, datetime | None]:
        """How many keys are buffered and when the oldest was first seen; with ``ready_at``,
        only keys whose retry backoff has passed by then."""
        where = _ready(pipeline, ready_at)
        # ORDER BY .. LIMIT 1, not MIN(): the column type then turns it back into a datetime.
        oldest = select(buffer.c.first_seen_at).where(where).order_by(buffer.c.first_seen_at)
        with self._tx() as conn:
            count = int(conn.execute(select(func.count()).where(where)).scalar_one())
            first = conn.execute(oldest.limit(1)).scalar_one_or_none()
        return count, first

    def buffer_keys(
        self, pipeline: str, limit: int | None = None, ready_at: datetime | None = None
    ) -> list[str]:
        """Buffered keys, oldest first (with ``ready_at``: only those due by then)."""
        query = (
            select(buffer.c.key)
            .where(_ready(pipeline, ready_at))
            .order_by(buffer.c.first_seen_at, buffer.c.key)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as conn:
            return [row.key for row in conn.execute(query)]

    def buffer_retry_later(
        self, pipeline: str, keys: Sequence[str], later: Callable[[int], datetime]
    ) -> None:
        """Count one more transient failure per key; ``later(attempts)`` says when it is due."""
        with self._tx() as conn:
            for part in _chunks(list(keys)):
                query = select(buffer.c.key, buffer.c.attempts).where(
                    buffer.c.pipeline == pipeline, buffer.c.key.in_(part)
                )
                for key, attempts in conn.execute(query).all():
                    conn.execute(
                        update(buffer)
                        .where(buffer.c.pipeline == pipeline, buffer.c.key == key)
                        .values(attempts=attempts + 1, not_before=later(attempts + 1))
                    )

    def buffer_remove(self, pipeline: str, keys: Sequence[str]) -> None:
        with self._tx() as conn:
            for part in _chunks(list(keys)):
                conn.execute(
                    delete(buffer).where(buffer.c.pipeline == pipeline, buffer.c.key.in_(part))
                )

    # -- rejects --------------------------------------------------------------------------------

    def record_rejects(self, items: Sequence[Reject]) -> None:
        """Record rejects; a key rejected again gets the new reason and one more attempt."""
        if not items:
            return
        with self._tx() as conn:
            known = self._reject_attempts(conn, items)
            for item in items:
                attempts = known.get((item.pipeline, item.key), 0) + 1
                values = {
                    "code": item.code,
                    "field": item.field,
                    "message": item.message,
                    "content_hash": item.content_hash,
                    "last_rejected_at": item.rejected_at,
                    "attempts": attempts,
                }
                if attempts == 1:
                    conn.execute(
                        insert(rejects).values(
                            pipeline=item.pipeline,
                            key=item.key,
                            first_rejected_at=item.rejected_at,
                            **values,
                        )
                    )
                else:
                    conn.execute(
                        update(rejects)
                        .where(rejects.c.pipeline == item.pipeline, rejects.c.key == item.key)
                        .values(**values)
                    )

    def _reject_attempts(
        self, conn: Connection, items: Sequence[Reject]
    ) -> dict[tuple[str, str], int]:
        pipeline = items[0].pipeline
        found: dict[tuple[str, str], int] = {}
        for part in _chunks([i.key for i in items]):
            query = select(rejects.c.key, rejects.c.attempts).where(
                rejects.c.pipeline == pipeline, rejects.c.key.in_(part)
            )
            found.update({(pipeline, k): a for k, a in conn.execute(query)})
        return found

    def reject_hashes(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]:
        """key -> content hash of the rejected version, for the keys that are rejects."""
        found: dict[str, str] = {}
        with self._tx() as conn:
            if not self._has_rejects(conn, pipeline):  # the usual case: no lookups at all
                return found
            for part in _chunks(list(keys), _LOOKUP_CHUNK):
                query = select(rejects.c.key, rejects.c.content_hash).where(
                    rejects.c.pipeline == pipeline, _one_param_in(conn, rejects.c.key, list(part))
                )
                found.update(dict(conn.execute(query).all()))
        return found

    @staticmethod
    def _has_rejects(conn: Connection, pipeline: str) -> bool:
        query = select(rejects.c.key).where(rejects.c.pipeline == pipeline).limit(1)
        return conn.execute(query).first() is not None

    def release_rejects(self, pipeline: str, keys: Sequence[str] | None = None) -> int:
        """Forget rejects (all of the pipeline's when ``keys`` is None); returns how many."""
        with self._tx() as conn:
            if keys is None:
                stmt = delete(rejects).where(rejects.c.pipeline == pipeline)
                return int(conn.execute(stmt).rowcount)
            if not self._has_rejects(conn, pipeline):
                return 0
            total = 0
            for part in _chunks(sorted(keys), _LOOKUP_CHUNK):
                stmt = delete(rejects).where(
                    rejects.c.pipeline == pipeline, _one_param_in(conn, rejects.c.key, list(part))
                )
                total += int(conn.execute(stmt).rowcount)
            return total

    def reject_key_pages(self, pipeline: str, size: int) -> Iterator[list[str]]:
        """Every reject key of the pipeline, in key order, ``size`` at a time."""
        after = ""
        while True:
            query = (
                select(rejects.c.key)
                .where(rejects.c.pipeline == pipeline, rejects.c.key > after)
                .order_by(rejects.c.key)
                .limit(size)
            )
            with self._tx() as conn:
                keys = list(conn.scalars(query))
            if not keys:
                return
            yield keys
            after = keys[-1]

    def list_rejects(self, pipeline: str, limit: int = 50, offset: int = 0) -> list[Reject]:
        query = (
            select(rejects)
            .where(rejects.c.pipeline == pipeline)
            .order_by(rejects.c.last_rejected_at.desc(), rejects.c.key)
            .limit(limit)
            .offset(offset)
        )
        with self._tx() as conn:
            return [_reject(row) for row in conn.execute(query)]

    def get_reject(self, pipeline: str, key: str) -> Reject | None:
        query = select(rejects).where(rejects.c.pipeline == pipeline, rejects.c.key == key)
        with self._tx() as conn:
            row = conn.execute(query).first()
        return None if row is None else _reject(row)

    def count_rejects(self, pipeline: str) -> int:
        query = select(func.count()).where(rejects.c.pipeline == pipeline)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # -- the record-identity map -----------------------------------------------------------------

    def record_identities(self, pipeline: str, items: Sequence[Identity]) -> None:
        """Remember which record each key owns; ``None`` confirmation fields keep what was known.

        A record belongs to one key: a key given a record another key held takes it over here
        (the caller has decided who owns it), so the map never names one record twice.
        """
        if not items:
            return
        with self._tx() as conn:
            if conn.dialect.name == "sqlite":
                _record_identities_sqlite(conn, pipeline, items)
                return
            delete_other, upsert = _identity_statements()
            for part in _chunks(list(items), _LOOKUP_CHUNK):
                # Each statement takes its rows as one JSON parameter the database expands: one
                # identity per confirmed row is the bulk of the state store's work in an initial
                # sync. First the other holders of the chunk's records go, then the rows are
                # written, one upsert per (seen_at, confirmed_at).
                whole = _identity_rows(part)
                conn.execute(delete_other, {"pipeline": pipeline, "rows": whole})
                groups = _stamp_groups(part)
                for seen_at, confirmed_at, group in groups:
                    rows = whole if len(groups) == 1 else _identity_rows(group)
                    stamps = {"seen_at": seen_at, "confirmed_at": confirmed_at}
                    conn.execute(upsert, {"pipeline": pipeline, "rows": rows, **stamps})

    def record_ids(self, pipeline: str, keys: Sequence[str]) -> dict[str, str]:
        """key -> the CRM record id it owns, for the keys the map knows."""
        return self._identity_pairs(pipeline, identities.c.key, identities.c.record_id, keys)

    def record_owners(self, pipeline: str, record_ids: Sequence[str]) -> dict[str, str]:
        """record id -> the key that owns it, for the records the map knows."""
        return self._identity_pairs(pipeline, identities.c.record_id, identities.c.key, record_ids)

    def _identity_pairs(
        self, pipeline: str, by: Any, wanted: Any, values: Sequence[str]
    ) -> dict[str, str]:
        found: dict[str, str] = {}
        if not values:
            return found
        with self._tx() as conn:
            for part in _chunks(list(values), _LOOKUP_CHUNK):
                where = _one_param_in(conn, by, list(part))
                query = select(by, wanted).where(identities.c.pipeline == pipeline, where)
                found.update({str(a): str(b) for a, b in conn.execute(query)})
        return found

    def identity(self, pipeline: str, key: str) -> Identity | None:
        query = select(identities).where(identities.c.pipeline == pipeline, identities.c.key == key)
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Identity(row.key, row.record_id, row.seen_at, row.confirmed_at, row.content_hash)

    def forget_identities(self, pipeline: str, keys: Sequence[str]) -> None:
        """Forget the records of these keys (Zoho says the record no longer exists)."""
        with self._tx() as conn:
            for part in _chunks(list(keys)):
                conn.execute(
                    delete(identities).where(
                        identities.c.pipeline == pipeline, identities.c.key.in_(part)
                    )
                )

    def count_identities(self, pipeline: str) -> int:
        query = select(func.count()).where(identities.c.pipeline == pipeline)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())

    # -- rows that did not stay confirmed (the convergence safety net) ---------------------------

    def note_unconfirmed(
        self, pipeline: str, items: Sequence[tuple[str, str, str]], now: datetime
    ) -> dict[str, int]:
        """Count one more "confirmed, yet not synced" for each (key, sent hash, columns).

        The count goes on only while the same content is sent again; other content starts
        over at 1. Returns key -> count.
        """
        if not items:
            return {}
        counts: dict[str, int] = {}
        with self._tx() as conn:
            known: dict[str, tuple[str, int]] = {}
            for part in _chunks([key for key, _, _ in items]):
                query = select(
                    unconfirmed.c.key, unconfirmed.c.content_hash, unconfirmed.c.times
                ).where(unconfirmed.c.pipeline == pipeline, unconfirmed.c.key.in_(part))
                known.update({k: (h, t) for k, h, t in conn.execute(query)})
            rows = []
            for key, sent_hash, columns in items:
                before = known.get(key)
                counts[key] = before[1] + 1 if before and before[0] == sent_hash else 1
                rows.append(
                    {
                        "pipeline": pipeline,
                        "key": key,
                        "content_hash": sent_hash,
                        "times": counts[key],
                        "columns": columns,
                        "last_at": now,
                    }
                )
            self._insert_or_update(
                conn,
                unconfirmed,
                rows,
                ["pipeline", "key"],
                ["content_hash", "times", "columns", "last_at"],
            )
        return counts

    def clear_unconfirmed(self, pipeline: str, keys: Sequence[str]) -> None:
        """Forget the counts of these keys (confirmed at last, or parked as a reject)."""
        with self._tx() as conn:
            has_any = select(unconfirmed.c.key).where(unconfirmed.c.pipeline == pipeline).limit(1)
            if conn.execute(has_any).first() is None:  # the usual case: nothing to forget
                return
            for part in _chunks(sorted(keys)):
                conn.execute(
                    delete(unconfirmed).where(
                        unconfirmed.c.pipeline == pipeline, unconfirmed.c.key.in_(part)
                    )
                )

    # -- backoffs that survive a restart ---------------------------------------------------------

    def backoff(self, pipeline: str, scope: str) -> Backoff | None:
        query = select(backoffs).where(backoffs.c.pipeline == pipeline, backoffs.c.scope == scope)
        with self._tx() as conn:
            row = conn.execute(query).first()
        return None if row is None else Backoff(row.failures, row.next_at, row.last_error)

    def backoffs(self, pipeline: str, scopes: Sequence[str]) -> dict[str, Backoff]:
        """The backoffs of those of ``scopes`` that have one (one query per 500 scopes)."""
        found: dict[str, Backoff] = {}
        wanted = sorted(set(scopes))
        with self._tx() as conn:
            for start in range(0, len(wanted), 500):
                query = select(backoffs).where(
                    backoffs.c.pipeline == pipeline,
                    backoffs.c.scope.in_(wanted[start : start + 500]),
                )
                for row in conn.execute(query):
                    found[row.scope] = Backoff(row.failures, row.next_at, row.last_error)
        return found

    def backoff_failed(
        self, pipeline: str, scope: str, failures: int, next_at: datetime, error: str, now: datetime
    ) -> None:
        """Record ``failures`` consecutive failures; nothing is tried before ``next_at``."""
        with self._tx() as conn:
            row = {
                "pipeline": pipeline,
                "scope": scope,
                "failures": failures,
                "next_at": next_at,
                "last_error": error,
                "updated_at": now,
            }
            self._insert_or_update(
                conn,
                backoffs,
                [row],
                ["pipeline", "scope"],
                ["failures", "next_at", "last_error", "updated_at"],
            )

    def backoff_clear(self, pipeline: str, scope: str) -> None:
        with self._tx() as conn:
            conn.execute(
                delete(backoffs).where(backoffs.c.pipeline == pipeline, backoffs.c.scope == scope)
            )

    # -- leases (who holds a pipeline; the lock itself is in syncd.state.lease) -----------------

    def record_lease(self, pipeline: str, holder: str, now: datetime) -> None:
        """Record the new holder; runs left "running" by an earlier holder (it crashed or was
        killed) are marked interrupted, so `status` does not show them as still going."""
        row = {"pipeline": pipeline, "holder": holder, "acquired_at": now, "heartbeat_at": now}
        orphaned = (
            update(runs)
            .where(runs.c.pipeline == pipeline, runs.c.status == "running", runs.c.host != holder)
            .values(
                status="interrupted",
                finished_at=now,
                error="its worker stopped without finishing (crash or kill)",
            )
        )
        with self._tx() as conn:
            self._insert_or_update(
                conn, leases, [row], ["pipeline"], ["holder", "acquired_at", "heartbeat_at"]
            )
            conn.execute(orphaned)

    def heartbeat_lease(self, pipeline: str, holder: str, now: datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                update(leases)
                .where(leases.c.pipeline == pipeline, leases.c.holder == holder)
                .values(heartbeat_at=now)
            )

    def clear_lease(self, pipeline: str, holder: str) -> None:
        with self._tx() as conn:
            conn.execute(
                delete(leases).where(leases.c.pipeline == pipeline, leases.c.holder == holder)
            )

    def lease_holder(self, pipeline: str) -> LeaseRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(leases).where(leases.c.pipeline == pipeline)).first()
        return (
            None
            if row is None
            else LeaseRecord(row.pipeline, row.holder, row.acquired_at, row.heartbeat_at)
        )

    # -- housekeeping ---------------------------------------------------------------------------

    def prune(self, before: datetime) -> int:
        """Delete finished runs, settled journal entries, mints and ledger rows older than this."""
        statements = [
            delete(runs).where(runs.c.finished_at < before),
            delete(bulk_jobs).where(
                bulk_jobs.c.updated_at < before,
                bulk_jobs.c.state.in_([JobState.APPLIED.value, JobState.FAILED.value]),
            ),
            delete(token_mints).where(token_mints.c.minted_at < before),
            delete(credit_ledger).where(credit_ledger.c.at < before),
        ]
        with self._tx() as conn:
            return sum(int(conn.execute(stmt).rowcount) for stmt in statements)

    # -- notifications: which conditions each [[notify]] target has been told about -----------

    def alerts_active(self, target: str) -> dict[str, tuple[datetime, str]]:
        """condition -> (when it started, its summary) of what ``target`` was told."""
        query = select(alerts.c.condition, alerts.c.started_at, alerts.c.summary).where(
            alerts.c.target == target
        )
        with self._tx() as conn:
            return {row.condition: (row.started_at, row.summary) for row in conn.execute(query)}

    def alert_started(self, target: str, condition: str, summary: str, now: datetime) -> None:
        row = {"target": target, "condition": condition, "started_at": now, "summary": summary}
        with self._tx() as conn:
            self._insert_or_update(conn, alerts, [row], ["target", "condition"], [])

    def alert_ended(self, target: str, condition: str) -> None:
        with self._tx() as conn:
            conn.execute(
                delete(alerts).where(alerts.c.target == target, alerts.c.condition == condition)
            )

    def alerts_forget_targets(self, keep: Sequence[str]) -> int:
        """Forget what targets no longer configured were told; returns how many rows went."""
        with self._tx() as conn:
            return int(conn.execute(delete(alerts).where(alerts.c.target.not_in(keep))).rowcount)

    def count_journal_since(self, pipeline: str, state: JobState, since: datetime) -> int:
        """Journal entries of ``pipeline`` in ``state`` last changed at or after ``since``."""
        query = select(func.count()).where(
            bulk_jobs.c.pipeline == pipeline,
            bulk_jobs.c.state == state.value,
            bulk_jobs.c.updated_at >= since,
        )
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())


def _ready(pipeline: str, ready_at: datetime | None) -> Any:
    where = buffer.c.pipeline == pipeline
    if ready_at is None:
        return where
    return and_(where, or_(buffer.c.not_before.is_(None), buffer.c.not_before <= ready_at))


def driver_reason(exc: SQLAlchemyError) -> str:
    """Only the driver's own message: statement parameters may hold an access token."""
    return str(exc.orig if isinstance(exc, DBAPIError) else exc.__class__.__name__).strip()


def lock_id(name: str) -> int:
    """A stable signed 64-bit id for pg_advisory_lock."""
    import hashlib

    digest = hashlib.sha256(f"syncd:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _run_record(row: Any) -> RunRecord:
    counts = RunCounts(
        sent=row.sent,
        confirmed=row.confirmed,
        rejected=row.rejected,
        retried=row.retried,
        stale=row.stale,
        credits=row.credits,
    )
    return RunRecord(
        row.id,
        row.pipeline,
        row.kind,
        row.status,
        row.host,
        row.started_at,
        row.finished_at,
        counts,
        row.error,
    )


def _journal_entry(row: Any) -> OpenJob:
    manifest = json.loads(row.manifest)
    return OpenJob(row.id, JobState(row.state), row.job_id, row.file_path, manifest)


def _reject(row: Any) -> Reject:
    return Reject(
        row.pipeline,
        row.key,
        row.code,
        row.field,
        row.message,
        row.content_hash,
        row.last_rejected_at,
        row.attempts,
    )
