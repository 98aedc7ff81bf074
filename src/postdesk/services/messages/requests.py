"""What one message request may hold: every field checked at once, into a ``Draft``.

Field errors are collected, not raised one by one: a request with three wrong fields
gets one ``ValidationError`` naming all three (keyed with a prefix such as
``messages[3].`` inside a batch). Attachments are decoded and base64-encoded for the
wire here, once; a total over 25 MiB is ``PayloadTooLargeError``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from postdesk.domain.addresses import (
    AddressError,
    MailAddress,
    check_header_value,
    parse_known_address,
)
from postdesk.domain.attachments import (
    AttachmentPart,
    decode_base64_attachment,
    encode_attachment,
)
from postdesk.domain.mail import MAX_SUBJECT
from postdesk.errors import PayloadTooLargeError, ValidationError

MAX_RECIPIENTS = 500
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # decoded bytes per message
MAX_TEMPLATE_NAME = 255
MAX_RESOURCE = 2048
MAX_RESOURCES = 500
MAX_KEY = 200  # stored with the caller's scope in front, in a 255-character column
MAX_CONTENT_ID = 255
FIX_HINT = "Correct the fields named and send the request again."


@dataclass(frozen=True)
class Draft:
    """A validated request, not yet bound to a sender or stored."""

    to: tuple[MailAddress, ...]
    cc: tuple[MailAddress, ...]
    bcc: tuple[MailAddress, ...]
    subject: str
    html: str | None
    text: str | None
    sender_id: int | None
    template_name: str
    resources: tuple[str, ...]
    attachments: tuple[AttachmentPart, ...]
    idempotency_key: str | None
    client_ip: str | None


@dataclass
class _Checker:
    """Collects every field error of one request, keyed with the request's prefix."""

    request: Mapping[str, Any]
    prefix: str
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, text: str) -> None:
        self.errors.setdefault(f"{self.prefix}{name}", text)

    def list_of(self, name: str, *, kind: type = str) -> list[tuple[int, Any]]:
        """``(index, item)`` of each item of the right kind; the others are field errors."""
        value = self.request.get(name)
        if value is None:
            return []
        if not isinstance(value, list | tuple):
            self.fail(name, "must be a list")
            return []
        good: list[tuple[int, Any]] = []
        for index, item in enumerate(value):
            if isinstance(item, kind):
                good.append((index, item))
            else:
                what = "text" if kind is str else "an object"
                self.fail(f"{name}[{index}]", f"must be {what}")
        return good

    def optional_text(self, name: str, *, limit: int) -> str | None:
        value = self.request.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, "must be text")
            return None
        if len(value) > limit:
            self.fail(name, f"must be at most {limit} characters")
            return None
        return value


def validate_request(
    request: Mapping[str, Any], *, client_ip: str | None = None, prefix: str = ""
) -> Draft:
    """Check every field of one message request at once; raise one ``ValidationError``.

    An attachment total over 25 MiB raises ``PayloadTooLargeError`` instead.
    """
    if not isinstance(request, Mapping):
        raise ValidationError({prefix.rstrip(".") or "body": "must be an object"}, hint=FIX_HINT)
    check = _Checker(request, prefix)
    to, cc, bcc = (_addresses(check, name) for name in ("to", "cc", "bcc"))
    total = len(to) + len(cc) + len(bcc)
    if total == 0 and not check.errors:  # no recipient at all, rather than only bad ones
        check.fail("to", "give at least one recipient (to, cc or bcc)")
    elif total > MAX_RECIPIENTS:
        check.fail("to", f"at most {MAX_RECIPIENTS} recipients per message (to, cc and bcc)")
    html, text = _bodies(check)
    draft = Draft(
        to=to,
        cc=cc,
        bcc=bcc,
        subject=_subject(check),
        html=html,
        text=text,
        sender_id=_sender_id(check),
        template_name=_template_name(check),
        resources=_resources(check),
        attachments=_attachments(check),
        idempotency_key=_idempotency_key(check),
        client_ip=_client_ip(check, client_ip),
    )
    if check.errors:
        raise ValidationError(check.errors, hint=FIX_HINT)
    return draft


def _addresses(check: _Checker, name: str) -> tuple[MailAddress, ...]:
    parsed = []
    for index, text in check.list_of(name):
        try:
            parsed.append(parse_known_address(text))
        except AddressError as exc:
            check.fail(f"{name}[{index}]", f"{_quote(text)} {exc}")
    return tuple(parsed)


def _subject(check: _Checker) -> str:
    value = check.request.get("subject")
    if value is None or (isinstance(value, str) and not value.strip()):
        check.fail("subject", "is required")
        return ""
    if not isinstance(value, str):
        check.fail("subject", "must be text")
        return ""
    if len(value) > MAX_SUBJECT:
        check.fail("subject", f"must be at most {MAX_SUBJECT} characters (it has {len(value)})")
    _no_control_characters(check, "subject", value)
    return value


