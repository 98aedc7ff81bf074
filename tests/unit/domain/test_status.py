"""What an attempt leads to when the server answered for each recipient
(postdesk.domain.status.after_attempt with a recipient tally)."""

from __future__ import annotations

import random

from postdesk.domain.diagnosis import Failure
from postdesk.domain.recipients import Tally
from postdesk.domain.status import AttemptOutcome, MessageStatus, after_attempt

DELAYS = (60.0, 300.0)
REFUSED = Failure("smtp_recipient_rejected", "1 recipient refused", hint="Check it.")
FOR_NOW = Failure("smtp_throttled", "1 recipient refused", hint="Wait.", transient=True)


def test_none_pending_and_one_delivered_is_sent_whatever_the_refusals() -> None:
    step = after_attempt(0, REFUSED, DELAYS, random.Random(1), Tally(1, 5, 0))
    assert (step.outcome, step.status, step.attempts, step.failure) == (
        AttemptOutcome.SENT, MessageStatus.SENT, 1, None
    )  # fmt: skip


def test_every_recipient_refused_for_good_fails() -> None:
    step = after_attempt(0, REFUSED, DELAYS, random.Random(1), Tally(0, 2, 0))
    assert (step.status, step.failure) == (MessageStatus.FAILED, REFUSED)


def test_pending_recipients_are_retried_then_failed_saying_who_got_it() -> None:
    retried = after_attempt(0, FOR_NOW, DELAYS, random.Random(1), Tally(4, 1, 1))
    assert (retried.status, retried.retry_in is not None) == (MessageStatus.RETRYING, True)
    failed = after_attempt(2, FOR_NOW, DELAYS, random.Random(1), Tally(4, 1, 1))
    assert failed.status is MessageStatus.FAILED and failed.failure is not None
    assert failed.failure.hint == (
        "postdesk gave up after 3 attempts; 4 of 6 recipients got the mail. Wait."
    )
