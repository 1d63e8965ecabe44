"""rows that did not stay confirmed (the convergence safety net); persistent backoffs,
per pipeline scope and per buffered key; the org's remaining credits

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "syncd_unconfirmed",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("columns", sa.Text(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "key", name=op.f("pk_syncd_unconfirmed")),
    )

    op.create_table(
        "syncd_backoffs",
        sa.Column("pipeline", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pipeline", "scope", name=op.f("pk_syncd_backoffs")),
    )
    op.create_table(
        "syncd_org_credits",
        sa.Column("org", sa.String(length=64), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("org", name=op.f("pk_syncd_org_credits")),
    )
    with op.batch_alter_table("syncd_buffer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("syncd_buffer", schema=None) as batch_op:
        batch_op.drop_column("not_before")
        batch_op.drop_column("attempts")
    op.drop_table("syncd_org_credits")
    op.drop_table("syncd_backoffs")
    op.drop_table("syncd_unconfirmed")
