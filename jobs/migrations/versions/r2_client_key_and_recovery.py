"""Idempotent submits and crash recovery: the client's key of a submission (one job per user
and key), whether the backend was asked to start the job, and a cancel still to carry out.

Revision ID: r2
Revises: r1
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r2"
down_revision = "r1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("client_key", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("launched", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("stopping", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_jobs_user_client_key", ["user", "client_key"], unique=True)
    # Before r2 a job's start time was recorded once the backend had started it.
    op.execute(
        sa.text("UPDATE jobs SET launched = :yes WHERE started IS NOT NULL").bindparams(yes=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_user_client_key")
        batch.drop_column("stopping")
        batch.drop_column("launched")
        batch.drop_column("client_key")
