"""Building outgoing mail: the MIME structure, the message and the test mail.

Messages are written directly as CRLF bytes (no ``email.message`` round trip): the builder
sits on the hot path of the queue worker. Every build references an attachment's encoded
bytes (``AttachmentPart.encoded``) as a separate chunk of ``OutgoingMail.chunks`` instead
of copying them into one buffer.
"""

from __future__ import annotations

import binascii
import functools
import html
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from postdesk.domain.addresses import MailAddress, check_header_value
from postdesk.domain.attachments import AttachmentPart, MailContentError, base64_lines
from postdesk.domain.html_text import html_to_text
from postdesk.domain.mime_headers import (
    HEADER_LINE,
    address_header,
    field_with_params,
    from_header,
    shown_address,
    unstructured_header,
)
from postdesk.domain.senders import SenderSettings

__all__ = [
    "MAX_SUBJECT",
    "TEST_MAIL_SENTENCE",
    "TEST_MAIL_SUBJECT",
    "OutgoingMail",
    "build_mail",
    "build_test_mail",
    "new_message_id",
]

TEST_MAIL_SENTENCE = "Congratulations! Your mail server is configured successfully."
# Some providers (163 among them) reject a subject containing "test" as spam.
TEST_MAIL_SUBJECT = "postdesk: mail server check"
MAX_SUBJECT = 500

_MAX_LINE = 998
_CRLF = b"\r\n"


# ---------------------------------------------------------------------------------------------
# Data handed between the API, the queue and the worker


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for SMTP: the envelope and the message as CRLF byte chunks.

    Attachment bodies are chunks of their own that reference ``AttachmentPart.encoded``;
    the transport streams the chunks without joining them.
    """

    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    smtputf8: bool
    chunks: tuple[bytes | memoryview, ...]

    @property
    def size(self) -> int:
        """The size of the message in bytes."""
        return sum(c.nbytes if isinstance(c, memoryview) else len(c) for c in self.chunks)

    @property
    def data(self) -> bytes:
        """The whole message as one buffer: for tests and small mails only."""
        return b"".join(self.chunks)


# ---------------------------------------------------------------------------------------------
# Message-ID


def new_message_id(sender_address: MailAddress) -> str:
    """A fresh Message-ID in the sender's domain; store it so that every attempt reuses it."""
    domain = sender_address.envelope.rsplit("@", 1)[1]
    return f"<{secrets.token_hex(16)}@{domain}>"


_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")


def _check_message_id(message_id: str) -> str:
    if not _MESSAGE_ID.fullmatch(message_id) or message_id.count("@") != 1:
        raise MailContentError("the Message-ID must look like <unique@domain>", "message_id")
    return message_id


# ---------------------------------------------------------------------------------------------
# MIME parts

# A part is its header block (each field ending CRLF, no blank line) and its body chunks,
# the last of which ends with CRLF. Bytes chunks are ours; memoryviews are attachments.
_Chunk = bytes | memoryview


@dataclass(frozen=True)
class _Part:
    headers: bytes
    body: tuple[_Chunk, ...]


