"""One pass of the queue: claim a batch of due messages and deliver it.

The embedded worker, the Celery drain task, ``postdesk send`` and the tests all send
through this one function; only *when* they call it differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from postdesk.services.delivery.claims import claim_due
from postdesk.services.delivery.connections import ConnectionPool
from postdesk.services.delivery.deliver import deliver_claimed
from postdesk.services.delivery.outcomes import Delivered
from postdesk.services.delivery.rate_limits import SendRateLimiter
from postdesk.services.delivery.sender_settings import SenderSettingsCache
from postdesk.services.runtime import Runtime

# Messages leased together; their leases are renewed while the batch is sent.
BATCH_SIZE = 20


@dataclass(frozen=True)
class Drained:
    """How many messages one pass claimed, and what became of those still owned."""

    claimed: int = 0
    delivered: list[Delivered] = field(default_factory=list)


def drain_once(
    rt: Runtime,
    *,
    worker_id: str,
    limit: int = BATCH_SIZE,
    ids: Sequence[int] | None = None,
    limiter: SendRateLimiter | None = None,
    connections: ConnectionPool | None = None,
    sender_settings: SenderSettingsCache | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Drained:
    """Claim up to ``limit`` due messages (only among ``ids`` when given) and send them."""
    claimed = claim_due(rt, worker_id=worker_id, limit=limit, ids=ids)
    if not claimed:
        return Drained()
    delivered = deliver_claimed(
        rt,
        claimed,
        worker_id=worker_id,
        limiter=limiter,
        connections=connections,
        sender_settings=sender_settings,
        should_stop=should_stop,
    )
    return Drained(len(claimed), delivered)
