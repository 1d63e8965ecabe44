"""The state of deletes: pending deletes and their approval, and the reconcile scan position.

All statements against ``syncd_deletes`` and ``syncd_delete_scans``; split from ``store.py``
along a noun, on the same engine. Driver errors become ``StateError``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from syncd.errors import StateError
from syncd.model import PendingDelete, ScanPosition
from syncd.state.store import StateStore, driver_reason
from syncd.state.tables import delete_scans, identities, pending_deletes

_CHUNK = 500


class DeleteStore:
    """Pending deletes and the scan position, on a ``StateStore``'s engine."""

    def __init__(self, store: StateStore) -> None:
        self.engine = store.engine

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(f"state store: {driver_reason(exc)}") from exc

    def _insert(self, conn: Connection, table: Any, rows: list[dict[str, Any]], **upd: Any) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(table)
        keys = [c.name for c in table.primary_key.columns]
        if upd:
            stmt = stmt.on_conflict_do_update(index_elements=keys, set_=upd)
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        conn.execute(stmt, rows)

    # -- the reconcile scan ---------------------------------------------------------------------

    def identity_page(
        self, pipeline: str, after_key: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """(key, record id) of the identity map in key order after ``after_key`` (keyset)."""
        query = (
            select(identities.c.key, identities.c.record_id)
            .where(identities.c.pipeline == pipeline)
            .order_by(identities.c.key)
            .limit(limit)
        )
        if after_key is not None:
            query = query.where(identities.c.key > after_key)
        with self._tx() as conn:
            return [(str(k), str(r)) for k, r in conn.execute(query)]

    def scan_position(self, pipeline: str) -> ScanPosition:
        query = select(delete_scans).where(delete_scans.c.pipeline == pipeline)
        with self._tx() as conn:
            row = conn.execute(query).first()
        if row is None:
            return ScanPosition(None, None, None)
        return ScanPosition(row.after_key, row.pass_started_at, row.last_pass_at)

    def save_scan(self, pipeline: str, position: ScanPosition) -> None:
        row = {
            "pipeline": pipeline,
            "after_key": position.after_key,
            "pass_started_at": position.pass_started_at,
            "last_pass_at": position.last_pass_at,
        }
        with self._tx() as conn:
            self._insert(
                conn,
                delete_scans,
                [row],
                after_key=position.after_key,
                pass_started_at=position.pass_started_at,
                last_pass_at=position.last_pass_at,
            )

    # -- pending deletes ------------------------------------------------------------------------

    def add_pending(self, pipeline: str, items: Sequence[tuple[str, str]], now: datetime) -> None:
        """Remember (key, record id) pairs to delete; a key already pending keeps its date."""
        rows = [
            {"pipeline": pipeline, "key": k, "record_id": r, "found_at": now, "attempts": 0}
            for k, r in items
        ]
        if rows:
            with self._tx() as conn:
                self._insert(conn, pending_deletes, rows)

    def pending(self, pipeline: str, limit: int | None = None) -> list[PendingDelete]:
        """Pending deletes, oldest first."""
        query = (
            select(pending_deletes)
            .where(pending_deletes.c.pipeline == pipeline)
            .order_by(pending_deletes.c.found_at, pending_deletes.c.key)
            .limit(limit)
        )
        with self._tx() as conn:
            return [
                PendingDelete(
                    r.key, r.record_id, r.found_at, r.approved_at, r.attempts, r.last_error
                )
                for r in conn.execute(query)
            ]

    def count_pending(self, pipeline: str) -> tuple[int, int]:
        """(pending deletes, of which approved)."""
        query = select(func.count(), func.count(pending_deletes.c.approved_at)).where(
            pending_deletes.c.pipeline == pipeline
        )
        with self._tx() as conn:
            total, approved = conn.execute(query).one()
        return int(total), int(approved)

    def approve(self, pipeline: str, keys: Sequence[str] | None, now: datetime) -> int:
        """Approve these pending deletes (None: all of them); how many were approved now."""
        base = update(pending_deletes).where(
            pending_deletes.c.pipeline == pipeline, pending_deletes.c.approved_at.is_(None)
        )
        with self._tx() as conn:
            if keys is None:
                return int(conn.execute(base.values(approved_at=now)).rowcount)
            done = 0
            for start in range(0, len(keys), _CHUNK):
                part = list(keys[start : start + _CHUNK])
                stmt = base.where(pending_deletes.c.key.in_(part)).values(approved_at=now)
                done += int(conn.execute(stmt).rowcount)
            return done

    def drop_pending(self, pipeline: str, keys: Sequence[str]) -> None:
        with self._tx() as conn:
            for start in range(0, len(keys), _CHUNK):
                part = list(keys[start : start + _CHUNK])
                conn.execute(
                    delete(pending_deletes).where(
                        pending_deletes.c.pipeline == pipeline, pending_deletes.c.key.in_(part)
                    )
                )

    def note_failed(self, pipeline: str, failures: Sequence[tuple[str, str]]) -> None:
        """One more failed attempt for each (key, error)."""
        with self._tx() as conn:
            for key, error in failures:
                conn.execute(
                    update(pending_deletes)
                    .where(pending_deletes.c.pipeline == pipeline, pending_deletes.c.key == key)
                    .values(attempts=pending_deletes.c.attempts + 1, last_error=error)
                )

    def known_records(self, pipeline: str) -> int:
        """How many CRM records the identity map knows for this pipeline."""
        query = select(func.count()).where(identities.c.pipeline == pipeline)
        with self._tx() as conn:
            return int(conn.execute(query).scalar_one())
