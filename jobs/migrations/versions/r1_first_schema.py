"""The jobs table as hubflow 0.1 created it (before schema versions).

Revision ID: r1
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("framework", sa.String(32), nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("gpus_per_worker", sa.Integer, nullable=False),
        sa.Column("gpus", sa.JSON, nullable=False),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("workspace", sa.String(4096), nullable=False),
        sa.Column("environment", sa.JSON, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float, nullable=True),
        sa.Column("running", sa.Float, nullable=True),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("exit_codes", sa.JSON, nullable=True),
        sa.Column("failing_rank", sa.Integer, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("supervisor_pid", sa.Integer, nullable=True),
        sa.Column("supervisor_start", sa.Integer, nullable=True),
    )
    op.create_index("ix_jobs_user", "jobs", ["user"])
    op.create_index("ix_jobs_state", "jobs", ["state"])


def downgrade() -> None:
    op.drop_table("jobs")
