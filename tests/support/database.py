"""Database fixtures for the whole suite: each test that uses them runs on SQLite and PostgreSQL.

Fixtures (function scope unless noted)
--------------------------------------
``database_kind``
    ``"sqlite"`` or ``"postgresql"``: the parameter every fixture below follows. The
    PostgreSQL variant carries the ``postgres`` marker (``-m "not postgres"`` leaves it
    out). To run one test on one database only::

        @pytest.mark.parametrize("database_kind", ["sqlite"])

``database_url``
    An empty database already migrated to head through the Alembic migrations.
    SQLite: ``tmp_path/"home"/"postdesk.db"`` (inside ``settings.home``, as in
    production), copied from a template migrated once per session (about 0.3 ms).
    PostgreSQL: one throwaway database per test session (``postdesk_test_<hex>``,
    dropped ``WITH (FORCE)`` at the end), emptied before every test: connections a
    previous test leaked are terminated, every table is emptied with DELETE and every
    sequence restarts at 1, so ids start at 1 as on SQLite (about 2 ms per test;
    a database per test would cost about 90 ms). A test that changes the schema
    should use ``blank_database_url``; if it does not, the next test notices and
    gets a new database.

``blank_database_url``
    An empty database that was never migrated, for migration tests (a new SQLite file
    path; on PostgreSQL a new database, dropped after the test, about 0.3 s).

``engine``
    ``create_engine_for(database_url)``: migrated to head, disposed after the test.

``session_factory``
    ``postdesk.storage.db.session_factory(engine)`` (``expire_on_commit=False``).

``settings``
    ``Settings(home=tmp_path/"home", database_url=database_url, secret_key=None,
    test_mail_allowed_ports=None)``; ``home`` exists (mode 0700) on both databases, but
    holds no secret.key yet. Test mails may use any port: the test SMTP servers listen
    on ports the OS picks.

``postgres_url``
    Like ``database_url``, but PostgreSQL only, for tests about PostgreSQL itself.

``postgres_server`` / ``postgres_admin_url`` (session)
    The server (``create_database()``, ``drop_database(name)``, ``url_for(name)``) and
    a URL to its admin database. PostgreSQL is looked for at
    ``POSTDESK_TEST_POSTGRES_URL`` if set, else 127.0.0.1:5432, database ``test``, as
    user ``postgres`` or ``root`` (trust authentication). If it cannot be reached the
    PostgreSQL variants are skipped, except when ``CI=true``: then they fail, because
    CI must exercise PostgreSQL. Tests using these three fixtures get the ``postgres``
    marker automatically.

Tests must close their sessions and dispose engines they create themselves; the
SQLite and PostgreSQL variants of one test share nothing but the session-wide
template and server. On SQLite a write transaction holds the database's only
write lock until it ends: two sessions writing at once in one thread wait for
each other until the busy timeout (10 s) runs out.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from postdesk.config import Settings
from postdesk.storage.db import create_engine_for
from postdesk.storage.db import session_factory as make_session_factory
from postdesk.storage.migrate import alembic_config, upgrade_database
from postdesk.storage.models import Base

_ADMIN_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
_DB_FILE = "postdesk.db"


@dataclass(frozen=True)
class PostgresServer:
    """The test PostgreSQL server, reached through its admin database."""

    admin_url: str

    def url_for(self, database: str) -> str:
        return make_url(self.admin_url).set(database=database).render_as_string(hide_password=False)

    def create_database(self) -> str:
        name = f"postdesk_test_{secrets.token_hex(6)}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _admin(self, statement: sql.Composed) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(_conninfo(self.admin_url), autocommit=True) as conn:
            conn.execute(statement)


def _conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg does not take the +driver)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _reachable(url: str) -> str | None:
    """``None`` if ``url`` accepts a connection, else why not."""
    try:
        with psycopg.connect(_conninfo(url), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return " ".join(str(exc).split())


_POSTGRES_FIXTURES = frozenset({"postgres_server", "postgres_admin_url", "postgres_url"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the server ``postgres``, so ``-m "not postgres"`` is exact."""
    for item in items:
        if _POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    configured = os.environ.get("POSTDESK_TEST_POSTGRES_URL")
    candidates = [configured] if configured else list(_ADMIN_CANDIDATES)
    reasons = []
    for url in candidates:
        reason = _reachable(url)
        if reason is None:
            return PostgresServer(url)
        parsed = make_url(url)
        if parsed.password:
            reason = reason.replace(str(parsed.password), "***")
        reasons.append(f"{parsed.render_as_string(hide_password=True)}: {reason}")
    message = "PostgreSQL is not reachable: " + "; ".join(reasons)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin_url(postgres_server: PostgresServer) -> str:
    return postgres_server.admin_url


