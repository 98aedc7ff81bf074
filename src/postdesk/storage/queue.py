"""The queue's SQL under a lease: reading a claimed batch, and writing outcomes, sender
holds and Attempt rows only while the lease is still owned (claiming: ``storage.claims``).

The statements the worker runs for every message are built once, here, with bound
parameters: SQLAlchemy then reuses their compiled form instead of building and hashing a
new statement per message.
Outcomes are written in groups (``write_outcomes``): one UPDATE and one INSERT executed
over many rows, after the rows still owned are locked. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.status import AttemptOutcome, MessageStatus, RecordKind
from postdesk.storage.models import Attachment, Attempt, Message, Sender

_M = Message.__table__.c


def _param(name: str, column: ColumnElement[Any]) -> BindParameter[Any]:
    return bindparam(name, type_=column.type)


def _ids() -> BindParameter[Any]:
    return bindparam("ids", expanding=True)


# Owned: leased to the worker and still being sent (a lease that lapsed may have been
# taken over by another worker, whose outcome must never be overwritten).
_OWNED = and_(Message.lease_owner == bindparam("owner"), Message.status == MessageStatus.SENDING)

# A batch's bodies are read with it when they are small; a large one (up to 25 MiB of
# HTML) only right before its message is sent, so that a batch never holds many at once.
INLINE_BODY_CHARS = 256 * 1024
_BODY_CHARS = func.coalesce(func.length(Message.html), 0) + func.coalesce(
    func.length(Message.text), 0
)
_SMALL = _BODY_CHARS <= INLINE_BODY_CHARS
_LOAD = select(
    Message.id,
    Message.sender_id,
    Message.sender_address,
    Message.attempts,
    Message.to_addrs,
    Message.cc_addrs,
    Message.bcc_addrs,
    Message.subject,
    case((_SMALL, Message.html), else_=None),
    case((_SMALL, Message.text), else_=None),
    Message.message_id,
    Message.created_at,
    Message.next_attempt_at,
    Message.recipient_results,
    ~_SMALL,
).where(Message.id.in_(_ids()), _OWNED)
_BODIES = select(Message.html, Message.text).where(Message.id == bindparam("w_id"))
# From the (message_id) index alone: reading attachment rows would load their blobs.
_WITH_ATTACHMENTS = (
    select(Attachment.message_id).where(Attachment.message_id.in_(_ids())).distinct()
)
_LAST_ATTEMPTS = (
    select(Attempt.message_id, func.max(Attempt.number))
    .where(Attempt.message_id.in_(_ids()))
    .group_by(Attempt.message_id)
)
_RENEW = (
    update(Message)
    .where(Message.id.in_(_ids()), _OWNED)
    .values(lease_until=_param("until", _M.lease_until))
    .returning(Message.id)
)
# FOR UPDATE on PostgreSQL: a competing claim waits for this commit, then sees the outcome.
# (SQLite: the transaction already holds the database's write lock.)
_LOCK_OWNED = select(Message.id).where(Message.id.in_(_ids()), _OWNED).with_for_update(of=Message)
_BY_ID = Message.id == bindparam("w_id")


def forgotten_codes(final: ColumnElement[bool] | None = None) -> dict[str, Any]:
    """UPDATE values that blank a verification code mail's bodies, which hold the code.

    Written with the outcome that makes the mail final (``final``, when the outcome is a
    parameter): once sent or failed, no row keeps the code readable. Other kinds keep theirs.
    """
    code = Message.kind == RecordKind.VERIFICATION_CODE
    forget = code if final is None else and_(code, final)
    return {
        "html": case((forget, None), else_=Message.html),
        "text": case((forget, None), else_=Message.text),
    }


_WRITE_SENT = (
    update(Message)
    .where(_BY_ID, _OWNED)
    .values(
        status=MessageStatus.SENT,
        lease_owner=None,
        lease_until=None,
        attempts=_param("v_attempts", _M.attempts),
        error_code=None,
        error_message=None,
        error_hint=None,
        smtp_code=None,
        next_attempt_at=None,
        sent_at=_param("v_now", _M.sent_at),
        recipient_results=_param("v_results", _M.recipient_results),
        **forgotten_codes(),
    )
)
_WRITE_UNSENT = (
    update(Message)
    .where(_BY_ID, _OWNED)
    .values(
        status=_param("v_status", _M.status),
        lease_owner=None,
        lease_until=None,
        attempts=_param("v_attempts", _M.attempts),
        error_code=_param("v_error_code", _M.error_code),
        error_message=_param("v_error_message", _M.error_message),
        error_hint=_param("v_error_hint", _M.error_hint),
        smtp_code=_param("v_smtp_code", _M.smtp_code),
        next_attempt_at=_param("v_next", _M.next_attempt_at),
        sent_at=_param("v_sent_at", _M.sent_at),
        recipient_results=_param("v_results", _M.recipient_results),
        **forgotten_codes(_param("v_status", _M.status) == MessageStatus.FAILED),
    )
)
_ADD_ATTEMPTS = insert(Attempt)
_SENDERS = select(
    Sender.id,
    Sender.address,
    Sender.updated_at,
    Sender.max_per_minute,
    Sender.held_until,
    Sender.hold_code,
    Sender.hold_message,
    Sender.login_throttles,
).where(Sender.id.in_(_ids()))


@dataclass(frozen=True)
class OutcomeWrite:
    """One attempt's outcome to record: the message's new columns and its Attempt row."""

    message_id: int
    outcome: AttemptOutcome
    values: dict[str, Any]  # the message's new columns
    attempt: dict[str, Any]  # the Attempt row (its number included)


@dataclass(frozen=True)
class Claimed:
    """A claimed message as delivery reads it once, when its batch starts."""

    id: int
    sender_id: int | None
    sender_address: str
    attempts: int
    to_addrs: list[str]
    cc_addrs: list[str]
    bcc_addrs: list[str]
    subject: str
    html: str | None
    text: str | None
    header_message_id: str | None  # the Message-ID header (``id`` is the row's)
    created_at: datetime
    next_attempt_at: datetime | None
    recipient_results: dict[str, Any] | None  # each recipient's outcome so far, stored form
    large: bool  # its bodies were left out (``with_bodies`` reads them)


@dataclass(frozen=True)
class SenderState:
    """What delivery reads of a sender for every message: version, limit and hold."""

    id: int
    address: str
    updated_at: datetime
    max_per_minute: int | None
    held_until: datetime | None
    hold_code: str | None
    hold_message: str | None
    login_throttles: int  # logins the server refused for now, in a row


def sender_states(session: Session, sender_ids: Iterable[int]) -> dict[int, SenderState]:
    """The senders of ``sender_ids`` that still exist."""
    ids = sorted(set(sender_ids))
    if not ids:
        return {}
    rows = session.connection().execute(_SENDERS, {"ids": ids})
    return {row.id: SenderState(*row) for row in rows}


def load_claimed(
    session: Session, ids: Sequence[int], worker_id: str
) -> tuple[list[Claimed], set[int], dict[int, int]]:
    """The messages of ``ids`` this worker owns, which carry attachments, last attempt numbers."""
    connection = session.connection()
    params = {"ids": list(ids), "owner": worker_id}
    rows = [Claimed(*row) for row in connection.execute(_LOAD, params)]
    owned = [row.id for row in rows]
    if not owned:
        return [], set(), {}
    with_attachments = set(connection.scalars(_WITH_ATTACHMENTS, {"ids": owned}))
    last = {mid: int(n or 0) for mid, n in connection.execute(_LAST_ATTEMPTS, {"ids": owned})}
    return rows, with_attachments, last


def with_bodies(session: Session, message: Claimed) -> Claimed:
    """``message`` with its bodies, read now if the batch left them out."""
    if not message.large:
        return message
    row = session.connection().execute(_BODIES, {"w_id": message.id}).first()
    html, text = row if row is not None else (None, None)
    return replace(message, html=html, text=text, large=False)


def renew_leases(session: Session, ids: Sequence[int], worker_id: str, until: datetime) -> set[int]:
    """Extend the leases of ``ids`` that this worker still owns; those ids."""
    if not ids:
        return set()
    result = session.connection().execute(
        _RENEW, {"ids": list(ids), "owner": worker_id, "until": until}
    )
    return set(result.scalars())


_UNSENT = (AttemptOutcome.RETRYING, AttemptOutcome.FAILED)


def write_outcomes(session: Session, outcomes: Sequence[OutcomeWrite], worker_id: str) -> set[int]:
    """Record the outcomes (and their Attempt rows) of the messages still owned; their ids.

    The owned rows are locked first, so none can be taken over between the check and the
    writes; an outcome whose lease was lost is left out (the new owner's counts).
    """
    if not outcomes:
        return set()
    connection = session.connection()
    ids = [o.message_id for o in outcomes]
    owned = set(connection.scalars(_LOCK_OWNED, {"ids": ids, "owner": worker_id}))
    kept = [o for o in outcomes if o.message_id in owned]
    sent = [_sent_params(o, worker_id) for o in kept if o.outcome is AttemptOutcome.SENT]
    unsent = [_unsent_params(o, worker_id) for o in kept if o.outcome in _UNSENT]
    written = _executemany(connection, _WRITE_SENT, sent)
    written += _executemany(connection, _WRITE_UNSENT, unsent)
    if written != len(sent) + len(unsent):  # the rows are locked: this cannot happen
        raise RuntimeError(f"{written} of {len(sent) + len(unsent)} outcomes were written")
    for write in kept:
        held = write.outcome is AttemptOutcome.HELD
        if held and not update_owned(session, write.message_id, worker_id, write.values):
            owned.discard(write.message_id)
    attempts = [o.attempt for o in kept if o.message_id in owned]
    if attempts:
        connection.execute(_ADD_ATTEMPTS, attempts)
    return owned


def _executemany(connection: Connection, statement: Any, rows: list[dict[str, Any]]) -> int:
    if not rows:
        return 0
    return int(connection.execute(statement, rows).rowcount)


def _sent_params(write: OutcomeWrite, worker_id: str) -> dict[str, Any]:
    values = write.values
    return {
        "w_id": write.message_id,
        "owner": worker_id,
        "v_attempts": values["attempts"],
        "v_now": values["sent_at"],
        "v_results": values.get("recipient_results"),
    }


def _unsent_params(write: OutcomeWrite, worker_id: str) -> dict[str, Any]:
    values = write.values
    return {
        "w_id": write.message_id,
        "owner": worker_id,
        "v_status": values["status"],
        "v_attempts": values["attempts"],
        "v_error_code": values["error_code"],
        "v_error_message": values["error_message"],
        "v_error_hint": values["error_hint"],
        "v_smtp_code": values["smtp_code"],
        "v_next": values["next_attempt_at"],
        "v_sent_at": values.get("sent_at"),
        "v_results": values.get("recipient_results"),
    }


def update_owned(session: Session, message_id: int, worker_id: str, values: dict[str, Any]) -> bool:
    """Write ``values`` only while ``worker_id`` still owns the message (its lease).

    The condition is evaluated against the row as it is when the UPDATE runs (on
    PostgreSQL after any competing claim commits), so a worker whose lease lapsed and
    was taken over can never overwrite the new owner's outcome.
    """
    result = session.connection().execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.lease_owner == worker_id,
            Message.status == MessageStatus.SENDING,
        )
        .values(**values)
    )
    return bool(result.rowcount)


def hold_sender(
    session: Session,
    sender_id: int,
    until: datetime,
    code: str,
    message: str,
    *,
    login_throttles: int | None = None,
) -> None:
    """Pause the sender's queue until ``until`` (a wrong login fails every message alike);
    ``login_throttles`` sets the count of logins refused for now in a row (else kept)."""
    values: dict[str, Any] = {
        "held_until": until,
        "hold_code": code,
        "hold_message": message,
        "probe_until": None,
        "updated_at": Sender.updated_at,  # a hold is not an edit: no onupdate timestamp
    }
    if login_throttles is not None:
        values["login_throttles"] = login_throttles
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def attachments_of(session: Session, message_id: int) -> tuple[AttachmentPart, ...]:
    rows = session.scalars(
        select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.position)
    )
    return tuple(
        AttachmentPart(
            filename=a.filename,
            content_type=a.content_type,
            content_id=a.content_id,
            size=a.size,
            encoded=a.encoded,
        )
        for a in rows
    )
