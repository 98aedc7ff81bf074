"""Schema migrations run from code: upgrade, downgrade and read the database's revision.

Alembic is configured here rather than in an alembic.ini, with ``script_location``
inside the installed package, so migrations work from a wheel and never touch
the application's logging configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection

from postdesk.errors import ConfigError
from postdesk.storage.db import begin_sqlite_write

MIGRATIONS = Path(__file__).resolve().with_name("migrations")
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises concurrent upgrades.
_PG_MIGRATION_LOCK = 0x706F_7374_6465_736B  # "postdesk"


def alembic_config() -> Config:
    """An Alembic configuration pointing at postdesk's migrations; no file involved."""
    config = Config()
    # ConfigParser interpolates "%": escape it in case the install path contains one.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` in one transaction."""
    _run(engine, lambda config: command.upgrade(config, revision))


def downgrade_database(engine: Engine, revision: str) -> None:
    """Migrate the database down to ``revision`` ("base": no tables) in one transaction."""
    _run(engine, lambda config: command.downgrade(config, revision))


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or ``None`` if it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    """Whether the database is at the newest revision this postdesk ships."""
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads


def _run(engine: Engine, action: Callable[[Config], None]) -> None:
    config = alembic_config()
    # One transaction for every revision and the version stamp: a failed upgrade leaves
    # the schema as it was (PostgreSQL and SQLite both have transactional DDL).
    with (
        engine.connect() as connection,
        _sqlite_foreign_keys_off(connection),
        connection.begin(),
    ):
        _lock_against_concurrent_upgrades(connection)
        config.attributes["connection"] = connection
        try:
            action(config)
        except CommandError as exc:
            raise ConfigError(
                f"cannot migrate the database: {exc}",
                hint="If the database was migrated by a newer postdesk, upgrade postdesk "
                "or restore the backup taken before that upgrade.",
            ) from exc
        _check_foreign_keys(connection)


def _lock_against_concurrent_upgrades(connection: Connection) -> None:
    # Several processes (web, workers) may start at once; the second one waits here and then
    # finds the schema already current.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    # pysqlite runs DDL outside any transaction; BEGIN IMMEDIATE makes the whole upgrade
    # atomic and takes SQLite's write lock, which serialises concurrent upgrades too.
    begin_sqlite_write(connection)


@contextmanager
def _sqlite_foreign_keys_off(connection: Connection) -> Iterator[None]:
    """Suspend SQLite's foreign keys for a migration (SQLite's own ALTER TABLE recipe).

    Batch migrations rebuild a table by copying it and dropping the original; with
    foreign keys on, dropping ``senders`` would run ON DELETE SET NULL on every
    referencing row. The pragma is a no-op inside a transaction, so it is set before
    BEGIN; _check_foreign_keys verifies the references before commit.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if not connection.invalidated:
            raw.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return  # PostgreSQL checked every reference as the migration ran.
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise ConfigError(
            f"the migration left {len(broken)} broken references in {', '.join(tables)}; "
            "nothing was changed",
            hint="Report this as a postdesk bug, with the output of 'postdesk migrate'.",
        )
