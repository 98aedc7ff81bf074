"""Alembic environment: runs postdesk's migrations on the connection migrate.py hands in.

There is no alembic.ini and no ``fileConfig``: postdesk.storage.migrate configures
Alembic in code and owns the connection and its transaction, so the application's
logging is left alone and the migrations work from an installed wheel.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from postdesk.storage.models import Base

# Record-search structures (revision 0003): trigram GIN indexes, SQLite's FTS5 table and its
# shadow tables, and expression indexes SQLite cannot reflect. The models do not declare
# them, so comparing the models with the database must leave them out.
SEARCH_PREFIX = "search_"


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Alembic name filter: everything but the record-search tables and indexes."""
    return not (type_ in ("table", "index") and (name or "").startswith(SEARCH_PREFIX))


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        include_name=include_name,
        # SQLite can barely ALTER a table; batch mode copies it instead (autogenerate too).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # The caller's transaction is already open, so this nests into it: the whole
    # upgrade (every revision and the version stamp) commits or rolls back at once.
    with context.begin_transaction():
        context.run_migrations()


def _connection() -> Connection:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "postdesk migrations run through postdesk.storage.migrate "
            "(postdesk migrate), not the alembic command"
        )
    return connection


if context.is_offline_mode():
    raise RuntimeError("postdesk migrations do not support offline (--sql) mode")
run_migrations(_connection())
