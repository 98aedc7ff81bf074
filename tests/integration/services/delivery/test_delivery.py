"""Delivery: claims, leases, outcomes, retries, holds, rate limits and connection reuse.

Real aiosmtpd servers and real databases; time is a fake clock, so retry schedules and
lease expiry are checked without sleeping.
"""

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes, policy
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from postdesk.domain.senders import SenderSettings
from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery import deliver as delivery
from postdesk.services.delivery import drain as drain_module
from postdesk.services.delivery import outcomes as delivery_outcomes
from postdesk.services.delivery import sending
from postdesk.services.delivery.claims import claim_due
from postdesk.services.delivery.connections import ConnectionPool
from postdesk.services.delivery.deliver import HOLD, deliver_claimed
from postdesk.services.delivery.drain import drain_once
from postdesk.services.delivery.queue_health import held_senders, queue_depth, refresh_queue_gauges
from postdesk.services.delivery.rate_limits import SendRateLimiter, make_limiter
from postdesk.services.messages.submission import submit_batch, submit_message
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Attempt, Message, Sender
from postdesk.storage.queue import INLINE_BODY_CHARS
from postdesk.storage.repositories import release_sender_hold
from postdesk.worker import EmbeddedWorker
from tests.support.clock import T0, FakeClock
from tests.support.processes import wait_until
from tests.support.smtp import SmtpTestServer, make_sender, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
W1, W2 = "worker-1", "worker-2"


def add_sender(rt: Runtime, settings: SenderSettings, **extra: Any) -> int:
    view = sender_service.create_sender(rt, sender_fields(settings, **extra))
    sender_service.set_default_sender(rt, view.id)
    return view.id


def sender_on_port(port: int) -> SenderSettings:
    return make_sender("127.0.0.1", port, timeout_s=2)


def queue(rt: Runtime, count: int = 1, **fields: Any) -> list[int]:
    request = {
        "to": ["alice@example.org"],
        "subject": "Weekly sales",
        "html": "<p>Sales are <b>up</b>.</p>",
        **fields,
    }
    return submit_batch(rt, [request] * count, caller=SYSTEM, client_ip=None)


def drain(rt: Runtime, worker_id: str = W1, **options: Any) -> list[delivery_outcomes.Delivered]:
    return drain_once(rt, worker_id=worker_id, limit=100, **options).delivered


