"""One active worker per pipeline: a lock that dies with its holder.

PostgreSQL state store: a session-level advisory lock on a connection of its own (released by
the server when the holder's connection ends). SQLite state store: an exclusive file lock next
to the database (released by the kernel when the holder's process ends).

Either way the lock belongs to the process, not to a thread: the daemon takes it in its lease
job and checks it from every pipeline tick, each on a scheduler thread of its own.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

import filelock
from sqlalchemy import URL, Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from syncd.crashpoints import crash_point
from syncd.state.store import StateStore, lock_id

logger = logging.getLogger(__name__)

HEARTBEAT = timedelta(seconds=2)
"""How often the daemon checks its leases (and a standby tries to take one)."""


class Lease(Protocol):
    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool:
        """Take the lease if it is free; True if this process holds it now."""
        ...

    def verify(self) -> bool:
        """Whether the lease is still ours (a dropped PG connection loses it)."""
        ...

    def release(self) -> None: ...


class FileLease:
    def __init__(self, path: str) -> None:
        # thread_local=False: taken on one thread, held (and released) for the whole process.
        self._lock = filelock.FileLock(path, thread_local=False, fallback_to_soft=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        crash_point("after_lease_acquired")
        return True

    def verify(self) -> bool:
        return self.held

    def release(self) -> None:
        if self.held:
            self._lock.release(force=True)


class AdvisoryLease:
    """``pg_try_advisory_lock`` held on a connection outside any pool, so nothing else (pool
    recycling, a reload closing the state store's engine) can end the session by accident."""

    def __init__(self, url: URL, name: str) -> None:
        self._url = url
        self._id = lock_id(f"lease:{name}")
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def try_acquire(self) -> bool:
        if self.held:
            return True
        if self._engine is None:
            self._engine = create_engine(self._url, poolclass=NullPool, hide_parameters=True)
        try:
            conn = self._engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": self._id})
            acquired = bool(got.scalar_one())
            conn.commit()
        except SQLAlchemyError as exc:
            logger.warning(
                "lease: cannot reach the state store: %s",
                exc.__class__.__name__,
                extra={"event": "lease_unreachable"},
            )
            return False
        if not acquired:
            conn.close()
            return False
        self._conn = conn
        crash_point("after_lease_acquired")
        return True

    def verify(self) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
        except SQLAlchemyError:
            logger.error(
                "lease: lost the state store connection holding the lease",
                extra={"event": "lease_lost"},
            )
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": self._id})
                self._conn.commit()
            except SQLAlchemyError:
                pass  # the lock goes with the connection anyway
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None


def lease_for(store: StateStore, pipeline: str) -> Lease:
    if store.is_sqlite:
        return FileLease(store.lock_path(f"lease:{pipeline}"))
    return AdvisoryLease(store.engine.url, pipeline)