def _text_part(text: str, subtype: str) -> _Part:
    """A UTF-8 text part in 7bit, quoted-printable or base64, whichever suits it."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    raw = text.encode("utf-8", "replace")
    if (
        raw.isascii()
        and (len(raw) <= _MAX_LINE or _longest_line(raw) <= _MAX_LINE)
        and b"\0" not in raw  # 7bit forbids NUL (RFC 2045)
    ):
        encoding, body = b"7bit", raw.replace(b"\n", _CRLF)
    elif (len(raw) - len(text)) * 10 < len(raw):
        encoding, body = b"quoted-printable", binascii.b2a_qp(raw).replace(b"\n", _CRLF)
    else:
        encoding, body = b"base64", base64_lines(raw)
    headers = (
        b"Content-Type: text/" + subtype.encode("ascii") + b"; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: " + encoding + b"\r\n"
    )
    return _Part(headers, (body,))


def _longest_line(raw: bytes) -> int:
    return max(map(len, raw.split(b"\n")))


def _attachment_part(attachment: AttachmentPart, disposition: str) -> _Part:
    content_type = field_with_params(
        "Content-Type", attachment.content_type, [("name", attachment.filename)]
    )
    headers = [
        content_type,
        "Content-Transfer-Encoding: base64\r\n",
        field_with_params("Content-Disposition", disposition, [("filename", attachment.filename)]),
    ]
    if attachment.content_id is not None:
        headers.append(f"Content-ID: <{attachment.content_id}>\r\n")
    return _Part("".join(headers).encode("ascii"), (memoryview(attachment.encoded),))


class _Boundaries:
    """Random multipart boundaries, one per nesting level, never a prefix of another."""

    def __init__(self) -> None:
        self._token = secrets.token_hex(12)
        self._level = 0

    def new(self) -> str:
        self._level += 1
        return f"=_{self._level}_{self._token}"


def _multipart(
    subtype: str, children: Sequence[_Part], boundaries: _Boundaries, type_param: str = ""
) -> _Part:
    boundary = boundaries.new()
    while any(_contains(child, boundary) for child in children):
        boundary = boundaries.new()
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body: list[_Chunk] = []
    for child in children:
        body += [delimiter, child.headers, _CRLF, *child.body, _CRLF]
    body.append(f"--{boundary}--\r\n".encode("ascii"))
    extra = f' type="{type_param}";' if type_param else ""
    headers = f'Content-Type: multipart/{subtype};{extra} boundary="{boundary}"\r\n'
    if len(headers) > HEADER_LINE + 2:
        headers = f'Content-Type: multipart/{subtype};{extra}\r\n boundary="{boundary}"\r\n'
    return _Part(headers.encode("ascii"), tuple(body))


def _contains(part: _Part, boundary: str) -> bool:
    """Whether the boundary occurs in one of our own chunks (base64 never holds "=_")."""
    needle = boundary.encode("ascii")
    return any(isinstance(chunk, bytes) and needle in chunk for chunk in part.body)


def _generated_text(html_body: str) -> str:
    """The text alternative; the same HTML sent to many recipients is converted once."""
    if len(html_body) > _CACHED_HTML:
        return html_to_text(html_body)
    return _cached_html_to_text(html_body)


_CACHED_HTML = 256 * 1024
_cached_html_to_text = functools.lru_cache(maxsize=64)(html_to_text)


def _structure(
    text_body: str | None,
    html_body: str | None,
    attachments: Sequence[AttachmentPart],
) -> _Part:
    """mixed[ alternative[ text, related[ html, inline images ] ], attachments ]."""
    boundaries = _Boundaries()
    has_html = html_body is not None
    inline = [a for a in attachments if a.content_id is not None and has_html]
    files = [a for a in attachments if a.content_id is None or not has_html]
    if html_body is not None and text_body is None:
        text_body = _generated_text(html_body)
    body = _text_part(text_body or "", "plain")
    if html_body is not None:
        html_part = _text_part(html_body, "html")
        if inline:
            images = [_attachment_part(a, "inline") for a in inline]
            html_part = _multipart("related", [html_part, *images], boundaries, "text/html")
        body = _multipart("alternative", [body, html_part], boundaries)
    if files:
        parts = [_attachment_part(a, "attachment") for a in files]
        body = _multipart("mixed", [body, *parts], boundaries)
    return body


# ---------------------------------------------------------------------------------------------
# The message


def build_mail(
    *,
    sender: SenderSettings,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress] = (),
    bcc: Sequence[MailAddress] = (),
    subject: str,
    html_body: str | None,
    text_body: str | None,
    message_id: str,
    date: datetime,
    attachments: Sequence[AttachmentPart] = (),
) -> OutgoingMail:
    """Compose a message; Bcc recipients get the mail but never appear in its headers.

    An HTML body without ``text_body`` gets a generated text alternative. Raises
    ``ValueError`` subclasses for a subject with line breaks or control characters, a
    subject over 500 characters, no recipient, or a malformed ``message_id``.
    """
    if not (subject.isascii() and subject.isprintable()):  # the quick answer for most
        check_header_value(subject)
    if len(subject) > MAX_SUBJECT:
        raise MailContentError(f"must be at most {MAX_SUBJECT} characters", "subject")
    if not (to or cc or bcc):
        raise MailContentError("a message needs at least one recipient", "recipients")
    smtputf8 = any(a.needs_smtputf8 for a in (sender.address, *to, *cc, *bcc))
    head = _headers(sender, to, cc, subject, _check_message_id(message_id), date, smtputf8)
    body = _structure(text_body, html_body, attachments)
    return OutgoingMail(
        envelope_from=sender.address.envelope,
        recipients=tuple(dict.fromkeys(a.envelope for a in (*to, *cc, *bcc))),
        message_id=message_id,
        smtputf8=smtputf8,
        chunks=tuple(_coalesce([head, body.headers, _CRLF, *body.body])),
    )


def _headers(
    sender: SenderSettings,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress],
    subject: str,
    message_id: str,
    date: datetime,
    smtputf8: bool,
) -> bytes:
    fields = [
        from_header(shown_address(sender.address, smtputf8), sender.display_name),
        address_header("To", [shown_address(a, smtputf8) for a in to])
        if to
        else ("To: undisclosed-recipients:;\r\n" if not cc else ""),
        address_header("Cc", [shown_address(a, smtputf8) for a in cc]) if cc else "",
        unstructured_header("Subject", subject),
        f"Date: {format_datetime(date)}\r\n",
        f"Message-ID: {message_id}\r\n",
        "MIME-Version: 1.0\r\n",
    ]
    return "".join(fields).encode("utf-8")


def _coalesce(chunks: Sequence[_Chunk]) -> Iterator[_Chunk]:
    """Join neighbouring chunks of our own; attachment memoryviews stay as they are."""
    pending: list[bytes] = []
    for chunk in chunks:
        if isinstance(chunk, bytes):
            pending.append(chunk)
            continue
        if pending:
            yield b"".join(pending)
            pending = []
        yield chunk
    if pending:
        yield b"".join(pending)


# ---------------------------------------------------------------------------------------------
# The test mail


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
        sender=sender,
        to=[to],
        subject=TEST_MAIL_SUBJECT,
        html_body=body,
        text_body=text,
        message_id=new_message_id(sender.address),
        date=now,
    )


_ENCRYPTION_NAMES = {"ssl": "SSL Encryption", "tls": "TLS Encryption", "none": "No Encryption"}
