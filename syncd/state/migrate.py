"""Applying the state store's Alembic migrations from inside syncd.

Alembic (with Mako) is imported only when a migration runs or the scripts are read: every
start checks the store's revision with one plain query against ``HEAD``, which keeps ~10 MB
and ~60 ms out of each process that finds its store up to date.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0005"
"""The newest revision in ``migrations/versions`` (a test keeps the two equal)."""


def script_location() -> Path:
    """The migrations folder: inside the installed wheel, else the source tree's ``migrations/``."""
    packaged = Path(str(resources.files("syncd"))) / "_migrations"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "migrations"


def _config() -> Config:
    from alembic.config import Config  # lazy: see the module docstring

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory  # lazy: see the module docstring

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The applied revision: Alembic's own table, read with one plain query."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if len(versions) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; nothing to do (and no Alembic import) at head."""
    if revision == "head" and current_revision(engine) == HEAD:
        return
    from alembic import command  # lazy: see the module docstring

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command  # lazy: see the module docstring

    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
