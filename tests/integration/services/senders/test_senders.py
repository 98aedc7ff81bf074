"""Senders and the system default sender, on SQLite and PostgreSQL, through the services."""

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from postdesk.errors import NotFoundError, SenderExistsError, ValidationError
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as service
from postdesk.storage.models import Message, Sender

SECRET = "Zq9-unique-secret-ÄÖ-7731"


def sender_fields(**changes: Any) -> dict[str, Any]:
    return {
        "smtp_host": "smtp.example.com",
        "port": 587,
        "encryption": "tls",
        "address": "reports@example.com",
        "display_name": "Reports",
        **changes,
    }


def stored_password(rt: Runtime, sender_id: int) -> str | None:
    with rt.transaction() as session:
        row = session.get(Sender, sender_id)
        assert row is not None
        return rt.secrets.decrypt(row.password_encrypted) if row.password_encrypted else None


def test_create_returns_the_spec_fields_without_the_password(rt: Runtime) -> None:
    view = service.create_sender(rt, sender_fields(password=SECRET))
    data = view.to_dict()
    assert set(data) == {
        "id", "smtp_host", "port", "encryption", "address", "username", "display_name",
        "has_password", "has_ca_cert", "timeout_s", "max_per_minute", "is_default",
        "created_at", "updated_at",
    }  # fmt: skip
    assert data["has_password"] is True
    assert data["username"] is None
    assert data["is_default"] is False
    assert SECRET not in repr(data)
    assert stored_password(rt, view.id) == SECRET


def test_duplicate_address_is_sender_exists_case_insensitively(rt: Runtime) -> None:
    service.create_sender(rt, sender_fields())
    with pytest.raises(SenderExistsError):
        service.create_sender(rt, sender_fields(address="REPORTS@example.com"))


def test_edit_without_password_keeps_the_stored_one(rt: Runtime) -> None:
    view = service.create_sender(rt, sender_fields(password=SECRET))
    service.update_sender(rt, view.id, {"display_name": "BI Reports", "password": ""})
    assert stored_password(rt, view.id) == SECRET
    service.update_sender(rt, view.id, {"timeout_s": 10, "max_per_minute": 5})
    assert stored_password(rt, view.id) == SECRET
    changed = service.update_sender(rt, view.id, {"password": "new-code"})
    assert stored_password(rt, view.id) == "new-code"
    assert changed.display_name == "BI Reports"
    cleared = service.update_sender(rt, view.id, {"clear_password": True})
    assert cleared.has_password is False
    assert stored_password(rt, view.id) is None


def test_edit_validates_the_merged_sender(rt: Runtime) -> None:
    view = service.create_sender(rt, sender_fields())
    with pytest.raises(ValidationError) as caught:
        service.update_sender(rt, view.id, {"display_name": "  ", "port": 0})
    assert set(caught.value.fields) == {"display_name", "port"}
    assert service.get_sender(rt, view.id).display_name == "Reports"


def test_edit_to_another_senders_address_is_sender_exists(rt: Runtime) -> None:
    service.create_sender(rt, sender_fields())
    other = service.create_sender(rt, sender_fields(address="alerts@example.com"))
    with pytest.raises(SenderExistsError):
        service.update_sender(rt, other.id, {"address": "Reports@Example.com"})


def test_preset_fills_host_port_and_encryption(rt: Runtime) -> None:
    view = service.create_sender(
        rt,
        {"preset": "exmail", "address": "bi@corp.example", "display_name": "BI", "password": "c"},
    )
    assert (view.smtp_host, view.port, view.encryption) == ("smtp.exmail.qq.com", 465, "ssl")
    with pytest.raises(ValidationError) as caught:
        service.create_sender(rt, {"preset": "nope", "address": "x@example.com"})
    assert "preset" in caught.value.fields


def test_no_default_means_unconfigured(rt: Runtime) -> None:
    assert service.get_mail_settings(rt).to_dict() == {
        "default_sender_id": None,
        "configured": False,
    }
    view = service.create_sender(rt, sender_fields())
    assert service.get_mail_settings(rt).configured is False
    settings = service.set_default_sender(rt, view.id)
    assert settings.to_dict() == {"default_sender_id": view.id, "configured": True}
    assert service.get_sender(rt, view.id).is_default is True
    assert service.set_default_sender(rt, None).configured is False


