"""The daemons alive on one state store, so that they can share the pipelines between them.

Each running daemon beats its row in ``syncd_hosts`` with its lease job; the leases themselves
(one per pipeline) stay the advisory or file locks of ``syncd.state.lease``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from syncd.errors import StateError
from syncd.state.store import StateStore, driver_reason
from syncd.state.tables import hosts


class HostStore:
    def __init__(self, store: StateStore) -> None:
        self.engine = store.engine

    def beat(self, host: str, now: datetime) -> None:
        """This daemon is alive at ``now``."""
        try:
            with self.engine.begin() as conn:
                dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
                stmt = dialect.insert(hosts).values(host=host, heartbeat_at=now)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["host"], set_={"heartbeat_at": now}
                )
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise StateError(f"state store: {driver_reason(exc)}") from exc

    def alive(self, since: datetime) -> list[str]:
        """Daemons whose heartbeat is at or after ``since``, by name."""
        query = select(hosts.c.host).where(hosts.c.heartbeat_at >= since).order_by(hosts.c.host)
        try:
            with self.engine.begin() as conn:
                return [str(h) for h in conn.scalars(query)]
        except SQLAlchemyError as exc:
            raise StateError(f"state store: {driver_reason(exc)}") from exc

    def forget(self, host: str, before: datetime | None = None) -> None:
        """Drop ``host`` (a daemon that stopped), and every host silent since ``before``."""
        stmt = delete(hosts).where(hosts.c.host == host)
        if before is not None:
            stmt = delete(hosts).where((hosts.c.host == host) | (hosts.c.heartbeat_at < before))
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise StateError(f"state store: {driver_reason(exc)}") from exc
