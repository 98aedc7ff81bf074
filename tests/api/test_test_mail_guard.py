"""The test mail is not a port scanner: it does not repeat what a peer that is not an SMTP
server sent."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.config import Settings
from postdesk.services.access.admins import create_admin
from postdesk.services.runtime import Runtime, open_runtime
from tests.api.conftest import ADMIN_PASSWORD
from tests.support.peers import (
    BANNER_WORDS,
    BINARY_JUNK,
    HTTP_ANSWER,
    SSH_BANNER,
    RawPeer,
)
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
PeerFactory = Callable[..., RawPeer]
ClientFactory = Callable[..., TestClient]


@pytest.fixture
def site_with(settings: Settings) -> Iterator[ClientFactory]:
    """``site_with(**settings)``: the API on a runtime with these settings (by default those
    of ``settings``: any port), logged in as ``admin``."""
    opened: list[tuple[Runtime, TestClient]] = []

    def open_site(**changes: Any) -> TestClient:
        rt = open_runtime(replace(settings, **changes))
        client = TestClient(create_app(rt), client=("203.0.113.7", 50000))
        client.__enter__()
        opened.append((rt, client))
        create_admin(rt, "admin", ADMIN_PASSWORD)
        log_in(client, "admin")
        return client

    yield open_site
    for rt, client in opened:
        client.__exit__(None, None, None)
        rt.close()


def log_in(client: TestClient, username: str) -> None:
    answer = client.post(
        "/api/v1/auth/login", json={"username": username, "password": ADMIN_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]


def send_test(client: TestClient, fields: dict[str, Any], to: str = "a@example.org") -> Any:
    return client.post("/api/v1/senders/test", json={"sender": fields, "to": to})


def peer_fields(peer: RawPeer, **changes: Any) -> dict[str, Any]:
    return sender_fields(peer.sender(), **changes)


# A peer that is not an SMTP server --------------------------------------------------------


@pytest.mark.parametrize(
    "greeting", [SSH_BANNER, HTTP_ANSWER, BINARY_JUNK], ids=["ssh", "http", "junk"]
)
def test_a_peer_that_is_not_smtp_is_diagnosed_and_never_echoed(
    site_with: ClientFactory,
    not_smtp_peer: PeerFactory,
    caplog: pytest.LogCaptureFixture,
    greeting: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = site_with()
    peer = not_smtp_peer(greeting)
    answer = send_test(client, peer_fields(peer))
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "smtp_not_smtp_server"
    assert error["message"] == f"127.0.0.1:{peer.port} greeted with something that is not SMTP"
    assert "check the host and the port" in error["hint"]
    [item] = client.get("/api/v1/records").json()["items"]
    assert item["error"]["code"] == "smtp_not_smtp_server"
    record = client.get(f"/api/v1/records/{item['id']}")
    assert "smtp_not_smtp_server" in record.text
    for text in (answer.text, record.text, client.get("/api/v1/records.csv").text, caplog.text):
        for word in BANNER_WORDS:
            assert word not in text
