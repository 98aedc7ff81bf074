"""Engines and the schema's rules, on both databases: pragmas, references, uniqueness, time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from postdesk.errors import ConfigError
from postdesk.storage.db import BUSY_TIMEOUT_S, create_engine_for
from postdesk.storage.models import MailSettings, Message, Sender


def make_sender(address: str = "bi#reports&ops@example.com", **fields: object) -> Sender:
    values: dict[str, object] = {
        "smtp_host": "smtp.example.com",
        "port": 587,
        "encryption": "tls",
        "address": address,
        "address_key": address.lower(),
        "display_name": "BI Reports",
    }
    values.update(fields)
    return Sender(**values)


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_sqlite_pragmas_are_in_effect_on_every_connection(engine: Engine) -> None:
    pragmas = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    # Several connections at once, so more than the pool's first connection is checked.
    connections = [engine.connect() for _ in range(3)]
    try:
        for connection in connections:
            values = [connection.exec_driver_sql(f"PRAGMA {p}").scalar() for p in pragmas]
            assert values == ["wal", 2, 1, BUSY_TIMEOUT_S * 1000]
    finally:
        for connection in connections:
            connection.close()


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_sqlite_sessions_are_real_transactions(session_factory: sessionmaker[Session]) -> None:
    # Savepoints work (pysqlite's own BEGIN handling would break them) and roll back alone.
    with session_factory() as session:
        session.add(make_sender("kept@example.com"))
        session.flush()
        with pytest.raises(IntegrityError), session.begin_nested():
            session.add(make_sender("KEPT@example.com", address_key="kept@example.com"))
        session.commit()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sender)) == 1


def test_savepoint_before_any_write_stays_inside_the_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        with session.begin_nested():
            session.add(make_sender("inner@example.com"))
        session.rollback()
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sender)) == 0


def test_open_reading_session_does_not_block_a_writer(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as reader, session_factory() as writer:
        assert reader.scalar(select(func.count()).select_from(Sender)) == 0
        writer.add(make_sender("first@example.com"))
        writer.commit()
        # The reader then writes too: no stale snapshot to refuse, no lock to wait for.
        reader.add(make_sender("second@example.com"))
        reader.commit()
        assert reader.scalar(select(func.count()).select_from(Sender)) == 2


@pytest.mark.parametrize("database_kind", ["sqlite"])
def test_sqlite_writers_in_several_threads_wait_for_each_other(
    session_factory: sessionmaker[Session],
) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(20):
                with session_factory.begin() as session:
                    # Read, then write: the pattern that fails with "database is locked" when
                    # transactions start deferred.
                    session.scalar(select(func.count()).select_from(Sender))
                    session.add(make_sender(f"w{worker}-{n}@example.com"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sender)) == 80


def test_deleting_the_default_sender_leaves_no_default(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        first, second = make_sender("a@example.com"), make_sender("b@example.com")
        session.add_all([first, second])
        session.flush()
        session.add(MailSettings(id=1, default_sender_id=first.id))
        session.add(
            Message(sender_id=first.id, sender_address=first.address, sender_name="BI Reports")
        )
    with session_factory.begin() as session:
        session.delete(session.get(Sender, first.id))
    with session_factory() as session:
        settings = session.get(MailSettings, 1)
        assert settings is not None
        assert settings.default_sender_id is None  # not promoted to the other sender
        message = session.scalars(select(Message)).one()
        assert message.sender_id is None
        assert message.sender_address == "a@example.com"


def test_address_key_is_unique(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        session.add(make_sender("Reports@Example.com"))
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(make_sender("reports@example.COM"))
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Sender)) == 1


def test_mail_settings_holds_a_single_row(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), session_factory.begin() as session:
        session.add(MailSettings(id=2))


def test_datetimes_round_trip_as_aware_utc(session_factory: sessionmaker[Session]) -> None:
    east = timezone(timedelta(hours=8))
    created = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=east)
    with session_factory.begin() as session:
        sender = make_sender(created_at=created, updated_at=created)
        session.add(sender)
    with session_factory() as session:
        loaded = session.get(Sender, sender.id)
        assert loaded is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded.created_at == datetime(2024, 3, 1, 1, 30, 15, 123456, tzinfo=UTC)
        # Defaults are aware too, and ordering by time works on the stored form.
        assert loaded.updated_at.tzinfo is not None


def test_naive_datetimes_are_refused(session_factory: sessionmaker[Session]) -> None:
    naive = datetime(2024, 3, 1, 9, 30)  # noqa: DTZ001 - the point of the test
    with pytest.raises(Exception, match="naive datetime"), session_factory.begin() as session:
        session.add(make_sender(created_at=naive))


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "mysql://user:hunter2@db/postdesk",
        "postgresql+asyncpg://user:hunter2@db/postdesk",
        "sqlite://",
        "sqlite:///:memory:",
    ],
)
def test_unusable_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        create_engine_for(url)
    assert "hunter2" not in str(caught.value)
    assert caught.value.hint


@pytest.mark.postgres
def test_unreachable_postgres_is_a_config_error_without_the_password(
    postgres_admin_url: str,
) -> None:
    # Port 1 on loopback refuses at once; the password must not leak into the message.
    with pytest.raises(ConfigError) as caught:
        create_engine_for("postgresql://postdesk:hunter2@127.0.0.1:1/postdesk")
    error = caught.value
    assert "hunter2" not in f"{error} {error.hint} {error.__cause__} {error.__context__}"
    assert "127.0.0.1:1" in str(error)


@pytest.mark.postgres
def test_wrong_postgres_database_is_a_config_error(postgres_admin_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_admin_url).set(database="postdesk_no_such_database", password="pw9")
    with pytest.raises(ConfigError, match="postdesk_no_such_database") as caught:
        create_engine_for(url.render_as_string(hide_password=False))
    assert "pw9" not in str(caught.value)


def test_sqlite_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "postdesk.db"
    path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(ConfigError, match="cannot open the database.*not a database"):
        create_engine_for(f"sqlite:///{path}")


def test_sqlite_parent_folder_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "postdesk.db"
    engine = create_engine_for(f"sqlite:///{path}")
    engine.dispose()
    assert path.exists()
    assert path.parent.stat().st_mode & 0o777 == 0o700
