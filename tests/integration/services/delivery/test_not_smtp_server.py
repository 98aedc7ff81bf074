"""Delivery to a sender whose port is not an SMTP server fails at once with
``smtp_not_smtp_server``, and nothing the peer sent reaches the record or the logs."""

import logging
from collections.abc import Callable

import pytest

from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.drain import drain_once
from postdesk.services.messages.submission import submit_batch
from postdesk.services.records.lookup import get_record
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from tests.support.peers import BANNER_WORDS, SSH_BANNER, RawPeer
from tests.support.smtp import sender_fields


def test_a_message_to_an_ssh_port_fails_without_the_banner(
    rt: Runtime, not_smtp_peer: Callable[..., RawPeer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    peer = not_smtp_peer(SSH_BANNER)
    sender = sender_service.create_sender(rt, sender_fields(peer.sender()))
    sender_service.set_default_sender(rt, sender.id)
    request = {"to": ["alice@example.org"], "subject": "Weekly sales", "text": "Up."}
    [message_id] = submit_batch(rt, [request], caller=SYSTEM, client_ip=None)
    [outcome] = drain_once(rt, worker_id="worker-1", limit=10).delivered
    assert (outcome.status, outcome.error_code) == ("failed", "smtp_not_smtp_server")
    record = get_record(rt, message_id).to_dict()
    assert record["error"]["code"] == "smtp_not_smtp_server"
    assert record["attempts"] == 1
    for text in (repr(record), caplog.text):
        for word in BANNER_WORDS:
            assert word not in text
