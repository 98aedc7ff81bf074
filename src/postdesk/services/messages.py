"""Accepting messages into the durable queue (one or a batch) and reading their status.

A message is validated completely, then committed in one short transaction together with
its attachments; only that commit makes the promise behind ``202``. Nothing is written
when any field of any message is wrong, and a database that cannot take the write
becomes ``UnavailableError`` (``503`` with ``Retry-After``), never an acceptance.

The Message-ID header is generated here, once, so that every delivery attempt sends the
same one and a receiving server (or a person) can tell a re-sent copy from a new mail.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from postdesk.domain.addresses import AddressError, MailAddress, check_header_value, parse_address
from postdesk.domain.attachments import (
    AttachmentPart,
    decode_base64_attachment,
    encode_attachment,
)
from postdesk.domain.mail import MAX_SUBJECT, new_message_id
from postdesk.domain.records import recipients_search_text
from postdesk.errors import (
    MailServiceUnconfiguredError,
    NotFoundError,
    PayloadTooLargeError,
    UnavailableError,
    ValidationError,
)
from postdesk.services.callers import Caller
from postdesk.services.runtime import Runtime
from postdesk.storage import repositories as repo
from postdesk.storage.models import Attachment, Message, Sender

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 500
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # decoded bytes per message
MAX_BATCH = 1000
MAX_TEMPLATE_NAME = 255
MAX_RESOURCE = 2048
MAX_RESOURCES = 500
MAX_KEY = 200  # stored with the caller's scope in front, in a 255-character column
MAX_CONTENT_ID = 255
IDEMPOTENCY_WINDOW = timedelta(hours=24)
KINDS = ("message", "verification_code")
_FIX_HINT = "Correct the fields named and send the request again."


@dataclass(frozen=True)
class Submitted:
    """A queued message; ``created`` is False when an idempotency key returned an earlier one."""

    id: int
    status: str
    created: bool


@dataclass(frozen=True)
class MessageView:
    """What ``GET /messages/{id}`` answers."""

    id: int
    status: str
    attempts: int
    error: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


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

    @property
    def recipients(self) -> list[str]:
        return [a.address for a in (*self.to, *self.cc, *self.bcc)]


def submit_message(
    rt: Runtime,
    request: Mapping[str, Any],
    *,
    caller: Caller,
    client_ip: str | None,
    kind: str = "message",
) -> Submitted:
    """Validate and queue one message; committed before this returns."""
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    draft = validate_request(request, client_ip=client_ip)
    [submitted] = _store(rt, [draft], caller=caller, kind=kind)
    if submitted.created:
        _notify(rt)
    return submitted


def submit_batch(
    rt: Runtime,
    requests: Sequence[Mapping[str, Any]],
    *,
    caller: Caller,
    client_ip: str | None,
) -> list[int]:
    """Queue 1 to 1000 messages: every one is validated first, then all or none are stored.

    Field errors are keyed ``messages[3].to[0]``. A ``client_ip`` key in a request (set by
    a front end that already decided whom to trust) overrides the ``client_ip`` argument.
    """
    if not isinstance(requests, Sequence) or not 1 <= len(requests) <= MAX_BATCH:
        raise ValidationError(
            {"messages": f"give between 1 and {MAX_BATCH} messages"},
            hint=f"Split larger sends into batches of at most {MAX_BATCH}.",
        )
    drafts: list[Draft] = []
    fields: dict[str, str] = {}
    for index, request in enumerate(requests):
        try:
            drafts.append(
                validate_request(request, client_ip=client_ip, prefix=f"messages[{index}].")
            )
        except ValidationError as exc:
            fields.update(exc.fields)
    if fields:
        raise ValidationError(fields, hint=_FIX_HINT)
    submitted = _store(rt, drafts, caller=caller, kind="message")
    if any(s.created for s in submitted):
        _notify(rt)
    return [s.id for s in submitted]


def get_message(rt: Runtime, message_id: int, *, caller: Caller) -> MessageView:
    """A message's status; a send token sees only the messages it created (else not found)."""
    with _storage("read the message"), rt.transaction() as session:
        row = session.get(Message, message_id)
        if row is None or not (caller.is_admin or row.token_id == caller.token_id):
            raise NotFoundError(
                f"No message has the id {message_id}.",
                hint="Use the id that POST /messages answered.",
            )
        return MessageView(
            id=row.id,
            status=row.status,
            attempts=row.attempts,
            error=error_of(row),
            created_at=row.created_at,
            sent_at=row.sent_at,
        )


