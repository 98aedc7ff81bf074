"""Test mail through the services: real aiosmtpd servers, real databases, records kept."""

from collections.abc import Callable
from email import message_from_bytes, policy

import pytest
from sqlalchemy import select

from postdesk.domain.mail import TEST_MAIL_SENTENCE
from postdesk.errors import DeliveryError, TooFrequentError, ValidationError
from postdesk.services.access.callers import Caller
from postdesk.services.records.lookup import get_record
from postdesk.services.runtime import Runtime
from postdesk.services.senders import accounts as service
from postdesk.services.senders.test_mail import send_test_mail
from postdesk.storage.models import Message
from tests.support.smtp import SmtpTestServer, sender_fields

ServerFactory = Callable[..., SmtpTestServer]
CODE = "授权码-Zq9-7731"  # a non-ASCII authorization code


def records(rt: Runtime) -> list[Message]:
    with rt.transaction() as session:
        return list(session.scalars(select(Message).order_by(Message.id)))


def test_saved_sender_over_starttls_with_login(rt: Runtime, smtp_server: ServerFactory) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", CODE))
    saved = service.create_sender(rt, sender_fields(server.sender()))
    result = send_test_mail(rt, sender_id=saved.id, to="alice@example.org", client_ip="10.0.0.7")
    [received] = server.messages
    assert received.secure
    assert received.rcpt_tos == ["alice@example.org"]
    mail = message_from_bytes(received.content, policy=policy.default)
    assert mail["Message-ID"] == result.message_id
    assert mail["From"].addresses[0].display_name == "Postdesk Reports"
    html = mail.get_body(("html",))
    assert html is not None and TEST_MAIL_SENTENCE in html.get_content()
    assert mail.get_body(("plain",)) is not None
    assert "test" not in mail["Subject"].lower()
    [record] = records(rt)
    assert (record.id, record.kind, record.status) == (result.record_id, "test", "sent")
    assert (record.sender_id, record.sender_address) == (saved.id, "reports@example.com")
    assert (record.client_ip, record.recipients, record.attempts) == (
        "10.0.0.7",
        ["alice@example.org"],
        1,
    )
    assert record.message_id == result.message_id
    assert record.sent_at is not None and record.error_code is None
    [attempt] = get_record(rt, record.id).attempt_history
    assert (attempt.number, attempt.outcome, attempt.error_code) == (1, "sent", None)
    assert attempt.reply == "2.0.0 Ok: queued as 1"  # the server's answer to the data


def test_unsaved_settings_are_tested_without_saving(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(tls="implicit")
    result = send_test_mail(rt, unsaved=sender_fields(server.sender()), to="bob@example.org")
    assert len(server.messages) == 1
    assert service.list_senders(rt) == []
    [record] = records(rt)
    assert record.sender_id is None
    assert record.status == "sent"
    assert record.message_id == result.message_id


def test_unsaved_edit_without_password_uses_the_stored_one(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", CODE))
    saved = service.create_sender(rt, sender_fields(server.sender()))
    edited = {"display_name": "Edited Name", "timeout_s": 7, "password": ""}
    send_test_mail(rt, sender_id=saved.id, unsaved=edited, to="carol@example.org")
    [received] = server.messages
    assert b"Edited Name" in received.content
    assert server.logins == [("PLAIN", "reports@example.com")]
    assert service.get_sender(rt, saved.id).display_name == "Postdesk Reports"  # not saved


def test_a_password_sent_unencrypted_comes_with_a_warning(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    plain = smtp_server(credentials=("reports@example.com", CODE))
    result = send_test_mail(rt, unsaved=sender_fields(plain.sender()), to="alice@example.org")
    [warning] = result.warnings
    assert warning.code == "password_unencrypted"
    assert "unencrypted" in warning.message
    assert result.to_dict()["warnings"] == [warning.to_dict()]
    relay = smtp_server()  # no encryption, but no password either
    assert send_test_mail(rt, unsaved=sender_fields(relay.sender()), to="a@b.org").warnings == ()
    secure = smtp_server(tls="starttls", credentials=("reports@example.com", CODE))
    assert send_test_mail(rt, unsaved=sender_fields(secure.sender()), to="a@b.org").warnings == ()


def test_failure_returns_the_diagnosis_and_is_recorded(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server(tls="starttls", credentials=("reports@example.com", CODE))
    saved = service.create_sender(rt, sender_fields(server.sender(password="wrong-password")))
    with pytest.raises(DeliveryError) as caught:
        send_test_mail(rt, sender_id=saved.id, to="alice@example.org")
    assert caught.value.code == "smtp_auth_failed"
    assert caught.value.smtp_code == 535
    [record] = records(rt)
    assert (record.status, record.kind, record.error_code, record.smtp_code) == (
        "failed", "test", "smtp_auth_failed", 535,
    )  # fmt: skip
    assert record.error_hint == caught.value.hint
    assert "wrong-password" not in f"{record.error_message} {record.error_hint}"
    [attempt] = get_record(rt, record.id).attempt_history
    assert (attempt.outcome, attempt.error_code, attempt.smtp_code) == (
        "failed", "smtp_auth_failed", 535,
    )  # fmt: skip
    assert attempt.reply == caught.value.message


def test_bad_recipient_is_a_validation_error_and_nothing_is_sent(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    with pytest.raises(ValidationError) as caught:
        send_test_mail(rt, unsaved=sender_fields(server.sender()), to="alice@example.org)<b@x.com>")
    assert "to" in caught.value.fields
    assert server.messages == []
    assert records(rt) == []


def test_invalid_unsaved_settings_are_validation_errors(rt: Runtime) -> None:
    with pytest.raises(ValidationError) as caught:
        send_test_mail(rt, unsaved={"smtp_host": "x@qq.com", "display_name": ""}, to="a@b.org")
    assert {"smtp_host", "display_name", "address"} <= set(caught.value.fields)
    with pytest.raises(ValidationError):
        send_test_mail(rt, to="a@example.org")


def test_the_limit_counts_each_caller_and_not_the_local_operator(
    rt: Runtime, smtp_server: ServerFactory
) -> None:
    server = smtp_server()
    fields = sender_fields(server.sender())
    one, two = Caller(scope="admin", token_id=1), Caller(scope="admin", token_id=2)
    for _ in range(10):
        send_test_mail(rt, unsaved=fields, to="a@example.org", caller=one)
    with pytest.raises(TooFrequentError) as caught:
        send_test_mail(rt, unsaved=fields, to="a@example.org", caller=one)
    assert 1 <= caught.value.retry_after <= 60
    send_test_mail(rt, unsaved=fields, to="a@example.org", caller=two)
    for _ in range(11):  # the CLI, as the operator
        send_test_mail(rt, unsaved=fields, to="a@example.org")
    assert len(server.messages) == 22
