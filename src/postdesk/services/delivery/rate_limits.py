"""Per-sender send rate limits: the moving-window limiter delivery consults before each send.

A sender's ``max_per_minute`` is a moving window kept by the ``limits`` library. A
message over the limit goes back to the queue, due when the window has room, without
an attempt. The default storage is in memory (one process); pass a shared storage
(``make_limiter("redis://…")``) when several processes send for the same senders.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter


class SendRateLimiter:
    """Per-sender ``max_per_minute`` as a moving window (``limits``; storage injectable)."""

    def __init__(self, storage: Storage | None = None) -> None:
        self._limiter = MovingWindowRateLimiter(storage or MemoryStorage())

    def wait_for(self, sender_id: int, per_minute: int | None) -> float:
        """0 and one send counted if the sender may send now, else seconds until it may."""
        if not per_minute:
            return 0.0
        item = RateLimitItemPerMinute(per_minute)
        if self._limiter.hit(item, "sender", str(sender_id)):
            return 0.0
        stats = self._limiter.get_window_stats(item, "sender", str(sender_id))
        return max(1.0, stats.reset_time - time.time())


def make_limiter(storage_uri: str | None = None) -> SendRateLimiter:
    """A limiter on ``storage_uri`` (``memory://`` by default, ``redis://…`` to share)."""
    if not storage_uri:
        return SendRateLimiter()
    storage = storage_from_string(storage_uri)
    if not isinstance(storage, Storage):  # an async storage (async+redis://) cannot serve here
        raise ValueError(f"{storage_uri.split(':', 1)[0]}: not a synchronous limits storage")
    return SendRateLimiter(storage)
