"""A sender password never reaches the disk in clear, in any file under POSTDESK_HOME."""

from __future__ import annotations

import base64
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from postdesk.config import Settings
from postdesk.storage.models import Sender
from postdesk.storage.secrets import load_secret_box, verify_secret_key

PASSWORD = "Zq9-unique-secret-ÄÖ-7731"


def forms_of(secret: str) -> list[bytes]:
    raw = secret.encode("utf-8")
    forms = [raw, secret.encode("utf-16-le")]
    # base64 of the secret at each of the three alignments it could have inside a larger
    # base64 text, minus the edge characters that depend on the neighbouring bytes.
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        forms.append(encoded[4 : len(encoded) - 4])
        forms.append(base64.urlsafe_b64encode(b"\0" * shift + raw)[4 : len(encoded) - 4])
    return forms


def leaks(home: Path) -> list[str]:
    found = []
    files = sorted(p for p in home.rglob("*") if p.is_file())
    assert files, f"nothing under {home}"
    for path in files:
        data = path.read_bytes()
        found += [f"{path.name}: {form!r}" for form in forms_of(PASSWORD) if form in data]
    return found


def test_password_is_not_stored_in_clear(
    settings: Settings, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    box = load_secret_box(settings)
    with session_factory() as session:
        verify_secret_key(session, box)
    with session_factory.begin() as session:
        session.add(
            Sender(
                smtp_host="smtp.example.com",
                port=465,
                encryption="ssl",
                address="reports@example.com",
                address_key="reports@example.com",
                display_name="Reports",
                username="reports@example.com",
                password_encrypted=box.encrypt(PASSWORD),
            )
        )
    with session_factory() as session:
        stored = session.query(Sender).one()
        assert stored.password_encrypted is not None
        assert box.decrypt(stored.password_encrypted) == PASSWORD

    if settings.is_sqlite:
        # While the engine is open the row sits in the WAL: look there first.
        assert (settings.home / "postdesk.db-wal").stat().st_size > 0
        assert leaks(settings.home) == []
        with engine.connect() as connection:
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()

    assert settings.key_file.exists()
    assert leaks(settings.home) == []


def test_the_scan_finds_a_clear_password(tmp_path: Path) -> None:
    # The detector itself works: plain, and base64 at any alignment inside other data.
    for prefix in (b"", b"x", b"xy"):
        (tmp_path / "plain").write_bytes(b"head" + PASSWORD.encode())
        (tmp_path / "b64").write_bytes(base64.b64encode(prefix + PASSWORD.encode() + b"tail"))
        assert len(leaks(tmp_path)) >= 2
