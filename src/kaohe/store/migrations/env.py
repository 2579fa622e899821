"""Alembic environment: always run with a connection handed over by kaohe.store.db."""

from __future__ import annotations

from alembic import context

import kaohe.store.all_models  # noqa: F401  (registers every table on Base.metadata)
from kaohe.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline mode is not used
    raise RuntimeError("run migrations through kaohe.store.db.upgrade (kaohe db upgrade)")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
