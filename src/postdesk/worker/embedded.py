"""The embedded worker: threads inside ``postdesk serve`` that claim due messages and send them.

Each thread loops claim → deliver, draining the queue batch after batch, then sleeps for
``poll_interval`` or until ``wake()`` (called after every submission through
``Runtime.submitted_hooks``). Retries that come due are found by the next poll. The first
thread also purges records older than ``POSTDESK_RECORD_RETENTION_DAYS`` at start and then
every ``purge_every`` seconds (SPEC: "purged by the worker"). A thread
never dies of an exception: it logs it (without statement parameters, which may hold mail
content), backs off, and tries again; a message it held at that moment is taken up again
when its lease runs out. The sending logic itself lives in ``postdesk.services.delivery.deliver``.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from postdesk.services.delivery.connections import ConnectionPool
from postdesk.services.delivery.drain import BATCH_SIZE, drain_once
from postdesk.services.delivery.outcomes import Delivered
from postdesk.services.delivery.rate_limits import SendRateLimiter
from postdesk.services.delivery.sender_settings import SenderSettingsCache
from postdesk.services.records.retention import PURGE_EVERY_S, purge_records
from postdesk.services.runtime import Runtime
from postdesk.storage.db import describe_database_error

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 30.0


def new_worker_id() -> str:
    """Unique per process start: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class EmbeddedWorker:
    """Background threads draining the queue; ``start()``, ``stop()``, ``wake()``, ``state()``.

    ``batch_size`` messages are claimed at a time (they are leased together; the leases
    of those not sent yet are renewed with every commit of outcomes, at least every
    ``COMMIT_EVERY_S`` of ``postdesk.services.delivery.deliver``). All threads share one rate
    limiter, so a sender's ``max_per_minute`` holds across them.
    """

    def __init__(
        self,
        rt: Runtime,
        *,
        worker_id: str | None = None,
        poll_interval: float = 1.0,
        batch_size: int = BATCH_SIZE,
        threads: int = 1,
        limiter: SendRateLimiter | None = None,
        purge_every: float | None = PURGE_EVERY_S,
    ) -> None:
        if threads < 1 or batch_size < 1 or poll_interval <= 0:
            raise ValueError("threads and batch_size must be at least 1, poll_interval above 0")
        self.rt = rt
        self.worker_id = worker_id or new_worker_id()
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.limiter = limiter or SendRateLimiter()
        self.purge_every = purge_every
        self._thread_count = threads
        self._stopping = threading.Event()
        self._wakeups = [threading.Event() for _ in range(threads)]
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._last_poll_at: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._counts: dict[str, int] = {}
        self._purged = 0

    def start(self) -> None:
        """Start the threads and listen for submissions (idempotent while running)."""
        if self.running:
            return
        self._stopping.clear()
        if self.wake not in self.rt.submitted_hooks:
            self.rt.submitted_hooks.append(self.wake)
        self._threads = [
            threading.Thread(
                target=self._loop,
                args=(index,),
                name=f"postdesk-worker-{index}",
                daemon=True,
            )
            for index in range(self._thread_count)
        ]
        for thread in self._threads:
            thread.start()
        log.info("embedded worker %s started (%d thread(s))", self.worker_id, len(self._threads))

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the message being sent; True if every thread ended within ``timeout``.

        Claimed messages not started yet go back to the queue at once.
        """
        self._stopping.set()
        self.wake()
        if self.wake in self.rt.submitted_hooks:
            self.rt.submitted_hooks.remove(self.wake)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.running

    def wake(self) -> None:
        """Poll now (quick and never raising: it runs as a ``submitted_hooks`` hook)."""
        for event in self._wakeups:
            event.set()

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def state(self) -> dict[str, Any]:
        """For /healthz: running, last poll, last error, and what this process delivered."""
        with self._lock:
            return {
                "running": self.running and not self._stopping.is_set(),
                "worker_id": self.worker_id,
                "threads": self._thread_count,
                "last_poll_at": _iso(self._last_poll_at),
                "last_error": self._last_error,
                "last_error_at": _iso(self._last_error_at),
                "delivered": dict(self._counts),
                "records_purged": self._purged,
            }

    def run_once(
        self,
        *,
        connections: ConnectionPool | None = None,
        sender_settings: SenderSettingsCache | None = None,
        index: int = 0,
    ) -> int:
        """One claim and delivery pass in the calling thread; the number of messages claimed."""
        drained = drain_once(
            self.rt,
            worker_id=self._thread_id(index),
            limit=self.batch_size,
            limiter=self.limiter,
            connections=connections,
            sender_settings=sender_settings,
            should_stop=self._stopping.is_set,
        )
        with self._lock:
            self._last_poll_at = self.rt.clock()
        self._count(drained.delivered)
        return drained.claimed

    def _loop(self, index: int) -> None:
        pool, known = ConnectionPool(), SenderSettingsCache()

        def let_go() -> None:  # an idle or failing worker holds no connections or passwords
            pool.close()
            known.clear()

        failures = 0
        next_purge = time.monotonic() if index == 0 and self.purge_every else None
        try:
            while not self._stopping.is_set():
                try:
                    if next_purge is not None and time.monotonic() >= next_purge:
                        next_purge = time.monotonic() + (self.purge_every or PURGE_EVERY_S)
                        self._purge()
                    claimed = self.run_once(connections=pool, sender_settings=known, index=index)
                    failures = 0
                except Exception as exc:
                    failures = min(failures + 1, 16)  # 2**16 polls is past the cap anyway
                    self._record_error(exc)
                    let_go()
                    self._sleep(index, min(MAX_BACKOFF_S, self.poll_interval * 2**failures))
                    continue
                if not claimed:
                    let_go()
                    self._sleep(index, self.poll_interval)
        finally:
            let_go()

    def _purge(self) -> None:
        purged = purge_records(self.rt)
        with self._lock:
            self._purged += purged
        if purged:
            log.info("purged %d records older than the retention period", purged)

    def _sleep(self, index: int, seconds: float) -> None:
        event = self._wakeups[index]
        event.wait(seconds)
        event.clear()

    def _thread_id(self, index: int) -> str:
        # Each thread owns its leases: a lease renewed by one thread must not cover another's.
        return self.worker_id if self._thread_count == 1 else f"{self.worker_id}/{index}"

    def _count(self, results: list[Delivered]) -> None:
        with self._lock:
            for result in results:
                self._counts[result.status] = self._counts.get(result.status, 0) + 1

    def _record_error(self, exc: Exception) -> None:
        text = describe_database_error(exc)
        with self._lock:
            self._last_error = text
            self._last_error_at = self.rt.clock()
        if isinstance(exc, SQLAlchemyError):
            log.error("worker %s: database error, retrying: %s", self.worker_id, text)
        else:
            log.exception("worker %s: unexpected error, retrying", self.worker_id)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
