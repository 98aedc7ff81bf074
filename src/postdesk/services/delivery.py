"""Delivery: sending claimed messages under their lease, and recording every attempt.

The worker's logic without its threads (``postdesk.worker`` runs it in a loop; ``postdesk
send`` runs it once for one message). Every step is a short transaction; no transaction
is open while postdesk talks SMTP.

Leases
    ``claim_due`` moves due messages to ``sending`` with ``lease_owner`` = the worker and
    ``lease_until`` = now + ``POSTDESK_LEASE_S``. On PostgreSQL it selects them ``FOR UPDATE
    SKIP LOCKED`` (two workers never wait for, nor take, each other's rows); on SQLite,
    where that clause does nothing, the claim runs in an immediate (write-locked)
    transaction. Just before its SMTP transaction a message's lease is renewed (in the
    same commit that records the outcome of the message sent before it, when there is
    one: one commit per message), so a lease only has to outlast one transaction, not a
    whole batch; the outcome is written by a conditional UPDATE that matches only while
    this worker still owns the message.
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
    Message-ID (generated at submission), so a process that dies causes at most one
    duplicate per connection that was inside its DATA phase at that moment: at most one
    per worker thread, and never more than the messages it left in ``sending``.
    ``tests/e2e/test_crash.py`` measures it.

Retries and holds
    Transient failures are retried after ``POSTDESK_RETRY_DELAYS`` with jitter
    (``postdesk.domain.retry``); permanent ones and exhausted retries end ``failed`` with
    the diagnosis. ``smtp_auth_failed`` instead holds the sender for ``HOLD`` (a wrong
    password would fail every message the same way): the message goes back to the queue
    without spending an attempt, and the sender's messages are not claimed until the hold
    ends (then one message probes the login again) or ``release_sender_hold`` ends it
    early (the sender was edited, or a test mail passed).

Rate limits are ``postdesk.services.send_limits``; claiming is ``postdesk.services.claims``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from postdesk.domain.addresses import parse_address
from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import Failure
from postdesk.domain.mail import OutgoingMail, build_mail
from postdesk.domain.retry import RandomSource, retries_left, retry_delay
from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError
from postdesk.services import metrics
from postdesk.services.connection_pool import ConnectionPool
from postdesk.services.delivery_outcomes import (
    AUTH_FAILED,
    Delivered,
    SenderState,
    add_attempt,
    attachments_of,
    delivered,
    end_hold_after_success,
    fail_sender_deleted,
    failure_columns,
    given_up,
    held_values,
    hold_failure,
    hold_sender,
    put_back_row,
    refusals,
    renew_lease,
    sender_state,
    update_owned,
)
from postdesk.services.runtime import Runtime
from postdesk.services.send_limits import SendRateLimiter
from postdesk.services.senders import settings_from_row
from postdesk.storage.models import Attachment, Message, Sender
from postdesk.transport import SendOutcome

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=10)
WAITING = ("queued", "retrying")
MESSAGE_INVALID = "message_invalid"
INTERNAL_ERROR = "internal_error"
_NO_ERROR = {"error_code": None, "error_message": None, "error_hint": None, "smtp_code": None}


# --- delivering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """A claimed message, loaded and ready to build and send."""

    id: int
    sender_id: int
    sender_version: object
    settings: SenderSettings
    max_per_minute: int | None
    row: Message
    attachments: tuple[AttachmentPart, ...]


def deliver_claimed(
    rt: Runtime,
    ids: Sequence[int],
    *,
    worker_id: str,
    limiter: SendRateLimiter | None = None,
    connections: ConnectionPool | None = None,
    rng: RandomSource | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Delivered]:
    """Send the messages ``worker_id`` claimed, sender by sender, and record each outcome.

    ``connections`` is kept open for the caller to reuse (a pool made here is closed at
    the end). When ``should_stop`` turns true, the messages not started yet go back to
    the queue at once instead of waiting for their leases to run out.
    """
    pool = connections if connections is not None else ConnectionPool()
    # Jitter only spreads retries out; nothing here needs unpredictable numbers.
    rng = rng or random.Random()  # noqa: S311
    run = _Run(rt, worker_id, limiter or SendRateLimiter(), pool, rng)
    results: list[Delivered] = []
    try:
        ordered, run.with_attachments = _in_sender_order(rt, ids)
        for index, message_id in enumerate(ordered):
            if should_stop is not None and should_stop():
                done = run.stop_before(message_id)
            else:
                following = ordered[index + 1] if index + 1 < len(ordered) else None
                done = run.deliver(message_id, following=following)
            if done is not None:
                results.append(done)
    finally:
        if connections is None:
            pool.close()
    return results


def _in_sender_order(rt: Runtime, ids: Sequence[int]) -> tuple[list[int], set[int]]:
    """The ids grouped by sender, so each connection sends its messages back to back.

    Also which of them carry attachments (attachments are added only at submission), so
    that a message without any is not asked for them again.
    """
    if not ids:
        return [], set()
    with rt.transaction() as session:
        rows = session.execute(
            select(Message.id, Message.sender_id).where(Message.id.in_(list(ids)))
        ).all()
        # From the (message_id) index alone: reading attachment rows would load their blobs.
        with_attachments = set(
            session.scalars(
                select(Attachment.message_id).where(Attachment.message_id.in_(list(ids))).distinct()
            )
        )
    ordered = [row.id for row in sorted(rows, key=lambda r: (r.sender_id or 0, r.id))]
    return ordered, with_attachments


class _Run:
    """One ``deliver_claimed`` call: its worker, limiter, connections and failed logins."""

    def __init__(
        self,
        rt: Runtime,
        worker_id: str,
        limiter: SendRateLimiter,
        pool: ConnectionPool,
        rng: RandomSource,
    ) -> None:
        self.rt = rt
        self.worker_id = worker_id
        self.limiter = limiter
        self.pool = pool
        self.rng = rng
        # A sender whose connection could not be opened fails the rest of its messages in
        # this batch with the same diagnosis, instead of waiting out the timeout again.
        self.broken: dict[int, Failure] = {}
        # Messages of this batch known to carry attachments (None: ask for every message).
        self.with_attachments: set[int] | None = None
        # Decrypted settings by sender and version (``updated_at``): an edit makes a new one.
        self._settings: dict[int, tuple[object, SenderSettings]] = {}
        # The following message, prepared in the transaction that recorded the previous
        # outcome (one commit per message instead of two): its job, or how it was settled.
        self._ahead: dict[int, _Job | Delivered | None] = {}

    def stop_before(self, message_id: int) -> Delivered | None:
        """Stopping: the message goes back to the queue (unless preparing it settled it)."""
        if message_id in self._ahead:
            ahead = self._ahead.pop(message_id)
            if not isinstance(ahead, _Job):
                return ahead
        return self.put_back(message_id, reason="stopping")

    def deliver(self, message_id: int, *, following: int | None = None) -> Delivered | None:
        """One message from its lease to its recorded outcome; None if the lease was lost.

        With ``following``, the transaction that records the outcome also renews the lease
        of that next message and loads it (what ``_prepare`` would do a moment later).
        """
        try:
            if message_id in self._ahead:
                job = self._ahead.pop(message_id)
            else:
                job = self._prepare(message_id)
            if not isinstance(job, _Job):
                return job
            wait = self.limiter.wait_for(job.sender_id, job.max_per_minute)
            if wait > 0:
                return self.put_back(message_id, reason="rate_limit", after=wait)
            started, clock_start = self.rt.clock(), time.perf_counter()
            outcome, failure = self._send(job)
            return self._finish(
                message_id, outcome, failure, started, clock_start, job=job, following=following
            )
        except SQLAlchemyError:
            raise  # the database is gone: the lease expires and the message is retried
        except Exception as exc:
            # A bug must not leave the message claimed forever: count it as a transient
            # failure, so it follows the retry schedule and ends failed if it persists.
            log.exception("delivering message %s failed unexpectedly", message_id)
            failure = Failure(
                INTERNAL_ERROR,
                f"postdesk could not send this mail ({type(exc).__name__}).",
                hint="An error inside postdesk; the server log has the details. "
                "The mail will be tried again.",
                transient=True,
            )
            return self._finish(message_id, None, failure, self.rt.clock(), time.perf_counter())

    def _prepare(self, message_id: int) -> _Job | Delivered | None:
        """Renew the lease and load the message; settle it here if it cannot be sent."""
        with self.rt.transaction() as session:
            return self._prepare_in(session, message_id, self.rt.clock())

    def _prepare_ahead(self, session: Session, message_id: int, now: datetime) -> None:
        """``_prepare`` of the next message inside the outcome's transaction, when safe.

        A database error rolls both back (the caller re-raises it, as before). Any other
        error leaves the message to be prepared again on its own, where it is handled as
        always; the outcome being recorded must not be lost to it. (What may have been
        written by then is a renewed lease, which the second preparation renews again.)
        A message with attachments is not prepared ahead: a message being sent holds its
        attachments in memory once, and the previous one's are still referenced here.
        """
        if self.with_attachments is None or message_id in self.with_attachments:
            return
        try:
            self._ahead[message_id] = self._prepare_in(session, message_id, now)
        except SQLAlchemyError:
            raise
        except Exception:
            self._ahead.pop(message_id, None)

    def _prepare_in(
        self, session: Session, message_id: int, now: datetime
    ) -> _Job | Delivered | None:
        if not renew_lease(session, message_id, self.worker_id, self._lease_end(now)):
            metrics.LEASES_LOST.inc()
            return None
        row = session.get(Message, message_id)
        assert row is not None  # the lease matched the row a moment ago
        sender = sender_state(session, row.sender_id)
        if sender is None:
            return fail_sender_deleted(session, row, now)
        if sender.held_until is not None and sender.held_until > now:
            return put_back_row(session, row, now, error=hold_failure(sender))
        attachments: tuple[AttachmentPart, ...] = ()
        if self.with_attachments is None or row.id in self.with_attachments:
            attachments = attachments_of(session, row.id)
        return _Job(
            id=row.id,
            sender_id=sender.id,
            sender_version=sender.updated_at,
            settings=self._settings_of(session, sender),
            max_per_minute=sender.max_per_minute,
            row=row,
            attachments=attachments,
        )

    def _settings_of(self, session: Session, sender: SenderState) -> SenderSettings:
        """The sender's settings, its password decrypted once per version of the row."""
        cached = self._settings.get(sender.id)
        if cached is not None and cached[0] == sender.updated_at:
            return cached[1]
        row = session.get(Sender, sender.id)
        assert row is not None  # read in this transaction a moment ago
        settings = settings_from_row(row, self.rt.secrets)
        self._settings[sender.id] = (row.updated_at, settings)
        return settings

    def _send(self, job: _Job) -> tuple[SendOutcome | None, Failure | None]:
        try:
            mail = _build(job)
        except ValueError as exc:
            return None, Failure(MESSAGE_INVALID, f"the mail cannot be built: {exc}")
        broken = self.broken.get(job.sender_id)
        if broken is not None:
            return None, broken
        try:
            connection = self.pool.get(job.sender_id, job.sender_version, job.settings)
        except DeliveryError as exc:
            self.broken[job.sender_id] = Failure.of(exc)
            return None, self.broken[job.sender_id]
        try:
            outcome = connection.send(
                envelope_from=mail.envelope_from,
                recipients=mail.recipients,
                message=mail.chunks,
                smtputf8=mail.smtputf8,
            )
        except DeliveryError as exc:
            return None, Failure.of(exc)
        return outcome, None

    def _finish(
        self,
        message_id: int,
        outcome: SendOutcome | None,
        failure: Failure | None,
        started: datetime,
        clock_start: float,
        *,
        job: _Job | None = None,
        following: int | None = None,
    ) -> Delivered | None:
        """Commit the outcome, if this worker still owns the message, with its Attempt row.

        ``job`` is the message as loaded under this lease: while the lease holds, nobody
        else changes its attempts, so a success is recorded without reading the row again.
        """
        now = self.rt.clock()
        seconds = time.perf_counter() - clock_start
        login_refused = failure if failure and failure.code == AUTH_FAILED else None
        with self.rt.transaction() as session:
            sender_id: int | None
            if job is not None and login_refused is None:
                attempts, sender_id = job.row.attempts, job.sender_id
                row: Message | None = None
            else:
                row = session.get(Message, message_id)
                if row is None:
                    return None  # purged meanwhile
                attempts, sender_id = row.attempts, row.sender_id
            if login_refused is not None and row is not None and sender_id is not None:
                kind, values = "held", held_values(row, login_refused, now + HOLD, now)
            else:
                kind, values = self._transition(attempts, outcome, failure, now)
            if not update_owned(session, message_id, self.worker_id, values):
                if row is None and session.get(Message, message_id) is None:
                    return None  # purged meanwhile
                metrics.LEASES_LOST.inc()
                log.warning("message %s was taken over before its outcome was recorded", message_id)
                return None
            add_attempt(session, message_id, started, now, kind, outcome, failure)
            if kind == "held" and login_refused is not None and sender_id is not None:
                hold_sender(session, sender_id, login_refused, now + HOLD)
            elif kind == "sent" and sender_id is not None:
                end_hold_after_success(session, sender_id)
            if following is not None:
                self._prepare_ahead(session, following, now)
        metrics.record_attempt(kind, failure.code if failure else None, seconds)
        return delivered(message_id, values)

    def _transition(
        self,
        attempts: int,
        outcome: SendOutcome | None,
        failure: Failure | None,
        now: datetime,
    ) -> tuple[str, dict[str, Any]]:
        """The message's next state after attempt number ``attempts + 1``."""
        made = attempts + 1
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "attempts": made}
        if failure is None:
            assert outcome is not None
            values.update(_NO_ERROR, status="sent", sent_at=now, next_attempt_at=None)
            values["recipient_results"] = refusals(outcome)
            return "sent", values
        delays = self.rt.settings.retry_delays
        if failure.transient and retries_left(made, delays):
            delay = timedelta(seconds=retry_delay(made, delays, self.rng))
            values.update(failure_columns(failure), status="retrying", next_attempt_at=now + delay)
            return "retrying", values
        if failure.transient:
            failure = given_up(failure, made)
        values.update(failure_columns(failure), status="failed", sent_at=now, next_attempt_at=None)
        return "failed", values

    def put_back(
        self, message_id: int, *, reason: str, after: float | None = None
    ) -> Delivered | None:
        """Return a claimed message to the queue without an attempt (rate limit, stopping)."""
        now = self.rt.clock()
        with self.rt.transaction() as session:
            row = session.get(Message, message_id)
            if row is None or row.lease_owner != self.worker_id or row.status != "sending":
                return None
            due = now + timedelta(seconds=after) if after is not None else row.next_attempt_at
            done = put_back_row(session, row, due or now)
        metrics.MESSAGES_DEFERRED.labels(reason=reason).inc()
        return done

    def _lease_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.rt.settings.lease_s)


def _build(job: _Job) -> OutgoingMail:
    """The mail's bytes, the same on every attempt: Message-ID and Date come from the row."""
    row = job.row
    if not row.message_id:
        raise ValueError("the message has no Message-ID")
    return build_mail(
        sender=job.settings,
        to=[parse_address(a) for a in row.to_addrs],
        cc=[parse_address(a) for a in row.cc_addrs],
        bcc=[parse_address(a) for a in row.bcc_addrs],
        subject=row.subject,
        html_body=row.html,
        text_body=row.text,
        message_id=row.message_id,
        date=row.created_at,
        attachments=job.attachments,
    )
