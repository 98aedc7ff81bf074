"""Delivery: claiming due messages under a lease, sending them, and recording every attempt.

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

Rate limits
    A sender's ``max_per_minute`` is a moving window kept by the ``limits`` library. A
    message over the limit goes back to the queue, due when the window has room, without
    an attempt. The default storage is in memory (one process); pass a shared storage
    (``make_limiter("redis://…")``) when several processes send for the same senders.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import ColumnElement, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from postdesk.domain.addresses import parse_address
from postdesk.domain.attachments import AttachmentPart
from postdesk.domain.diagnosis import DiagnosisCode
from postdesk.domain.mail import OutgoingMail, build_mail
from postdesk.domain.records import MESSAGE_STATUSES
from postdesk.domain.retry import RandomSource, retries_left, retry_delay
from postdesk.domain.senders import SenderSettings
from postdesk.errors import DeliveryError
from postdesk.services import metrics
from postdesk.services.runtime import Runtime
from postdesk.services.senders import settings_from_row
from postdesk.storage.db import begin_sqlite_write
from postdesk.storage.models import Attachment, Attempt, Message, Sender
from postdesk.storage.repositories import release_sender_hold
from postdesk.transport import SendOutcome, SmtpConnection, open_connection

log = logging.getLogger(__name__)

HOLD = timedelta(minutes=10)
WAITING = ("queued", "retrying")
CLAIMABLE = ("sending", "retrying", "queued")
PENDING = ("queued", "sending", "retrying")
AUTH_FAILED = DiagnosisCode.AUTH_FAILED.value
SENDER_DELETED = "sender_deleted"
MESSAGE_INVALID = "message_invalid"
INTERNAL_ERROR = "internal_error"
_NO_ERROR = {"error_code": None, "error_message": None, "error_hint": None, "smtp_code": None}


@dataclass(frozen=True)
class Delivered:
    """What became of one claimed message: its status now, and why when not ``sent``."""

    id: int
    status: str
    error_code: str | None = None
    error_message: str | None = None
    next_attempt_at: datetime | None = None


@dataclass(frozen=True)
class HeldSender:
    """A sender whose queue is paused after an authentication failure."""

    id: int
    address: str
    held_until: datetime
    code: str | None
    message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "held_until": self.held_until.isoformat(),
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True)
class Failure:
    """Why an attempt did not deliver: a diagnosis, or one of postdesk's own codes."""

    code: str
    message: str
    hint: str | None = None
    smtp_code: int | None = None
    transient: bool = False

    @classmethod
    def of(cls, error: DeliveryError) -> Failure:
        return cls(error.code, error.message, error.hint, error.smtp_code, error.transient)

    def columns(self) -> dict[str, Any]:
        return {
            "error_code": self.code,
            "error_message": self.message,
            "error_hint": self.hint,
            "smtp_code": self.smtp_code,
        }


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


# --- claiming ------------------------------------------------------------------------------


def _due_in(
    status: str, now: datetime
) -> tuple[ColumnElement[bool], InstrumentedAttribute[datetime | None]]:
    """When a message of ``status`` may be claimed, and the order to take them in."""
    if status == "sending":  # abandoned by a worker whose lease ran out
        return or_(Message.lease_until.is_(None), Message.lease_until < now), Message.lease_until
    due = or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now)
    return due, Message.next_attempt_at


def _claimable(now: datetime) -> ColumnElement[bool]:
    """Any claimable message (re-checked by the claiming UPDATE)."""
    either = or_(*(and_(Message.status == s, _due_in(s, now)[0]) for s in CLAIMABLE))
    return and_(either, _sender_free(now))


def _sender_free(now: datetime) -> ColumnElement[bool]:
    """The message's sender is not held (an authentication failure pauses its queue)."""
    return ~exists().where(Sender.id == Message.sender_id, Sender.held_until > now)


