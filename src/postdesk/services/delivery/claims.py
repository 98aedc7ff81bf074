"""Claiming: leasing due messages to a worker, in one short transaction (SQL: storage.claims)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from postdesk.services.runtime import Runtime
from postdesk.storage import claims


def claim_due(
    rt: Runtime, *, worker_id: str, limit: int, ids: Sequence[int] | None = None
) -> list[int]:
    """Lease up to ``limit`` due messages (only among ``ids`` when given) to ``worker_id``
    for ``POSTDESK_LEASE_S``; the ids leased."""
    if limit < 1:
        return []
    now = rt.clock()
    until = now + timedelta(seconds=rt.settings.lease_s)
    with rt.transaction() as session:
        return claims.claim(
            session, worker_id=worker_id, limit=limit, now=now, until=until, ids=ids
        )
