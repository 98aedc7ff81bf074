"""The service's health as /healthz reports it: database, configuration, queue, held senders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from postdesk.services.delivery import queue_health
from postdesk.services.runtime import Runtime
from postdesk.services.senders.accounts import get_mail_settings


def health_report(rt: Runtime) -> dict[str, Any] | None:
    """Database, configuration, queue depth and held senders; ``None`` when the database
    cannot be reached."""
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {
            "database": "ok",
            "mail_service_configured": get_mail_settings(rt).configured,
            "queue": queue_health.queue_depth(rt),
            "held_senders": [h.to_dict() for h in queue_health.held_senders(rt)],
        }
    except SQLAlchemyError:
        return None