def error_of(row: Message) -> dict[str, Any] | None:
    """The SPEC's ``{code, message, hint, smtp_code}``, or None when nothing went wrong."""
    if row.error_code is None:
        return None
    return {
        "code": row.error_code,
        "message": row.error_message or "",
        "hint": row.error_hint,
        "smtp_code": row.smtp_code,
    }


# --- validation ----------------------------------------------------------------------------


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
        raise ValidationError({prefix.rstrip(".") or "body": "must be an object"}, hint=_FIX_HINT)
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
        raise ValidationError(check.errors, hint=_FIX_HINT)
    return draft


def _addresses(check: _Checker, name: str) -> tuple[MailAddress, ...]:
    parsed = []
    for index, text in check.list_of(name):
        try:
            parsed.append(parse_address(text))
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
    try:
        check_header_value(value)
    except AddressError as exc:
        check.fail("subject", str(exc))
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
    return (check.optional_text("template_name", limit=MAX_TEMPLATE_NAME) or "").strip()


def _resources(check: _Checker) -> tuple[str, ...]:
    items = check.list_of("resources")
    if len(items) > MAX_RESOURCES:
        check.fail("resources", f"at most {MAX_RESOURCES} resources per message")
    kept = []
    for index, text in items:
        if len(text) > MAX_RESOURCE or not text.strip():
            check.fail(f"resources[{index}]", f"must be 1 to {MAX_RESOURCE} characters")
        else:
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


# --- storage -------------------------------------------------------------------------------


@contextmanager
def _storage(action: str) -> Iterator[None]:
    """Turn a database that cannot serve the request into ``UnavailableError``."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        # Only the driver's words, never the statement: its parameters carry mail content.
        reason = exc.orig if isinstance(exc, DBAPIError) else exc
        log.error("could not %s: %s: %s", action, type(reason).__name__, reason)
        raise UnavailableError(
            f"The mail store is unavailable, so postdesk could not {action}.",
            hint="Nothing was queued. Try again in a moment; if this persists, check the "
            "database (disk space, server running).",
        ) from None


def _store(rt: Runtime, drafts: Sequence[Draft], *, caller: Caller, kind: str) -> list[Submitted]:
    """Insert the drafts in one transaction; idempotency keys decide what is new.

    Two requests with the same new key at once: one insert loses on the unique index,
    and its second try finds the winner's message.
    """
    for attempt in range(2):
        try:
            with _storage("queue the mail"), rt.transaction() as session:
                return _insert(session, drafts, caller=caller, kind=kind, now=rt.clock())
        except IntegrityError:
            if attempt:
                raise UnavailableError(
                    "Another request changed the same messages at the same moment.",
                    hint="Send the request again.",
                    retry_after=1,
                ) from None
    raise AssertionError("unreachable")


def _insert(
    session: Session, drafts: Sequence[Draft], *, caller: Caller, kind: str, now: datetime
) -> list[Submitted]:
    senders = _senders(session, drafts)
    addresses: dict[int, MailAddress] = {}
    done: dict[str, Submitted] = {}
    results: list[Submitted] = []
    for draft in drafts:
        key = scoped_key(caller, draft.idempotency_key)
        earlier = done.get(key) if key else None
        if key and earlier is None:
            earlier = _earlier(session, key, now)
        if earlier is not None:
            results.append(earlier)
            continue
        sender = senders[draft.sender_id]
        if sender.id not in addresses:
            # Once per sender: email-validator is too slow to run 1000 times for a batch.
            addresses[sender.id] = parse_address(sender.address)
        row = _new_row(draft, sender, caller=caller, kind=kind, now=now)
        row.idempotency_key = key
        row.message_id = new_message_id(addresses[sender.id])
        session.add(row)
        session.flush()
        _add_attachments(session, row.id, draft.attachments)
        submitted = Submitted(id=row.id, status=row.status, created=True)
        if key:
            done[key] = submitted
        results.append(submitted)
    return results


def _senders(session: Session, drafts: Sequence[Draft]) -> dict[int | None, Sender]:
    """The sender of every draft, keyed by the draft's ``sender_id`` (None: the default)."""
    found: dict[int | None, Sender] = {}
    if any(d.sender_id is None for d in drafts):
        default_id = repo.default_sender_id(session)
        default = repo.find_sender(session, default_id) if default_id is not None else None
        if default is None:
            raise MailServiceUnconfiguredError()
        found[None] = default
    fields: dict[str, str] = {}
    for index, draft in enumerate(drafts):
        if draft.sender_id is None or draft.sender_id in found:
            continue
        row = repo.find_sender(session, draft.sender_id)
        if row is None:
            prefix = f"messages[{index}]." if len(drafts) > 1 else ""
            fields[f"{prefix}sender_id"] = f"no sender has the id {draft.sender_id}"
        else:
            found[draft.sender_id] = row
    if fields:
        raise ValidationError(
            fields, hint="List the senders (postdesk sender list), or leave sender_id out."
        )
    return found