def load(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def attempts_of(rt: Runtime, message_id: int) -> list[Attempt]:
    with rt.transaction() as session:
        return list(
            session.scalars(
                select(Attempt).where(Attempt.message_id == message_id).order_by(Attempt.number)
            )
        )


def header(content: bytes, name: str) -> str:
    return str(message_from_bytes(content, policy=policy.default)[name])


def test_a_message_is_sent_and_recorded(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", "Zq9-code"))
    add_sender(rt, server.sender())
    [message_id] = queue(rt, cc=["carol@example.org"], bcc=["audit@example.org"])
    [result] = drain(rt)
    assert (result.id, result.status, result.error_code) == (message_id, "sent", None)
    [received] = server.messages
    assert received.secure
    assert received.rcpt_tos == ["alice@example.org", "carol@example.org", "audit@example.org"]
    assert b"\r\n" in received.content and b"\n" not in received.content.replace(b"\r\n", b"")
    mail = message_from_bytes(received.content, policy=policy.default)
    row = load(rt, message_id)
    assert mail["Message-ID"] == row.message_id
    assert "audit" not in received.content.decode()  # Bcc never in the headers
    plain = mail.get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == "Sales are up."
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, T0)
    assert (row.lease_owner, row.lease_until, row.error_code) == (None, None, None)
    [attempt] = attempts_of(rt, message_id)
    assert (attempt.number, attempt.outcome, attempt.error_code) == (1, "sent", None)
    assert attempt.started_at == attempt.ended_at == T0
    assert "queued as 1" in (attempt.reply or "")


def test_attachments_and_inline_images_go_out(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    queue(
        rt,
        html='<p><img src="cid:chart1"></p>',
        attachments=[
            {"filename": "sales.pdf", "content_type": "application/pdf",
             "content_base64": "JVBERg=="},
            {"filename": "chart.png", "content_type": "image/png",
             "content_base64": "iVBORw==", "content_id": "chart1"},
        ],
    )  # fmt: skip
    drain(rt)
    [received] = server.messages
    mail = message_from_bytes(received.content, policy=policy.default)
    parts = {p.get_filename(): p for p in mail.walk() if p.get_filename()}
    assert parts["sales.pdf"].get_content() == b"%PDF"
    assert parts["chart.png"]["Content-ID"] == "<chart1>"


def test_recipients_refused_while_others_accept(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(refuse={"bob@example.org": "550 5.1.1 No such user"})
    add_sender(rt, server.sender())
    [message_id] = queue(rt, to=["alice@example.org", "bob@example.org"])
    [result] = drain(rt)
    assert result.status == "sent"
    assert server.messages[0].rcpt_tos == ["alice@example.org"]
    row = load(rt, message_id)
    assert row.recipient_results == {
        "alice@example.org": {
            "status": "delivered", "smtp_code": 250, "reply": "2.0.0 Ok: queued as 1"
        },
        "bob@example.org": {"status": "refused", "smtp_code": 550, "reply": "5.1.1 No such user"},
    }  # fmt: skip


def test_a_transient_failure_is_retried_on_schedule(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(replies={"DATA": ["451 4.7.1 Try again later"]})
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    [result] = drain(rt)
    assert result.status == "retrying"
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code, row.smtp_code) == (
        "retrying",
        1,
        "smtp_throttled",
        451,
    )
    assert row.next_attempt_at is not None
    delay = (row.next_attempt_at - T0).total_seconds()
    assert 48 <= delay <= 72  # 60 s ± 20 % jitter
    assert row.sent_at is None and row.lease_owner is None
    clock.now = row.next_attempt_at - timedelta(seconds=1)
    assert claim_due(rt, worker_id=W1, limit=10) == []
    clock.now = row.next_attempt_at
    [again] = drain(rt)
    assert again.status == "sent"
    [received] = server.messages
    assert header(received.content, "Message-ID") == row.message_id
    done = load(rt, message_id)
    assert (done.attempts, done.error_code, done.sent_at) == (2, None, row.next_attempt_at)
    history = [
        (a.number, a.outcome, a.error_code, a.smtp_code) for a in attempts_of(rt, message_id)
    ]
    assert history == [(1, "retrying", "smtp_throttled", 451), (2, "sent", None, None)]


def test_retries_run_out_and_the_message_fails(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    rt.settings = dataclasses.replace(rt.settings, retry_delays=(60, 300))
    server = smtp_server(replies={"DATA": ["451 4.7.1 Busy"] * 3})
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    delays = []
    for _ in range(3):
        before = clock.now
        drain(rt)
        row = load(rt, message_id)
        if row.next_attempt_at is not None:
            delays.append((row.next_attempt_at - before).total_seconds())
            clock.now = row.next_attempt_at
    assert 48 <= delays[0] <= 72 and 240 <= delays[1] <= 360
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code) == ("failed", 3, "smtp_throttled")
    assert (row.error_hint or "").startswith("postdesk gave up after 3 attempts.")
    assert row.sent_at == clock.now and row.next_attempt_at is None
    assert [a.outcome for a in attempts_of(rt, message_id)] == ["retrying", "retrying", "failed"]
    clock.advance(days=1)
    assert claim_due(rt, worker_id=W1, limit=10) == []


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ({"replies": {"DATA": ["554 5.7.1 Message rejected as spam"]}}, "smtp_rejected_as_spam"),
        ({"refuse": {"alice@example.org": "550 5.1.1 No such user"}}, "smtp_recipient_rejected"),
        ({"replies": {"MAIL": ["553 5.7.1 Sender not allowed"]}}, "smtp_sender_rejected"),
    ],
)
def test_a_permanent_failure_fails_at_once(
    rt: Runtime,
    clock: FakeClock,
    smtp_server: ServerFactory,
    script: dict[str, Any],
    code: str,
) -> None:
    server = smtp_server(**script)
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    [result] = drain(rt)
    assert (result.status, result.error_code) == ("failed", code)
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code, row.sent_at) == ("failed", 1, code, T0)
    assert row.error_message and row.error_hint and row.smtp_code and row.smtp_code >= 500
    assert server.messages == []


def test_an_unreachable_server_fails_the_batch_once_not_per_message(
    rt: Runtime, clock: FakeClock, closed_port: int
) -> None:
    add_sender(rt, sender_on_port(closed_port))
    ids = queue(rt, 3)
    results = drain(rt)
    assert [(r.status, r.error_code) for r in results] == [("retrying", "smtp_connect_failed")] * 3
    assert [load(rt, i).attempts for i in ids] == [1, 1, 1]


