"""The words of a message's life, and the one decision of what an attempt leads to.

A message is ``queued``, then ``sending`` under a worker's lease, then ``sent`` or
``failed``; a transient failure makes it ``retrying`` until its next attempt is due.
Each attempt ends ``sent``, ``retrying``, ``failed`` or ``held``: held means the server
refused the login, or refuses logins for now, so the sender's queue pauses and the
message waits (``retrying``) without spending the attempt. Records are of three kinds:
mail handed to postdesk (``message``), a ``test`` mail, and a ``verification_code`` mail.

Pure code (stdlib and the domain only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum

from postdesk.domain.diagnosis import DiagnosisCode, Failure
from postdesk.domain.recipients import Tally
from postdesk.domain.retry import RandomSource, retries_left, retry_delay


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"


class RecordKind(StrEnum):
    MESSAGE = "message"
    TEST = "test"
    VERIFICATION_CODE = "verification_code"


class AttemptOutcome(StrEnum):
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    HELD = "held"


# Not finished yet: the "pending" result of the records.
PENDING = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.RETRYING)
FINAL = frozenset({MessageStatus.SENT, MessageStatus.FAILED})
# Waiting for their next attempt (a lease is not theirs yet).
WAITING = (MessageStatus.QUEUED, MessageStatus.RETRYING)
# What a claim may take: ``sending`` only once its lease ran out.
CLAIMABLE = (MessageStatus.SENDING, MessageStatus.RETRYING, MessageStatus.QUEUED)
# A login the server refused, or refuses for now: the sender is held, no attempt spent.
HOLDING_CODES = frozenset({DiagnosisCode.AUTH_FAILED, DiagnosisCode.AUTH_THROTTLED})


def waiting_status(attempts: int) -> MessageStatus:
    """Back in the queue: ``retrying`` once an attempt was spent, else ``queued``."""
    return MessageStatus.RETRYING if attempts else MessageStatus.QUEUED


@dataclass(frozen=True)
class Step:
    """What an attempt leads to: its outcome, the message's status and attempt count, when
    the next attempt is due (``retry_in``), and the failure as the record shows it."""

    outcome: AttemptOutcome
    status: MessageStatus
    attempts: int
    retry_in: timedelta | None = None
    failure: Failure | None = None


def after_attempt(
    attempts: int,
    failure: Failure | None,
    delays: Sequence[float],
    rng: RandomSource,
    recipients: Tally | None = None,
) -> Step:
    """The step after attempt number ``attempts + 1``, which ended with ``failure`` (or
    succeeded): sent; held (a refused or throttled login spends no attempt); retried after
    the next delay while transient failures have attempts left; else failed.

    ``recipients`` counts what each recipient has come to, this attempt included, when
    the server answered for each: once none is pending, the mail is sent if at least one
    got it (the others were refused for good), else failed with ``failure``; while some
    are pending, ``failure`` (why they are) decides as above.
    """
    if recipients is not None and not recipients.pending and recipients.delivered:
        return Step(AttemptOutcome.SENT, MessageStatus.SENT, attempts + 1)
    if failure is None:
        return Step(AttemptOutcome.SENT, MessageStatus.SENT, attempts + 1)
    if failure.code in HOLDING_CODES:
        return Step(AttemptOutcome.HELD, MessageStatus.RETRYING, attempts, failure=failure)
    made = attempts + 1
    if failure.transient and retries_left(made, delays):
        delay = timedelta(seconds=retry_delay(made, delays, rng))
        return Step(AttemptOutcome.RETRYING, MessageStatus.RETRYING, made, delay, failure)
    note = _who_got_it(recipients)
    if failure.transient:
        note = f"postdesk gave up after {made} attempts" + (f"; {note}" if note else "")
    if note:
        failure = replace(failure, hint=f"{note}. {failure.hint or ''}".strip())
    return Step(AttemptOutcome.FAILED, MessageStatus.FAILED, made, failure=failure)


def _who_got_it(recipients: Tally | None) -> str:
    if recipients is None or not recipients.delivered:
        return ""
    return f"{recipients.delivered} of {recipients.total} recipients got the mail"
