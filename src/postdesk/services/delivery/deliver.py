"""Delivery: sending claimed messages under their lease, and recording every attempt.

The worker's logic without its threads (``postdesk.worker`` runs it in a loop; ``postdesk
send`` runs it once for one message). Every step is a short transaction; no transaction
is open while postdesk talks SMTP.

Leases
    ``claim_due`` moves due messages to ``sending`` with ``lease_owner`` = the worker and
    ``lease_until`` = now + ``POSTDESK_LEASE_S``. On PostgreSQL it selects them ``FOR UPDATE
    SKIP LOCKED`` (two workers never wait for, nor take, each other's rows); on SQLite,
    where that clause does nothing, the claim runs in an immediate (write-locked)
    transaction. A batch's messages are read once, when it starts; their outcomes are
    committed in groups (below), and each such commit also renews the leases of the
    batch's messages not sent yet. A commit is made before a message is sent whenever
    ``COMMIT_EVERY_S`` has passed since the last one (the claim counts as the first), so
    a lease only has to outlast that interval plus one SMTP transaction, not a whole
    batch; outcomes are written only for the rows this worker still owns (locked first,
    then updated by a conditional UPDATE), never over another worker's.
    A message left in ``sending`` by a crashed process is claimed again once its lease
    has run out. ``POSTDESK_LEASE_S`` must therefore exceed the longest single SMTP
    transaction (connecting, logging in and pushing the largest message, each reply
    bounded by the sender's ``timeout_s``); otherwise a second worker could start the
    same message while the first is still sending it.

Duplicates
    A message is re-sent only when the outcome of an attempt is uncertain: the
    connection was lost or timed out after the final dot, before the server's reply, or
    the process died (or lost its database) between the server's ``250`` and the commit
    of ``sent``. Each such attempt can cause at most one extra copy, always with the same
    Message-ID (generated at submission). Outcomes are committed together, at most
    ``OUTCOMES_PER_COMMIT`` (20) at a time and at least every ``COMMIT_EVERY_S`` (0.1 s),
    so a process that dies causes at most one duplicate per message whose ``250`` had not
    been committed yet (or that was inside its DATA phase): at most
    ``OUTCOMES_PER_COMMIT`` per worker thread, and never more than the messages it left
    in ``sending``. ``tests/e2e/test_crash.py`` measures it.

Retries and holds
    Transient failures are retried after ``POSTDESK_RETRY_DELAYS`` with jitter
    (``postdesk.domain.retry``); permanent ones and exhausted retries end ``failed`` with
    the diagnosis. ``smtp_auth_failed`` instead holds the sender for ``HOLD`` (a wrong
    password would fail every message the same way), and ``smtp_auth_throttled`` (the
    server refuses logins for now) for ``login_cooldown``, longer for each such refusal
    in a row: the message goes back to the queue without spending an attempt, and the
    sender's messages are not claimed until the hold ends or ``release_sender_hold``
    ends it early (the sender was edited, or a test mail passed). When it ends, one
    message of the sender is claimed, by one worker (``storage.claims``), to probe the
    login: past the login, the hold is lifted and the count starts again, so the rest
    follow; refused again, the sender is held again.

Recipients
    Each recipient's outcome is kept with the message (``recipient_results``,
    ``postdesk.domain.recipients``), written with the attempt's outcome. The transport
    sends to those a server refuses for now (a per-transaction limit: 452, or 552 at
    RCPT) in further transactions; whoever is still refused for now waits for the next
    attempt, which sends only to the recipients that do not have the mail yet, with the
    same bytes. Only a permanent refusal ends a recipient ``refused``. The message is
    ``sent`` once none waits and at least one got it; ``failed`` when all were refused,
    or when the retries run out while some still wait (those end ``failed``).

Rate limits are ``postdesk.services.delivery.rate_limits``; claiming is
``postdesk.services.delivery.claims``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import DiagnosisCode, Failure
from postdesk.domain.recipients import load_results, tally
from postdesk.domain.retry import RandomSource, login_cooldown
from postdesk.domain.status import AttemptOutcome, Step, after_attempt
from postdesk.services.delivery import metrics
from postdesk.services.delivery.connections import ConnectionPool
from postdesk.services.delivery.outcomes import (
    AttemptResult,
    Delivered,
    delivered,
    fail_sender_deleted,
    hold_failure,
    message_values,
    put_back,
)
from postdesk.services.delivery.rate_limits import SendRateLimiter
from postdesk.services.delivery.sender_settings import SenderSettingsCache
from postdesk.services.delivery.sending import Courier, Job, Sent
from postdesk.services.runtime import Runtime
from postdesk.storage import queue
from postdesk.storage.queue import Claimed, SenderState
from postdesk.storage.repositories import release_sender_hold
from postdesk.storage.rows import attempt_row

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=10)
INTERNAL_ERROR = "internal_error"
# Outcomes are committed together, at most this many in one commit ...
OUTCOMES_PER_COMMIT = 20
# ... and at least this often while a batch is being sent (each such commit also renews
# the leases of the batch's messages not sent yet).
COMMIT_EVERY_S = 0.1

Settle = Callable[[Session], list[Delivered]]


def deliver_claimed(
    rt: Runtime,
    ids: Sequence[int],
    *,
    worker_id: str,
    limiter: SendRateLimiter | None = None,
    connections: ConnectionPool | None = None,
    sender_settings: SenderSettingsCache | None = None,
    rng: RandomSource | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Delivered]:
    """Send the messages ``worker_id`` claimed, sender by sender, and record each outcome.

    ``connections`` is kept open, and ``sender_settings`` filled, for the caller to reuse
    (a pool made here is closed at the end). When ``should_stop`` turns true, the
    messages not started yet go back to the queue at once instead of waiting for their
    leases to run out. Outcomes are committed in groups (``OUTCOMES_PER_COMMIT``,
    ``COMMIT_EVERY_S``) and all of them before this returns.
    """
    if not ids:
        return []
    pool = connections if connections is not None else ConnectionPool()
    # Jitter only spreads retries out; nothing here needs unpredictable numbers.
    rng = rng or random.Random()  # noqa: S311
    settings = sender_settings if sender_settings is not None else SenderSettingsCache()
    run = _Run(rt, worker_id, limiter or SendRateLimiter(), pool, settings, rng)
    try:
        run.start(ids)
        while run.waiting:
            if should_stop is not None and should_stop():
                run.stop()
                break
            run.deliver_next()
        run.commit()
    finally:
        if connections is None:
            pool.close()
    return run.results


class _Run:
    """One ``deliver_claimed`` call: its messages, connections and uncommitted outcomes."""

    def __init__(
        self,
        rt: Runtime,
        worker_id: str,
        limiter: SendRateLimiter,
        pool: ConnectionPool,
        sender_settings: SenderSettingsCache,
        rng: RandomSource,
    ) -> None:
        self.rt = rt
        self.worker_id = worker_id
        self.limiter = limiter
        self.courier = Courier(pool)
        self.rng = rng
        self.results: list[Delivered] = []
        # The owned messages not started yet, grouped by sender (one connection each).
        self.waiting: list[Claimed] = []
        self.with_attachments: set[int] = set()
        self._senders: dict[int, SenderState] = {}
        self._sender_of: dict[int, int | None] = {}
        self._last_attempt: dict[int, int] = {}
        self._pending: list[AttemptResult] = []
        self._deferred: list[str] = []  # put back without an attempt in this commit: why
        self._committed_at = time.monotonic()
        self._settings = sender_settings

    def start(self, ids: Sequence[int]) -> None:
        """Load the messages this worker owns among ``ids`` and their senders (one read)."""
        with self.rt.transaction() as session:
            messages, self.with_attachments, self._last_attempt = queue.load_claimed(
                session, ids, self.worker_id
            )
            self._read_senders(session, messages)
        lost = len(set(ids)) - len(messages)
        if lost:
            metrics.LEASES_LOST.inc(lost)
        self._sender_of = {m.id: m.sender_id for m in messages}
        self.waiting = sorted(messages, key=lambda m: (m.sender_id or 0, m.id))
        # The claim that leased them a moment ago counts as the first renewal.
        self._committed_at = time.monotonic()

    def deliver_next(self) -> None:
        """Send the next message, committing what is pending first when it is time."""
        if (
            len(self._pending) >= OUTCOMES_PER_COMMIT
            or time.monotonic() - self._committed_at >= COMMIT_EVERY_S
        ):
            self.commit(renew=True)
            if not self.waiting:
                return
        message = self.waiting.pop(0)
        now = self.rt.clock()
        sender = self._senders.get(message.sender_id) if message.sender_id is not None else None
        if sender is None:
            self.commit(
                also=lambda s: _listed(fail_sender_deleted(s, message, self.worker_id, now))
            )
            return
        if sender.held_until is not None and sender.held_until > now:
            error = hold_failure(sender)
            self.commit(
                also=lambda s: _listed(put_back(s, message, self.worker_id, now, error=error))
            )
            return
        wait = self.limiter.wait_for(sender.id, sender.max_per_minute)
        if wait > 0:
            self.commit(also=self._put_back_all([message], reason="rate_limit", after=wait))
            return
        self._attempt(message, sender)

    def _attempt(self, message: Claimed, sender: SenderState) -> None:
        started, clock_start = self.rt.clock(), time.perf_counter()
        sent = self._try_send(message, sender)
        now = self.rt.clock()
        recipients = tally(sent.results) if sent.results is not None else None
        step = after_attempt(
            message.attempts, sent.failure, self.rt.settings.retry_delays, self.rng, recipients
        )
        hold_until, throttles = self._hold_end(step, sender, now)
        number = self._last_attempt.get(message.id, 0) + 1
        self._last_attempt[message.id] = number
        self._pending.append(
            AttemptResult(
                message_id=message.id,
                outcome=step.outcome,
                values=message_values(step, sent, now, hold_until=hold_until),
                attempt=attempt_row(
                    message.id,
                    number,
                    started,
                    now,
                    step.outcome,
                    failure=step.failure,
                    reply=sent.reply,
                ),
                failure=step.failure,
                seconds=time.perf_counter() - clock_start,
            )
        )
        if step.outcome is AttemptOutcome.HELD and step.failure is not None:
            self._hold(sender, step.failure, hold_until, throttles)

    def _hold_end(
        self, step: Step, sender: SenderState, now: datetime
    ) -> tuple[datetime, int | None]:
        """When a hold after ``step`` would end, and the count of logins refused for now
        in a row it sets (``None``: a refused login, which leaves the count alone)."""
        if step.failure is None or step.failure.code != DiagnosisCode.AUTH_THROTTLED:
            return now + HOLD, None
        throttles = sender.login_throttles + 1
        return now + timedelta(seconds=login_cooldown(throttles, self.rng)), throttles

    def _try_send(self, message: Claimed, sender: SenderState) -> Sent:
        try:
            return self._send(self._job(message, sender))
        except SQLAlchemyError:
            raise  # the database is gone: the lease expires and the message is retried
        except Exception as exc:
            # A bug must not leave the message claimed forever: count it as a transient
            # failure, so it follows the retry schedule and ends failed if it persists.
            log.exception("delivering message %s failed unexpectedly", message.id)
            failure = Failure(
                INTERNAL_ERROR,
                f"postdesk could not send this mail ({type(exc).__name__}).",
                hint="An error inside postdesk; the server log has the details. "
                "The mail will be tried again.",
                transient=True,
            )
            return Sent(failure, load_results(message.recipient_results) or None)

    def _hold(
        self, sender: SenderState, failure: Failure, until: datetime, throttles: int | None
    ) -> None:
        """Hold the sender at once (a wrong login fails every message alike); the rest of
        its messages in this batch go back to the queue."""

        def hold(session: Session) -> list[Delivered]:
            queue.hold_sender(
                session, sender.id, until, failure.code, failure.message, login_throttles=throttles
            )
            return []

        self.commit(also=hold)
        self._senders[sender.id] = replace(
            sender,
            held_until=until,
            hold_code=failure.code,
            hold_message=failure.message,
            login_throttles=sender.login_throttles if throttles is None else throttles,
        )

    def _job(self, message: Claimed, sender: SenderState) -> Job:
        attachments: tuple[AttachmentPart, ...] = ()
        if message.large or message.id in self.with_attachments:
            # Read just before sending: a message being sent holds its files (and a large
            # body) in memory once.
            with self.rt.transaction() as session:
                message = queue.with_bodies(session, message)
                if message.id in self.with_attachments:
                    attachments = queue.attachments_of(session, message.id)
        version, settings = self._settings.get(sender.id)
        return Job(message, sender.id, version, settings, attachments)

    def _send(self, job: Job) -> Sent:
        return self.courier.send(job)

    def stop(self) -> None:
        """Stopping: the messages not started yet go back to the queue at once."""
        waiting, self.waiting = self.waiting, []
        self.commit(also=self._put_back_all(waiting, reason="stopping"))

    def _put_back_all(
        self, messages: Sequence[Claimed], *, reason: str, after: float | None = None
    ) -> Settle:
        """Return claimed messages to the queue without an attempt (rate limit, stopping)."""
        now = self.rt.clock()

        def write(session: Session) -> list[Delivered]:
            done = []
            for message in messages:
                if after is not None:
                    due = now + timedelta(seconds=after)
                else:
                    due = message.next_attempt_at or now
                result = put_back(session, message, self.worker_id, due)
                if result is not None:
                    done.append(result)
            return done

        def counted(session: Session) -> list[Delivered]:
            done = write(session)
            self._deferred += [reason] * len(done)
            return done

        return counted

    def commit(self, *, renew: bool = False, also: Settle | None = None) -> None:
        """One transaction: the pending outcomes, then ``also``; with ``renew``, the leases
        of the messages not sent yet, whose senders are read again (holds, edits, deletes).
        """
        pending, self._pending = self._pending, []
        renew = renew and bool(self.waiting)
        if not (pending or also or renew):
            return
        self._deferred = []
        settled: list[Delivered] = []
        now = self.rt.clock()
        with self.rt.transaction() as session:
            written = queue.write_outcomes(session, pending, self.worker_id)
            self._end_holds(session, pending, written)
            if also is not None:
                settled = also(session)
            if renew:
                until = now + timedelta(seconds=self.rt.settings.lease_s)
                kept = queue.renew_leases(
                    session, [m.id for m in self.waiting], self.worker_id, until
                )
                if len(kept) < len(self.waiting):
                    metrics.LEASES_LOST.inc(len(self.waiting) - len(kept))
                    self.waiting = [m for m in self.waiting if m.id in kept]
                self._read_senders(session, self.waiting)
        self._committed_at = time.monotonic()
        for result in pending:
            if result.message_id not in written:
                metrics.LEASES_LOST.inc()
                log.warning(
                    "message %s was taken over before its outcome was recorded",
                    result.message_id,
                )
                continue
            code = result.failure.code if result.failure else None
            metrics.record_attempt(result.outcome, code, result.seconds)
            self.results.append(delivered(result.message_id, result.values))
        for reason in self._deferred:
            metrics.MESSAGES_DEFERRED.labels(reason=reason).inc()
        self.results.extend(settled)

    def _end_holds(
        self, session: Session, pending: Sequence[AttemptResult], written: set[int]
    ) -> None:
        """A mail got past the login (sent, or not for another reason): end its sender's
        hold, if it had one (one that ended: this mail was its probe)."""
        for result in pending:
            if result.outcome is AttemptOutcome.HELD or result.message_id not in written:
                continue
            sender_id = self._sender_of.get(result.message_id)
            if sender_id not in self.courier.logged_in:
                continue
            state = self._senders.get(sender_id) if sender_id is not None else None
            if state is not None and state.hold_code is not None:
                release_sender_hold(session, state.id)
                self._senders[state.id] = replace(
                    state, held_until=None, hold_code=None, hold_message=None, login_throttles=0
                )

    def _read_senders(self, session: Session, messages: Sequence[Claimed]) -> None:
        self._senders = queue.sender_states(
            session, (m.sender_id for m in messages if m.sender_id is not None)
        )
        for sender in self._senders.values():
            self._settings.load(session, self.rt.secrets, sender.id, sender.updated_at)


def _listed(result: Delivered | None) -> list[Delivered]:
    return [result] if result is not None else []
