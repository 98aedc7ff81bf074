"""Storing validated drafts in the queue: one transaction per request, idempotency keys.

All the drafts of a request are written in one transaction with one multi-row INSERT for
the messages (and one for their attachments), after one query for the senders and one
for the idempotency keys: a batch of 500 costs a handful of statements, not 500 of each.
Only the commit makes the promise behind ``202``; a database that cannot take the write
becomes ``UnavailableError`` (``503`` with ``Retry-After``), never an acceptance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from postdesk.domain.addresses import parse_known_address
from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.mail import new_message_id
from postdesk.domain.status import MessageStatus, RecordKind
from postdesk.errors import MailServiceUnconfiguredError, UnavailableError, ValidationError
from postdesk.services.access.callers import Caller
from postdesk.services.messages.requests import Draft
from postdesk.services.runtime import Runtime
from postdesk.storage.db import describe_database_error
from postdesk.storage.models import Attachment, MailSettings, Message, Sender
from postdesk.storage.rows import RecordSender, record_row

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)

_SENDERS = select(Sender.id, Sender.address, Sender.display_name).where(
    Sender.id.in_(bindparam("ids", expanding=True))
)
_DEFAULT_SENDER = select(Sender.id, Sender.address, Sender.display_name).where(
    Sender.id
    == select(MailSettings.default_sender_id).where(MailSettings.id == 1).scalar_subquery()
)
_BY_KEYS = select(Message.idempotency_key, Message.id, Message.status, Message.created_at).where(
    Message.idempotency_key.in_(bindparam("keys", expanding=True))
)
_GIVE_UP_KEYS = (
    update(Message)
    .where(Message.id.in_(bindparam("ids", expanding=True)))
    .values(idempotency_key=None)
)
_INSERT_MESSAGES = insert(Message).returning(Message.id, sort_by_parameter_order=True)
_INSERT_ATTACHMENTS = insert(Attachment)


@dataclass(frozen=True)
class Submitted:
    """A queued message; ``created`` is False when an idempotency key returned an earlier one."""

    id: int
    status: str
    created: bool


@contextmanager
def storage(action: str) -> Iterator[None]:
    """Turn a database that cannot serve the request into ``UnavailableError``."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        log.error("could not %s: %s", action, describe_database_error(exc))
        raise UnavailableError(
            f"The mail store is unavailable, so postdesk could not {action}.",
            hint="Nothing was queued. Try again in a moment; if this persists, check the "
            "database (disk space, server running).",
        ) from None


def store(
    rt: Runtime, drafts: Sequence[Draft], *, caller: Caller, kind: RecordKind
) -> list[Submitted]:
    """Insert the drafts in one transaction; idempotency keys decide what is new.

    Two requests with the same new key at once: one insert loses on the unique index,
    and its second try finds the winner's message.
    """
    for attempt in range(2):
        try:
            with storage("queue the mail"), rt.transaction() as session:
                return _insert(session, drafts, caller=caller, kind=kind, now=rt.clock())
        except IntegrityError:
            if attempt:
                raise UnavailableError(
                    "Another request changed the same messages at the same moment.",
                    hint="Send the request again.",
                    retry_after=1,
                ) from None
    raise AssertionError("unreachable")


def scoped_key(caller: Caller, key: str | None) -> str | None:
    """The key as stored: each API token has its own keys (administrators share theirs).

    Two applications that happen to pick the same key must not swallow each other's mail,
    nor learn each other's message ids.
    """
    if key is None:
        return None
    scope = f"token:{caller.token_id}" if caller.token_id is not None else "admin"
    return f"{scope}:{key}"


