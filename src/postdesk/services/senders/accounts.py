"""Sender accounts and the system default sender: create, edit, delete, choose the default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from postdesk.domain.bound_secrets import PASSWORD, BoundSecret, check_secrets_stay
from postdesk.domain.destinations import refuse_reserved_host
from postdesk.domain.providers import find_provider
from postdesk.domain.senders import SENDER_FIELDS, SenderSettings, validate_sender
from postdesk.errors import NotFoundError, SenderExistsError, ValidationError
from postdesk.services.runtime import Runtime
from postdesk.storage import repositories as repo
from postdesk.storage.models import Sender
from postdesk.storage.secrets import SecretBox


@dataclass(frozen=True)
class SenderView:
    """A sender as shown to administrators: never the password."""

    id: int
    smtp_host: str
    port: int
    encryption: str
    address: str
    username: str | None
    display_name: str
    has_password: bool
    has_ca_cert: bool
    timeout_s: float
    max_per_minute: int | None
    is_default: bool
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


@dataclass(frozen=True)
class MailSettingsView:
    """``configured`` is true if and only if a default sender is set."""

    default_sender_id: int | None

    @property
    def configured(self) -> bool:
        return self.default_sender_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {"default_sender_id": self.default_sender_id, "configured": self.configured}


def create_sender(rt: Runtime, data: Mapping[str, Any]) -> SenderView:
    """Add a sender; an optional ``preset`` key fills host, port and encryption left empty."""
    fields = apply_preset(data)
    settings = validate_sender(fields)
    refuse_reserved_host(settings.smtp_host)
    with rt.transaction() as session:
        if repo.find_sender_by_address(session, settings.address.address) is not None:
            raise _exists(settings)
        row = Sender(preset=fields.get("preset") or None)
        _store(row, settings, rt.secrets, now=rt.clock())
        row.created_at = row.updated_at
        session.add(row)
        _flush_unique(session, settings)
        return _view(row, repo.default_sender_id(session))


def list_senders(rt: Runtime) -> list[SenderView]:
    with rt.transaction() as session:
        default_id = repo.default_sender_id(session)
        return [_view(row, default_id) for row in repo.list_senders(session)]


def get_sender(rt: Runtime, sender_id: int) -> SenderView:
    with rt.transaction() as session:
        return _view(get_sender_row(session, sender_id), repo.default_sender_id(session))


def update_sender(rt: Runtime, sender_id: int, patch: Mapping[str, Any]) -> SenderView:
    """Change the fields given; an absent or empty password keeps the stored one.

    ``clear_password: true`` removes the stored password.
    """
    with rt.transaction() as session:
        row = get_sender_row(session, sender_id)
        settings = edited_settings(row, rt.secrets, patch)
        refuse_reserved_host(settings.smtp_host)
        other = repo.find_sender_by_address(session, settings.address.address)
        if other is not None and other.id != row.id:
            raise _exists(settings)
        _store(row, settings, rt.secrets, now=rt.clock())
        _flush_unique(session, settings)
        # An edit (a new password, usually) ends a hold after an authentication failure.
        released = repo.release_sender_hold(session, row.id)
        view = _view(row, repo.default_sender_id(session))
    if released:
        rt.notify_submitted()
    return view


def delete_sender(rt: Runtime, sender_id: int) -> None:
    """Delete a sender. If it was the default, the default becomes empty (never another)."""
    with rt.transaction() as session:
        row = get_sender_row(session, sender_id)
        settings_row = repo.mail_settings(session, for_update=True)
        if settings_row.default_sender_id == row.id:
            settings_row.default_sender_id = None
        repo.fail_unfinished_messages(
            session,
            row.id,
            message=f"The sender {row.address} was deleted before this mail was sent.",
            hint="Send the mail again from another sender.",
        )
        session.delete(row)


def get_mail_settings(rt: Runtime) -> MailSettingsView:
    with rt.transaction() as session:
        return MailSettingsView(repo.default_sender_id(session))


def set_default_sender(rt: Runtime, sender_id: int | None) -> MailSettingsView:
    """Choose the system default sender; ``None`` clears it (the service becomes unconfigured)."""
    with rt.transaction() as session:
        if sender_id is not None and repo.find_sender(session, sender_id) is None:
            raise ValidationError(
                {"default_sender_id": f"no sender has the id {sender_id}"},
                hint="List the senders (postdesk sender list) and choose one of their ids.",
            )
        row = repo.mail_settings(session, for_update=True)
        row.default_sender_id = sender_id
        row.updated_at = rt.clock()
        return MailSettingsView(sender_id)


def sender_settings(session: Session, secrets: SecretBox, sender_id: int) -> SenderSettings:
    """A saved sender with its decrypted password, ready to connect."""
    return settings_from_row(get_sender_row(session, sender_id), secrets)


def settings_from_row(row: Sender, secrets: SecretBox) -> SenderSettings:
    return edited_settings(row, secrets, {})


def edited_settings(row: Sender, secrets: SecretBox, patch: Mapping[str, Any]) -> SenderSettings:
    """The sender as it would be after ``patch``, validated, with the password to use.

    An absent or empty password in the patch keeps the stored one (for saving and
    for testing an edit); ``clear_password: true`` drops it. A kept password goes only
    to the server it was saved for: a patch that changes where it would go is a
    ``ValidationError`` naming the password.
    """
    changes = {k: v for k, v in patch.items() if k in SENDER_FIELDS}
    if changes.get("password") in (None, ""):
        changes.pop("password", None)
    settings = validate_sender({**stored_fields(row), **changes})
    keep = "password" not in changes and not patch.get("clear_password")
    if keep and row.password_encrypted is not None:
        if changes:
            _keep_where_saved(row, settings, [PASSWORD])
        settings = settings.with_password(secrets.decrypt(row.password_encrypted))
    return settings


def _keep_where_saved(row: Sender, edited: SenderSettings, kept: list[BoundSecret]) -> None:
    """The stored secrets in ``kept`` stay with the server they were saved for."""
    check_secrets_stay(validate_sender(stored_fields(row)), edited, kept)


def stored_fields(row: Sender) -> dict[str, Any]:
    """The row's settings as input fields, without the password."""
    return {
        "smtp_host": row.smtp_host,
        "port": row.port,
        "encryption": row.encryption,
        "address": row.address,
        "display_name": row.display_name,
        "username": row.username,
        "ca_cert_pem": row.ca_cert_pem,
        "timeout_s": row.timeout_s,
        "max_per_minute": row.max_per_minute,
    }


