"""Alembic environment: the tables are recovery.adapters.tables; the URL comes from settings."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import recovery.adapters.tables  # noqa: F401
from recovery.adapters.db import engine_for

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    with engine_for(url).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
