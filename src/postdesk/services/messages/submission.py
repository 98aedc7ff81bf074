"""Accepting messages into the durable queue (one or a batch) and reading their status.

A message is validated completely (``postdesk.services.messages.requests``), then
committed in one short transaction together with its attachments
(``postdesk.services.messages.store``); only that commit makes the promise behind
``202``. Nothing is written when any field of any message is wrong, and a database that
cannot take the write becomes ``UnavailableError`` (``503`` with ``Retry-After``), never
an acceptance.

The Message-ID header is generated at submission, once, so that every delivery attempt
sends the same one and a receiving server (or a person) can tell a re-sent copy from a
new mail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from postdesk.domain.recipients import RecipientResult, outcome_dicts
from postdesk.domain.records import recipient_outcomes
from postdesk.domain.status import RecordKind
from postdesk.errors import NotFoundError, ValidationError, error_body
from postdesk.services.access.callers import Caller
from postdesk.services.messages.requests import (
    FIX_HINT,
    MAX_ATTACHMENT_BYTES,
    MAX_RECIPIENTS,
    Draft,
    validate_request,
)
from postdesk.services.messages.store import Submitted, storage, store
from postdesk.services.runtime import Runtime
from postdesk.storage.models import Message

__all__ = [
    "MAX_ATTACHMENT_BYTES",
    "MAX_BATCH",
    "MAX_RECIPIENTS",
    "SUBMITTED_KINDS",
    "MessageView",
    "Submitted",
    "error_of",
    "get_message",
    "submit_batch",
    "submit_message",
]

log = logging.getLogger(__name__)

MAX_BATCH = 1000
# What may be queued: a test mail is sent at once and only recorded.
SUBMITTED_KINDS = (RecordKind.MESSAGE, RecordKind.VERIFICATION_CODE)


@dataclass(frozen=True)
class MessageView:
    """What ``GET /messages/{id}`` answers."""

    id: int
    status: str
    attempts: int
    error: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None
    recipient_results: list[tuple[str, RecipientResult]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "created_at": self.created_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
            "recipient_results": outcome_dicts(self.recipient_results),
        }


def submit_message(
    rt: Runtime,
    request: Mapping[str, Any],
    *,
    caller: Caller,
    client_ip: str | None,
    kind: RecordKind = RecordKind.MESSAGE,
) -> Submitted:
    """Validate and queue one message; committed before this returns."""
    if kind not in SUBMITTED_KINDS:
        raise ValueError(f"unknown message kind {kind!r}")
    draft = validate_request(request, client_ip=client_ip)
    [submitted] = store(rt, [draft], caller=caller, kind=kind)
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
        raise ValidationError(fields, hint=FIX_HINT)
    submitted = store(rt, drafts, caller=caller, kind=RecordKind.MESSAGE)
    if any(s.created for s in submitted):
        _notify(rt)
    return [s.id for s in submitted]


def get_message(rt: Runtime, message_id: int, *, caller: Caller) -> MessageView:
    """A message's status; a send token sees only the messages it created (else not found)."""
    with storage("read the message"), rt.transaction() as session:
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
            recipient_results=recipient_outcomes(row.recipients, row.recipient_results, row.status),
        )


def error_of(row: Message) -> dict[str, Any] | None:
    """The SPEC's ``{code, message, hint, smtp_code}``, or None when nothing went wrong."""
    if row.error_code is None:
        return None
    return error_body(
        row.error_code,
        row.error_message or "",
        row.error_hint,
        smtp_code=row.smtp_code,
        complete=True,
    )


def _notify(rt: Runtime) -> None:
    # The message is already committed: a failing hook must not turn 202 into an error.
    try:
        rt.notify_submitted()
    except Exception:
        log.exception("a submitted-message hook failed; the worker will find the mail by polling")
