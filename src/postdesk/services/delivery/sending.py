"""One claimed message onto the wire: its bytes built, its sender's connection taken from
the pool, the SMTP transaction, and any failure as plain data (``Failure``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from postdesk.domain.addresses import parse_known_address
from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import Failure
from postdesk.domain.mail import OutgoingMail, build_mail
from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError
from postdesk.services.delivery.connections import ConnectionPool
from postdesk.storage.queue import Claimed
from postdesk.transport import SendReceipt

MESSAGE_INVALID = "message_invalid"


@dataclass(frozen=True)
class Job:
    """A claimed message with what sending it needs: its sender's settings and files."""

    message: Claimed
    sender_id: int
    sender_version: datetime
    settings: SenderSettings
    attachments: tuple[AttachmentPart, ...]

    @property
    def id(self) -> int:
        return self.message.id


class Courier:
    """Sends jobs over the pool's connections, for one batch."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        # A sender whose connection could not be opened fails the rest of its messages in
        # this batch with the same diagnosis, instead of waiting out the timeout again.
        self.broken: dict[int, Failure] = {}
        # Senders that got a connection, so past the login, in this batch.
        self.logged_in: set[int] = set()

    def send(self, job: Job) -> tuple[SendReceipt | None, Failure | None]:
        """What the server accepted, or why the mail did not go."""
        try:
            mail = build(job)
        except ValueError as exc:
            return None, Failure(MESSAGE_INVALID, f"the mail cannot be built: {exc}")
        broken = self.broken.get(job.sender_id)
        if broken is not None:
            return None, broken
        try:
            connection = self.pool.get(job.sender_id, job.sender_version, job.settings)
        except DeliveryError as exc:
            self.broken[job.sender_id] = Failure.of(exc)
            return None, self.broken[job.sender_id]
        self.logged_in.add(job.sender_id)
        try:
            sent = connection.send(
                envelope_from=mail.envelope_from,
                recipients=mail.recipients,
                message=mail.chunks,
                smtputf8=mail.smtputf8,
            )
        except DeliveryError as exc:
            return None, Failure.of(exc)
        return sent, None


def build(job: Job) -> OutgoingMail:
    """The mail's bytes, the same on every attempt: Message-ID and Date come from the row."""
    message = job.message
    if not message.header_message_id:
        raise ValueError("the message has no Message-ID")
    return build_mail(
        sender=job.settings,
        to=[parse_known_address(a) for a in message.to_addrs],
        cc=[parse_known_address(a) for a in message.cc_addrs],
        bcc=[parse_known_address(a) for a in message.bcc_addrs],
        subject=message.subject,
        html_body=message.html,
        text_body=message.text,
        message_id=message.header_message_id,
        date=message.created_at,
        attachments=job.attachments,
    )
