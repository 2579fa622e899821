"""supplies: monthly closing balances per location and lot (snapshots for as-of reads)

Revision ID: supplies_0002
Revises: supplies_0001

The snapshots are filled on the first write after the upgrade (the ledger closes
every month up to the previous one under its write lock); until then balances as
of a date are summed from the movements as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "supplies_0002"
down_revision = "supplies_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supply_month_balance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("location_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["location_id"], ["supply_location.id"]),
        sa.ForeignKeyConstraint(["lot_id"], ["supply_lot.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("location_id", "lot_id", "month"),
    )
    with op.batch_alter_table("supply_month_balance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_supply_month_balance_month_cover",
            ["month", "location_id", "lot_id", "qty"],
            unique=False,
        )
    op.create_table(
        "supply_closed_month",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )


def downgrade() -> None:
    op.drop_table("supply_closed_month")
    with op.batch_alter_table("supply_month_balance", schema=None) as batch_op:
        batch_op.drop_index("ix_supply_month_balance_month_cover")
    op.drop_table("supply_month_balance")
