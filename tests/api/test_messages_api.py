"""Messages over the API: queued before 202, scoped per token, requester IP per the SPEC."""

import base64
import dataclasses
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from postdesk.api.app import create_app
from postdesk.config import Settings
from postdesk.services.runtime import Runtime, open_runtime
from postdesk.storage.models import Message

MAIL = {"to": ["alice@example.org"], "subject": "Daily report", "html": "<p>Sales are up.</p>"}


def count_messages(rt: Runtime) -> int:
    with rt.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def stored(rt: Runtime, message_id: int) -> Message:
    with rt.transaction() as session:
        row = session.get(Message, message_id)
        assert row is not None
        return row


def test_accepted_message_is_committed_before_202(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int
) -> None:
    answer = client.post("/api/v1/messages", json=MAIL, headers=sender_token)
    assert answer.status_code == 202, answer.text
    data = answer.json()
    assert data["status"] == "queued"
    row = stored(rt, data["id"])
    assert row.to_addrs == ["alice@example.org"]
    assert row.client_ip == "203.0.113.7"  # the HTTP peer
    status = client.get(f"/api/v1/messages/{data['id']}", headers=sender_token).json()
    assert set(status) == {
        "id", "status", "attempts", "error", "created_at", "sent_at", "recipient_results"
    }  # fmt: skip


def test_unconfigured_service_is_409_and_nothing_is_queued(
    client: TestClient, sender_token: dict[str, str], rt: Runtime
) -> None:
    answer = client.post("/api/v1/messages", json=MAIL, headers=sender_token)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "mail_service_unconfigured"
    assert count_messages(rt) == 0


def test_a_send_token_sees_only_its_own_messages(
    client: TestClient, sender_token: dict[str, str], admin: dict[str, str], rt: Runtime,
    configured: int,
) -> None:  # fmt: skip
    mine = client.post("/api/v1/messages", json=MAIL, headers=sender_token).json()["id"]
    theirs = client.post("/api/v1/messages", json=MAIL, headers=admin).json()["id"]
    assert client.get(f"/api/v1/messages/{mine}", headers=sender_token).status_code == 200
    other = client.get(f"/api/v1/messages/{theirs}", headers=sender_token)
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert client.get(f"/api/v1/messages/{mine}", headers=admin).status_code == 200


def test_client_ip_from_an_authenticated_caller_is_recorded(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int
) -> None:
    answer = client.post(
        "/api/v1/messages", json={**MAIL, "client_ip": "198.51.100.23"}, headers=sender_token
    )
    assert stored(rt, answer.json()["id"]).client_ip == "198.51.100.23"
    bad = client.post("/api/v1/messages", json={**MAIL, "client_ip": "nope"}, headers=sender_token)
    assert bad.status_code == 422
    assert "client_ip" in bad.json()["error"]["fields"]


def test_x_forwarded_for_counts_only_from_trusted_proxies(
    settings: Settings, rt: Runtime, sender_token: dict[str, str], configured: int
) -> None:
    headers = {**sender_token, "X-Forwarded-For": "192.0.2.99, 198.51.100.4"}
    with TestClient(create_app(rt), client=("203.0.113.7", 1)) as untrusted:
        first = untrusted.post("/api/v1/messages", json=MAIL, headers=headers).json()["id"]
    assert stored(rt, first).client_ip == "203.0.113.7"
    proxied = dataclasses.replace(settings, trusted_proxies=Settings.from_env(
        {"POSTDESK_HOME": str(settings.home), "POSTDESK_TRUSTED_PROXIES": "203.0.113.0/24"}
    ).trusted_proxies)  # fmt: skip
    behind = open_runtime(proxied)
    try:
        with TestClient(create_app(behind), client=("203.0.113.7", 1)) as trusted:
            second = trusted.post("/api/v1/messages", json=MAIL, headers=headers).json()["id"]
    finally:
        behind.close()
    # The right-most address that is not a trusted proxy: the client of the proxy.
    assert stored(rt, second).client_ip == "198.51.100.4"


def test_idempotency_key_returns_the_first_message(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int
) -> None:
    body = {**MAIL, "idempotency_key": "report-2026-11-27"}
    first = client.post("/api/v1/messages", json=body, headers=sender_token).json()
    again = client.post("/api/v1/messages", json=body, headers=sender_token).json()
    assert again["id"] == first["id"]
    assert count_messages(rt) == 1


def test_batch_is_all_or_nothing(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int
) -> None:
    good = client.post(
        "/api/v1/messages/batch", json={"messages": [MAIL, MAIL]}, headers=sender_token
    )
    assert good.status_code == 202, good.text
    assert len(good.json()["ids"]) == 2
    bad_mail: dict[str, Any] = {**MAIL, "to": ["not an address"]}
    bad = client.post(
        "/api/v1/messages/batch", json={"messages": [MAIL, bad_mail]}, headers=sender_token
    )
    assert bad.status_code == 422
    assert any(key.startswith("messages[1]") for key in bad.json()["error"]["fields"])
    assert count_messages(rt) == 2
    empty = client.post("/api/v1/messages/batch", json={"messages": []}, headers=sender_token)
    assert empty.status_code == 422


def test_attachment_over_25_mib_is_413(
    client: TestClient, sender_token: dict[str, str], rt: Runtime, configured: int
) -> None:
    big = base64.b64encode(b"\0" * (25 * 1024 * 1024 + 1)).decode()
    body = {**MAIL, "attachments": [{"filename": "r.pdf", "content_type": "application/pdf",
                                     "content_base64": big}]}  # fmt: skip
    answer = client.post("/api/v1/messages", json=body, headers=sender_token)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert count_messages(rt) == 0


def test_too_many_recipients_and_long_subject_are_422(
    client: TestClient, sender_token: dict[str, str], configured: int
) -> None:
    many = {**MAIL, "to": [f"u{i}@example.org" for i in range(501)]}
    assert client.post("/api/v1/messages", json=many, headers=sender_token).status_code == 422
    long = {**MAIL, "subject": "x" * 501}
    assert client.post("/api/v1/messages", json=long, headers=sender_token).status_code == 422
    crlf = {**MAIL, "subject": "Report\r\nBcc: victim@example.org"}
    answer = client.post("/api/v1/messages", json=crlf, headers=sender_token)
    assert answer.status_code == 422
    assert "subject" in answer.json()["error"]["fields"]
