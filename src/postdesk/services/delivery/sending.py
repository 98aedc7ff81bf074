"""One claimed message onto the wire: its bytes built, its sender's connection taken from
the pool, the SMTP transaction, and any failure as plain data (``Failure``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from postdesk.domain.addresses import parse_known_address
from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import Failure
from postdesk.domain.mail import OutgoingMail, build_mail
from postdesk.domain.recipients import (
    RecipientResult,
    RecipientStatus,
    Results,
    load_results,
    to_send,
)
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


@dataclass(frozen=True)
class Sent:
    """What one attempt came to: why the mail has not reached every recipient (``None``
    when it has), each recipient's outcome so far when the server answered for them
    (keyed by the record's addresses), and the server's answer to the data."""

    failure: Failure | None
    results: Results | None = None
    reply: str | None = None


class Courier:
    """Sends jobs over the pool's connections, for one batch."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        # A sender whose connection could not be opened fails the rest of its messages in
        # this batch with the same diagnosis, instead of waiting out the timeout again.
        self.broken: dict[int, Failure] = {}
        # Senders that got a connection, so past the login, in this batch.
        self.logged_in: set[int] = set()

    def send(self, job: Job) -> Sent:
        """Send the mail to the recipients that do not have it yet, and say what came of it.

        Each of them gets the same bytes; those that got it (or were refused for good)
        on an earlier attempt are left out, so that nobody gets two copies.
        """
        before = load_results(job.message.recipient_results)
        try:
            mail = build(job)
        except ValueError as exc:
            return Sent(
                Failure(MESSAGE_INVALID, f"the mail cannot be built: {exc}"), before or None
            )
        addresses = record_addresses(job.message)
        waiting = set(to_send(addresses.values(), before))
        recipients = [rcpt for rcpt in mail.recipients if addresses[rcpt] in waiting]
        if not recipients:  # every one has its outcome already
            return Sent(None, before or None)
        broken = self.broken.get(job.sender_id)
        if broken is not None:
            return Sent(broken, before or None)
        try:
            connection = self.pool.get(job.sender_id, job.sender_version, job.settings)
        except DeliveryError as exc:
            self.broken[job.sender_id] = Failure.of(exc)
            return Sent(self.broken[job.sender_id], before or None)
        self.logged_in.add(job.sender_id)
        try:
            receipt = connection.send(
                envelope_from=mail.envelope_from,
                recipients=recipients,
                message=mail.chunks,
                smtputf8=mail.smtputf8,
            )
        except DeliveryError as exc:
            return Sent(Failure.of(exc), before or None)
        problem = Failure.of(receipt.problem) if receipt.problem is not None else None
        return Sent(problem, {**before, **_results(receipt, addresses)}, receipt.reply)


def record_addresses(message: Claimed) -> dict[str, str]:
    """Each envelope recipient (as RCPT names it) -> the address the record shows."""
    addresses: dict[str, str] = {}
    for text in (*message.to_addrs, *message.cc_addrs, *message.bcc_addrs):
        parsed = parse_known_address(text)
        addresses.setdefault(parsed.envelope, parsed.address)
    return addresses


def _results(receipt: SendReceipt, addresses: Mapping[str, str]) -> Results:
    """The receipt's recipients by the record's addresses, in the record's order."""
    answers = (
        (RecipientStatus.DELIVERED, receipt.replies),
        (RecipientStatus.REFUSED, receipt.refused),
        (RecipientStatus.PENDING, receipt.deferred),
    )
    results: Results = {}
    for rcpt, address in addresses.items():
        for status, replies in answers:
            if rcpt in replies:
                code, text = replies[rcpt]
                results[address] = RecipientResult(status, code, text)
    return results


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
