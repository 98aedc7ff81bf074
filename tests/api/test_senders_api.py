"""Senders, the default sender, presets and test mail over the REST API."""

from typing import Any

from fastapi.testclient import TestClient

from tests.support.smtp import SmtpTestServer, sender_fields

SECRET = "Zq9-api-secret-ÄÖ-5521"
SENDER = {
    "smtp_host": "smtp.example.com",
    "port": 587,
    "encryption": "tls",
    "address": "reports@example.com",
    "display_name": "Reports",
}


def create(client: TestClient, headers: dict[str, str], **changes: Any) -> dict[str, Any]:
    answer = client.post("/api/v1/senders", json={**SENDER, **changes}, headers=headers)
    assert answer.status_code == 201, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_crud_never_returns_the_password(client: TestClient, admin: dict[str, str]) -> None:
    created = create(client, admin, password=SECRET)
    assert created["has_password"] is True
    assert created["username"] is None
    sender_id = created["id"]
    texts = [
        client.get("/api/v1/senders", headers=admin).text,
        client.get(f"/api/v1/senders/{sender_id}", headers=admin).text,
        client.patch(
            f"/api/v1/senders/{sender_id}", json={"port": 25, "password": SECRET}, headers=admin
        ).text,
    ]
    for text in texts:
        assert SECRET not in text
    patched = client.get(f"/api/v1/senders/{sender_id}", headers=admin).json()
    assert patched["port"] == 25
    assert patched["has_password"] is True
    cleared = client.patch(
        f"/api/v1/senders/{sender_id}", json={"clear_password": True}, headers=admin
    ).json()
    assert cleared["has_password"] is False
    assert client.delete(f"/api/v1/senders/{sender_id}", headers=admin).status_code == 204
    missing = client.get(f"/api/v1/senders/{sender_id}", headers=admin)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_invalid_fields_are_422_with_fields_and_hint(
    client: TestClient, admin: dict[str, str]
) -> None:
    answer = client.post(
        "/api/v1/senders",
        json={**SENDER, "smtp_host": "reports@qq.com", "port": 70000, "display_name": " "},
        headers=admin,
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"smtp_host", "port", "display_name"}
    assert error["hint"]


