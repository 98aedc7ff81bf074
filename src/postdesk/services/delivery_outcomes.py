"""What a delivery reads and writes under its lease: outcomes, sender holds and Attempt rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import DiagnosisCode, Failure
from postdesk.services import metrics
from postdesk.storage.models import Attachment, Attempt, Message, Sender
from postdesk.storage.repositories import release_sender_hold
from postdesk.transport import SendOutcome

AUTH_FAILED = DiagnosisCode.AUTH_FAILED.value
SENDER_DELETED = "sender_deleted"


@dataclass(frozen=True)
class Delivered:
    """What became of one claimed message: its status now, and why when not ``sent``."""

    id: int
    status: str
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None


def failure_columns(failure: Failure) -> dict[str, Any]:
    """The message's error columns for ``failure``."""
    return {
        "error_code": failure.code,
        "error_message": failure.message,
        "error_hint": failure.hint,
        "smtp_code": failure.smtp_code,
    }


def renew_lease(session: Session, message_id: int, worker_id: str, until: datetime) -> bool:
    return update_owned(session, message_id, worker_id, {"lease_until": until})


def update_owned(session: Session, message_id: int, worker_id: str, values: dict[str, Any]) -> bool:
    """Write ``values`` only while ``worker_id`` still owns the message (its lease).

    The condition is evaluated against the row as it is when the UPDATE runs (on
    PostgreSQL after any competing claim commits), so a worker whose lease lapsed and
    was taken over can never overwrite the new owner's outcome.
    """
    # On the session's connection, in its transaction: the same UPDATE without the ORM's
    # bulk-update bookkeeping, which cost more than the statement (nothing is synchronised).
    result = session.connection().execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.lease_owner == worker_id,
            Message.status == "sending",
        )
        .values(**values)
    )
    return bool(result.rowcount)


def _waiting_status(attempts: int) -> str:
    return "retrying" if attempts else "queued"


def put_back_row(
    session: Session, row: Message, due: datetime, *, error: Failure | None = None
) -> Delivered | None:
    """Back to the queue, due at ``due``, lease cleared, no attempt spent."""
    values: dict[str, Any] = {
        "status": _waiting_status(row.attempts),
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": due,
    }
    if error is not None:
        values.update(failure_columns(error))
    if row.lease_owner is None or not update_owned(session, row.id, row.lease_owner, values):
        return None
    if error is not None:
        metrics.MESSAGES_DEFERRED.labels(reason="sender_held").inc()
    return delivered(row.id, values)


def fail_sender_deleted(session: Session, row: Message, now: datetime) -> Delivered | None:
    """The sender was deleted after the message was claimed: nothing can send it now."""
    values = {
        "status": "failed",
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": None,
        "sent_at": now,
        "error_code": SENDER_DELETED,
        "error_message": f"The sender {row.sender_address} was deleted before this mail "
        "was sent.",
        "error_hint": "Send the mail again from another sender.",
        "smtp_code": None,
    }
    if row.lease_owner is None or not update_owned(session, row.id, row.lease_owner, values):
        return None
    metrics.record_failed_without_attempt(SENDER_DELETED)
    return delivered(row.id, values)


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


def sender_state(session: Session, sender_id: int | None) -> SenderState | None:
    if sender_id is None:
        return None
    found = (
        session.connection()
        .execute(
            select(
                Sender.id,
                Sender.address,
                Sender.updated_at,
                Sender.max_per_minute,
                Sender.held_until,
                Sender.hold_code,
                Sender.hold_message,
            ).where(Sender.id == sender_id)
        )
        .first()
    )
    return SenderState(*found) if found is not None else None


def hold_failure(sender: SenderState) -> Failure:
    """What a message of a held sender shows while it waits."""
    until = sender.held_until.strftime("%Y-%m-%d %H:%M UTC") if sender.held_until else "later"
    return Failure(
        sender.hold_code or AUTH_FAILED,
        sender.hold_message or "the server refused the login",
        hint=f"Sending from {sender.address} is paused until {until} because the server "
        "refused the login. Correct the password (for QQ, 163, 126 and Gmail: the "
        "authorization code or app password) with sender edit; the queue resumes at once.",
    )


def held_values(row: Message, failure: Failure, until: datetime, now: datetime) -> dict[str, Any]:
    """The message's values while its sender is held: waiting again, attempt not spent."""
    note = (
        f" Sending from this sender is paused until {until:%Y-%m-%d %H:%M} UTC; editing the "
        "sender or a passing test mail resumes it at once. This mail will be sent then."
    )
    return {
        "status": _waiting_status(row.attempts),
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": now,
        **failure_columns(failure),
        "error_hint": (failure.hint or "") + note,
    }


def hold_sender(session: Session, sender_id: int, failure: Failure, until: datetime) -> None:
    """Pause the sender's queue until ``until`` (a wrong login fails every message alike)."""
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(
            held_until=until,
            hold_code=failure.code,
            hold_message=failure.message,
            updated_at=Sender.updated_at,  # a hold is not an edit: no onupdate timestamp
        )
        .execution_options(synchronize_session=False)
    )


def end_hold_after_success(session: Session, sender_id: int) -> None:
    # Reading first: an UPDATE per sent mail would lock the sender row on every send.
    hold_code = session.connection().scalar(select(Sender.hold_code).where(Sender.id == sender_id))
    if hold_code is not None:
        release_sender_hold(session, sender_id)


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


def add_attempt(
    session: Session,
    message_id: int,
    started: datetime,
    ended: datetime,
    kind: str,
    outcome: SendOutcome | None,
    failure: Failure | None,
) -> None:
    # Core statements on the session's connection: one row, no unit of work to flush.
    connection = session.connection()
    last = connection.scalar(
        select(func.coalesce(func.max(Attempt.number), 0)).where(Attempt.message_id == message_id)
    )
    connection.execute(
        insert(Attempt).values(
            message_id=message_id,
            number=int(last or 0) + 1,
            started_at=started,
            ended_at=ended,
            outcome=kind,
            error_code=failure.code if failure else None,
            smtp_code=failure.smtp_code if failure else None,
            reply=failure.message if failure else (outcome.reply if outcome else None),
        )
    )


def refusals(outcome: SendOutcome) -> dict[str, Any] | None:
    """Recipients the server refused while it accepted the others: address -> reply."""
    if not outcome.refused:
        return None
    return {
        address: {"smtp_code": code, "reply": text}
        for address, (code, text) in outcome.refused.items()
    }


def given_up(failure: Failure, attempts: int) -> Failure:
    hint = f"postdesk gave up after {attempts} attempts. {failure.hint or ''}".strip()
    return Failure(failure.code, failure.message, hint, failure.smtp_code, failure.transient)


def delivered(message_id: int, values: dict[str, Any]) -> Delivered:
    return Delivered(
        id=message_id,
        status=values.get("status", "queued"),
        error_code=values.get("error_code"),
        error_message=values.get("error_message"),
        next_attempt_at=values.get("next_attempt_at"),
    )
