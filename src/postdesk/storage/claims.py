"""Claiming: which messages are due, and leasing a batch of them to a worker.

The statements are built once, with the time, the worker and the limit as bound
parameters: a worker claims a batch after every batch it sends, and building and hashing
the same statements again each time cost more than running them. The caller owns the
transaction.

A sender whose hold has ended but was not lifted (``hold_code`` still set) is probed: one
claim at a time takes one of its messages, after winning a conditional UPDATE of the
sender's ``probe_until``; until that passes, or the probe's outcome lifts or renews the
hold, no claim takes the sender's other messages. The UPDATE decides between workers on
PostgreSQL (the row lock, then the condition read again) and on SQLite (the write lock).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from postdesk.domain.status import CLAIMABLE, MessageStatus
from postdesk.storage.db import begin_sqlite_write
from postdesk.storage.models import Message, Sender

_M = Message.__table__.c


_NOW = bindparam("now", type_=_M.next_attempt_at.type)


def _due_in(status: str) -> tuple[ColumnElement[bool], InstrumentedAttribute[Any]]:
    """When a message of ``status`` may be claimed, and the order to take them in."""
    if status == MessageStatus.SENDING:  # abandoned by a worker whose lease ran out
        return or_(Message.lease_until.is_(None), Message.lease_until < _NOW), Message.lease_until
    due = or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= _NOW)
    return due, Message.next_attempt_at


def _sender_free() -> ColumnElement[bool]:
    """The message's sender is not held (an authentication failure pauses its queue)."""
    return ~exists().where(Sender.id == Message.sender_id, Sender.held_until > _NOW)


def _sender_not_probed() -> ColumnElement[bool]:
    """Nor is one of the sender's messages being tried as the probe of its ended hold."""
    return ~exists().where(Sender.id == Message.sender_id, Sender.probe_until > _NOW)


# The sender's hold ended without being lifted: a message of it may only be the probe.
_ON_PROBATION = (
    exists()
    .where(Sender.id == Message.sender_id, Sender.hold_code.is_not(None))
    .label("on_probation")
)


def _candidates_of(status: str) -> Select[Any]:
    """Up to ``limit`` claimable ids of one status, the longest-waiting first.

    One query per status, each ordered by the column of the (status, …) index: with a
    million sent records in the table, one query ORDER BY id over all statuses could
    walk the primary key through every finished message on each poll.
    """
    due, order = _due_in(status)
    return (
        select(order, Message.id, Message.sender_id, _ON_PROBATION)
        .where(Message.status == status, due, _sender_free(), _sender_not_probed())
        .order_by(order, Message.id)  # ties (one clock tick) in arrival order
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True, of=Message)  # PostgreSQL; a no-op on SQLite
    )


_CANDIDATES = {status: _candidates_of(status) for status in CLAIMABLE}
# Any claimable message (the claiming UPDATE checks again what the SELECT found).
_CLAIMABLE = and_(
    or_(*(and_(Message.status == s, _due_in(s)[0]) for s in CLAIMABLE)), _sender_free()
)
_CLAIM = (
    update(Message)
    .where(Message.id.in_(bindparam("ids", expanding=True)), _CLAIMABLE)
    .values(
        status=MessageStatus.SENDING,
        lease_owner=bindparam("owner", type_=_M.lease_owner.type),
        lease_until=bindparam("until", type_=_M.lease_until.type),
    )
    .returning(Message.id)
)
# Whoever changes the row first takes the probe; the others find it taken.
_TAKE_PROBE = (
    update(Sender)
    .where(
        Sender.id == bindparam("sender_id"),
        Sender.hold_code.is_not(None),
        or_(Sender.held_until.is_(None), Sender.held_until <= _NOW),
        or_(Sender.probe_until.is_(None), Sender.probe_until <= _NOW),
    )
    .values(probe_until=bindparam("until", type_=Sender.__table__.c.probe_until.type))
    .returning(Sender.id)
)


def claim(
    session: Session,
    *,
    worker_id: str,
    limit: int,
    now: datetime,
    until: datetime,
    ids: Sequence[int] | None = None,
) -> list[int]:
    """Lease up to ``limit`` due messages (only among ``ids`` when given) to ``worker_id``
    until ``until``; the ids leased, in order."""
    connection = session.connection()
    # SQLite: take the write lock first, so no other claim runs between SELECT and UPDATE.
    begin_sqlite_write(connection)
    found: list[tuple[Any, int, int | None, bool]] = []
    for query in _CANDIDATES.values():
        if ids is not None:
            query = query.where(Message.id.in_(list(ids)))
        found.extend(connection.execute(query, {"now": now, "limit": limit}).tuples())
    if not found:
        return []
    found.sort(key=lambda item: (item[0] is not None, item[0] or now, item[1]))
    candidates = _with_probes(connection, found[:limit], now, until)
    if not candidates:
        return []
    params = {"ids": candidates, "now": now, "owner": worker_id, "until": until}
    return sorted(connection.scalars(_CLAIM, params))


def _with_probes(
    connection: Connection,
    found: Sequence[tuple[Any, int, int | None, bool]],
    now: datetime,
    until: datetime,
) -> list[int]:
    """The candidates to claim: all of free senders, and of each sender on probation the
    first one alone, if this claim takes its probe (until ``until``), else none."""
    kept: list[int] = []
    probed: dict[int, bool] = {}
    for _, message_id, sender_id, on_probation in found:
        if not on_probation or sender_id is None:
            kept.append(message_id)
        elif sender_id not in probed:
            params = {"sender_id": sender_id, "now": now, "until": until}
            probed[sender_id] = connection.execute(_TAKE_PROBE, params).first() is not None
            if probed[sender_id]:
                kept.append(message_id)
    return kept
