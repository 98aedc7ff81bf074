"""Queries the services use: senders and their hold, the default sender, administrators."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from postdesk.domain.status import WAITING, MessageStatus
from postdesk.storage.models import Admin, MailSettings, Message, Sender
from postdesk.storage.queue import forgotten_codes


def find_sender(session: Session, sender_id: int) -> Sender | None:
    return session.get(Sender, sender_id)


def find_sender_by_address(session: Session, address: str) -> Sender | None:
    return session.scalars(select(Sender).where(Sender.address_key == address.lower())).first()


def list_senders(session: Session) -> Sequence[Sender]:
    return session.scalars(select(Sender).order_by(Sender.id)).all()


def sender_uses_port(session: Session, port: int) -> bool:
    """Whether a saved sender connects to ``port``."""
    return session.scalar(select(Sender.id).where(Sender.port == port).limit(1)) is not None


def mail_settings(session: Session, *, for_update: bool = False) -> MailSettings:
    """The single settings row, created on first use."""
    query = select(MailSettings).where(MailSettings.id == 1)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        row = MailSettings(id=1, default_sender_id=None)
        session.add(row)
        session.flush()
    return row


def default_sender_id(session: Session) -> int | None:
    return session.scalar(select(MailSettings.default_sender_id).where(MailSettings.id == 1))


def fail_unfinished_messages(session: Session, sender_id: int, *, message: str, hint: str) -> int:
    """Mark the sender's queued and retrying messages failed with ``sender_deleted``."""
    result = session.execute(
        update(Message)
        .where(Message.sender_id == sender_id, Message.status.in_(WAITING))
        .values(
            status=MessageStatus.FAILED,
            error_code="sender_deleted",
            error_message=message,
            error_hint=hint,
            **forgotten_codes(),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def find_admin(session: Session, username: str) -> Admin | None:
    return session.scalars(select(Admin).where(Admin.username == username)).first()


def count_admins(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Admin)) or 0)


def release_sender_hold(session: Session, sender_id: int) -> bool:
    """End a sender's hold now (it was edited, a test mail passed, or a mail logged in);
    True if it was held. The count of logins refused for now starts again.

    Its messages are claimed again at the next poll; call ``Runtime.notify_submitted``
    after the commit to wake the embedded worker at once.
    """
    result = session.execute(
        update(Sender)
        .where(Sender.id == sender_id, Sender.hold_code.is_not(None))
        .values(
            held_until=None,
            hold_code=None,
            hold_message=None,
            probe_until=None,
            login_throttles=0,
            updated_at=Sender.updated_at,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
