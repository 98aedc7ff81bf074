"""Hostile input over the REST API: blank choices, ids beyond 64 bits, control characters.

Each is an answer in the SPEC's error shape (404 or 422 naming the field, 403 for a bad
CSRF header), never a default silently taken and never a 500.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ADMIN_PASSWORD

HUGE = 10**30  # beyond any 64-bit integer column
SENDER = {
    "smtp_host": "smtp.example.com",
    "port": 587,
    "encryption": "tls",
    "address": "reports@example.com",
    "display_name": "Reports",
}
MESSAGE = {"to": ["alice@example.org"], "subject": "Daily", "text": "Numbers."}


def error_of(answer: Any, status: int) -> dict[str, Any]:
    """The SPEC's error object of an answer that must have ``status``."""
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == {403: "forbidden", 404: "not_found", 422: "validation_error"}[status]
    assert error["message"]
    return error


def test_a_blank_encryption_is_422_not_the_default(
    client: TestClient, admin: dict[str, str]
) -> None:
    blank = client.post("/api/v1/senders", json={**SENDER, "encryption": ""}, headers=admin)
    assert set(error_of(blank, 422)["fields"]) == {"encryption"}
    created = client.post("/api/v1/senders", json=SENDER, headers=admin)
    assert created.status_code == 201, created.text
    path = f"/api/v1/senders/{created.json()['id']}"
    patched = client.patch(path, json={"encryption": ""}, headers=admin)
    assert set(error_of(patched, 422)["fields"]) == {"encryption"}
    assert client.get(path, headers=admin).json()["encryption"] == "tls"
    unsaved = client.post(
        "/api/v1/senders/test",
        json={"to": "alice@example.org", "sender": {**SENDER, "encryption": ""}},
        headers=admin,
    )
    assert "encryption" in error_of(unsaved, 422)["fields"]


def test_a_blank_scope_is_422(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.post("/api/v1/tokens", json={"name": "reports", "scope": ""}, headers=admin)
    assert set(error_of(answer, 422)["fields"]) == {"scope"}
    assert {t["name"] for t in client.get("/api/v1/tokens", headers=admin).json()} == {"tests"}


def test_a_blank_result_is_the_documented_no_filter(
    client: TestClient, admin: dict[str, str], configured: int
) -> None:
    # The records form's "All results" sends result= (like an empty sender or template).
    assert client.post("/api/v1/messages", json=MESSAGE, headers=admin).status_code == 202
    blank = client.get("/api/v1/records", params={"result": ""}, headers=admin)
    assert blank.status_code == 200
    assert blank.json() == client.get("/api/v1/records", headers=admin).json()
    wrong = client.get("/api/v1/records", params={"result": " "}, headers=admin)
    assert wrong.status_code == 200
    bad = client.get("/api/v1/records", params={"result": "sent"}, headers=admin)
    assert set(error_of(bad, 422)["fields"]) == {"result"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/v1/senders/{HUGE}"),
        ("PATCH", f"/api/v1/senders/{HUGE}"),
        ("DELETE", f"/api/v1/senders/{HUGE}"),
        ("POST", f"/api/v1/senders/{HUGE}/test"),
        ("GET", f"/api/v1/records/{HUGE}"),
        ("GET", f"/api/v1/messages/{HUGE}"),
        ("DELETE", f"/api/v1/tokens/{HUGE}"),
        ("GET", f"/api/v1/senders/-{HUGE}"),
        ("GET", "/api/v1/records/-1"),
        ("GET", f"/api/v1/senders/{2**31}"),
        ("GET", f"/api/v1/records/{2**63}"),
    ],
)
def test_an_id_beyond_the_id_columns_in_a_path_is_422_naming_it(
    client: TestClient, admin: dict[str, str], method: str, path: str
) -> None:
    body = {"to": "alice@example.org"} if method == "POST" else {"port": 25}
    answer = client.request(method, path, headers=admin, json=body if method != "GET" else None)
    [field] = error_of(answer, 422)["fields"]
    assert field.endswith("_id")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/messages", {**MESSAGE, "sender_id": HUGE}, "sender_id"),
        ("/api/v1/messages/batch", {"messages": [{**MESSAGE, "sender_id": HUGE}]}, "sender_id"),
        ("/api/v1/senders/test", {"to": "alice@example.org", "sender_id": HUGE}, "sender_id"),
    ],
)
def test_an_id_beyond_64_bits_in_a_body_is_422_naming_it(
    client: TestClient,
    admin: dict[str, str],
    configured: int,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    answer = client.post(path, json=body, headers=admin)
    [name] = error_of(answer, 422)["fields"]
    assert name.endswith(field)


def test_a_default_sender_beyond_64_bits_is_422(
    client: TestClient, admin: dict[str, str], configured: int
) -> None:
    answer = client.put("/api/v1/settings/mail", json={"default_sender_id": HUGE}, headers=admin)
    assert set(error_of(answer, 422)["fields"]) == {"default_sender_id"}
    settings = client.get("/api/v1/settings/mail", headers=admin).json()
    assert settings["default_sender_id"] == configured


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"template_name": "daily\r\nBcc: eve@example.org"}, "template_name"),
        ({"template_name": "daily\x00report"}, "template_name"),
        ({"resources": ["ok.xlsx", "sales\x1b[2J.xlsx"]}, "resources[1]"),
        ({"resources": ["line\nbreak.csv"]}, "resources[0]"),
    ],
)
def test_control_characters_in_template_name_and_resources_are_422(
    client: TestClient,
    admin: dict[str, str],
    configured: int,
    changes: dict[str, Any],
    field: str,
) -> None:
    answer = client.post("/api/v1/messages", json={**MESSAGE, **changes}, headers=admin)
    assert set(error_of(answer, 422)["fields"]) == {field}


def test_a_non_ascii_csrf_header_is_403(client: TestClient, admin_user: str) -> None:
    login = client.post(
        "/api/v1/auth/login", json={"username": admin_user, "password": ADMIN_PASSWORD}
    )
    assert login.status_code == 200
    body = {"default_sender_id": None}
    for given in ("jeton-é", "\u00ff" * 43):
        # The UTF-8 bytes a client may send; the server reads header bytes as Latin-1.
        answer = client.put(
            "/api/v1/settings/mail", json=body, headers={"X-CSRF-Token": given.encode()}
        )
        error_of(answer, 403)
    csrf = login.json()["csrf_token"]
    assert client.put("/api/v1/settings/mail", json=body, headers={"X-CSRF-Token": csrf}).is_success


@pytest.mark.parametrize("path", ["/api/v1/tokens", "/api/v1/messages", "/api/v1/auth/login"])
def test_a_body_that_is_not_utf8_is_422_naming_it(
    client: TestClient, admin: dict[str, str], path: str
) -> None:
    answer = client.post(
        path, content=b'{"name": "\xff\xfe"}', headers={**admin, "Content-Type": "application/json"}
    )
    error = error_of(answer, 422)
    assert error["fields"] == {"body": "is not text in UTF-8"}
    assert error["hint"]
