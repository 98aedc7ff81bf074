"""Secret key handling: encryption round trips, the key file, and every way a key can be wrong."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session, sessionmaker

from postdesk.config import Settings
from postdesk.errors import ConfigError
from postdesk.storage.models import KeyCheck
from postdesk.storage.secrets import (
    SecretBox,
    generate_key,
    load_secret_box,
    verify_secret_key,
)


def fresh_settings(tmp_path: Path, secret_key: str | None = None) -> Settings:
    """Settings whose home does not exist yet (the fixture's may hold the database)."""
    return Settings(
        home=tmp_path / "fresh-home", database_url="sqlite:///unused", secret_key=secret_key
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("text", ["", "hunter2", "Zq9-unique-secret-ÄÖ-7731", "授权码 🔑 \n\t"])
def test_secret_box_round_trip(text: str) -> None:
    box = SecretBox(Fernet.generate_key(), source="test")
    token = box.encrypt(text)
    assert text.encode() not in token or not text
    assert box.decrypt(token) == text


def test_secret_box_never_shows_its_key() -> None:
    key = Fernet.generate_key()
    box = SecretBox(key, source="test")
    assert key.decode() not in repr(box)


def test_token_from_another_key_is_a_config_error() -> None:
    token = SecretBox(Fernet.generate_key(), source="old").encrypt("hunter2")
    with pytest.raises(ConfigError, match="secret key does not match"):
        SecretBox(Fernet.generate_key(), source="new").decrypt(token)


def test_key_file_is_created_private_in_a_private_home(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    box = load_secret_box(settings)
    assert box.created_file == settings.key_file
    assert mode(settings.home) == 0o700
    assert mode(settings.key_file) == 0o600
    assert [p.name for p in settings.home.iterdir()] == ["secret.key"]  # no temp file left
    # The next start reads the same key.
    again = load_secret_box(settings)
    assert again.created_file is None
    assert again.decrypt(box.encrypt("same key")) == "same key"


def test_key_file_is_private_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        settings = fresh_settings(tmp_path)
        load_secret_box(settings)
    finally:
        os.umask(old)
    assert mode(settings.key_file) == 0o600
    assert mode(settings.home) == 0o700


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    boxes: list[SecretBox] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        boxes.append(load_secret_box(settings))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    token = boxes[0].encrypt("shared")
    assert all(box.decrypt(token) == "shared" for box in boxes)
    assert sum(box.created_file is not None for box in boxes) == 1


def test_environment_key_wins_and_no_file_is_written(tmp_path: Path) -> None:
    key = generate_key()
    settings = fresh_settings(tmp_path, secret_key=key)
    box = load_secret_box(settings)
    assert SecretBox(key.encode(), source="x").decrypt(box.encrypt("a")) == "a"
    assert not settings.key_file.exists()


@pytest.mark.parametrize("value", ["short", "x" * 44, "secret-ÄÖ", Fernet.generate_key().hex()])
def test_malformed_environment_key_is_a_config_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="POSTDESK_SECRET_KEY is not a valid key") as caught:
        load_secret_box(fresh_settings(tmp_path, secret_key=value))
    assert value not in str(caught.value)
    assert caught.value.hint is not None
    assert "Fernet.generate_key()" in caught.value.hint


@pytest.mark.parametrize("bits", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_is_a_config_error(tmp_path: Path, bits: int) -> None:
    settings = fresh_settings(tmp_path)
    load_secret_box(settings)
    settings.key_file.chmod(bits)
    with pytest.raises(ConfigError, match="accessible to other users") as caught:
        load_secret_box(settings)
    assert caught.value.hint == f"chmod 600 {settings.key_file}"


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"\n  \n", "is empty"), (b"not a key at all\n", "not hold a valid key")],
)
def test_broken_key_file_is_a_config_error(tmp_path: Path, content: bytes, message: str) -> None:
    settings = fresh_settings(tmp_path)
    settings.home.mkdir(mode=0o700)
    settings.key_file.write_bytes(content)
    settings.key_file.chmod(0o600)
    with pytest.raises(ConfigError, match=message):
        load_secret_box(settings)
    assert settings.key_file.read_bytes() == content  # never replaced


def test_key_file_with_trailing_newline_is_accepted(tmp_path: Path) -> None:
    settings = fresh_settings(tmp_path)
    settings.home.mkdir(mode=0o700)
    key = Fernet.generate_key()
    settings.key_file.write_bytes(b"  " + key + b"\r\n")
    settings.key_file.chmod(0o600)
    box = load_secret_box(settings)
    assert SecretBox(key, source="x").decrypt(box.encrypt("ok")) == "ok"


def test_verify_creates_the_check_row_once(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    box = load_secret_box(settings)
    with session_factory() as session:
        verify_secret_key(session, box)
    with session_factory() as session:
        row = session.get(KeyCheck, 1)
        assert row is not None
        token = row.token
        verify_secret_key(session, load_secret_box(settings))
    with session_factory() as session:
        row = session.get(KeyCheck, 1)
        assert row is not None
        assert row.token == token


def test_wrong_environment_key_is_a_config_error(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        verify_secret_key(session, load_secret_box(settings))
    wrong = dataclasses.replace(settings, secret_key=generate_key())
    with session_factory() as session, pytest.raises(ConfigError) as caught:
        verify_secret_key(session, load_secret_box(wrong))
    assert "does not match the one this database was created with" in caught.value.message
    assert caught.value.hint is not None
    assert "secret.key or POSTDESK_SECRET_KEY" in caught.value.hint


def test_replaced_key_file_is_a_config_error(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        verify_secret_key(session, load_secret_box(settings))
    settings.key_file.write_bytes(Fernet.generate_key())
    with session_factory() as session, pytest.raises(ConfigError, match="does not match"):
        verify_secret_key(session, load_secret_box(settings))


def test_deleted_key_file_is_a_config_error_every_time(
    settings: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        verify_secret_key(session, load_secret_box(settings))
    settings.key_file.unlink()
    for _ in range(2):  # a second start must not find a "new" key and carry on
        box = load_secret_box(settings)  # creates a fresh key, as on a first run ...
        with session_factory() as session, pytest.raises(ConfigError, match="is missing") as e:
            verify_secret_key(session, box)  # ... which this database refuses
        assert e.value.hint is not None
        assert str(settings.key_file) in e.value.hint
        # The useless fresh key is gone again: restoring the original is all it takes.
        assert not settings.key_file.exists()
