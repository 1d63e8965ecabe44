"""Alembic environment: targets syncd.state.tables.metadata.

syncd passes its own connection in ``config.attributes["connection"]``; the developer CLI
(`alembic -c alembic.ini ...`) uses $SYNCD_STATE_URL instead.
"""

from __future__ import annotations

import os
from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from syncd.state.tables import UtcDateTime, metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write UtcDateTime as a plain timezone-aware DateTime so migrations never import syncd."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_item=render_item,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    with create_engine(os.environ["SYNCD_STATE_URL"]).connect() as conn:
        run(conn)