def _candidates(
    session: Session, now: datetime, limit: int, ids: Sequence[int] | None
) -> list[int]:
    """Up to ``limit`` claimable ids, the longest-waiting first.

    One query per status, each ordered by the column of the (status, …) index: with a
    million sent records in the table, one query ORDER BY id over all statuses could
    walk the primary key through every finished message on each poll.
    """
    found: list[tuple[datetime | None, int]] = []
    for status in CLAIMABLE:
        due, order = _due_in(status, now)
        query = (
            select(order, Message.id)
            .where(Message.status == status, due, _sender_free(now))
            .order_by(order)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Message)  # PostgreSQL; a no-op on SQLite
        )
        if ids is not None:
            query = query.where(Message.id.in_(list(ids)))
        found.extend((when, message_id) for when, message_id in session.execute(query))
    found.sort(key=lambda item: (item[0] is not None, item[0] or now, item[1]))
    return [message_id for _, message_id in found[:limit]]


def claim_due(
    rt: Runtime, *, worker_id: str, limit: int, ids: Sequence[int] | None = None
) -> list[int]:
    """Lease up to ``limit`` due messages (only among ``ids`` when given) to ``worker_id``."""
    if limit < 1:
        return []
    now = rt.clock()
    with rt.transaction() as session:
        # SQLite: take the write lock first, so no other claim runs between SELECT and UPDATE.
        begin_sqlite_write(session.connection())
        candidates = _candidates(session, now, limit, ids)
        if not candidates:
            return []
        claimed = session.scalars(
            update(Message)
            .where(Message.id.in_(candidates), _claimable(now))
            .values(
                status="sending",
                lease_owner=worker_id,
                lease_until=now + timedelta(seconds=rt.settings.lease_s),
            )
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(claimed)


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
        if not _renew_lease(session, message_id, self.worker_id, self._lease_end(now)):
            metrics.LEASES_LOST.inc()
            return None
        row = session.get(Message, message_id)
        assert row is not None  # the lease matched the row a moment ago
        sender = _sender_state(session, row.sender_id)
        if sender is None:
            return _fail_sender_deleted(session, row, now)
        if sender.held_until is not None and sender.held_until > now:
            return _put_back_row(session, row, now, error=_hold_failure(sender))
        attachments: tuple[AttachmentPart, ...] = ()
        if self.with_attachments is None or row.id in self.with_attachments:
            attachments = _attachments_of(session, row.id)
        return _Job(
            id=row.id,
            sender_id=sender.id,
            sender_version=sender.updated_at,
            settings=self._settings_of(session, sender),
            max_per_minute=sender.max_per_minute,
            row=row,
            attachments=attachments,
        )

    def _settings_of(self, session: Session, sender: _SenderState) -> SenderSettings:
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
                kind, values = "held", _held_values(row, login_refused, now + HOLD, now)
            else:
                kind, values = self._transition(attempts, outcome, failure, now)
            if not _update_owned(session, message_id, self.worker_id, values):
                if row is None and session.get(Message, message_id) is None:
                    return None  # purged meanwhile
                metrics.LEASES_LOST.inc()
                log.warning("message %s was taken over before its outcome was recorded", message_id)
                return None
            _add_attempt(session, message_id, started, now, kind, outcome, failure)
            if kind == "held" and login_refused is not None and sender_id is not None:
                _hold_sender(session, sender_id, login_refused, now + HOLD)
            elif kind == "sent" and sender_id is not None:
                _end_hold_after_success(session, sender_id)
            if following is not None:
                self._prepare_ahead(session, following, now)
        metrics.record_attempt(kind, failure.code if failure else None, seconds)
        return _delivered(message_id, values)

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
            values["recipient_results"] = _refusals(outcome)
            return "sent", values
        delays = self.rt.settings.retry_delays
        if failure.transient and retries_left(made, delays):
            delay = timedelta(seconds=retry_delay(made, delays, self.rng))
            values.update(failure.columns(), status="retrying", next_attempt_at=now + delay)
            return "retrying", values
        if failure.transient:
            failure = _given_up(failure, made)
        values.update(failure.columns(), status="failed", sent_at=now, next_attempt_at=None)
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
            done = _put_back_row(session, row, due or now)
        metrics.MESSAGES_DEFERRED.labels(reason=reason).inc()
        return done

    def _lease_end(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.rt.settings.lease_s)


def _renew_lease(session: Session, message_id: int, worker_id: str, until: datetime) -> bool:
    return _update_owned(session, message_id, worker_id, {"lease_until": until})


def _update_owned(
    session: Session, message_id: int, worker_id: str, values: dict[str, Any]
) -> bool:
    """Write ``values`` only while ``worker_id`` still owns the message (its lease).

    The condition is evaluated against the row as it is when the UPDATE runs (on
    PostgreSQL after any competing claim commits), so a worker whose lease lapsed and
    was taken over can never overwrite the new owner's outcome.
    """
    # On the session's connection, in its transaction: the same UPDATE without the ORM's
    # bulk-update bookkeeping, which cost more than the statement (nothing is synchronised).
    result = session.connection().execute(
        update(Message)
        .where(
            Message.id == message_id,
            Message.lease_owner == worker_id,
            Message.status == "sending",
        )
        .values(**values)
    )
    return bool(result.rowcount)


def _waiting_status(attempts: int) -> str:
    return "retrying" if attempts else "queued"


def _put_back_row(
    session: Session, row: Message, due: datetime, *, error: Failure | None = None
) -> Delivered | None:
    """Back to the queue, due at ``due``, lease cleared, no attempt spent."""
    values: dict[str, Any] = {
        "status": _waiting_status(row.attempts),
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": due,
    }
    if error is not None:
        values.update(error.columns())
    if row.lease_owner is None or not _update_owned(session, row.id, row.lease_owner, values):
        return None
    if error is not None:
        metrics.MESSAGES_DEFERRED.labels(reason="sender_held").inc()
    return _delivered(row.id, values)


def _fail_sender_deleted(session: Session, row: Message, now: datetime) -> Delivered | None:
    """The sender was deleted after the message was claimed: nothing can send it now."""
    values = {
        "status": "failed",
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": None,
        "sent_at": now,
        "error_code": SENDER_DELETED,
        "error_message": f"The sender {row.sender_address} was deleted before this mail "
        "was sent.",
        "error_hint": "Send the mail again from another sender.",
        "smtp_code": None,
    }
    if row.lease_owner is None or not _update_owned(session, row.id, row.lease_owner, values):
        return None
    metrics.record_failed_without_attempt(SENDER_DELETED)
    return _delivered(row.id, values)


@dataclass(frozen=True)
class _SenderState:
    """What delivery reads of a sender for every message: version, limit and hold."""

    id: int
    address: str
    updated_at: datetime
    max_per_minute: int | None
    held_until: datetime | None
    hold_code: str | None
    hold_message: str | None


def _sender_state(session: Session, sender_id: int | None) -> _SenderState | None:
    if sender_id is None:
        return None
    found = (
        session.connection()
        .execute(
            select(
                Sender.id,
                Sender.address,
                Sender.updated_at,
                Sender.max_per_minute,
                Sender.held_until,
                Sender.hold_code,
                Sender.hold_message,
            ).where(Sender.id == sender_id)
        )
        .first()
    )
    return _SenderState(*found) if found is not None else None


def _hold_failure(sender: _SenderState) -> Failure:
    """What a message of a held sender shows while it waits."""
    until = sender.held_until.strftime("%Y-%m-%d %H:%M UTC") if sender.held_until else "later"
    return Failure(
        sender.hold_code or AUTH_FAILED,
        sender.hold_message or "the server refused the login",
        hint=f"Sending from {sender.address} is paused until {until} because the server "
        "refused the login. Correct the password (for QQ, 163, 126 and Gmail: the "
        "authorization code or app password) with sender edit; the queue resumes at once.",
    )


def _held_values(row: Message, failure: Failure, until: datetime, now: datetime) -> dict[str, Any]:
    """The message's values while its sender is held: waiting again, attempt not spent."""
    note = (
        f" Sending from this sender is paused until {until:%Y-%m-%d %H:%M} UTC; editing the "
        "sender or a passing test mail resumes it at once. This mail will be sent then."
    )
    return {
        "status": _waiting_status(row.attempts),
        "lease_owner": None,
        "lease_until": None,
        "next_attempt_at": now,
        **failure.columns(),
        "error_hint": (failure.hint or "") + note,
    }


def _hold_sender(session: Session, sender_id: int, failure: Failure, until: datetime) -> None:
    """Pause the sender's queue until ``until`` (a wrong login fails every message alike)."""
    session.execute(
        update(Sender)
        .where(Sender.id == sender_id)
        .values(
            held_until=until,
            hold_code=failure.code,
            hold_message=failure.message,
            updated_at=Sender.updated_at,  # a hold is not an edit: no onupdate timestamp
        )
        .execution_options(synchronize_session=False)
    )


def _end_hold_after_success(session: Session, sender_id: int) -> None:
    # Reading first: an UPDATE per sent mail would lock the sender row on every send.
    hold_code = session.connection().scalar(select(Sender.hold_code).where(Sender.id == sender_id))
    if hold_code is not None:
        release_sender_hold(session, sender_id)


def _attachments_of(session: Session, message_id: int) -> tuple[AttachmentPart, ...]:
    rows = session.scalars(
        select(Attachment).where(Attachment.message_id == message_id).order_by(Attachment.position)
    )
    return tuple(
        AttachmentPart(
            filename=a.filename,
            content_type=a.content_type,
            content_id=a.content_id,
            size=a.size,
            encoded=a.encoded,
        )
        for a in rows
    )


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


def _add_attempt(
    session: Session,
    message_id: int,
    started: datetime,
    ended: datetime,
    kind: str,
    outcome: SendOutcome | None,
    failure: Failure | None,
) -> None:
    # Core statements on the session's connection: one row, no unit of work to flush.
    connection = session.connection()
    last = connection.scalar(
        select(func.coalesce(func.max(Attempt.number), 0)).where(Attempt.message_id == message_id)
    )
    connection.execute(
        insert(Attempt).values(
            message_id=message_id,
            number=int(last or 0) + 1,
            started_at=started,
            ended_at=ended,
            outcome=kind,
            error_code=failure.code if failure else None,
            smtp_code=failure.smtp_code if failure else None,
            reply=failure.message if failure else (outcome.reply if outcome else None),
        )
    )


def _refusals(outcome: SendOutcome) -> dict[str, Any] | None:
    """Recipients the server refused while it accepted the others: address -> reply."""
    if not outcome.refused:
        return None
    return {
        address: {"smtp_code": code, "reply": text}
        for address, (code, text) in outcome.refused.items()
    }


def _given_up(failure: Failure, attempts: int) -> Failure:
    hint = f"postdesk gave up after {attempts} attempts. {failure.hint or ''}".strip()
    return Failure(failure.code, failure.message, hint, failure.smtp_code, failure.transient)


def _delivered(message_id: int, values: dict[str, Any]) -> Delivered:
    return Delivered(
        id=message_id,
        status=values.get("status", "queued"),
        error_code=values.get("error_code"),
        error_message=values.get("error_message"),
        next_attempt_at=values.get("next_attempt_at"),
    )


# --- health and metrics --------------------------------------------------------------------


def held_senders(rt: Runtime) -> list[HeldSender]:
    """Senders whose queue is paused right now (for /healthz and the sender list)."""
    now = rt.clock()
    with rt.transaction() as session:
        rows = session.scalars(
            select(Sender).where(Sender.held_until > now).order_by(Sender.id)
        ).all()
        return [
            HeldSender(r.id, r.address, r.held_until, r.hold_code, r.hold_message)
            for r in rows
            if r.held_until is not None
        ]


def queue_depth(rt: Runtime) -> dict[str, int]:
    """Messages not finished yet, by status (queued, sending, retrying)."""
    with rt.transaction() as session:
        rows = session.execute(
            select(Message.status, func.count())
            .where(Message.status.in_(PENDING))
            .group_by(Message.status)
        ).all()
    depth = {status: 0 for status in MESSAGE_STATUSES if status in PENDING}
    depth.update({status: int(count) for status, count in rows})
    return depth


def refresh_queue_gauges(rt: Runtime) -> None:
    """Read the queue depth and held senders into the Prometheus gauges (before a scrape)."""
    metrics.set_queue(queue_depth(rt), len(held_senders(rt)))
