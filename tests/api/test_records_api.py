"""The mail sending record over the API: filters, pagination, detail, CSV, errors."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from postdesk.services.delivery.drain import drain_once
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as senders
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]


def queue(client: TestClient, headers: dict[str, str], **changes: Any) -> int:
    body = {"to": ["alice@example.org"], "subject": "Daily", "text": "Numbers.", **changes}
    answer = client.post("/api/v1/messages", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    message_id: int = answer.json()["id"]
    return message_id


def test_listing_filters_and_pages(
    client: TestClient, admin: dict[str, str], rt: Runtime, configured: int
) -> None:
    ids = [queue(client, admin, template_name=f"sales-{i}") for i in range(3)]
    other = queue(client, admin, to=["bob@example.org"], template_name="=HYPERLINK(1)")
    page = client.get("/api/v1/records", params={"recipient": "ALICE", "limit": 2}, headers=admin)
    assert page.status_code == 200
    first = page.json()
    assert [r["id"] for r in first["items"]] == [ids[2], ids[1]]
    rest = client.get(
        "/api/v1/records",
        params={"recipient": "alice", "limit": 2, "cursor": first["next_cursor"]},
        headers=admin,
    ).json()
    assert [r["id"] for r in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    pending = client.get("/api/v1/records", params={"result": "pending"}, headers=admin).json()
    assert {r["id"] for r in pending["items"]} == {*ids, other}
    detail = client.get(f"/api/v1/records/{other}", headers=admin).json()
    assert detail["recipients"] == ["bob@example.org"]
    assert detail["attempt_history"] == []
    csv = client.get("/api/v1/records.csv", params={"template": "hyperlink"}, headers=admin)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "'=HYPERLINK(1)" in csv.text  # neutralised against formula injection
    assert "alice@example.org" not in csv.text


def test_bad_filters_are_422_for_the_listing_and_the_export(
    client: TestClient, admin: dict[str, str]
) -> None:
    for path in ("/api/v1/records", "/api/v1/records.csv"):
        answer = client.get(path, params={"since": "yesterday", "result": "maybe"}, headers=admin)
        assert answer.status_code == 422, path
        assert {"since", "result"} <= set(answer.json()["error"]["fields"])
    limit = client.get("/api/v1/records", params={"limit": 501}, headers=admin)
    assert limit.status_code == 422
    assert client.get("/api/v1/records/999", headers=admin).status_code == 404


def test_the_record_and_the_status_show_each_recipients_outcome(
    client: TestClient, admin: dict[str, str], rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(
        rcpt_limit=2,
        refuse={"nobody@example.org": "550 5.1.1 No such user"},
        greylist={"later@example.org": "451 4.7.1 Greylisted, try again later"},
    )
    sender = senders.create_sender(rt, sender_fields(server.sender()))
    senders.set_default_sender(rt, sender.id)
    to = ["a@example.org", "nobody@example.org", "b@example.org", "later@example.org"]
    message_id = queue(client, admin, to=to, bcc=["c@example.org"])
    drain_once(rt, worker_id="worker-1", limit=10)

    detail = client.get(f"/api/v1/records/{message_id}", headers=admin).json()
    status = client.get(f"/api/v1/messages/{message_id}", headers=admin).json()

    assert detail["result"] == "pending" and status["status"] == "retrying"
    expected = [
        ("a@example.org", "delivered", 250),
        ("nobody@example.org", "refused", 550),
        ("b@example.org", "delivered", 250),
        ("later@example.org", "pending", 451),
        ("c@example.org", "delivered", 250),
    ]
    for answer in (detail, status):
        shown = [(r["address"], r["status"], r["smtp_code"]) for r in answer["recipient_results"]]
        assert shown == expected
    later = detail["recipient_results"][3]
    assert later["reply"] == "4.7.1 Greylisted, try again later"
    assert detail["refused_recipients"] == {
        "nobody@example.org": {"smtp_code": 550, "reply": "5.1.1 No such user"}
    }
    assert status["error"]["code"] == "smtp_throttled"
    assert server.copies() == dict.fromkeys(["a@example.org", "b@example.org", "c@example.org"], 1)


def test_a_record_without_per_recipient_results_reads_them_from_its_status(
    client: TestClient, admin: dict[str, str], rt: Runtime, configured: int
) -> None:
    message_id = queue(client, admin, to=["alice@example.org"], cc=["bob@example.org"])

    detail = client.get(f"/api/v1/records/{message_id}", headers=admin).json()

    assert detail["recipient_results"] == [
        {"address": a, "status": "pending", "smtp_code": None, "reply": None}
        for a in ("alice@example.org", "bob@example.org")
    ]
