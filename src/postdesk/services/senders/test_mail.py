"""Test mail: prove a sender works (saved, or unsaved settings from the dialog) and record it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from postdesk.domain.addresses import AddressError, MailAddress, parse_address
from postdesk.domain.diagnosis import Failure
from postdesk.domain.mail import TEST_MAIL_SUBJECT, OutgoingMail, build_test_mail
from postdesk.domain.senders import SenderSettings, SenderWarning, sender_warnings, validate_sender
from postdesk.domain.status import AttemptOutcome, MessageStatus, RecordKind
from postdesk.errors import DeliveryError, ValidationError
from postdesk.services.access.callers import SYSTEM, Caller
from postdesk.services.runtime import Runtime
from postdesk.services.senders.accounts import (
    apply_preset,
    edited_settings,
    get_sender_row,
    sender_settings,
)
from postdesk.services.senders.test_guard import checked_addresses, count_test_mail
from postdesk.storage.models import Attempt, Message
from postdesk.storage.repositories import release_sender_hold
from postdesk.storage.rows import RecordSender, attempt_row, error_columns, record_row
from postdesk.transport import send_message


@dataclass(frozen=True)
class TestMailResult:
    message_id: str
    record_id: int
    warnings: tuple[SenderWarning, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The success answer: ``{ok, message_id, record_id, warnings}``."""
        return {
            "ok": True,
            "message_id": self.message_id,
            "record_id": self.record_id,
            "warnings": [warning.to_dict() for warning in self.warnings],
        }


def send_test_mail(
    rt: Runtime,
    *,
    to: str,
    sender_id: int | None = None,
    unsaved: Mapping[str, Any] | None = None,
    client_ip: str | None = None,
    caller: Caller = SYSTEM,
) -> TestMailResult:
    """Send the test mail synchronously; raise the ``DeliveryError`` diagnosis on failure.

    With ``unsaved`` settings the mail goes out before anything is saved ("test
    before OK"); with both, the unsaved fields override the saved sender and an
    empty password means the stored one. Either way a ``test`` record is kept. The
    ``caller`` is counted (``test_guard``) and the destination must be allowed.
    """
    count_test_mail(rt, caller)
    recipient = _recipient(to)
    settings = _resolve_sender(rt, sender_id, unsaved)
    started = rt.clock()
    mail = build_test_mail(settings, recipient, started)
    try:
        receipt = send_message(
            settings,
            envelope_from=mail.envelope_from,
            recipients=mail.recipients,
            message=mail.data,
            smtputf8=mail.smtputf8,
            addresses=checked_addresses(rt, settings),
        )
    except DeliveryError as exc:
        _record(rt, settings, sender_id, mail, recipient, started, client_ip, exc)
        raise
    record_id = _record(rt, settings, sender_id, mail, recipient, started, client_ip, receipt.reply)
    if sender_id is not None and unsaved is None:
        _release_hold(rt, sender_id)
    return TestMailResult(mail.message_id, record_id, sender_warnings(settings))


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
    failure = Failure.of(result) if isinstance(result, DeliveryError) else None
    ended = rt.clock()
    row = record_row(
        kind=RecordKind.TEST,
        status=MessageStatus.FAILED if failure else MessageStatus.SENT,
        sender=RecordSender(sender_id, str(settings.address), settings.display_name),
        client_ip=client_ip,
        to=[str(recipient)],
        subject=TEST_MAIL_SUBJECT,
        header_message_id=mail.message_id,
        created_at=started,
        attempts=1,
        sent_at=ended,
        **error_columns(failure),
    )
    outcome = AttemptOutcome.FAILED if failure else AttemptOutcome.SENT
    reply = None if failure else str(result)
    with rt.transaction() as session:
        record_id = (
            session.connection().execute(insert(Message).returning(Message.id), row).scalar_one()
        )
        attempt = attempt_row(record_id, 1, started, ended, outcome, failure=failure, reply=reply)
        session.connection().execute(insert(Attempt), attempt)
        return record_id
