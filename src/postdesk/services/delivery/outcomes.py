"""What an attempt or a decision without one writes: the message's new columns, the
Attempt row, and what the worker reports (``Delivered``). The SQL is ``storage.queue``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from postdesk.domain.diagnosis import DiagnosisCode, Failure
from postdesk.domain.recipients import dump_results, given_up
from postdesk.domain.status import AttemptOutcome, MessageStatus, Step, waiting_status
from postdesk.services.delivery import metrics
from postdesk.services.delivery.sending import Sent
from postdesk.storage.queue import (
    Claimed,
    OutcomeWrite,
    SenderState,
    forgotten_codes,
    update_owned,
)
from postdesk.storage.rows import error_columns

SENDER_DELETED = "sender_deleted"


@dataclass(frozen=True)
class Delivered:
    """What became of one claimed message: its status now, and why when not ``sent``."""

    id: int
    status: str
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class AttemptResult(OutcomeWrite):
    """One attempt's result, waiting to be committed with others."""

    failure: Failure | None
    seconds: float


def message_values(
    step: Step, sent: Sent, now: datetime, *, hold_until: datetime
) -> dict[str, Any]:
    """The message's new columns after an attempt that led to ``step``."""
    values: dict[str, Any] = {"status": step.status, "lease_owner": None, "lease_until": None}
    failure = step.failure
    if step.outcome is AttemptOutcome.HELD:
        assert failure is not None
        return {**values, **held_columns(failure, hold_until, now)}
    values["attempts"] = step.attempts
    results = sent.results or {}
    if step.status is MessageStatus.FAILED:
        results = given_up(results)
    values["recipient_results"] = dump_results(results)
    if failure is None:
        values.update(error_columns(None), sent_at=now, next_attempt_at=None)
    elif step.retry_in is not None:
        values.update(error_columns(failure), next_attempt_at=now + step.retry_in)
    else:
        values.update(error_columns(failure), sent_at=now, next_attempt_at=None)
    return values


def put_back(
    session: Session,
    message: Claimed,
    worker_id: str,
    due: datetime,
    *,
    error: Failure | None = None,
) -> Delivered | None:
    """Back to the queue, due at ``due``, lease cleared, no attempt spent; with ``error``
    (its sender is held) it is ``retrying`` and shows why."""
    values: dict[str, Any] = {
        "status": MessageStatus.RETRYING if error is not None else waiting_status(message.attempts),
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": due,
    }
    if error is not None:
        values.update(error_columns(error))
    if not update_owned(session, message.id, worker_id, values):
        return None
    if error is not None:
        metrics.MESSAGES_DEFERRED.labels(reason="sender_held").inc()
    return delivered(message.id, values)


def fail_sender_deleted(
    session: Session, message: Claimed, worker_id: str, now: datetime
) -> Delivered | None:
    """The sender was deleted after the message was claimed: nothing can send it now."""
    values = {
        "status": MessageStatus.FAILED,
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": None,
        "sent_at": now,
        "error_code": SENDER_DELETED,
        "error_message": f"The sender {message.sender_address} was deleted before this mail "
        "was sent.",
        "error_hint": "Send the mail again from another sender.",
        "smtp_code": None,
        **forgotten_codes(),
    }
    if not update_owned(session, message.id, worker_id, values):
        return None
    metrics.record_failed_without_attempt(SENDER_DELETED)
    return delivered(message.id, values)


_WHY_HELD: dict[str, str] = {
    DiagnosisCode.AUTH_THROTTLED: (
        "because the server refuses logins for now, usually after too many attempts; then "
        "one mail tries the login again. Check that no other system keeps trying this "
        "account with a wrong password."
    ),
}
_REFUSED = (
    "because the server refused the login. Correct the password (for QQ, 163, 126 and "
    "Gmail: the authorization code or app password) with sender edit; the queue resumes at "
    "once."
)


def hold_failure(sender: SenderState) -> Failure:
    """What a message of a held sender shows while it waits."""
    until = sender.held_until.strftime("%Y-%m-%d %H:%M UTC") if sender.held_until else "later"
    code = sender.hold_code or DiagnosisCode.AUTH_FAILED
    return Failure(
        code,
        sender.hold_message or "the server refused the login",
        hint=f"Sending from {sender.address} is paused until {until} "
        + _WHY_HELD.get(code, _REFUSED),
    )


def held_columns(failure: Failure, until: datetime, now: datetime) -> dict[str, Any]:
    """The message's columns while its sender is held: due again now, attempt not spent."""
    note = (
        f" Sending from this sender is paused until {until:%Y-%m-%d %H:%M} UTC, then one "
        "mail tries the login again and the rest follow once it passes; editing the sender "
        "or a passing test mail resumes it at once."
    )
    return {
        "next_attempt_at": now,
        **error_columns(failure),
        "error_hint": (failure.hint or "") + note,
    }


def delivered(message_id: int, values: dict[str, Any]) -> Delivered:
    return Delivered(
        id=message_id,
        status=values.get("status", MessageStatus.QUEUED),
        error_code=values.get("error_code"),
        error_message=values.get("error_message"),
        next_attempt_at=values.get("next_attempt_at"),
    )