def test_wrong_json_types_and_unknown_fields_use_the_same_error_shape(
    client: TestClient, admin: dict[str, str]
) -> None:
    answer = client.post(
        "/api/v1/senders", json={**SENDER, "port": [1], "colour": "red"}, headers=admin
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert {"port", "colour"} <= set(error["fields"])
    broken = client.post(
        "/api/v1/senders",
        content=b"{not json",
        headers={**admin, "Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "validation_error"


def test_duplicate_address_is_409_sender_exists(client: TestClient, admin: dict[str, str]) -> None:
    create(client, admin)
    answer = client.post(
        "/api/v1/senders", json={**SENDER, "address": "REPORTS@example.com"}, headers=admin
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "sender_exists"


def test_default_sender_settings(client: TestClient, admin: dict[str, str]) -> None:
    assert client.get("/api/v1/settings/mail", headers=admin).json() == {
        "default_sender_id": None,
        "configured": False,
    }
    sender_id = create(client, admin)["id"]
    answer = client.put(
        "/api/v1/settings/mail", json={"default_sender_id": sender_id}, headers=admin
    )
    assert answer.json() == {"default_sender_id": sender_id, "configured": True}
    assert client.get(f"/api/v1/senders/{sender_id}", headers=admin).json()["is_default"] is True
    client.delete(f"/api/v1/senders/{sender_id}", headers=admin)
    assert client.get("/api/v1/settings/mail", headers=admin).json()["configured"] is False
    bad = client.put("/api/v1/settings/mail", json={"default_sender_id": 999}, headers=admin)
    assert bad.status_code == 422
    assert "default_sender_id" in bad.json()["error"]["fields"]


def test_providers(client: TestClient, admin: dict[str, str]) -> None:
    providers = client.get("/api/v1/providers", headers=admin).json()
    keys = {p["key"] for p in providers}
    assert {"qq", "exmail", "163", "126", "gmail", "office365", "exchange"} <= keys
    assert all(set(p) == {"key", "name", "smtp_host", "port", "encryption",
                          "authorization_code", "help"} for p in providers)  # fmt: skip


def as_body(server: SmtpTestServer, **changes: Any) -> dict[str, Any]:
    return sender_fields(server.sender(), **changes)


def test_test_mail_from_unsaved_and_saved_settings(
    client: TestClient, admin: dict[str, str], smtp_server: Any
) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", SECRET))
    unsaved = client.post(
        "/api/v1/senders/test",
        json={"sender": as_body(server), "to": "a@example.org"},
        headers=admin,
    )
    assert unsaved.status_code == 200, unsaved.text
    assert unsaved.json()["ok"] is True
    assert client.get("/api/v1/senders", headers=admin).json() == []
    sender_id = create(client, admin, **as_body(server))["id"]
    saved = client.post(
        f"/api/v1/senders/{sender_id}/test", json={"to": "b@example.org"}, headers=admin
    )
    assert saved.status_code == 200
    assert saved.json()["warnings"] == []  # STARTTLS: the password went encrypted
    by_id = client.post(
        "/api/v1/senders/test",
        json={"sender_id": sender_id, "sender": {"display_name": "Edited"}, "to": "c@example.org"},
        headers=admin,
    )
    assert by_id.status_code == 200, by_id.text
    ids = [a.json()["message_id"] for a in (unsaved, saved, by_id)]
    received = [m.content.decode() for m in server.messages]
    assert all(mid in text for mid, text in zip(ids, received, strict=True))
    assert "Edited" in received[2]


def test_a_stored_password_goes_only_to_the_server_it_was_saved_for(
    client: TestClient, admin: dict[str, str], smtp_server: Any
) -> None:
    saved = smtp_server(credentials=("reports@example.com", SECRET))
    other = smtp_server(
        host="127.0.0.2", port=saved.port, credentials=("reports@example.com", SECRET)
    )
    sender_id = create(client, admin, **as_body(saved))["id"]
    moved = {"sender_id": sender_id, "sender": {"smtp_host": other.host}, "to": "a@example.org"}
    refused = client.post("/api/v1/senders/test", json=moved, headers=admin)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == {"password"}
    assert "only to the server" in error["hint"]
    assert (other.connections, other.logins) == (0, [])
    patched = client.patch(
        f"/api/v1/senders/{sender_id}", json={"port": other.port + 1}, headers=admin
    )
    assert patched.status_code == 422
    assert set(patched.json()["error"]["fields"]) == {"password"}
    assert client.get(f"/api/v1/senders/{sender_id}", headers=admin).json()["port"] == saved.port

    moved["sender"] = {"smtp_host": other.host, "password": SECRET}
    tested = client.post("/api/v1/senders/test", json=moved, headers=admin)
    assert tested.status_code == 200, tested.text
    assert other.logins == [("PLAIN", "reports@example.com")]
    assert saved.connections == 0
    [warning] = tested.json()["warnings"]  # no encryption: the password crossed as is
    assert warning["code"] == "password_unencrypted"
    assert "unencrypted" in warning["message"]
    assert SECRET not in tested.text + refused.text + patched.text


def test_failing_test_mail_is_502_with_the_diagnosis(
    client: TestClient, admin: dict[str, str], smtp_server: Any
) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", SECRET))
    answer = client.post(
        "/api/v1/senders/test",
        json={"sender": as_body(server, password="wrong-" + SECRET), "to": "a@example.org"},
        headers=admin,
    )
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "smtp_auth_failed"
    assert error["smtp_code"] == 535
    assert "authorization code" in error["hint"]
    assert SECRET not in answer.text


def test_unknown_paths_use_the_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.get("/api/v1/nothing-here", headers=admin)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_bodies_over_40_mib_are_refused(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.post(
        "/api/v1/messages",
        content=b"x" * (40 * 1024 * 1024 + 1),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
