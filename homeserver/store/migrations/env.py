"""Alembic environment for the global database.

At run time :meth:`homeserver.store.database.Database.migrate` passes an open
connection (inside its transaction) through ``config.attributes["connection"]``.
For developers, ``alembic -c homeserver/store/alembic.ini -x url=sqlite:///dev.db
revision --autogenerate -m "…"`` connects by URL instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from homeserver.store.schema import metadata

config = context.config


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or config.get_main_option("sqlalchemy.url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        _configure(conn)


def run_migrations_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") \
        or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
