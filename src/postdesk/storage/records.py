"""Queries of the sending records: the columns a record shows, one record, its attempts, the purge.

The search of the records list is postdesk.storage.record_search.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from postdesk.domain.status import FINAL
from postdesk.storage.models import Attempt, Message

# The columns a record shows: never the bodies, attachments or queue bookkeeping.
RECORD_COLUMNS = (
    Message.id,
    Message.kind,
    Message.status,
    Message.sender_address,
    Message.sender_name,
    Message.client_ip,
    Message.recipients,
    Message.subject,
    Message.template_name,
    Message.resources,
    Message.created_at,
    Message.sent_at,
    Message.attempts,
    Message.error_code,
    Message.error_message,
    Message.error_hint,
    Message.smtp_code,
    Message.recipient_results,
)


def find_record(session: Session, record_id: int) -> Row[Any] | None:
    """The record's RECORD_COLUMNS and its ``message_id``, or ``None`` if there is none."""
    query = select(*RECORD_COLUMNS, Message.message_id).where(Message.id == record_id)
    return session.execute(query).first()


def list_attempts(session: Session, record_id: int) -> Sequence[Row[Any]]:
    """The record's SMTP attempts, oldest first: number, times, outcome, error and reply."""
    query = (
        select(
            Attempt.number,
            Attempt.started_at,
            Attempt.ended_at,
            Attempt.outcome,
            Attempt.error_code,
            Attempt.smtp_code,
            Attempt.reply,
        )
        .where(Attempt.message_id == record_id)
        .order_by(Attempt.number)
    )
    return session.execute(query).all()


def delete_finished_records(session: Session, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished records created before ``before``, oldest first; how many.

    Their attempts and attachments go with them. A message not finished yet is never
    deleted, whatever its age.
    """
    ids = session.scalars(
        select(Message.id)
        .where(Message.created_at < before, Message.status.in_(FINAL))
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    ).all()
    if ids:
        session.execute(delete(Message).where(Message.id.in_(ids)))
    return len(ids)
