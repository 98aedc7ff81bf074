"""Claiming: which messages are due, and leasing them to a worker."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from postdesk.services.runtime import Runtime
from postdesk.storage.db import begin_sqlite_write
from postdesk.storage.models import Message, Sender

CLAIMABLE = ("sending", "retrying", "queued")


def _due_in(
    status: str, now: datetime
) -> tuple[ColumnElement[bool], InstrumentedAttribute[datetime | None]]:
    """When a message of ``status`` may be claimed, and the order to take them in."""
    if status == "sending":  # abandoned by a worker whose lease ran out
        return or_(Message.lease_until.is_(None), Message.lease_until < now), Message.lease_until
    due = or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now)
    return due, Message.next_attempt_at


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Any claimable message (re-checked by the claiming UPDATE)."""
    either = or_(*(and_(Message.status == s, _due_in(s, now)[0]) for s in CLAIMABLE))
    return and_(either, _sender_free(now))


def _sender_free(now: datetime) -> ColumnElement[bool]:
    """The message's sender is not held (an authentication failure pauses its queue)."""
    return ~exists().where(Sender.id == Message.sender_id, Sender.held_until > now)


def _candidates(
    session: Session, now: datetime, limit: int, ids: Sequence[int] | None
) -> list[int]:
    """Up to ``limit`` claimable ids, the longest-waiting first.

    One query per status, each ordered by the column of the (status, …) index: with a
    million sent records in the table, one query ORDER BY id over all statuses could
    walk the primary key through every finished message on each poll.
    """
    found: list[tuple[datetime | None, int]] = []
    for status in CLAIMABLE:
        due, order = _due_in(status, now)
        query = (
            select(order, Message.id)
            .where(Message.status == status, due, _sender_free(now))
            .order_by(order, Message.id)  # ties (one clock tick) in arrival order
            .limit(limit)
            .with_for_update(skip_locked=True, of=Message)  # PostgreSQL; a no-op on SQLite
        )
        if ids is not None:
            query = query.where(Message.id.in_(list(ids)))
        found.extend((when, message_id) for when, message_id in session.execute(query))
    found.sort(key=lambda item: (item[0] is not None, item[0] or now, item[1]))
    return [message_id for _, message_id in found[:limit]]


def claim_due(
    rt: Runtime, *, worker_id: str, limit: int, ids: Sequence[int] | None = None
) -> list[int]:
    """Lease up to ``limit`` due messages (only among ``ids`` when given) to ``worker_id``."""
    if limit < 1:
        return []
    now = rt.clock()
    with rt.transaction() as session:
        # SQLite: take the write lock first, so no other claim runs between SELECT and UPDATE.
        begin_sqlite_write(session.connection())
        candidates = _candidates(session, now, limit, ids)
        if not candidates:
            return []
        claimed = session.scalars(
            update(Message)
            .where(Message.id.in_(candidates), _claimable(now))
            .values(
                status="sending",
                lease_owner=worker_id,
                lease_until=now + timedelta(seconds=rt.settings.lease_s),
            )
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(claimed)
