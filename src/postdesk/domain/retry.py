"""Retry arithmetic for the queue: how many attempts a message gets and when the next one is due.

Pure code (stdlib only). ``delays`` are the seconds to wait after each failed attempt
(``POSTDESK_RETRY_DELAYS``, default 60, 300, 900, 1800): one delay between each pair of
attempts, so four delays mean five attempts in all. Every delay is multiplied by a jitter
factor drawn uniformly from ``[1 - JITTER, 1 + JITTER]`` so that messages that failed
together (a provider's throttling hits a whole batch at once) do not all come back at the
same second and get throttled together again.

``login_cooldown`` is how long a sender is held when its server refuses logins for now:
growing with each such refusal in a row, jittered the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# ±20 %: wide enough to spread a batch out, narrow enough that the documented delays
# still describe the schedule.
JITTER = 0.2


class RandomSource(Protocol):
    """What the jitter needs from ``random.Random``: a float in [0, 1)."""

    def random(self) -> float: ...


def max_attempts(delays: Sequence[float]) -> int:
    """All the attempts a message gets: the first one plus one after each delay."""
    return len(delays) + 1


def retries_left(attempts_made: int, delays: Sequence[float]) -> bool:
    """Whether another attempt may follow the ``attempts_made`` already spent."""
    return attempts_made < max_attempts(delays)


def jitter_factor(rng: RandomSource, spread: float = JITTER) -> float:
    """A factor in ``[1 - spread, 1 + spread]`` (``spread`` in [0, 1])."""
    if not 0.0 <= spread <= 1.0:
        raise ValueError(f"spread must be between 0 and 1, not {spread}")
    return 1.0 - spread + 2.0 * spread * rng.random()


def retry_delay(
    attempt_number: int, delays: Sequence[float], rng: RandomSource, *, spread: float = JITTER
) -> float:
    """Seconds to wait after attempt ``attempt_number`` (1-based) failed transiently.

    ``delays[attempt_number - 1]`` scaled by the jitter factor. Raises ``ValueError``
    when that attempt was the last one (``retries_left`` tells beforehand).
    """
    if attempt_number < 1:
        raise ValueError(f"attempt numbers start at 1, not {attempt_number}")
    if not retries_left(attempt_number, delays):
        raise ValueError(f"attempt {attempt_number} was the last of {max_attempts(delays)}")
    return float(delays[attempt_number - 1]) * jitter_factor(rng, spread)


# A sender whose logins the server refuses for now is held this long after its first such
# refusal, twice as long after each further one in a row, and never longer than the cap.
LOGIN_COOLDOWN_S = 60.0
MAX_LOGIN_COOLDOWN_S = 1800.0


def login_cooldown(throttles: int, rng: RandomSource, *, spread: float = JITTER) -> float:
    """Seconds to hold a sender after its ``throttles``-th throttled login in a row (1-based):
    about 1, 2, 4, 8 and 16 minutes, then 30, each scaled by the jitter factor."""
    if throttles < 1:
        raise ValueError(f"throttled logins are counted from 1, not {throttles}")
    doublings = min(throttles - 1, 16)  # far past the cap already; keeps the power small
    base = min(LOGIN_COOLDOWN_S * 2.0**doublings, MAX_LOGIN_COOLDOWN_S)
    return base * jitter_factor(rng, spread)
