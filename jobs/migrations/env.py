"""Alembic's entry point for the jobs database: runs the revisions in `versions/` on the
connection that hubflow.jobs.db hands over (it holds the upgrade lock)."""

from __future__ import annotations

from alembic import context

from hubflow.jobs.store import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=context.config.attributes["version_table"],
    target_metadata=Base.metadata,
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
