"""The retention of the sending records: purging the finished ones past their days."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from postdesk.domain.status import FINAL
from postdesk.services.runtime import Runtime
from postdesk.storage.models import Message

# Records deleted per transaction by purge_records.
PURGE_BATCH = 1000
# How often the workers purge (the embedded worker's first thread, Celery's beat).
PURGE_EVERY_S = 3600.0


def purge_records(rt: Runtime, *, now: datetime | None = None) -> int:
    """Delete the finished records older than POSTDESK_RECORD_RETENTION_DAYS; how many.

    In batches of PURGE_BATCH, one short transaction each, oldest first, so the worker
    never holds the database for long. Their attempts and attachments go with them. A
    message not finished yet is kept whatever its age: queued mail is never dropped.
    """
    cutoff = (now or rt.clock()) - timedelta(days=rt.settings.record_retention_days)
    purged = 0
    while True:
        with rt.transaction() as session:
            ids = session.scalars(
                select(Message.id)
                .where(Message.created_at < cutoff, Message.status.in_(FINAL))
                .order_by(Message.created_at, Message.id)
                .limit(PURGE_BATCH)
            ).all()
            if ids:
                session.execute(delete(Message).where(Message.id.in_(ids)))
        purged += len(ids)
        if len(ids) < PURGE_BATCH:
            return purged
