"""A site public at an ``https://`` POSTDESK_PUBLIC_URL, reached over plain HTTP from the
TLS-terminating proxy in front: Secure session cookie, Strict-Transport-Security on every
answer. With an ``http://`` URL or none, neither."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.services.runtime import Runtime
from tests.api.conftest import ADMIN_PASSWORD

HSTS = "max-age=31536000"


@pytest.fixture
def behind_proxy(public_rt: Runtime) -> Iterator[TestClient]:
    """The API on a runtime with ``public_url``; the requests come over http://."""
    with TestClient(create_app(public_rt), base_url="http://testserver") as client:
        yield client


def test_the_session_cookie_is_secure_only_for_an_https_public_url(
    behind_proxy: TestClient, public_url: str | None
) -> None:
    answer = behind_proxy.post(
        "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"]
    assert "postdesk_session=" in cookie and "HttpOnly" in cookie
    assert ("Secure" in cookie) == (public_url == "https://mail.example.com")


ANSWERS = [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/api/v1/senders"),
           ("POST", "/api/v1/auth/login"), ("GET", "/api/docs"), ("GET", "/nowhere")]  # fmt: skip


def test_every_answer_carries_hsts_only_for_an_https_public_url(
    behind_proxy: TestClient, public_url: str | None
) -> None:
    expected = [HSTS] if public_url == "https://mail.example.com" else []
    for method, path in ANSWERS:  # probes, API, errors, docs, not found
        answer = behind_proxy.request(method, path, json={})
        assert answer.headers.get_list("strict-transport-security") == expected, path