def _insert(
    session: Session, drafts: Sequence[Draft], *, caller: Caller, kind: RecordKind, now: datetime
) -> list[Submitted]:
    senders = _senders(session, drafts)
    keys = [scoped_key(caller, d.idempotency_key) for d in drafts]
    earlier = _earlier(session, {k for k in keys if k}, now)
    rows: list[dict[str, Any]] = []
    new: list[tuple[int, Draft]] = []  # (index in the request, draft) of each row
    first_with: dict[str, int] = {}  # key -> index of the draft that creates its message
    for index, (draft, key) in enumerate(zip(drafts, keys, strict=True)):
        if key and (key in earlier or key in first_with):
            continue
        sender = senders[draft.sender_id]
        # Remembered per address: email-validator is too slow to run 1000 times for a batch.
        header_id = new_message_id(parse_known_address(sender.address))
        rows.append(_new_row(draft, sender, header_id, caller=caller, kind=kind, now=now, key=key))
        new.append((index, draft))
        if key:
            first_with[key] = index
    created: dict[int, Submitted] = {}
    if rows:
        ids = list(session.connection().scalars(_INSERT_MESSAGES, rows))
        files = [
            _attachment_row(message_id, position, part)
            for message_id, (_, draft) in zip(ids, new, strict=True)
            for position, part in enumerate(draft.attachments)
        ]
        if files:
            session.connection().execute(_INSERT_ATTACHMENTS, files)
        created = {
            index: Submitted(id=message_id, status=MessageStatus.QUEUED, created=True)
            for message_id, (index, _) in zip(ids, new, strict=True)
        }
    results: list[Submitted] = []
    for index, key in enumerate(keys):
        if index in created:
            results.append(created[index])
        elif key in earlier:
            results.append(earlier[key])
        else:  # a repeat, within this request, of a key that an earlier draft created
            first = created[first_with[key or ""]]
            results.append(Submitted(id=first.id, status=first.status, created=False))
    return results


def _senders(session: Session, drafts: Sequence[Draft]) -> dict[int | None, RecordSender]:
    """The sender of every draft, keyed by the draft's ``sender_id`` (None: the default)."""
    connection = session.connection()
    found: dict[int | None, RecordSender] = {}
    if any(d.sender_id is None for d in drafts):
        default = connection.execute(_DEFAULT_SENDER).first()
        if default is None:
            raise MailServiceUnconfiguredError()
        found[None] = RecordSender(*default)
    named = sorted({d.sender_id for d in drafts if d.sender_id is not None})
    if named:
        for row in connection.execute(_SENDERS, {"ids": named}):
            found[row.id] = RecordSender(*row)
    fields: dict[str, str] = {}
    for index, draft in enumerate(drafts):
        if draft.sender_id not in found:
            prefix = f"messages[{index}]." if len(drafts) > 1 else ""
            fields[f"{prefix}sender_id"] = f"no sender has the id {draft.sender_id}"
    if fields:
        raise ValidationError(
            fields, hint="List the senders (postdesk sender list), or leave sender_id out."
        )
    return found


def _earlier(session: Session, keys: set[str], now: datetime) -> dict[str, Submitted]:
    """The messages recent requests with ``keys`` created; older ones give their keys up."""
    if not keys:
        return {}
    connection = session.connection()
    found: dict[str, Submitted] = {}
    expired: list[int] = []
    for key, message_id, status, created_at in connection.execute(_BY_KEYS, {"keys": sorted(keys)}):
        if created_at > now - IDEMPOTENCY_WINDOW:
            found[key] = Submitted(id=message_id, status=status, created=False)
        else:
            expired.append(message_id)
    if expired:
        connection.execute(_GIVE_UP_KEYS, {"ids": expired})
    return found


def _new_row(
    draft: Draft,
    sender: RecordSender,
    header_message_id: str,
    *,
    caller: Caller,
    kind: RecordKind,
    now: datetime,
    key: str | None,
) -> dict[str, Any]:
    return record_row(
        kind=kind,
        status=MessageStatus.QUEUED,
        sender=sender,
        client_ip=draft.client_ip,
        to=[a.address for a in draft.to],
        cc=[a.address for a in draft.cc],
        bcc=[a.address for a in draft.bcc],
        subject=draft.subject,
        template_name=draft.template_name,
        # "Accessed Resources": what the mail linked to and what it carried.
        resources=[*draft.resources, *(a.filename for a in draft.attachments)],
        header_message_id=header_message_id,
        created_at=now,
        html=draft.html,
        text=draft.text,
        token_id=caller.token_id,
        idempotency_key=key,
        next_attempt_at=now,
        attempts=0,
    )


def _attachment_row(message_id: int, position: int, part: AttachmentPart) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "position": position,
        "filename": part.filename,
        "content_type": part.content_type,
        "content_id": part.content_id,
        "size": part.size,
        "encoded": part.encoded,
    }