def test_default_must_name_an_existing_sender(rt: Runtime) -> None:
    with pytest.raises(ValidationError) as caught:
        service.set_default_sender(rt, 4242)
    assert "default_sender_id" in caught.value.fields


def test_deleting_the_default_leaves_no_default(rt: Runtime) -> None:
    first = service.create_sender(rt, sender_fields())
    second = service.create_sender(rt, sender_fields(address="alerts@example.com"))
    service.set_default_sender(rt, first.id)
    service.delete_sender(rt, first.id)
    settings = service.get_mail_settings(rt)
    assert settings.default_sender_id is None
    assert settings.configured is False
    assert service.get_sender(rt, second.id).is_default is False
    with pytest.raises(NotFoundError):
        service.get_sender(rt, first.id)


def test_deleting_another_sender_keeps_the_default(rt: Runtime) -> None:
    first = service.create_sender(rt, sender_fields())
    second = service.create_sender(rt, sender_fields(address="alerts@example.com"))
    service.set_default_sender(rt, first.id)
    service.delete_sender(rt, second.id)
    assert service.get_mail_settings(rt).default_sender_id == first.id


def test_deleting_a_sender_fails_its_unfinished_mail_and_keeps_records(rt: Runtime) -> None:
    view = service.create_sender(rt, sender_fields())
    with rt.transaction() as session:
        for status in ("queued", "retrying", "sent"):
            session.add(
                Message(
                    sender_id=view.id,
                    sender_address=view.address,
                    sender_name=view.display_name,
                    status=status,
                    recipients=["a@example.org"],
                    created_at=rt.clock(),
                )
            )
    service.delete_sender(rt, view.id)
    with rt.transaction() as session:
        rows = session.scalars(select(Message).order_by(Message.id)).all()
        outcome = [(m.status, m.error_code, m.sender_address) for m in rows]
    assert outcome == [
        ("failed", "sender_deleted", "reports@example.com"),
        ("failed", "sender_deleted", "reports@example.com"),
        ("sent", None, "reports@example.com"),
    ]


def test_missing_sender_is_not_found(rt: Runtime) -> None:
    with pytest.raises(NotFoundError):
        service.update_sender(rt, 999, {"port": 25})
    with pytest.raises(NotFoundError):
        service.delete_sender(rt, 999)


def test_password_is_in_no_file_under_home(rt: Runtime, tmp_path: Path) -> None:
    view = service.create_sender(rt, sender_fields(password=SECRET))
    service.update_sender(rt, view.id, {"display_name": "Renamed"})
    rt.close()
    home = rt.settings.home
    files = [p for p in home.rglob("*") if p.is_file()]
    assert files, "the home folder holds the key file (and the SQLite database)"
    for path in files:
        content = path.read_bytes()
        assert SECRET.encode() not in content, path.name
        assert SECRET.encode("utf-16-le") not in content, path.name


def test_editing_a_held_sender_releases_its_queue(rt: Runtime) -> None:
    view = service.create_sender(rt, sender_fields(password="old-code"))
    with rt.transaction() as session:
        row = session.get(Sender, view.id)
        assert row is not None
        row.hold_code, row.hold_message = "smtp_auth_failed", "535 bad login"
        row.held_until = rt.clock()
    woken: list[bool] = []
    rt.submitted_hooks.append(lambda: woken.append(True))
    service.update_sender(rt, view.id, {"password": "new-code"})
    with rt.transaction() as session:
        row = session.get(Sender, view.id)
        assert row is not None
        assert (row.hold_code, row.held_until) == (None, None)
    assert woken == [True]


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "fe80::1", "fd00:ec2::254", "metadata.google.internal", "0xa9fea9fe"],
)
def test_a_link_local_or_metadata_host_is_never_saved(rt: Runtime, host: str) -> None:
    with pytest.raises(ValidationError) as caught:
        service.create_sender(rt, sender_fields(smtp_host=host))
    assert list(caught.value.fields) == ["smtp_host"]
    saved = service.create_sender(rt, sender_fields())
    with pytest.raises(ValidationError) as caught:
        service.update_sender(rt, saved.id, {"smtp_host": host})
    assert list(caught.value.fields) == ["smtp_host"]
    assert service.get_sender(rt, saved.id).smtp_host == "smtp.example.com"
