"""The pool of open SMTP connections, one per sender, that delivery reuses between messages."""

from __future__ import annotations

import time
from collections.abc import Callable

from postdesk.domain.senders import SenderSettings
from postdesk.transport import SmtpConnection, open_connection


class ConnectionPool:
    """One open SMTP connection per sender, reused while the queue drains.

    A connection is opened again when the sender was edited (``version`` changed), when
    the server hung up, or when it sat idle longer than ``idle_s`` (servers drop idle
    clients; a stale connection would fail the next message for nothing).
    """

    def __init__(
        self,
        opener: Callable[[SenderSettings], SmtpConnection] = open_connection,
        *,
        idle_s: float = 20.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._idle_s = idle_s
        self._monotonic = monotonic
        self._open: dict[int, tuple[object, SmtpConnection, float]] = {}

    def get(self, sender_id: int, version: object, settings: SenderSettings) -> SmtpConnection:
        """The sender's connection, opened if needed; ``DeliveryError`` if that fails."""
        now = self._monotonic()
        entry = self._open.get(sender_id)
        if entry is not None:
            known, connection, last_used = entry
            if known == version and connection.is_open and now - last_used < self._idle_s:
                self._open[sender_id] = (known, connection, now)
                return connection
            self.discard(sender_id)
        connection = self._opener(settings)
        self._open[sender_id] = (version, connection, now)
        return connection

    def discard(self, sender_id: int) -> None:
        entry = self._open.pop(sender_id, None)
        if entry is not None:
            entry[1].close()

    def close(self) -> None:
        """QUIT every connection (the worker calls this when the queue is empty)."""
        for sender_id in list(self._open):
            self.discard(sender_id)

    def __len__(self) -> int:
        return len(self._open)

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