def test_a_failed_login_holds_the_sender_without_spending_retries(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=("reports@example.com", "right-code"))
    sender_id = add_sender(rt, server.sender(password="account-password"))
    ids = queue(rt, 3)
    results = drain(rt)
    assert [r.status for r in results] == ["retrying"] * 3
    assert len(server.logins) == 1  # one probe, not one failed login per message
    for message_id in ids:
        row = load(rt, message_id)
        assert (row.status, row.attempts, row.error_code) == ("retrying", 0, "smtp_auth_failed")
        assert "paused until" in (row.error_hint or "")
    [held] = held_senders(rt)
    assert (held.id, held.code, held.held_until) == (sender_id, "smtp_auth_failed", T0 + HOLD)
    assert sender_service.get_sender(rt, sender_id).updated_at == T0  # a hold is no edit
    assert held.to_dict()["held_until"] == (T0 + HOLD).isoformat()
    assert [a.outcome for a in attempts_of(rt, ids[0])] == ["held"]
    # Held: nothing is claimed until the hold ends, then one message probes again.
    clock.advance(minutes=9)
    assert claim_due(rt, worker_id=W1, limit=10) == []
    clock.advance(minutes=1, seconds=1)
    drain(rt)
    assert len(server.logins) == 2
    assert [load(rt, i).attempts for i in ids] == [0, 0, 0]
    # Editing the sender releases the hold at once.
    sender_service.update_sender(rt, sender_id, {"password": "right-code"})
    assert held_senders(rt) == []
    with rt.transaction() as session:
        assert not release_sender_hold(session, sender_id)
    assert [r.status for r in drain(rt)] == ["sent"] * 3
    assert [load(rt, i).attempts for i in ids] == [1, 1, 1]
    assert [a.outcome for a in attempts_of(rt, ids[0])] == ["held", "held", "sent"]


