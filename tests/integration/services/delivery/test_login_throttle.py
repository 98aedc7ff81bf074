"""A server that refuses logins for now (454 4.7.0 Too many login attempts) is waited out:
the sender is held for a cool-down that grows, one mail per cool-down probes the login, and
no mail spends an attempt or fails meanwhile.

Real aiosmtpd servers whose authenticator throttles the first logins and real databases;
time is a fake clock, so the cool-downs pass without sleeping.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

from sqlalchemy import select, update

from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.claims import claim_due
from postdesk.services.delivery.drain import Drained, drain_once
from postdesk.services.delivery.queue_health import HeldSender, held_senders
from postdesk.services.messages.submission import submit_batch
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Attempt, Message, Sender
from tests.support.clock import FakeClock
from tests.support.echoes import ECHO_LOGIN, ECHO_PASSWORD, echo_everything, echo_leaks
from tests.support.smtp import LOGIN_THROTTLED_REPLY, SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
W1, W2 = "worker-1", "worker-2"
MAILS = 20
CREDENTIALS = ("reports@example.com", "app-password-1")


def add_sender(rt: Runtime, server: SmtpTestServer, **overrides: Any) -> int:
    sender_id = sender_service.create_sender(rt, sender_fields(server.sender(**overrides))).id
    sender_service.set_default_sender(rt, sender_id)
    return sender_id


def queue(rt: Runtime, count: int) -> list[int]:
    requests = [
        {"to": [f"user{i}@example.org"], "subject": f"Report {i}", "text": "Numbers."}
        for i in range(count)
    ]
    return submit_batch(rt, requests, caller=SYSTEM, client_ip=None)


def drain(rt: Runtime, worker_id: str = W1) -> Drained:
    return drain_once(rt, worker_id=worker_id, limit=100)


def messages(rt: Runtime) -> list[Message]:
    with rt.transaction() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def sender_row(rt: Runtime, sender_id: int) -> Sender:
    with rt.transaction() as session:
        row = session.get(Sender, sender_id)
        assert row is not None
        return row


def the_hold(rt: Runtime) -> HeldSender:
    [held] = held_senders(rt)
    return held


def wait_out(clock: FakeClock, until: datetime) -> None:
    clock.now = until + timedelta(seconds=1)


def assert_pending_without_attempts(rt: Runtime) -> None:
    rows = messages(rt)
    assert [(m.status, m.attempts) for m in rows] == [("retrying", 0)] * len(rows)
    assert {m.error_code for m in rows} == {"smtp_auth_throttled"}
    assert {m.error_message for m in rows} == {LOGIN_THROTTLED_REPLY}
    for row in rows:
        assert "paused until" in (row.error_hint or "")
        assert "refuses logins for now" in (row.error_hint or "")


def test_a_throttled_login_is_waited_out_with_one_probe_per_growing_cooldown(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=CREDENTIALS, auth_throttle=3)
    sender_id = add_sender(rt, server)
    ids = queue(rt, MAILS)

    first = drain(rt)
    assert (first.claimed, len(server.logins)) == (MAILS, 1)  # one login, not one per mail
    assert_pending_without_attempts(rt)
    hold = the_hold(rt)
    assert (hold.id, hold.code, hold.message) == (
        sender_id,
        "smtp_auth_throttled",
        LOGIN_THROTTLED_REPLY,
    )
    cooldowns = [hold.held_until - clock.now]

    # Within the cool-down nothing is claimed; after it, one mail probes, and is refused.
    clock.now = hold.held_until - timedelta(seconds=1)
    assert claim_due(rt, worker_id=W2, limit=100) == []
    for logins in (2, 3):
        wait_out(clock, hold.held_until)
        probe = drain(rt)
        assert (probe.claimed, len(server.logins)) == (1, logins)
        assert_pending_without_attempts(rt)
        hold = the_hold(rt)
        cooldowns.append(hold.held_until - clock.now)
        assert claim_due(rt, worker_id=W2, limit=100) == []
    assert sender_row(rt, sender_id).login_throttles == 3
    assert timedelta(seconds=48) <= cooldowns[0] <= timedelta(seconds=72)  # 1 min ± 20 %
    assert cooldowns[0] < cooldowns[1] < cooldowns[2]  # 2 and 4 minutes ± 20 %

    # The server accepts again: the probe logs in and is sent, the hold is lifted and the
    # rest follow, each mail once.
    wait_out(clock, hold.held_until)
    assert drain(rt).claimed == 1
    assert held_senders(rt) == []
    row = sender_row(rt, sender_id)
    assert (row.hold_code, row.held_until, row.login_throttles) == (None, None, 0)
    assert drain(rt).claimed == MAILS - 1
    assert len(server.logins) == 5
    rows = messages(rt)
    assert [(m.status, m.attempts, m.error_code) for m in rows] == [("sent", 1, None)] * MAILS
    received = Counter(
        str(message_from_bytes(m.content, policy=policy.default)["Message-ID"])
        for m in server.messages
    )
    assert set(received) == {m.message_id for m in rows} and max(received.values()) == 1
    with rt.transaction() as session:
        outcomes = Counter(session.scalars(select(Attempt.outcome)))
    assert outcomes == {"held": 3, "sent": MAILS}
    assert [m.id for m in rows] == ids


def claim_at_once(rt: Runtime, worker_ids: list[str]) -> list[int]:
    """What the workers claim, each in its own thread, all starting together."""
    start = threading.Barrier(len(worker_ids))
    claimed: list[int] = []

    def claim(worker_id: str) -> None:
        start.wait()
        # One message each: on PostgreSQL each claim then locks another message of the
        # sender (SKIP LOCKED), and only the sender's row decides who takes the probe.
        claimed.extend(claim_due(rt, worker_id=worker_id, limit=1))

    threads = [threading.Thread(target=claim, args=(worker_id,)) for worker_id in worker_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return claimed


def test_two_workers_claiming_at_once_take_one_probe(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=CREDENTIALS)
    sender_id = add_sender(rt, server)
    queue(rt, 6)
    claimed = []
    for round_number in range(5):
        with rt.transaction() as session:  # a hold that has just ended
            session.execute(
                update(Sender)
                .where(Sender.id == sender_id)
                .values(held_until=clock.now, hold_code="smtp_auth_throttled", probe_until=None)
            )
            session.execute(update(Message).values(status="retrying", lease_owner=None))
        workers = [f"w{round_number}-{i}" for i in range(4)]
        claimed.append(len(claim_at_once(rt, workers)))
        clock.advance(seconds=1)
    assert claimed == [1] * 5


def test_a_probe_whose_worker_died_is_taken_over_after_its_lease(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=CREDENTIALS, auth_throttle=1)
    add_sender(rt, server)
    queue(rt, 3)
    drain(rt)
    wait_out(clock, the_hold(rt).held_until)
    assert len(claim_due(rt, worker_id=W1, limit=10)) == 1  # W1 dies with it
    assert claim_due(rt, worker_id=W2, limit=10) == []
    clock.advance(seconds=rt.settings.lease_s + 1)
    assert len(claim_due(rt, worker_id=W2, limit=10)) == 1


def test_a_probe_past_the_login_lifts_the_hold_even_if_its_mail_fails(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(
        credentials=CREDENTIALS, auth_throttle=1, replies={"DATA": ["451 4.3.0 Try later"]}
    )
    add_sender(rt, server)
    queue(rt, 3)
    drain(rt)
    wait_out(clock, the_hold(rt).held_until)
    [probe] = drain(rt).delivered
    assert (probe.status, probe.error_code) == ("retrying", "smtp_throttled")
    assert held_senders(rt) == []
    assert [r.status for r in drain(rt).delivered] == ["sent", "sent"]


def test_a_probe_that_never_reached_the_login_keeps_the_sender_on_probation(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=CREDENTIALS, auth_throttle=1)
    sender_id = add_sender(rt, server)
    queue(rt, 3)
    drain(rt)
    wait_out(clock, the_hold(rt).held_until)
    server.stop()
    [probe] = drain(rt).delivered
    assert (probe.status, probe.error_code) == ("retrying", "smtp_connect_failed")
    row = sender_row(rt, sender_id)
    assert (row.hold_code, row.login_throttles) == ("smtp_auth_throttled", 1)
    assert claim_due(rt, worker_id=W2, limit=10) == []  # still one probe at a time
    clock.advance(seconds=rt.settings.lease_s + 1)
    assert len(claim_due(rt, worker_id=W2, limit=10)) == 1


def test_editing_the_sender_lifts_the_hold_and_starts_the_count_again(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(credentials=CREDENTIALS, auth_throttle=2)
    sender_id = add_sender(rt, server)
    queue(rt, 2)
    drain(rt)
    sender_service.update_sender(rt, sender_id, {"password": CREDENTIALS[1]})
    row = sender_row(rt, sender_id)
    assert (row.hold_code, row.held_until, row.login_throttles) == (None, None, 0)
    drain(rt)  # throttled once more: the first hold's length again, not the second's
    assert the_hold(rt).held_until - clock.now <= timedelta(seconds=72)
    assert sender_row(rt, sender_id).login_throttles == 1


def test_a_throttled_login_keeps_no_echoed_password(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    def lock_out(login: str, password: str) -> str:
        return "454 4.7.0 Too many logins with " + echo_everything(login, password).removeprefix(
            "535 5.7.8 "
        )

    server = smtp_server(
        tls="starttls", credentials=(ECHO_LOGIN, ECHO_PASSWORD), auth_throttle=2, auth_echo=lock_out
    )
    add_sender(rt, server)
    queue(rt, 3)
    drain(rt)
    wait_out(clock, the_hold(rt).held_until)
    drain(rt)
    hold = the_hold(rt)
    with rt.transaction() as session:
        rows = session.scalars(select(Message)).all()
        texts = [f"{m.error_message} {m.error_hint}" for m in rows]
        texts += [f"{a.reply}" for a in session.scalars(select(Attempt))]
    texts.append(str(hold.to_dict()))
    assert {m.error_code for m in rows} == {"smtp_auth_throttled"}
    assert [echo_leaks(text) for text in texts] == [[]] * len(texts)
    assert "[redacted]" in (hold.message or "")