def scoped_key(caller: Caller, key: str | None) -> str | None:
    """The key as stored: each API token has its own keys (administrators share theirs).

    Two applications that happen to pick the same key must not swallow each other's mail,
    nor learn each other's message ids.
    """
    if key is None:
        return None
    scope = f"token:{caller.token_id}" if caller.token_id is not None else "admin"
    return f"{scope}:{key}"


def _earlier(session: Session, key: str, now: datetime) -> Submitted | None:
    """The message a recent request with ``key`` created; an older one gives its key up."""
    row = session.scalars(select(Message).where(Message.idempotency_key == key)).first()
    if row is None:
        return None
    if row.created_at > now - IDEMPOTENCY_WINDOW:
        return Submitted(id=row.id, status=row.status, created=False)
    row.idempotency_key = None
    session.flush()
    return None


def _new_row(draft: Draft, sender: Sender, *, caller: Caller, kind: str, now: datetime) -> Message:
    recipients = draft.recipients
    return Message(
        kind=kind,
        status="queued",
        sender_id=sender.id,
        sender_address=sender.address,
        sender_name=sender.display_name,
        client_ip=draft.client_ip,
        recipients=recipients,
        to_addrs=[a.address for a in draft.to],
        cc_addrs=[a.address for a in draft.cc],
        bcc_addrs=[a.address for a in draft.bcc],
        recipients_search=recipients_search_text(recipients),
        subject=draft.subject,
        template_name=draft.template_name,
        # "Accessed Resources": what the mail linked to and what it carried.
        resources=[*draft.resources, *(a.filename for a in draft.attachments)],
        html=draft.html,
        text=draft.text,
        token_id=caller.token_id,
        next_attempt_at=now,
        attempts=0,
        created_at=now,
    )


def _add_attachments(session: Session, message_id: int, parts: Sequence[AttachmentPart]) -> None:
    for position, part in enumerate(parts):
        session.add(
            Attachment(
                message_id=message_id,
                position=position,
                filename=part.filename,
                content_type=part.content_type,
                content_id=part.content_id,
                size=part.size,
                encoded=part.encoded,
            )
        )


def _notify(rt: Runtime) -> None:
    # The message is already committed: a failing hook must not turn 202 into an error.
    try:
        rt.notify_submitted()
    except Exception:
        log.exception("a submitted-message hook failed; the worker will find the mail by polling")
