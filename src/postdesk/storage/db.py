"""Database engines and sessions: how postdesk connects to SQLite or PostgreSQL.

SQLite transactions behave like PostgreSQL's default (READ COMMITTED) as far as
postdesk's code can tell: reads outside a write see the latest committed data
and never block anyone; the first INSERT/UPDATE/DELETE of a transaction starts
it with ``BEGIN IMMEDIATE``, which takes SQLite's single write lock at once
(waiting up to ``BUSY_TIMEOUT_S`` for another writer) and keeps it to COMMIT.
A transaction therefore never holds a stale read snapshot that SQLite would
refuse to upgrade to a write ("database is locked" without waiting), and
savepoints (``Session.begin_nested``) are real. Races between a check and a
write are settled by constraints, as on PostgreSQL. Keep write transactions
short: commit before any network I/O such as an SMTP conversation.

Within one process, writers queue for SQLite's write lock on a Python lock first
(``_WriteGate``): SQLite's own busy handler polls with sleeps of up to 100 ms, so
several threads waiting on it (API requests and the worker) would idle while the
database is free. The gate is held from a transaction's first write until its
connection goes back to the pool; a thread that waits longer than the busy timeout
for it goes on to SQLite's own waiting, as without the gate.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import weakref
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, StatementError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from postdesk.errors import ConfigError

log = logging.getLogger(__name__)

# How long a connection waits for SQLite's write lock before giving up.
BUSY_TIMEOUT_S = 10
# How long PostgreSQL may take to accept a connection before postdesk reports it unreachable.
CONNECT_TIMEOUT_S = 10

_URL_HINT = (
    "Use sqlite:////absolute/path/postdesk.db or "
    "postgresql+psycopg://user:password@host:5432/database"
)


def create_engine_for(database_url: str) -> Engine:
    """An engine for ``database_url``, checked by connecting once.

    Raises ``ConfigError`` (never echoing a password) if the URL is malformed,
    names an unsupported database or driver, or the database cannot be reached.
    """
    url = _parse(database_url)
    is_sqlite = url.get_backend_name() == "sqlite"
    engine = _sqlite_engine(url) if is_sqlite else _postgres_engine(url)
    _probe(engine, url)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (no reload)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def _redact(text: str, url: URL) -> str:
    """``text`` with the password of ``url`` (if any) blanked out."""
    if url.password:
        return text.replace(str(url.password), "***")
    return text


def _parse(database_url: str) -> URL:
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):
        # ``from None``: SQLAlchemy's message repeats the URL, password included.
        raise ConfigError(
            "POSTDESK_DATABASE_URL is not a valid database URL", hint=_URL_HINT
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgresql" and driver in ("", "psycopg2", "psycopg"):
        # A bare postgresql:// means psycopg2 to SQLAlchemy; postdesk ships with psycopg 3.
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return url
    raise ConfigError(
        f"POSTDESK_DATABASE_URL names an unsupported database {url.drivername!r}",
        hint=_URL_HINT,
    )


def _sqlite_engine(url: URL) -> Engine:
    path = url.database
    if not path or path == ":memory:" or url.query.get("mode") == "memory":
        raise ConfigError(
            "POSTDESK_DATABASE_URL points at an in-memory SQLite database; "
            "postdesk needs a file so that queued mail survives a restart",
            hint="Use sqlite:////absolute/path/postdesk.db",
        )
    if not url.query.get("uri"):
        _make_parent(Path(path))
    engine = create_engine(
        url,
        # Sessions run in worker threads (web server, embedded queue worker); the pool
        # hands each connection to one thread at a time, so sharing across threads is safe.
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
    )
    event.listen(engine, "connect", _on_sqlite_connect)
    event.listen(engine, "savepoint", _on_sqlite_savepoint)
    gate = _GATES[engine] = _WriteGate()
    event.listen(engine, "before_cursor_execute", gate.before_execute)
    for name in ("checkin", "close", "detach", "invalidate"):
        event.listen(engine.pool, name, gate.release_entry)
    return engine


_WRITES = ("insert", "update", "delete", "replace")
_GATES: weakref.WeakKeyDictionary[Engine, _WriteGate] = weakref.WeakKeyDictionary()


class _WriteGate:
    """One writing transaction at a time per SQLite engine in this process, in turn."""

    _KEY = "postdesk_write_gate"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def before_execute(
        self,
        connection: Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if statement.lstrip()[:7].lower().startswith(_WRITES):
            self.enter(connection)

    def enter(self, connection: Connection) -> None:
        """Before the first write of a transaction: wait for the other writers first."""
        info = connection.connection.info
        raw = connection.connection.driver_connection
        if info.get(self._KEY) or (raw is not None and raw.in_transaction):
            return
        # Past the busy timeout, SQLite decides (and reports "database is locked").
        info[self._KEY] = self._lock.acquire(timeout=BUSY_TIMEOUT_S)

    def release_entry(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        info = getattr(record, "info", None)
        if info is not None and info.pop(self._KEY, False):
            self._lock.release()


def _make_parent(path: Path) -> None:
    # 0700 like POSTDESK_HOME: the database holds records and encrypted passwords.
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the database folder {path.parent}: {exc.strerror}",
            hint="Check that the folder is writable, or set POSTDESK_HOME / "
            "POSTDESK_DATABASE_URL to a writable place.",
        ) from None


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
    # pysqlite opens a transaction itself right before the first INSERT/UPDATE/DELETE;
    # "IMMEDIATE" makes it BEGIN IMMEDIATE: the write lock is taken (or waited for) at once.
    dbapi_connection.isolation_level = "IMMEDIATE"
    cursor = dbapi_connection.cursor()
    try:
        # Wait for a competing writer instead of failing at once with "database is locked".
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        # Write-ahead log: readers never block the writer and the writer never blocks readers.
        (mode,) = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            log.warning("SQLite refused WAL journaling (journal_mode=%s); continuing", mode)
        # FULL: fsync the WAL on every commit, so an accepted mail survives a power cut.
        # (NORMAL, the usual WAL setting, may lose the last commits.)
        cursor.execute("PRAGMA synchronous = FULL")
        # SQLite ignores FOREIGN KEY clauses unless asked, per connection: needed for
        # ON DELETE SET NULL on mail_settings.default_sender_id and messages.sender_id.
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _on_sqlite_savepoint(connection: Connection, _name: str) -> None:
    # A SAVEPOINT outside a transaction would start one that its RELEASE commits,
    # beyond the reach of the session's rollback; open the real transaction first.
    begin_sqlite_write(connection)


def begin_sqlite_write(connection: Connection) -> None:
    """Open the write transaction now on a SQLite connection (no-op if one is open).

    For work that must be atomic but may not start with a write: DDL (migrations) or
    a savepoint. Other databases need nothing.
    """
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if raw is not None and not raw.in_transaction:
        gate = _GATES.get(connection.engine)
        if gate is not None:
            gate.enter(connection)
        raw.execute("BEGIN IMMEDIATE")


def _postgres_engine(url: URL) -> Engine:
    try:
        return create_engine(
            url,
            # Drop connections the server closed (restart, idle timeout) instead of failing.
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "postdesk"},
        )
    except (NoSuchModuleError, ImportError):
        raise ConfigError(
            "PostgreSQL support is not installed",
            hint="pip install 'postdesk[postgres]'",
        ) from None


def _probe(engine: Engine, url: URL) -> None:
    """Connect once so a wrong URL fails at start with a clear message."""
    try:
        with engine.connect():
            pass
    except DBAPIError as exc:
        engine.dispose()
        where = url.render_as_string(hide_password=True)
        raise ConfigError(
            f"cannot open the database {where}: {_reason(exc, url)}",
            hint=_probe_hint(url),
        ) from None


def _reason(exc: DBAPIError, url: URL) -> str:
    original: Any = exc.orig
    text = str(original).strip() or type(original).__name__
    return _redact(" ".join(text.split()), url)


def _probe_hint(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        return "Check that the file is a postdesk database and its folder is writable."
    return (
        "Check that PostgreSQL is running and reachable, and that the user, password "
        "and database name in POSTDESK_DATABASE_URL are right."
    )


# What a database that cannot serve a request raises (the driver's errors, as SQLAlchemy
# wraps them): the front ends answer these as ``unavailable``, and only these.
STORAGE_ERRORS: tuple[type[Exception], ...] = (DBAPIError,)


def describe_database_error(exc: BaseException) -> str:
    """One line on a database error: the driver's exception and words, never the statement
    or its parameters (they may hold mail content)."""
    reason: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        reason = exc.orig
    words = " ".join(str(reason).split())[:300]
    return f"{type(reason).__name__}: {words}" if words else type(reason).__name__
