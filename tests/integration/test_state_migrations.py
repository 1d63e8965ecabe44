"""The state store's migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from syncd.state import migrate
from syncd.state.tables import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


def test_upgrade_creates_every_table_and_matches_metadata(state_url: str) -> None:
    """`upgrade head` builds exactly the schema tables.py defines (no drift)."""
    engine = create_engine(state_url)
    migrate.upgrade(engine)
    assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()


def test_downgrade_to_base_removes_every_table(state_url: str) -> None:
    """Migrations go down to base cleanly, leaving no syncd table behind."""
    engine = create_engine(state_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    left = [t for t in inspect(engine).get_table_names() if t.startswith("syncd_")]
    assert left == []
    assert migrate.current_revision(engine) is None
    engine.dispose()


def test_head_names_the_newest_migration() -> None:
    """``migrate.HEAD`` lets a start skip Alembic; it must name the newest script."""
    assert migrate.head_revision() == migrate.HEAD


def test_a_store_at_head_opens_without_alembic(state_url: str) -> None:
    """Opening an up-to-date store reads its revision with one query and imports no Alembic
    (memory and start-up time of every syncd process); an older store is still upgraded."""
    import subprocess
    import sys

    engine = create_engine(state_url)
    migrate.upgrade(engine, "0004")
    engine.dispose()
    probe = (
        "import sys; from syncd.state.store import StateStore; "
        f"s = StateStore.open({state_url!r}); print(s.revision(), 'alembic' in sys.modules)"
    )
    first = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert first.stdout.split() == [migrate.HEAD, "True"], first.stderr
    assert again.stdout.split() == [migrate.HEAD, "False"], again.stderr
