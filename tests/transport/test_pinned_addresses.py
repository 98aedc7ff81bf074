"""A connection given the addresses that were checked connects to those, never to what the
name resolves to at connect time (a DNS rebind), and TLS still checks the name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdesk.domain.diagnosis import DiagnosisCode
from postdesk.errors import DeliveryError
from postdesk.transport import resolve_server, send_message
from tests.support.mail import raw_mail
from tests.support.smtp import SmtpTestServer, make_sender
from tests.support.tls import OTHER_NAME

StartServer = Callable[..., SmtpTestServer]
UNRESOLVABLE = "mail.rebind.invalid"


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_the_given_addresses_are_used_and_tls_checks_the_name(
    smtp_server: StartServer, tls: str
) -> None:
    # The certificate is for OTHER_NAME only, which no DNS resolves: connecting works only
    # through the given address, and verifying works only against the name.
    server = smtp_server(tls=tls, certificate="wrong_host")
    sender = server.sender(smtp_host=OTHER_NAME)
    receipt = send_message(
        sender, recipients=["alice@example.com"], message=raw_mail(), addresses=("127.0.0.1",)
    )
    assert receipt.accepted == ["alice@example.com"]
    assert server.messages[0].secure
    with pytest.raises(DeliveryError) as caught:
        send_message(sender, recipients=["alice@example.com"], message=raw_mail())
    assert caught.value.code == DiagnosisCode.CONNECT_FAILED  # looked up: not found


def test_the_next_address_is_tried_when_one_refuses(
    smtp_server: StartServer, closed_port: int
) -> None:
    server = smtp_server()
    sender = make_sender(UNRESOLVABLE, server.port)
    addresses = ("::1", "127.0.0.1")  # nothing listens on ::1 at this port
    send_message(sender, recipients=["a@example.com"], message=raw_mail(), addresses=addresses)
    assert len(server.messages) == 1
    with pytest.raises(DeliveryError) as caught:
        send_message(
            make_sender(UNRESOLVABLE, closed_port),
            recipients=["a@example.com"],
            message=raw_mail(),
            addresses=addresses,
        )
    assert caught.value.code == DiagnosisCode.CONNECT_FAILED


def test_resolving_gives_every_address_and_diagnoses_an_unknown_name() -> None:
    assert resolve_server(make_sender("127.0.0.1", 25)) == ("127.0.0.1",)
    assert "127.0.0.1" in resolve_server(make_sender("localhost", 25))
    with pytest.raises(DeliveryError) as caught:
        resolve_server(make_sender(UNRESOLVABLE, 25))
    assert caught.value.code == DiagnosisCode.CONNECT_FAILED
    assert f"cannot resolve the host name {UNRESOLVABLE}" in caught.value.message