def _bodies(check: _Checker) -> tuple[str | None, str | None]:
    html = check.optional_text("html", limit=MAX_ATTACHMENT_BYTES)
    text = check.optional_text("text", limit=MAX_ATTACHMENT_BYTES)
    if not html and not text and not any(k.endswith(("html", "text")) for k in check.errors):
        check.fail("text", "give the body as html, text or both")
    return html or None, text or None


def _sender_id(check: _Checker) -> int | None:
    value = check.request.get("sender_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        check.fail("sender_id", "must be a whole number (a sender's id)")
        return None
    return int(value)


def _template_name(check: _Checker) -> str:
    name = check.optional_text("template_name", limit=MAX_TEMPLATE_NAME) or ""
    _no_control_characters(check, "template_name", name)
    return name.strip()


def _no_control_characters(check: _Checker, key: str, value: str) -> None:
    """The subject, and names shown in records, the CSV and logs, are held to the rule of
    header values."""
    try:
        check_header_value(value)
    except AddressError as exc:
        check.fail(key, str(exc))


def _resources(check: _Checker) -> tuple[str, ...]:
    items = check.list_of("resources")
    if len(items) > MAX_RESOURCES:
        check.fail("resources", f"at most {MAX_RESOURCES} resources per message")
    kept = []
    for index, text in items:
        if len(text) > MAX_RESOURCE or not text.strip():
            check.fail(f"resources[{index}]", f"must be 1 to {MAX_RESOURCE} characters")
        else:
            _no_control_characters(check, f"resources[{index}]", text)
            kept.append(text.strip())
    return tuple(kept)


def _attachments(check: _Checker) -> tuple[AttachmentPart, ...]:
    items = check.list_of("attachments", kind=Mapping)
    decoded = []
    for index, item in items:
        data = _attachment_data(check, f"attachments[{index}]", item)
        if data is not None:
            decoded.append((index, item, data))
    total = sum(len(data) for _, _, data in decoded)
    if total > MAX_ATTACHMENT_BYTES:
        raise PayloadTooLargeError(
            f"{check.prefix}attachments: {total} bytes in all; a message may carry at most "
            f"{MAX_ATTACHMENT_BYTES} bytes (25 MiB) of attachments",
            hint="Send fewer or smaller files, or link to large exports as resources.",
        )
    parts = []
    for index, item, data in decoded:
        name = f"attachments[{index}]"
        try:
            parts.append(
                encode_attachment(
                    _text_field(check, item, name, "filename"),
                    str(item.get("content_type") or "application/octet-stream"),
                    data,
                    content_id=_content_id(check, item, name),
                )
            )
        except ValueError as exc:
            check.fail(_attachment_field(name, str(exc)), str(exc))
    return tuple(parts)


def _attachment_field(name: str, problem: str) -> str:
    """Which field of an attachment ``encode_attachment``'s complaint is about."""
    for words, key in (("file name", "filename"), ("content type", "content_type")):
        if words in problem:
            return f"{name}.{key}"
    return name


def _attachment_data(check: _Checker, name: str, item: Mapping[str, Any]) -> bytes | None:
    for key in ("filename", "content_type", "content_id"):
        if item.get(key) is not None and not isinstance(item.get(key), str):
            check.fail(f"{name}.{key}", "must be text")
    content = item.get("content_base64")
    if not isinstance(content, str):
        check.fail(f"{name}.content_base64", "is required (the file's content in base64)")
        return None
    try:
        return decode_base64_attachment(content)
    except ValueError as exc:
        check.fail(f"{name}.content_base64", str(exc))
        return None


def _text_field(check: _Checker, item: Mapping[str, Any], name: str, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        check.fail(f"{name}.{key}", "is required")
        return "-"  # lets encoding go on to find the other fields' errors
    try:
        check_header_value(value)
    except AddressError as exc:
        check.fail(f"{name}.{key}", str(exc))
    return value


def _content_id(check: _Checker, item: Mapping[str, Any], name: str) -> str | None:
    value = item.get("content_id")
    if not isinstance(value, str) or not value.strip():
        return None
    cid = value.strip().removeprefix("cid:").strip("<>")
    if len(cid) > MAX_CONTENT_ID or not cid.isascii() or any(c in cid for c in " <>\t\r\n"):
        check.fail(f"{name}.content_id", "must be a short ASCII id without spaces or <>")
        return None
    return cid


def _idempotency_key(check: _Checker) -> str | None:
    key = check.optional_text("idempotency_key", limit=MAX_KEY)
    return key if key else None


def _client_ip(check: _Checker, default: str | None) -> str | None:
    value = check.request.get("client_ip", default)
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        check.fail("client_ip", "must be an IPv4 or IPv6 address")
        return None


def _quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
