"""Queue health: held senders, queue depth by status, and the Prometheus queue gauges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from postdesk.domain.status import PENDING
from postdesk.services.delivery import metrics
from postdesk.services.runtime import Runtime
from postdesk.storage.models import Message, Sender


@dataclass(frozen=True)
class HeldSender:
    """A sender whose queue is paused after an authentication failure."""

    id: int
    address: str
    held_until: datetime
    code: str | None
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "held_until": self.held_until.isoformat(),
            "code": self.code,
            "message": self.message,
        }


def held_senders(rt: Runtime) -> list[HeldSender]:
    """Senders whose queue is paused right now (for /healthz and the sender list)."""
    now = rt.clock()
    with rt.transaction() as session:
        rows = session.scalars(
            select(Sender).where(Sender.held_until > now).order_by(Sender.id)
        ).all()
        return [
            HeldSender(r.id, r.address, r.held_until, r.hold_code, r.hold_message)
            for r in rows
            if r.held_until is not None
        ]


def queue_depth(rt: Runtime) -> dict[str, int]:
    """Messages not finished yet, by status (queued, sending, retrying)."""
    with rt.transaction() as session:
        rows = session.execute(
            select(Message.status, func.count())
            .where(Message.status.in_(PENDING))
            .group_by(Message.status)
        ).all()
    depth = {str(status): 0 for status in PENDING}
    depth.update({status: int(count) for status, count in rows})
    return depth


def refresh_queue_gauges(rt: Runtime) -> None:
    """Read the queue depth and held senders into the Prometheus gauges (before a scrape)."""
    metrics.set_queue(queue_depth(rt), len(held_senders(rt)))