def apply_preset(data: Mapping[str, Any]) -> dict[str, Any]:
    """Fill host, port and encryption from ``preset`` where the caller left them empty."""
    fields = dict(data)
    key = fields.get("preset")
    if not key:
        return fields
    provider = find_provider(str(key))
    if provider is None:
        raise ValidationError(
            {"preset": f"unknown provider preset {key!r}"},
            hint="See the presets with postdesk providers (GET /api/v1/providers).",
        )
    defaults = {
        "smtp_host": provider.smtp_host or None,
        "port": provider.port,
        "encryption": provider.encryption.value,
    }
    for name, value in defaults.items():
        if fields.get(name) in (None, ""):
            fields[name] = value
    return fields


def _store(row: Sender, settings: SenderSettings, secrets: SecretBox, *, now: datetime) -> None:
    row.smtp_host = settings.smtp_host
    row.port = settings.port
    row.encryption = settings.encryption.value
    row.address = settings.address.address
    row.address_key = settings.address.address.lower()
    row.display_name = settings.display_name
    row.username = settings.username
    row.ca_cert_pem = settings.ca_cert_pem
    row.timeout_s = settings.timeout_s
    row.max_per_minute = settings.max_per_minute
    row.updated_at = now
    row.password_encrypted = (
        secrets.encrypt(settings.password) if settings.password is not None else None
    )


def _flush_unique(session: Session, settings: SenderSettings) -> None:
    # Two administrators saving the same address at once: the unique index decides.
    try:
        session.flush()
    except IntegrityError:
        raise _exists(settings) from None


def _exists(settings: SenderSettings) -> SenderExistsError:
    return SenderExistsError(
        f"A sender with the address {settings.address} already exists.",
        hint="Edit the existing sender instead, or use another address.",
    )


def get_sender_row(session: Session, sender_id: int) -> Sender:
    row = repo.find_sender(session, sender_id)
    if row is None:
        raise NotFoundError(
            f"No sender has the id {sender_id}.",
            hint="List the senders with postdesk sender list.",
        )
    return row


def _view(row: Sender, default_id: int | None) -> SenderView:
    return SenderView(
        id=row.id,
        smtp_host=row.smtp_host,
        port=row.port,
        encryption=row.encryption,
        address=row.address,
        username=row.username,
        display_name=row.display_name,
        has_password=row.password_encrypted is not None,
        has_ca_cert=row.ca_cert_pem is not None,
        timeout_s=row.timeout_s,
        max_per_minute=row.max_per_minute,
        is_default=row.id == default_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
