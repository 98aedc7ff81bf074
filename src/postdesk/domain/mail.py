"""Building outgoing mail as bytes before any network call, and the test mail's content."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from postdesk.domain.addresses import MailAddress, check_header_value
from postdesk.domain.senders import SenderSettings

TEST_MAIL_SENTENCE = "Congratulations! Your mail server is configured successfully."
# Some providers (163 among them) reject a subject containing "test" as spam.
TEST_MAIL_SUBJECT = "postdesk: mail server check"
MAX_SUBJECT = 500


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for SMTP: envelope plus the exact bytes (CRLF line endings)."""

    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    message_id: str
    smtputf8: bool


def build_mail(
    *,
    sender: SenderSettings,
    to: Sequence[MailAddress],
    subject: str,
    html_body: str | None,
    text_body: str | None,
    now: datetime,
    cc: Sequence[MailAddress] = (),
    bcc: Sequence[MailAddress] = (),
) -> OutgoingMail:
    """Compose a message; Bcc recipients get the mail but never appear in its headers."""
    check_header_value(subject)
    everyone = (sender.address, *to, *cc, *bcc)
    smtputf8 = any(a.needs_smtputf8 for a in everyone)
    msg = EmailMessage(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    msg["From"] = _header_address(sender.address, sender.display_name, smtputf8)
    msg["To"] = [_header_address(a, "", smtputf8) for a in to]
    if cc:
        msg["Cc"] = [_header_address(a, "", smtputf8) for a in cc]
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now)
    message_id = make_msgid(domain=sender.address.envelope.rsplit("@", 1)[1])
    msg["Message-ID"] = message_id
    if text_body is not None:
        msg.set_content(text_body)
    if html_body is not None:
        if text_body is None:
            msg.set_content(html_body, subtype="html")
        else:
            msg.add_alternative(html_body, subtype="html")
    return OutgoingMail(
        envelope_from=sender.address.envelope,
        recipients=tuple(a.envelope for a in (*to, *cc, *bcc)),
        data=msg.as_bytes(),
        message_id=message_id,
        smtputf8=smtputf8,
    )


def _header_address(address: MailAddress, display_name: str, smtputf8: bool) -> Address:
    shown = address.address if smtputf8 else address.envelope
    username, domain = shown.rsplit("@", 1)
    return Address(display_name=display_name, username=username, domain=domain)


def build_test_mail(sender: SenderSettings, to: MailAddress, now: datetime) -> OutgoingMail:
    """The test mail: the SPEC's sentence in HTML, a plain-text alternative, a safe subject."""
    where = f"{sender.smtp_host}:{sender.port} ({_ENCRYPTION_NAMES[sender.encryption.value]})"
    text = (
        f"{TEST_MAIL_SENTENCE}\n\n"
        f"This mail was sent by postdesk from {sender.display_name} <{sender.address}> "
        f"through {where}.\n"
    )
    body = (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{TEST_MAIL_SENTENCE}</p>\n"
        f"<p>This mail was sent by postdesk from {html.escape(sender.display_name)} "
        f"&lt;{html.escape(str(sender.address))}&gt; through {html.escape(where)}.</p>\n"
        "</body></html>\n"
    )
    return build_mail(
        sender=sender, to=[to], subject=TEST_MAIL_SUBJECT, html_body=body, text_body=text, now=now
    )


_ENCRYPTION_NAMES = {"ssl": "SSL Encryption", "tls": "TLS Encryption", "none": "No Encryption"}
