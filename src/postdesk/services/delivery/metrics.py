"""Prometheus metrics of the sending pipeline: what the worker counts and the queue gauges.

Everything is registered once, at import, in ``prometheus_client``'s default registry,
which ``GET /metrics`` renders. Counters are per process (each worker process exposes
its own, as Prometheus expects); the queue gauges are read from the database, so every
process reports the same numbers for them. Label values are bounded: diagnosis codes
(SPEC section 4 plus a few of postdesk's own), never addresses or free text.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from postdesk.domain.status import AttemptOutcome

MESSAGES_SENT = Counter(
    "postdesk_messages_sent", "Messages the SMTP server accepted (final state sent)."
)
MESSAGES_FAILED = Counter(
    "postdesk_messages_failed", "Messages that ended failed, by diagnosis code.", ["code"]
)
MESSAGES_RETRIED = Counter(
    "postdesk_messages_retried",
    "Attempts that failed transiently and scheduled a retry, by diagnosis code.",
    ["code"],
)
MESSAGES_DEFERRED = Counter(
    "postdesk_messages_deferred",
    "Claimed messages put back without an attempt (rate_limit, sender_held, stopping).",
    ["reason"],
)
ATTEMPTS = Counter(
    "postdesk_delivery_attempts",
    "SMTP attempts by outcome (sent, retrying, failed, held) and diagnosis code (ok on success).",
    ["outcome", "code"],
)
LEASES_LOST = Counter(
    "postdesk_leases_lost",
    "Outcomes not recorded because another worker had taken the message over (lease expired).",
)
DELIVERY_SECONDS = Histogram(
    "postdesk_delivery_seconds",
    "Duration of one SMTP attempt: connecting and logging in when needed, then the transaction.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
QUEUE_MESSAGES = Gauge(
    "postdesk_queue_messages", "Messages not finished yet, by status.", ["status"]
)
HELD_SENDERS = Gauge(
    "postdesk_held_senders", "Senders whose queue is held after an authentication failure."
)


def record_attempt(outcome: str, code: str | None, seconds: float) -> None:
    """Count one SMTP attempt and what it led to."""
    label = code or "ok"
    ATTEMPTS.labels(outcome=outcome, code=label).inc()
    DELIVERY_SECONDS.observe(seconds)
    if outcome == AttemptOutcome.SENT:
        MESSAGES_SENT.inc()
    elif outcome == AttemptOutcome.RETRYING:
        MESSAGES_RETRIED.labels(code=label).inc()
    elif outcome == AttemptOutcome.FAILED:
        MESSAGES_FAILED.labels(code=label).inc()


def record_failed_without_attempt(code: str) -> None:
    """A message that failed before any SMTP attempt (its sender was deleted, say)."""
    MESSAGES_FAILED.labels(code=code).inc()


def set_queue(depth: Mapping[str, int], held_senders: int) -> None:
    for status, count in depth.items():
        QUEUE_MESSAGES.labels(status=status).set(count)
    HELD_SENDERS.set(held_senders)