def test_a_success_after_the_hold_expired_clears_it(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(replies={"AUTH": ["535 5.7.8 Authentication credentials invalid"]})
    server.options.credentials = ("reports@example.com", "code")
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    drain(rt)
    assert load(rt, message_id).error_code == "smtp_auth_failed"
    clock.advance(seconds=HOLD.total_seconds() + 1)
    [result] = drain(rt)
    assert result.status == "sent"
    with rt.transaction() as session:
        sender = session.scalars(select(Sender)).one()
        assert (sender.held_until, sender.hold_code, sender.hold_message) == (None, None, None)


def test_a_sender_deleted_after_the_claim_fails_its_message(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    sender_id = add_sender(rt, server.sender())
    [claimed, waiting] = queue(rt, 2)
    assert claim_due(rt, worker_id=W1, limit=1) == [claimed]
    sender_service.delete_sender(rt, sender_id)
    assert load(rt, waiting).error_code == "sender_deleted"  # the sender service's part
    [result] = deliver_claimed(rt, [claimed], worker_id=W1)
    assert (result.status, result.error_code) == ("failed", "sender_deleted")
    row = load(rt, claimed)
    assert (row.status, row.attempts, row.sender_address) == ("failed", 0, "reports@example.com")
    assert "reports@example.com was deleted" in (row.error_message or "")
    assert server.commands == []


def test_an_expired_lease_is_claimed_again_and_resent_with_the_same_message_id(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    assert claim_due(rt, worker_id=W1, limit=10) == [message_id]
    assert claim_due(rt, worker_id=W2, limit=10) == []  # leased to W1

    # W1 sends, then loses its database before it can record the outcome (as a crash would).
    def database_gone(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("UPDATE messages", {}, ConnectionError("server closed"))

    monkeypatch.setattr(delivery._Run, "commit", database_gone)
    with pytest.raises(OperationalError):
        deliver_claimed(rt, [message_id], worker_id=W1)
    monkeypatch.undo()
    assert load(rt, message_id).status == "sending"
    clock.advance(seconds=rt.settings.lease_s - 1)
    assert claim_due(rt, worker_id=W2, limit=10) == []
    clock.advance(seconds=2)
    assert claim_due(rt, worker_id=W2, limit=10) == [message_id]
    # W1 comes back: its lease is gone, it may neither send nor record anything.
    assert deliver_claimed(rt, [message_id], worker_id=W1) == []
    [result] = deliver_claimed(rt, [message_id], worker_id=W2)
    assert result.status == "sent"
    first, second = server.messages  # the documented duplicate: one per uncertain attempt
    row = load(rt, message_id)
    assert header(first.content, "Message-ID") == header(second.content, "Message-ID")
    assert header(first.content, "Message-ID") == row.message_id
    assert (row.status, row.attempts) == ("sent", 1)


def test_only_the_lease_owner_records_an_outcome(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    claim_due(rt, worker_id=W1, limit=10)
    assert deliver_claimed(rt, [message_id], worker_id=W2) == []
    assert server.messages == []
    assert load(rt, message_id).lease_owner == W1


def test_one_connection_serves_a_sender_batch_after_batch(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(tls="implicit")
    add_sender(rt, server.sender())
    queue(rt, 4)
    with ConnectionPool() as pool:
        assert [r.status for r in drain(rt, connections=pool)] == ["sent"] * 4
        queue(rt, 2)
        assert [r.status for r in drain(rt, connections=pool)] == ["sent"] * 2
        assert len(pool) == 1
    assert len({m.peer for m in server.messages}) == 1
    assert server.verbs().count("EHLO") == 1
    assert server.verbs()[-1] == "QUIT"


def test_an_edited_sender_gets_a_new_connection(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    sender_id = add_sender(rt, server.sender())
    with ConnectionPool() as pool:
        queue(rt)
        drain(rt, connections=pool)
        clock.advance(seconds=1)
        sender_service.update_sender(rt, sender_id, {"display_name": "BI Reports (EU)"})
        queue(rt)
        drain(rt, connections=pool)
    first, second = server.messages
    assert first.peer != second.peer
    assert "BI Reports (EU)" in header(second.content, "From")


def test_two_senders_are_sent_in_groups(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    one, two = smtp_server(), smtp_server()
    first = add_sender(rt, one.sender())
    second = add_sender(rt, two.sender(address="alerts@example.com"))
    queue(rt, 2, sender_id=first)
    queue(rt, 2, sender_id=second)
    queue(rt, 1, sender_id=first)
    assert [r.status for r in drain(rt)] == ["sent"] * 5
    assert (len(one.messages), len(two.messages)) == (3, 2)
    assert (one.verbs().count("EHLO"), two.verbs().count("EHLO")) == (1, 1)


def test_max_per_minute_defers_the_rest_without_an_attempt(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender(), max_per_minute=2)
    ids = queue(rt, 5)
    limiter = SendRateLimiter()
    results = drain(rt, limiter=limiter)
    assert [r.status for r in results] == ["sent", "sent", "queued", "queued", "queued"]
    assert len(server.messages) == 2
    for message_id in ids[2:]:
        row = load(rt, message_id)
        assert (row.status, row.attempts, row.lease_owner) == ("queued", 0, None)
        assert row.next_attempt_at is not None
        assert 1 <= (row.next_attempt_at - T0).total_seconds() <= 61
        assert attempts_of(rt, message_id) == []
    # Due again, but the moving window (shared by every batch of this worker) is still full.
    clock.advance(seconds=61)
    assert [r.status for r in drain(rt, limiter=limiter)] == ["queued"] * 3
    assert len(server.messages) == 2


def test_a_stopping_worker_puts_unsent_messages_back(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    ids = queue(rt, 3)
    claimed = claim_due(rt, worker_id=W1, limit=10)
    results = deliver_claimed(rt, claimed, worker_id=W1, should_stop=lambda: True)
    assert [r.status for r in results] == ["queued"] * 3
    assert server.messages == []
    assert claim_due(rt, worker_id=W2, limit=10) == ids


def test_a_message_that_cannot_be_built_fails(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        row.to_addrs = ["not an address"]
    [result] = drain(rt)
    assert (result.status, result.error_code) == ("failed", "message_invalid")
    assert server.messages == []


def test_an_unexpected_error_is_retried_not_lost(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    [message_id] = queue(rt)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(sending, "build_mail", broken)
    [result] = drain(rt)
    assert (result.status, result.error_code) == ("retrying", "internal_error")
    assert load(rt, message_id).attempts == 1


def test_claims_can_be_limited_to_given_ids(rt: Runtime, clock: FakeClock) -> None:
    add_sender(rt, sender_on_port(25))
    ids = queue(rt, 3)
    assert claim_due(rt, worker_id=W1, limit=10, ids=[ids[1]]) == [ids[1]]
    assert claim_due(rt, worker_id=W1, limit=0) == []
    assert claim_due(rt, worker_id=W2, limit=1) == [ids[0]]
    assert claim_due(rt, worker_id=W2, limit=10) == [ids[2]]


def test_queue_depth_held_senders_and_metrics(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(replies={"DATA": [None, "451 4.7.1 Later"]})
    add_sender(rt, server.sender())
    sent_before = REGISTRY.get_sample_value("postdesk_messages_sent_total") or 0.0
    retried = {"code": "smtp_throttled"}
    retried_before = REGISTRY.get_sample_value("postdesk_messages_retried_total", retried) or 0
    queue(rt, 3)
    first = claim_due(rt, worker_id=W1, limit=1)
    assert queue_depth(rt) == {"queued": 2, "sending": 1, "retrying": 0}
    deliver_claimed(rt, first, worker_id=W1)
    drain(rt)
    assert queue_depth(rt) == {"queued": 0, "sending": 0, "retrying": 1}
    refresh_queue_gauges(rt)
    assert REGISTRY.get_sample_value("postdesk_queue_messages", {"status": "retrying"}) == 1
    assert REGISTRY.get_sample_value("postdesk_held_senders") == 0
    assert REGISTRY.get_sample_value("postdesk_messages_sent_total") == sent_before + 2
    assert (
        REGISTRY.get_sample_value("postdesk_messages_retried_total", retried) == retried_before + 1
    )
    assert (REGISTRY.get_sample_value("postdesk_delivery_seconds_count") or 0) >= 3


def test_the_submitted_hook_and_the_default_sender_meet_the_queue(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    woken: list[bool] = []
    rt.submitted_hooks.append(lambda: woken.append(True))
    submitted = submit_message(
        rt, {"to": ["a@example.org"], "subject": "s", "text": "t"}, caller=SYSTEM, client_ip=None
    )
    assert woken == [True]
    assert claim_due(rt, worker_id=W1, limit=10) == [submitted.id]


def test_the_embedded_worker_sends_on_wake_and_stops_cleanly(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    worker = EmbeddedWorker(rt, worker_id="embedded", poll_interval=30, batch_size=5)
    worker.start()
    try:
        assert worker.wake in rt.submitted_hooks
        ids = queue(rt, 7)  # the submission wakes the sleeping worker: no 30 s poll
        wait_until(lambda: len(server.messages) == 7, timeout=10, what="the queue drained")
        # Counted once deliver_claimed returns, a moment after the last outcome is committed.
        wait_until(lambda: worker.state()["delivered"] == {"sent": 7}, timeout=10, what="counts")
        assert load(rt, ids[-1]).status == "sent"
        state = worker.state()
        assert (state["running"], state["worker_id"], state["last_error"]) == (
            True,
            "embedded",
            None,
        ), state
        assert state["last_poll_at"] is not None
    finally:
        assert worker.stop(timeout=10)
    assert worker.wake not in rt.submitted_hooks
    assert worker.state()["running"] is False
    assert server.verbs().count("EHLO") == 1 and server.verbs()[-1] == "QUIT"


def test_the_embedded_worker_survives_errors(
    rt: Runtime, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    failures = iter([True, True])

    def flaky_claim(*args: Any, **kwargs: Any) -> list[int]:
        if next(failures, False):
            raise OperationalError("SELECT …", {"secret": "x"}, ConnectionError("db restarting"))
        return claim_due(*args, **kwargs)

    monkeypatch.setattr(drain_module, "claim_due", flaky_claim)
    worker = EmbeddedWorker(rt, poll_interval=0.01, threads=2)
    queue(rt, 3)
    worker.start()
    try:
        wait_until(lambda: len(server.messages) == 3, timeout=10, what="sent after the errors")
        state = worker.state()
        assert state["last_error"] == "ConnectionError: db restarting"
        assert "secret" not in state["last_error"]
        assert state["threads"] == 2
    finally:
        assert worker.stop(timeout=10)


def test_an_outcome_after_the_lease_was_taken_over_is_not_recorded(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    [message_id] = queue(rt)
    real_send = delivery._Run._send

    def slow_send(run: delivery._Run, job: Any) -> Any:
        # The SMTP transaction outlasts the lease, and W2 takes the message over meanwhile.
        result = real_send(run, job)
        clock.advance(seconds=rt.settings.lease_s + 1)
        assert claim_due(rt, worker_id=W2, limit=10) == [message_id]
        return result

    monkeypatch.setattr(delivery._Run, "_send", slow_send)
    lost_before = REGISTRY.get_sample_value("postdesk_leases_lost_total") or 0.0
    assert drain(rt) == []
    assert REGISTRY.get_sample_value("postdesk_leases_lost_total") == lost_before + 1
    row = load(rt, message_id)
    assert (row.status, row.lease_owner, row.attempts) == ("sending", W2, 0)
    assert attempts_of(rt, message_id) == []


def test_a_limiter_storage_can_be_shared() -> None:
    limiter = make_limiter("memory://")
    assert [limiter.wait_for(1, 2) for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait_for(1, 2) > 0
    assert limiter.wait_for(2, 2) == 0.0  # per sender
    assert limiter.wait_for(1, None) == 0.0  # no cap
    with pytest.raises(ValueError, match="synchronous"):
        make_limiter("async+memory://")


def test_worker_settings_are_checked(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        EmbeddedWorker(rt, batch_size=0)


def test_the_embedded_worker_purges_old_records(rt: Runtime) -> None:
    now = rt.clock()
    with rt.transaction() as session:
        for age_days, status in ((400, "sent"), (400, "failed"), (400, "queued"), (10, "sent")):
            session.add(
                Message(
                    status=status,
                    sender_address="reports@example.com",
                    sender_name="Reports",
                    created_at=now - timedelta(days=age_days),
                    next_attempt_at=now + timedelta(days=1),  # a queued one is never due here
                )
            )
    worker = EmbeddedWorker(rt, poll_interval=0.05)
    worker.start()
    try:
        wait_until(lambda: worker.state()["records_purged"] == 2, timeout=10, what="the purge")
    finally:
        assert worker.stop(timeout=10)
    with rt.transaction() as session:
        left = session.execute(select(Message.status, Message.created_at)).all()
    assert sorted(status for status, _ in left) == ["queued", "sent"]  # unfinished mail stays


def test_outcomes_are_committed_in_groups_of_at_most_outcomes_per_commit(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a crash can lose: never more than OUTCOMES_PER_COMMIT accepted, uncommitted mails."""
    server = smtp_server()
    add_sender(rt, server.sender())
    ids = queue(rt, 5)
    monkeypatch.setattr(delivery, "OUTCOMES_PER_COMMIT", 2)
    monkeypatch.setattr(delivery, "COMMIT_EVERY_S", 3600.0)  # only the count decides here
    real_send = delivery._Run._send
    seen: list[list[str]] = []

    def watched_send(run: delivery._Run, job: Any) -> Any:
        # What another session (or a restarted process) sees as this message goes out.
        seen.append([load(rt, i).status for i in ids])
        return real_send(run, job)

    monkeypatch.setattr(delivery._Run, "_send", watched_send)
    assert [r.status for r in drain(rt)] == ["sent"] * 5
    sending, sent = "sending", "sent"
    assert seen == [
        [sending] * 5,
        [sending] * 5,  # the first outcome waits for a second one
        [sent, sent, sending, sending, sending],
        [sent, sent, sending, sending, sending],
        [sent, sent, sent, sent, sending],
    ]
    assert [len(attempts_of(rt, i)) for i in ids] == [1] * 5


def test_each_commit_renews_the_leases_of_the_messages_not_sent_yet(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    ids = queue(rt, 3)
    monkeypatch.setattr(delivery, "COMMIT_EVERY_S", 0.0)  # a commit before every message
    real_send = delivery._Run._send
    taken: list[list[int]] = []

    def slow_send(run: delivery._Run, job: Any) -> Any:
        # Each transaction takes 40 s: without renewals the third message's lease (60 s
        # from the claim) would have run out before it is sent, and W2 could take it.
        clock.advance(seconds=40)
        taken.append(claim_due(rt, worker_id=W2, limit=10))
        return real_send(run, job)

    monkeypatch.setattr(delivery._Run, "_send", slow_send)
    assert [r.status for r in drain(rt)] == ["sent"] * 3
    assert taken == [[], [], []]
    assert len(server.messages) == 3
    assert [load(rt, i).lease_owner for i in ids] == [None] * 3


def test_a_large_body_is_read_when_its_message_is_sent(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    add_sender(rt, server.sender())
    rows = "".join(f"<tr><td>row {n}</td></tr>" for n in range(12_000))
    large = f"<table>{rows}</table><p>end of the large one</p>"
    assert len(large) > INLINE_BODY_CHARS
    ids = queue(rt, 1, html=large, text="plain") + queue(rt, 1, text="the small one")
    assert [r.status for r in drain(rt)] == ["sent", "sent"]
    first, second = (message_from_bytes(m.content, policy=policy.default) for m in server.messages)
    html = first.get_body(("html",))
    assert html is not None and "end of the large one" in html.get_content()
    plain = second.get_body(("plain",))
    assert plain is not None and plain.get_content().strip() == "the small one"
    assert [load(rt, i).attempts for i in ids] == [1, 1]
