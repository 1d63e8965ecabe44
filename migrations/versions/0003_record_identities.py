"""the record-identity map: legacy key -> Zoho record id, and what was last confirmed there

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 10:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syncd_identities",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "key", name=op.f("pk_syncd_identities")),
    )
    op.create_index(
        "ix_syncd_identities_record",
        "syncd_identities",
        ["pipeline", "record_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ix_syncd_identities_record", table_name="syncd_identities")
    op.drop_table("syncd_identities")
