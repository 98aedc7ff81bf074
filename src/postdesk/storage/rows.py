"""The columns of a new record (a Message row) and of an Attempt row: one way to write
them for mail handed to postdesk, verification codes and test mail alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from postdesk.domain.diagnosis import Failure
from postdesk.domain.records import recipients_search_text
from postdesk.domain.status import AttemptOutcome, MessageStatus, RecordKind


@dataclass(frozen=True)
class RecordSender:
    """Who a record is from, as it keeps it (the sender may be edited or deleted later)."""

    id: int | None
    address: str
    display_name: str | None


def record_row(
    *,
    kind: RecordKind,
    status: MessageStatus,
    sender: RecordSender,
    client_ip: str | None,
    to: Sequence[str],
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    subject: str,
    template_name: str = "",
    resources: Sequence[str] = (),
    header_message_id: str,
    created_at: datetime,
    **columns: Any,
) -> dict[str, Any]:
    """A Message row's columns; ``columns`` adds the rest (bodies, queue columns, errors)."""
    recipients = [*to, *cc, *bcc]
    return {
        "kind": kind,
        "status": status,
        "sender_id": sender.id,
        "sender_address": sender.address,
        "sender_name": sender.display_name,
        "client_ip": client_ip,
        "recipients": recipients,
        "to_addrs": list(to),
        "cc_addrs": list(cc),
        "bcc_addrs": list(bcc),
        "recipients_search": recipients_search_text(recipients),
        "subject": subject,
        "template_name": template_name,
        "resources": list(resources),
        "message_id": header_message_id,
        "created_at": created_at,
        **columns,
    }


def error_columns(failure: Failure | None) -> dict[str, Any]:
    """A record's error columns: ``failure``'s, or none."""
    return {
        "error_code": failure.code if failure else None,
        "error_message": failure.message if failure else None,
        "error_hint": failure.hint if failure else None,
        "smtp_code": failure.smtp_code if failure else None,
    }


def attempt_row(
    message_id: int,
    number: int,
    started: datetime,
    ended: datetime,
    outcome: AttemptOutcome,
    *,
    failure: Failure | None,
    reply: str | None,
) -> dict[str, Any]:
    """An Attempt row of the record ``message_id``: what the server said, or why it failed."""
    return {
        "message_id": message_id,
        "number": number,
        "started_at": started,
        "ended_at": ended,
        "outcome": outcome,
        "error_code": failure.code if failure else None,
        "smtp_code": failure.smtp_code if failure else None,
        "reply": failure.message if failure else reply,
    }
