"""A server that echoes the password, in any encoding, never gets it into a record or a log.

Real aiosmtpd servers that quote the failed login back in every form at once; the test
mail and the queue both keep the reply, scrubbed, in the record and its attempt.
"""

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import select

from postdesk.errors import DeliveryError
from postdesk.services.access.callers import SYSTEM
from postdesk.services.delivery.drain import drain_once
from postdesk.services.messages.submission import submit_message
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as sender_service
from postdesk.services.senders.test_mail import send_test_mail
from postdesk.storage.models import Attempt, Message
from tests.support.echoes import ECHO_LOGIN, ECHO_PASSWORD, echo_everything, echo_leaks
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]


def echoing_sender(rt: Runtime, smtp_server: ServerFactory, mechanism: str) -> int:
    server = smtp_server(
        tls="starttls",
        credentials=(ECHO_LOGIN, "what the server expects"),
        auth_mechanisms=(mechanism,),
        auth_echo=echo_everything,
    )
    fields = sender_fields(server.sender(password=ECHO_PASSWORD))
    sender_id = sender_service.create_sender(rt, fields).id
    sender_service.set_default_sender(rt, sender_id)
    return sender_id


def stored_texts(rt: Runtime) -> list[str]:
    """Every error text the database keeps: the records' and their attempts'."""
    with rt.transaction() as session:
        messages = session.scalars(select(Message)).all()
        attempts = session.scalars(select(Attempt)).all()
        texts = [f"{m.error_message} {m.error_hint}" for m in messages]
        return texts + [f"{a.reply} {a.error_code}" for a in attempts]


def postdesk_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """postdesk's own log lines, tracebacks included (the test server logs what it hears)."""
    handler = caplog.handler
    return [handler.format(r) for r in caplog.records if r.name.startswith("postdesk")]


def assert_scrubbed(texts: list[str]) -> None:
    assert [echo_leaks(text) for text in texts] == [[]] * len(texts)
    assert any("[redacted]" in text for text in texts)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_test_mail_keeps_no_echoed_password(
    rt: Runtime, smtp_server: ServerFactory, caplog: pytest.LogCaptureFixture, mechanism: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="postdesk")
    sender_id = echoing_sender(rt, smtp_server, mechanism)

    with pytest.raises(DeliveryError) as caught:
        send_test_mail(rt, sender_id=sender_id, to="alice@example.org")

    error = caught.value
    assert error.code == "smtp_auth_failed"
    assert_scrubbed([error.message, error.hint or "", repr(error), *stored_texts(rt)])
    assert_scrubbed([*postdesk_logs(caplog), error.message])


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_a_queued_message_keeps_no_echoed_password(
    rt: Runtime, smtp_server: ServerFactory, caplog: pytest.LogCaptureFixture, mechanism: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="postdesk")
    echoing_sender(rt, smtp_server, mechanism)
    request = {"to": ["alice@example.org"], "subject": "Weekly sales", "text": "Up."}
    submit_message(rt, request, caller=SYSTEM, client_ip=None)

    [delivered] = drain_once(rt, worker_id="worker-1", limit=10).delivered

    assert delivered.error_code == "smtp_auth_failed"
    texts = stored_texts(rt)
    assert any("535 5.7.8" in text for text in texts)
    assert_scrubbed([repr(delivered), *texts])
    assert_scrubbed([*postdesk_logs(caplog), *texts])
