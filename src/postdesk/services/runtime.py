"""The runtime every service works with: settings, database, secret box and clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from postdesk.config import Settings
from postdesk.storage.db import create_engine_for, session_factory
from postdesk.storage.migrate import current_revision, upgrade_database
from postdesk.storage.secrets import SecretBox, load_secret_box, verify_secret_key

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def memory_limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(MemoryStorage())


@dataclass
class Runtime:
    """What services receive instead of module-level globals (tests build their own)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    secrets: SecretBox
    clock: Clock = field(default=system_clock)
    # Called after messages are committed to the queue (the embedded worker wakes up,
    # or a task is sent to the broker). Hooks must be quick and must not raise.
    submitted_hooks: list[Callable[[], None]] = field(default_factory=list)
    # The limits use cases count in this process (test mails per administrator).
    limiter: MovingWindowRateLimiter = field(default_factory=memory_limiter)

    def notify_submitted(self) -> None:
        for hook in self.submitted_hooks:
            hook()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error."""
        with self.sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings, *, clock: Clock = system_clock) -> Runtime:
    """Create the data folder, migrate the database and check the secret key.

    Every failure here is a ``ConfigError`` with a hint: a missing or wrong key
    stops the start instead of silently writing passwords under a new key.
    """
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = create_engine_for(settings.database_url)
    try:
        upgrade_database(engine)
        secrets = load_secret_box(settings)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            verify_secret_key(session, secrets)
    except BaseException:
        engine.dispose()
        raise
    return Runtime(
        settings=settings, engine=engine, sessions=sessions, secrets=secrets, clock=clock
    )


@contextmanager
def runtime(settings: Settings | None = None) -> Iterator[Runtime]:
    rt = open_runtime(settings or Settings.from_env())
    try:
        yield rt
    finally:
        rt.close()


def migrate_database(settings: Settings) -> str | None:
    """Apply every migration (``postdesk db upgrade``); return the revision now current."""
    engine = create_engine_for(settings.database_url)
    try:
        upgrade_database(engine)
        return current_revision(engine)
    finally:
        engine.dispose()
