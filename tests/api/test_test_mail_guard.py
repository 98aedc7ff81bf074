"""The test mail is not a port scanner: it does not repeat what a peer that is not an SMTP
server sent, it is counted per administrator, and it goes only where mail servers may be."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from postdesk.api.app import create_app
from postdesk.config import DEFAULT_TEST_MAIL_PORTS, Settings
from postdesk.services.access.admins import create_admin
from postdesk.services.runtime import Runtime, open_runtime
from tests.api.conftest import ADMIN_PASSWORD
from tests.support.peers import (
    BANNER_WORDS,
    BINARY_JUNK,
    HTTP_ANSWER,
    SSH_BANNER,
    RawPeer,
    connect_attempts,
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


# The rate limit ---------------------------------------------------------------------------


def test_the_eleventh_test_mail_in_a_minute_is_429_for_that_administrator_only(
    site_with: ClientFactory, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    first = site_with()
    rt: Runtime = first.app.state.rt  # type: ignore[attr-defined]
    create_admin(rt, "other", ADMIN_PASSWORD)
    other = TestClient(first.app, client=("203.0.113.8", 50000))
    log_in(other, "other")
    fields = sender_fields(server.sender())
    for _ in range(10):
        assert send_test(first, fields).status_code == 200
    refused = send_test(first, fields)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_frequent"
    assert "at most 10 a minute" in refused.json()["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    saved = first.post("/api/v1/senders", json=fields).json()["id"]
    assert first.post(f"/api/v1/senders/{saved}/test", json={"to": "a@b.org"}).status_code == 429
    assert len(server.messages) == 10
    assert len(first.get("/api/v1/records").json()["items"]) == 10
    assert send_test(other, fields).status_code == 200  # another administrator: not counted
    assert len(server.messages) == 11


# Allowed ports and hosts ------------------------------------------------------------------


def test_a_port_outside_the_allowed_ones_is_refused_until_a_sender_uses_it(
    site_with: ClientFactory, smtp_server: ServerFactory
) -> None:
    client = site_with(test_mail_allowed_ports=DEFAULT_TEST_MAIL_PORTS)
    server = smtp_server()
    fields = sender_fields(server.sender())
    refused = send_test(client, fields)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert (error["code"], list(error["fields"])) == ("validation_error", ["port"])
    assert "POSTDESK_TEST_MAIL_ALLOWED_PORTS" in error["hint"]
    assert "25, 465, 587, 2525" in error["hint"]
    assert server.messages == [] and client.get("/api/v1/records").json()["items"] == []
    sender_id = client.post("/api/v1/senders", json=fields).json()["id"]
    assert client.post(f"/api/v1/senders/{sender_id}/test", json={"to": "a@b.org"}).is_success
    assert send_test(client, {**fields, "address": "other@example.com"}).is_success
    assert len(server.messages) == 2


@pytest.mark.parametrize(
    ("allowed", "host", "accepted"),
    [
        ("smtp.example.com", "127.0.0.1", False),
        ("10.0.0.0/8", "localhost", False),  # localhost resolves to 127.0.0.1
        ("127.0.0.0/8", "localhost", True),  # every address it resolves to is inside
        ("localhost", "localhost", True),
        ("*.example.com,127.0.0.1", "127.0.0.1", True),
    ],
)
def test_the_allowed_hosts(
    site_with: ClientFactory, smtp_server: ServerFactory, allowed: str, host: str, accepted: bool
) -> None:
    rules = Settings.from_env({"POSTDESK_TEST_MAIL_ALLOWED_HOSTS": allowed})
    client = site_with(test_mail_allowed_hosts=rules.test_mail_allowed_hosts)
    server = smtp_server()
    answer = send_test(client, sender_fields(server.sender(), smtp_host=host))
    assert answer.is_success is accepted, answer.text
    assert len(server.messages) == int(accepted)
    if not accepted:
        error = answer.json()["error"]
        assert answer.status_code == 422 and list(error["fields"]) == ["smtp_host"]
        assert "POSTDESK_TEST_MAIL_ALLOWED_HOSTS" in error["hint"]


# Link-local and metadata addresses --------------------------------------------------------

RESERVED = ["169.254.169.254", "fd00:ec2::254", "fe80::1", "metadata.google.internal", "0xa9fea9fe"]


@pytest.mark.parametrize("host", RESERVED)
def test_link_local_and_metadata_hosts_are_refused_without_connecting(
    site_with: ClientFactory, not_smtp_peer: PeerFactory, host: str
) -> None:
    client = site_with()
    fields = peer_fields(not_smtp_peer(), smtp_host=host, port=25)
    with connect_attempts() as attempts:
        answer = send_test(client, fields)
        saving = client.post("/api/v1/senders", json=fields)
    assert attempts == []
    for refused in (answer, saving):
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert list(error["fields"]) == ["smtp_host"]
        assert "link-local" in error["hint"]
    assert client.get("/api/v1/records").json()["items"] == []
