"""Delivery against servers with per-transaction recipient limits and per-recipient
refusals: every recipient gets exactly one copy, across transactions and attempts, and
the record keeps each one's outcome. Real aiosmtpd servers, SQLite and PostgreSQL."""

import dataclasses
from collections.abc import Callable
from email import message_from_bytes, policy
from typing import Any

import pytest
from sqlalchemy import select

from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.drain import drain_once
from postdesk.services.messages.submission import submit_message
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.storage.models import Attempt, Message
from tests.support.clock import FakeClock
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
TO = ["to1@example.org", "to2@example.org", "to3@example.org"]
CC = ["cc1@example.org", "cc2@example.org"]
BCC = ["hidden@example.org"]
SIX = [*TO, *CC, *BCC]
GREYLISTED = "451 4.7.1 Greylisted, try again later"


def queue_six(rt: Runtime, server: SmtpTestServer) -> int:
    view = sender_service.create_sender(rt, sender_fields(server.sender()))
    sender_service.set_default_sender(rt, view.id)
    request = {"to": TO, "cc": CC, "bcc": BCC, "subject": "Weekly sales", "text": "Up."}
    return submit_message(rt, request, caller=SYSTEM, client_ip=None).id


def drain(rt: Runtime) -> str:
    [delivered] = drain_once(rt, worker_id="worker-1", limit=10).delivered
    return delivered.status


def load(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def statuses(row: Message) -> dict[str, str]:
    return {address: entry["status"] for address, entry in (row.recipient_results or {}).items()}


def outcomes(rt: Runtime, message_id: int) -> list[str]:
    with rt.transaction() as session:
        query = select(Attempt.outcome).where(Attempt.message_id == message_id)
        return list(session.scalars(query.order_by(Attempt.number)))


@pytest.mark.parametrize(
    "limit_reply",
    ["452 4.5.3 Too many recipients", "552 5.5.3 Too many recipients"],
    ids=["452", "legacy-552"],
)
def test_six_recipients_through_a_limit_of_two_each_get_one_copy(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory, limit_reply: str
) -> None:
    server = smtp_server(rcpt_limit=2, rcpt_limit_reply=limit_reply)
    message_id = queue_six(rt, server)

    assert drain(rt) == "sent"

    assert server.copies() == dict.fromkeys(SIX, 1)
    assert len(server.messages) == 3
    row = load(rt, message_id)
    mails = [message_from_bytes(m.content, policy=policy.default) for m in server.messages]
    assert {mail["Message-ID"] for mail in mails} == {row.message_id}
    assert len({m.content for m in server.messages}) == 1  # the same bytes every time
    assert "hidden" not in server.messages[0].content.decode()  # Bcc stays out of headers
    assert (row.status, row.attempts, row.error_code) == ("sent", 1, None)
    assert statuses(row) == dict.fromkeys(SIX, "delivered")
    assert outcomes(rt, message_id) == ["sent"]


def test_a_recipient_greylisted_once_gets_it_on_the_next_attempt_and_nobody_twice(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(rcpt_limit=2, greylist={"to3@example.org": GREYLISTED})
    message_id = queue_six(rt, server)

    assert drain(rt) == "retrying"

    others = [a for a in SIX if a != "to3@example.org"]
    assert server.copies() == dict.fromkeys(others, 1)
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code, row.smtp_code) == (
        "retrying", 1, "smtp_throttled", 451
    )  # fmt: skip
    assert statuses(row) == {**dict.fromkeys(SIX, "delivered"), "to3@example.org": "pending"}
    assert row.recipient_results is not None
    assert row.recipient_results["to3@example.org"]["reply"] == GREYLISTED[4:]
    assert row.next_attempt_at is not None

    clock.now = row.next_attempt_at
    assert drain(rt) == "sent"

    assert server.copies() == dict.fromkeys(SIX, 1)
    assert server.messages[-1].rcpt_tos == ["to3@example.org"]
    done = load(rt, message_id)
    assert (done.status, done.attempts, done.error_code) == ("sent", 2, None)
    assert statuses(done) == dict.fromkeys(SIX, "delivered")
    assert outcomes(rt, message_id) == ["retrying", "sent"]
    ids = {
        message_from_bytes(m.content, policy=policy.default)["Message-ID"] for m in server.messages
    }
    assert ids == {done.message_id}


def test_a_recipient_refused_for_good_is_not_retried_while_the_others_get_it(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(rcpt_limit=2, refuse={"cc1@example.org": "550 5.1.1 No such user"})
    message_id = queue_six(rt, server)

    assert drain(rt) == "sent"

    assert server.copies() == {a: 1 for a in SIX if a != "cc1@example.org"}
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code) == ("sent", 1, None)
    assert statuses(row) == {**dict.fromkeys(SIX, "delivered"), "cc1@example.org": "refused"}
    assert row.recipient_results is not None
    refused: dict[str, Any] = row.recipient_results["cc1@example.org"]
    assert (refused["smtp_code"], refused["reply"]) == (550, "5.1.1 No such user")


def test_a_recipient_still_refused_for_now_when_retries_run_out_fails_alone(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    rt.settings = dataclasses.replace(rt.settings, retry_delays=(60,))
    server = smtp_server(rcpt_limit=2, refuse={"to2@example.org": GREYLISTED})
    message_id = queue_six(rt, server)

    assert drain(rt) == "retrying"
    row = load(rt, message_id)
    assert row.next_attempt_at is not None
    clock.now = row.next_attempt_at
    assert drain(rt) == "failed"

    assert server.copies() == {a: 1 for a in SIX if a != "to2@example.org"}
    done = load(rt, message_id)
    assert (done.status, done.attempts, done.error_code) == ("failed", 2, "smtp_throttled")
    assert statuses(done) == {**dict.fromkeys(SIX, "delivered"), "to2@example.org": "failed"}
    assert done.error_hint is not None
    assert "gave up after 2 attempts; 5 of 6 recipients got the mail" in done.error_hint
    assert "to2@example.org" in (done.error_message or "")


def test_every_recipient_refused_for_good_fails_the_message(
    rt: Runtime, clock: FakeClock, smtp_server: ServerFactory
) -> None:
    server = smtp_server(refuse=dict.fromkeys(SIX, "550 5.1.1 No such user"))
    message_id = queue_six(rt, server)

    assert drain(rt) == "failed"

    assert server.messages == []
    row = load(rt, message_id)
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, "smtp_recipient_rejected")
    assert statuses(row) == dict.fromkeys(SIX, "refused")
