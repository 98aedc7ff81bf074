"""Access: session login with CSRF, API tokens with scopes, revocation, public endpoints."""

from fastapi.testclient import TestClient

from postdesk.services.runtime import Runtime
from tests.api.conftest import ADMIN_PASSWORD


def login(client: TestClient, username: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    answer = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    csrf: str = answer.json()["csrf_token"]
    return csrf


def test_login_sets_an_httponly_samesite_cookie_and_returns_the_csrf_token(
    client: TestClient, admin_user: str
) -> None:
    answer = client.post(
        "/api/v1/auth/login", json={"username": admin_user, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200
    assert set(answer.json()) == {"csrf_token"}
    cookie = answer.headers["set-cookie"].lower()
    assert "postdesk_session=" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_wrong_credentials_are_401_in_the_error_shape(client: TestClient, admin_user: str) -> None:
    for body in ({"username": "admin", "password": "nope"}, {"username": "x", "password": "y"}):
        answer = client.post("/api/v1/auth/login", json=body)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
        assert ADMIN_PASSWORD not in answer.text


def test_session_reads_freely_but_writes_need_the_csrf_header(
    client: TestClient, admin_user: str
) -> None:
    csrf = login(client)
    assert client.get("/api/v1/senders").status_code == 200
    body = {"default_sender_id": None}
    refused = client.put("/api/v1/settings/mail", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    wrong = client.put("/api/v1/settings/mail", json=body, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status_code == 403
    allowed = client.put("/api/v1/settings/mail", json=body, headers={"X-CSRF-Token": csrf})
    assert allowed.status_code == 200


def test_logout_ends_the_session(client: TestClient, admin_user: str) -> None:
    csrf = login(client)
    assert client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get("/api/v1/senders").status_code == 401


def test_without_credentials_everything_but_login_and_openapi_is_401(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/senders"),
        ("POST", "/api/v1/senders"),
        ("GET", "/api/v1/settings/mail"),
        ("GET", "/api/v1/providers"),
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/records"),
        ("GET", "/api/v1/records.csv"),
        ("POST", "/api/v1/verification-codes"),
    ]:
        answer = client.request(method, path, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200


def test_send_token_may_not_administer(client: TestClient, sender_token: dict[str, str]) -> None:
    for method, path in [
        ("GET", "/api/v1/senders"),
        ("GET", "/api/v1/tokens"),
        ("GET", "/api/v1/records"),
        ("PUT", "/api/v1/settings/mail"),
    ]:
        answer = client.request(
            method, path, headers=sender_token, json={"default_sender_id": None}
        )
        assert answer.status_code == 403, (method, path)
        assert answer.json()["error"]["code"] == "forbidden"


def test_tokens_are_shown_once_and_revoked_at_once(
    client: TestClient, admin: dict[str, str]
) -> None:
    created = client.post(
        "/api/v1/tokens", json={"name": "reports", "scope": "admin"}, headers=admin
    )
    assert created.status_code == 201
    data = created.json()
    assert set(data) == {"id", "name", "scope", "token"}
    new = {"Authorization": f"Bearer {data['token']}"}
    assert client.get("/api/v1/senders", headers=new).status_code == 200
    listing = client.get("/api/v1/tokens", headers=admin).json()
    assert data["token"] not in str(listing)
    assert {t["name"] for t in listing} == {"tests", "reports"}
    used = next(t for t in listing if t["name"] == "reports")
    assert used["last_used_at"] is not None
    assert client.delete(f"/api/v1/tokens/{data['id']}", headers=admin).status_code == 204
    revoked = client.get("/api/v1/senders", headers=new)
    assert revoked.status_code == 401
    assert client.delete(f"/api/v1/tokens/{data['id']}", headers=admin).status_code == 404


def test_token_scope_is_validated(client: TestClient, admin: dict[str, str]) -> None:
    answer = client.post("/api/v1/tokens", json={"name": "x", "scope": "root"}, headers=admin)
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"] == {"scope": "must be admin or send"}


def test_unknown_bearer_token_is_401(client: TestClient) -> None:
    answer = client.get("/api/v1/senders", headers={"Authorization": "Bearer pd_forged"})
    assert answer.status_code == 401


def test_login_attempts_are_rate_limited(client: TestClient, admin_user: str, rt: Runtime) -> None:
    codes = [
        client.post("/api/v1/auth/login", json={"username": "admin", "password": "bad"}).status_code
        for _ in range(11)
    ]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
