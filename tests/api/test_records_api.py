"""The mail sending record over the API: filters, pagination, detail, CSV, errors."""

from typing import Any

from fastapi.testclient import TestClient

from postdesk.services.runtime import Runtime


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
