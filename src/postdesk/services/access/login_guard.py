"""Password guessing made slow: failed logins of one user name back off, whoever sends
them, and only a few password checks run at once (each Argon2 check takes 64 MiB).

The per-client limit (``postdesk.http.login``) stops one address; an attacker with many
addresses is stopped here, by the user name they try. A lock is short and grows with
each further failure, so a locked-out administrator waits minutes, never hours; a
success clears it. The state is per process and in memory, bounded in size.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from postdesk.errors import TooFrequentError

# Failures of one user name allowed before it is locked ...
FREE_FAILURES = 10
# ... first for this long, doubling with every further failure, up to MAX_LOCK.
FIRST_LOCK = timedelta(seconds=30)
MAX_LOCK = timedelta(minutes=15)
# User names remembered at most: the oldest entries go first (a flood of invented names
# must not grow the process).
MAX_NAMES = 10_000
# Password checks that may run at once, and how long a login waits for its turn.
CONCURRENT_CHECKS = 2
CHECK_WAIT_S = 10.0


@dataclass
class _Failures:
    count: int
    locked_until: datetime | None


class LoginGuard:
    """Back-off by user name and a cap on concurrent password checks, for one process."""

    def __init__(
        self, clock: Callable[[], datetime], *, concurrent_checks: int = CONCURRENT_CHECKS
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._names: OrderedDict[str, _Failures] = OrderedDict()
        self._checks = threading.BoundedSemaphore(concurrent_checks)

    def before(self, username: str) -> None:
        """Refuse (``TooFrequentError`` with ``retry_after``) while the name is locked."""
        with self._lock:
            failures = self._names.get(_key(username))
            until = failures.locked_until if failures else None
        now = self._clock()
        if until is not None and until > now:
            wait = math.ceil((until - now).total_seconds())
            raise TooFrequentError(
                f"Too many failed logins for this user name. Try again in {wait} s.",
                retry_after=wait,
            )

    def failed(self, username: str) -> None:
        """Count a failure; past ``FREE_FAILURES`` the name is locked, longer each time."""
        key = _key(username)
        with self._lock:
            failures = self._names.pop(key, None) or _Failures(0, None)
            failures.count += 1
            extra = failures.count - FREE_FAILURES
            if extra >= 0:
                lock = min(FIRST_LOCK * 2 ** min(extra, 16), MAX_LOCK)
                failures.locked_until = self._clock() + lock
            self._names[key] = failures
            while len(self._names) > MAX_NAMES:
                self._names.popitem(last=False)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._names.pop(_key(username), None)

    @contextmanager
    def check_slot(self) -> Iterator[None]:
        """A turn to check a password; ``TooFrequentError`` if none comes in time."""
        if not self._checks.acquire(timeout=CHECK_WAIT_S):
            raise TooFrequentError(
                "Too many logins are being checked right now. Try again in a few seconds.",
                retry_after=5,
            )
        try:
            yield
        finally:
            self._checks.release()


def _key(username: str) -> str:
    return username.strip()[:200]