class _SharedPostgres:
    """The session's migrated PostgreSQL database and the means to empty it between tests."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
        # Children first, so that DELETE never trips over a foreign key.
        self._tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
        self._create()

    def _create(self) -> None:
        self.name = self.server.create_database()
        self.url = self.server.url_for(self.name)
        engine = create_engine_for(self.url)
        try:
            upgrade_database(engine)
        finally:
            engine.dispose()
        self._conn = psycopg.connect(_conninfo(self.url))

    def reset(self) -> None:
        """Empty every table; start over if a test migrated the schema away from head."""
        with self._conn.transaction():
            # A connection some earlier test left open could hold locks and block the
            # DELETEs below; it is dead weight anyway (pools reconnect: pool_pre_ping).
            self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        try:
            healthy = self._at_head() and self._empty()
        except psycopg.errors.UndefinedTable:
            healthy = False
        if not healthy:
            # Rare: a test changed the schema (it should use blank_database_url). A new
            # database is the only repair that works whatever the test did.
            self.close()
            self._create()

    def _empty(self) -> bool:
        with self._conn.transaction():
            self._conn.execute("SET LOCAL lock_timeout = '10s'")
            for table in self._tables:
                self._conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            # Ids start at 1 again, as in the fresh SQLite copy.
            self._conn.execute(
                "SELECT setval(c.oid, 1, false) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'S' AND n.nspname = current_schema()"
            )
        return True

    def _at_head(self) -> bool:
        with self._conn.transaction():
            if self._conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,):
                return False
            rows = self._conn.execute("SELECT version_num FROM alembic_version").fetchall()
        return {row[0] for row in rows} == self._heads

    def close(self) -> None:
        self._conn.close()
        self.server.drop_database(self.name)


@pytest.fixture(scope="session")
def _shared_postgres(postgres_server: PostgresServer) -> Iterator[_SharedPostgres]:
    shared = _SharedPostgres(postgres_server)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("sqlite-template") / _DB_FILE
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        upgrade_database(engine)
    finally:
        # The last connection to close checkpoints the WAL into the main file and removes
        # it, so the file alone is the whole database.
        engine.dispose()
    assert not path.with_name(_DB_FILE + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def database_url(database_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if database_kind == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        home = tmp_path / "home"
        home.mkdir(mode=0o700)
        shutil.copyfile(template, home / _DB_FILE)
        return f"sqlite:///{home / _DB_FILE}"
    # Only the PostgreSQL variant touches the server: SQLite-only runs never connect.
    shared: _SharedPostgres = request.getfixturevalue("_shared_postgres")
    shared.reset()
    return shared.url


@pytest.fixture
def postgres_url(_shared_postgres: _SharedPostgres) -> str:
    """``database_url`` on PostgreSQL only, for tests that are about PostgreSQL."""
    _shared_postgres.reset()
    return _shared_postgres.url


@pytest.fixture
def blank_database_url(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    if database_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank' / _DB_FILE}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield server.url_for(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_engine_for(database_url)
    try:
        yield created
    finally:
        created.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    home = tmp_path / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    return Settings(
        home=home, database_url=database_url, secret_key=None, test_mail_allowed_ports=None
    )
