"""Test mail: prove a sender works (saved, or unsaved settings from the dialog) and record it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postdesk.domain.addresses import AddressError, MailAddress, parse_address
from postdesk.domain.mail import TEST_MAIL_SUBJECT, OutgoingMail, build_test_mail
from postdesk.domain.records import recipients_search_text
from postdesk.domain.senders import SenderSettings, validate_sender
from postdesk.errors import DeliveryError, ValidationError
from postdesk.services.runtime import Runtime
from postdesk.services.senders.accounts import (
    apply_preset,
    edited_settings,
    get_sender_row,
    sender_settings,
)
from postdesk.storage.models import Attempt, Message
from postdesk.storage.repositories import release_sender_hold
from postdesk.transport import send_message


@dataclass(frozen=True)
class TestMailResult:
    message_id: str
    record_id: int


def send_test_mail(
    rt: Runtime,
    *,
    to: str,
    sender_id: int | None = None,
    unsaved: Mapping[str, Any] | None = None,
    client_ip: str | None = None,
) -> TestMailResult:
    """Send the test mail synchronously; raise the ``DeliveryError`` diagnosis on failure.

    With ``unsaved`` settings the mail goes out before anything is saved ("test
    before OK"); with both, the unsaved fields override the saved sender and an
    empty password means the stored one. Either way a ``test`` record is kept.
    """
    recipient = _recipient(to)
    settings = _resolve_sender(rt, sender_id, unsaved)
    started = rt.clock()
    mail = build_test_mail(settings, recipient, started)
    try:
        outcome = send_message(
            settings,
            envelope_from=mail.envelope_from,
            recipients=mail.recipients,
            message=mail.data,
            smtputf8=mail.smtputf8,
        )
    except DeliveryError as exc:
        _record(rt, settings, sender_id, mail, recipient, started, client_ip, exc)
        raise
    record_id = _record(rt, settings, sender_id, mail, recipient, started, client_ip, outcome.reply)
    if sender_id is not None and unsaved is None:
        _release_hold(rt, sender_id)
    return TestMailResult(message_id=mail.message_id, record_id=record_id)


def _release_hold(rt: Runtime, sender_id: int) -> None:
    """The saved sender works again: its queue, held after a login failure, resumes now."""
    with rt.transaction() as session:
        released = release_sender_hold(session, sender_id)
    if released:
        rt.notify_submitted()


def _recipient(to: str) -> MailAddress:
    try:
        return parse_address(to)
    except AddressError as exc:
        raise ValidationError(
            {"to": f"the recipient {exc}"}, hint="Enter one recipient address for the test mail."
        ) from None


def _resolve_sender(
    rt: Runtime, sender_id: int | None, unsaved: Mapping[str, Any] | None
) -> SenderSettings:
    if unsaved is None and sender_id is None:
        raise ValidationError(
            {"sender": "give a saved sender's id or the sender settings to test"},
        )
    with rt.transaction() as session:
        if unsaved is None:
            assert sender_id is not None
            return sender_settings(session, rt.secrets, sender_id)
        fields = apply_preset(unsaved)
        if sender_id is None:
            return validate_sender(fields)
        return edited_settings(get_sender_row(session, sender_id), rt.secrets, fields)


def _record(
    rt: Runtime,
    settings: SenderSettings,
    sender_id: int | None,
    mail: OutgoingMail,
    recipient: MailAddress,
    started: datetime,
    client_ip: str | None,
    result: DeliveryError | str,
) -> int:
    """Keep the test mail as a ``test`` record with its one attempt (the server's reply)."""
    failure = result if isinstance(result, DeliveryError) else None
    ended = rt.clock()
    row = Message(
        kind="test",
        status="failed" if failure else "sent",
        sender_id=sender_id,
        sender_address=str(settings.address),
        sender_name=settings.display_name,
        client_ip=client_ip,
        recipients=[str(recipient)],
        to_addrs=[str(recipient)],
        cc_addrs=[],
        bcc_addrs=[],
        recipients_search=recipients_search_text([str(recipient)]),
        subject=TEST_MAIL_SUBJECT,
        template_name="",
        resources=[],
        message_id=mail.message_id,
        attempts=1,
        created_at=started,
        sent_at=ended,
    )
    attempt = Attempt(
        number=1,
        started_at=started,
        ended_at=ended,
        outcome="failed" if failure else "sent",
        error_code=failure.code if failure else None,
        smtp_code=failure.smtp_code if failure else None,
        reply=failure.message if failure else str(result),
    )
    if failure is not None:
        row.error_code = failure.code
        row.error_message = failure.message
        row.error_hint = failure.hint
        row.smtp_code = failure.smtp_code
    with rt.transaction() as session:
        session.add(row)
        session.flush()
        attempt.message_id = row.id
        session.add(attempt)
        return row.id
