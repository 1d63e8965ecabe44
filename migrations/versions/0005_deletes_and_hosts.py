"""pending deletes and their approval, the reconcile scan position, daemon hosts

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syncd_deletes",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("record_id", sa.String(length=32), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", "key", name=op.f("pk_syncd_deletes")),
    )
    op.create_table(
        "syncd_delete_scans",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("after_key", sa.String(length=255), nullable=True),
        sa.Column("pass_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_pass_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("pipeline", name=op.f("pk_syncd_delete_scans")),
    )
    op.create_table(
        "syncd_hosts",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_syncd_hosts")),
    )


def downgrade() -> None:
    op.drop_table("syncd_hosts")
    op.drop_table("syncd_delete_scans")
    op.drop_table("syncd_deletes")
