"""Verification codes over the API: throttled, hashed, expiring, single use, 5 guesses."""

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from postdesk.services.delivery.drain import drain_once
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as senders
from postdesk.storage.models import Message, VerificationCode
from tests.support.smtp import SmtpTestServer, sender_fields


class FakeClock:
    def __init__(self, rt: Runtime) -> None:
        self.now = rt.clock()

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(rt: Runtime) -> FakeClock:
    fake = FakeClock(rt)
    rt.clock = fake
    return fake


def code_in_mail(rt: Runtime) -> str:
    with rt.transaction() as session:
        row = session.scalars(select(Message).order_by(Message.id.desc())).first()
        assert row is not None
        assert row.kind == "verification_code"
        body = row.text or ""
    found = re.search(r"\b(\d{6})\b", body)
    assert found
    return found.group(1)


def test_request_queues_a_mail_and_stores_only_a_hash(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int, clock: FakeClock
) -> None:
    answer = client.post(
        "/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token
    )
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"expires_in": 300}
    code = code_in_mail(rt)
    with rt.transaction() as session:
        [stored] = session.scalars(select(VerificationCode)).all()
        assert code not in stored.code_hash


def test_second_request_within_60_s_is_429_with_retry_after(
    client: TestClient, sender_token: dict[str, str], configured: int, clock: FakeClock
) -> None:
    body = {"email": "u@example.org"}
    assert (
        client.post("/api/v1/verification-codes", json=body, headers=sender_token).status_code
        == 202
    )
    clock.advance(15)
    answer = client.post(
        "/api/v1/verification-codes", json={"email": "U@Example.org"}, headers=sender_token
    )
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "too_frequent"
    assert (
        answer.json()["error"]["message"]
        == "Failed to obtain verification code. Try again in 45 s."
    )
    assert answer.headers["Retry-After"] == "45"
    clock.advance(45)
    assert (
        client.post("/api/v1/verification-codes", json=body, headers=sender_token).status_code
        == 202
    )


def check(client: TestClient, headers: dict[str, str], code: str) -> Any:
    answer = client.post(
        "/api/v1/verification-codes/check",
        json={"email": "u@example.org", "code": code},
        headers=headers,
    )
    assert answer.status_code == 200
    return answer.json()["valid"]


def test_right_code_checks_valid_once(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int, clock: FakeClock
) -> None:
    client.post("/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token)
    code = code_in_mail(rt)
    assert check(client, sender_token, code) is True
    assert check(client, sender_token, code) is False


def test_code_expires_after_5_minutes(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int, clock: FakeClock
) -> None:
    client.post("/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token)
    code = code_in_mail(rt)
    clock.advance(301)
    assert check(client, sender_token, code) is False


def test_five_wrong_guesses_kill_the_code(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int, clock: FakeClock
) -> None:
    client.post("/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token)
    code = code_in_mail(rt)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert [check(client, sender_token, wrong) for _ in range(5)] == [False] * 5
    assert check(client, sender_token, code) is False


def test_unconfigured_service_is_409_and_keeps_no_code(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, clock: FakeClock
) -> None:
    answer = client.post(
        "/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "mail_service_unconfigured"
    with rt.transaction() as session:
        assert session.scalars(select(VerificationCode)).all() == []


def test_bad_address_is_422(
    client: TestClient, sender_token: dict[str, str], configured: int
) -> None:
    answer = client.post("/api/v1/verification-codes", json={"email": "nope"}, headers=sender_token)
    assert answer.status_code == 422
    assert "email" in answer.json()["error"]["fields"]


def code_mail_row(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def shown_by_records(client: TestClient, admin: dict[str, str], record_id: int) -> str:
    """Everything the records API shows of the record: its page, its detail and the CSV."""
    listed = client.get("/api/v1/records", headers=admin)
    detail = client.get(f"/api/v1/records/{record_id}", headers=admin)
    csv = client.get("/api/v1/records.csv", headers=admin)
    assert [r.status_code for r in (listed, detail, csv)] == [200, 200, 200]
    assert detail.json()["kind"] == "verification_code"
    return f"{listed.text} {detail.text} {csv.text}"


@pytest.mark.parametrize(
    ("refusal", "status"), [(None, "sent"), ("550 5.1.1 No such user", "failed")]
)
def test_once_sent_or_failed_the_record_keeps_no_readable_code(
    client: TestClient,
    rt: Runtime,
    admin: dict[str, str],
    sender_token: dict[str, str],
    smtp_server: Callable[..., SmtpTestServer],
    refusal: str | None,
    status: str,
) -> None:
    server = smtp_server(refuse={"u@example.org": refusal} if refusal else {})
    sender = senders.create_sender(rt, sender_fields(server.sender()))
    senders.set_default_sender(rt, sender.id)
    answer = client.post(
        "/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token
    )
    assert answer.status_code == 202, answer.text
    code = code_in_mail(rt)
    [record] = client.get("/api/v1/records", headers=admin).json()["items"]
    assert code not in shown_by_records(client, admin, record["id"])

    [delivered] = drain_once(rt, worker_id="worker-1", limit=10).delivered

    assert delivered.status == status
    if status == "sent":
        [received] = server.messages
        assert code in received.content.decode()
    row = code_mail_row(rt, record["id"])
    assert (row.status, row.kind, row.html, row.text) == (status, "verification_code", None, None)
    assert code not in f"{row.subject} {row.error_message} {row.error_hint}"
    assert code not in shown_by_records(client, admin, record["id"])


def test_a_code_waiting_for_a_retry_keeps_its_body_and_a_deleted_sender_blanks_it(
    client: TestClient,
    rt: Runtime,
    sender_token: dict[str, str],
    smtp_server: Callable[..., SmtpTestServer],
) -> None:
    server = smtp_server(replies={"DATA": ["451 4.7.1 Try later"]})
    sender = senders.create_sender(rt, sender_fields(server.sender()))
    senders.set_default_sender(rt, sender.id)
    client.post("/api/v1/verification-codes", json={"email": "u@example.org"}, headers=sender_token)
    code = code_in_mail(rt)

    [delivered] = drain_once(rt, worker_id="worker-1", limit=10).delivered
    assert delivered.status == "retrying"
    assert code in (code_mail_row(rt, delivered.id).text or "")  # needed for the retry

    senders.delete_sender(rt, sender.id)
    row = code_mail_row(rt, delivered.id)
    assert (row.status, row.error_code, row.html, row.text) == (
        "failed", "sender_deleted", None, None,
    )  # fmt: skip
