"""Retrying one database transaction that failed transiently, for the legacy database and the
state store alike (each translates driver errors into its own ``SyncdError`` first).

Transient: the server restarted or killed the session (SQLAlchemy marks the connection
invalidated; the pool replaces it), a deadlock, a serialization failure, a lock wait that timed
out. The decorated call must be one whole transaction that is safe to run again: it reads the
rows as they are now, or writes what it writes by key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import stamina
from sqlalchemy.exc import DBAPIError

from syncd.errors import SyncdError

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03", 1205, 1213})
"""Serialization failure, deadlock, lock not available (PostgreSQL SQLSTATEs); lock wait
timeout, deadlock (MySQL/MariaDB error numbers)."""


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (a ``SyncdError`` raised from a driver error) is worth running again."""
    cause = exc.__cause__
    if not isinstance(exc, SyncdError) or not isinstance(cause, DBAPIError):
        return False
    orig = cause.orig
    code = getattr(orig, "sqlstate", None) or next(iter(getattr(orig, "args", ())), None)
    return bool(cause.connection_invalidated or code in TRANSIENT_CODES)


def retried(event: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Run the decorated transaction again, with backoff, while it fails transiently (up to 6
    times within 2 minutes: a restarting server is back within that, or the caller's own error
    handling takes over); each retry is logged as ``event``."""

    def retry_transient(exc: Exception) -> bool:
        if not is_transient(exc):
            return False
        logger.warning("%s; retrying on a new connection", exc, extra={"event": event})
        return True

    return stamina.retry(
        on=retry_transient,
        attempts=6,
        timeout=120,
        wait_initial=0.5,
        wait_max=10,
        wait_jitter=0.5,
    )
