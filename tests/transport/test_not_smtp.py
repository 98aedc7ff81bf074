"""A peer that is not an SMTP server (SSH, HTTP, binary junk) is diagnosed
``smtp_not_smtp_server`` at once, and nothing it sent is repeated in the diagnosis."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from postdesk.errors import DeliveryError
from postdesk.transport import probe_port, send_message
from tests.support.peers import BANNER_WORDS, BINARY_JUNK, HTTP_ANSWER, SSH_BANNER, RawPeer

PeerFactory = Callable[..., RawPeer]
GREETINGS = pytest.mark.parametrize(
    "greeting", [SSH_BANNER, HTTP_ANSWER, BINARY_JUNK], ids=["ssh", "http", "junk"]
)


def failure_of(peer: RawPeer, **overrides: object) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        send_message(peer.sender(**overrides), recipients=["a@example.com"], message=b"x")
    return caught.value


def assert_no_banner(*texts: str) -> None:
    for text in texts:
        for word in BANNER_WORDS:
            assert word not in text


@GREETINGS
@pytest.mark.parametrize("encryption", ["none", "tls"])
def test_a_greeting_that_is_not_smtp_is_diagnosed_at_once(
    not_smtp_peer: PeerFactory, greeting: bytes, encryption: str
) -> None:
    peer = not_smtp_peer(greeting)
    started = time.monotonic()
    error = failure_of(peer, encryption=encryption, timeout_s=5)
    # Told from the first bytes: junk without a line end does not wait for the timeout.
    assert time.monotonic() - started < 2
    assert error.code == "smtp_not_smtp_server"
    assert error.message == f"127.0.0.1:{peer.port} greeted with something that is not SMTP"
    assert "check the host and the port" in error.hint
    assert "465 (SSL Encryption)" in error.hint and "587" in error.hint
    assert error.smtp_code is None and not error.transient
    assert_no_banner(error.message, error.hint, str(error.to_dict()), repr(error))


def test_an_ehlo_answer_that_is_not_smtp_names_the_command(not_smtp_peer: PeerFactory) -> None:
    peer = not_smtp_peer(after_ehlo=HTTP_ANSWER)
    error = failure_of(peer)
    assert error.code == "smtp_not_smtp_server"
    assert error.message == f"127.0.0.1:{peer.port} answered EHLO with something that is not SMTP"
    assert_no_banner(error.message, error.hint)


def test_the_port_probe_reports_the_peer_without_its_banner(not_smtp_peer: PeerFactory) -> None:
    peer = not_smtp_peer(SSH_BANNER)
    report = probe_port(peer.host, peer.port, timeout=2)
    assert report.reachable and report.greeting is None
    assert report.error is not None and report.diagnosis == "smtp_not_smtp_server"
    assert_no_banner(repr(report))
