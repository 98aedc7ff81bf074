"""The retention of the sending records: purging the finished ones past their days."""

from __future__ import annotations

from datetime import datetime, timedelta

from postdesk.services.runtime import Runtime
from postdesk.storage.records import delete_finished_records

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
            deleted = delete_finished_records(session, before=cutoff, limit=PURGE_BATCH)
        purged += deleted
        if deleted < PURGE_BATCH:
            return purged
