"""notification conditions announced to each [[notify]] target

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syncd_alerts",
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("condition", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("target", "condition", name=op.f("pk_syncd_alerts")),
    )


def downgrade() -> None:
    op.drop_table("syncd_alerts")
