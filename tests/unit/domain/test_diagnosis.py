"""SMTP reply classification and diagnosis hints (postdesk.domain.diagnosis), SPEC section 4."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.domain.diagnosis import (
    Condition,
    DiagnosisCode,
    Endpoint,
    Stage,
    classify_reply,
    diagnose_condition,
    is_transient_reply,
)

SPEC_CODES = {
    "smtp_connect_failed",
    "smtp_timeout",
    "smtp_tls_failed",
    "smtp_certificate_untrusted",
    "smtp_starttls_unsupported",
    "smtp_auth_failed",
    "smtp_auth_throttled",
    "smtp_auth_unsupported",
    "smtp_sender_rejected",
    "smtp_recipient_rejected",
    "smtp_rejected_as_spam",
    "smtp_throttled",
    "smtp_message_too_large",
    "smtp_not_smtp_server",
    "oauth_token_failed",
    "oauth_consent_required",
    "smtp_error",
}
ENDPOINT = Endpoint("smtp.example.com", 587, "tls", 30)

stages = st.sampled_from(Stage)
reply_texts = st.text(max_size=200)
endpoints = st.builds(
    Endpoint,
    host=st.sampled_from(["smtp.qq.com", "10.0.0.5", "::1"]),
    port=st.integers(1, 65535),
    encryption=st.sampled_from(["ssl", "tls", "none"]),
    timeout_s=st.floats(0.1, 600),
)


def test_the_codes_are_exactly_the_specs() -> None:
    assert {code.value for code in DiagnosisCode} == SPEC_CODES


@given(code=st.integers(400, 499), text=reply_texts, stage=stages)
def test_every_4xx_reply_is_transient(code: int, text: str, stage: Stage) -> None:
    assert classify_reply(code, text, stage, ENDPOINT).transient
    assert is_transient_reply(code)


@given(code=st.integers(500, 599), text=reply_texts, stage=stages)
def test_every_5xx_reply_but_552_at_rcpt_is_permanent(code: int, text: str, stage: Stage) -> None:
    if (code, stage) != (552, Stage.RCPT):
        assert not classify_reply(code, text, stage, ENDPOINT).transient
        assert not is_transient_reply(code, stage)


@given(
    code=st.integers(-1, 999),
    text=reply_texts,
    stage=stages,
    endpoint=st.none() | endpoints,
)
def test_any_reply_gets_a_spec_code_and_a_hint(
    code: int, text: str, stage: Stage, endpoint: Endpoint | None
) -> None:
    diagnosis = classify_reply(code, text, stage, endpoint)
    assert diagnosis.code.value in SPEC_CODES
    assert diagnosis.hint.strip()


@given(condition=st.sampled_from(Condition), stage=st.none() | stages, endpoint=endpoints)
def test_every_condition_gets_a_spec_code_and_a_hint(
    condition: Condition, stage: Stage | None, endpoint: Endpoint
) -> None:
    diagnosis = diagnose_condition(condition, endpoint, stage=stage)
    assert diagnosis.code.value in SPEC_CODES
    assert diagnosis.hint.strip()


@given(
    code=st.sampled_from([421, 450, 451, 452]),
    text=reply_texts,
    stage=stages.filter(lambda stage: stage is not Stage.AUTH),
)
def test_rate_and_load_replies_are_throttled(code: int, text: str, stage: Stage) -> None:
    diagnosis = classify_reply(code, text, stage, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.THROTTLED
    assert diagnosis.transient
    assert "about a minute" in diagnosis.hint
    assert "max_per_minute" in diagnosis.hint


@given(code=st.sampled_from([534, 535]), text=reply_texts, stage=stages)
def test_535_and_534_are_auth_failures(code: int, text: str, stage: Stage) -> None:
    diagnosis = classify_reply(code, text, stage, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    for provider in ("QQ", "163", "126", "Gmail"):
        assert provider in diagnosis.hint
    assert "authorization code" in diagnosis.hint
    assert "app password" in diagnosis.hint


@given(code=st.integers(400, 499).filter(lambda c: c != 432), text=reply_texts)
def test_a_4xx_reply_to_auth_is_a_throttled_login(code: int, text: str) -> None:
    diagnosis = classify_reply(code, text, Stage.AUTH, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.AUTH_THROTTLED
    assert diagnosis.transient
    assert "refuses logins for now" in diagnosis.hint
    assert "tries one login again" in diagnosis.hint
    assert "no other system" in diagnosis.hint
    assert "wrong password" in diagnosis.hint
    assert "max_per_minute" not in diagnosis.hint


def test_432_password_transition_asks_the_account_holder() -> None:
    reply = "4.7.12 A password transition is needed"
    diagnosis = classify_reply(432, reply, Stage.AUTH, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED
    assert "password transition" in diagnosis.hint
    assert "PLAIN" in diagnosis.hint
    assert "smtp.example.com:587" in diagnosis.hint


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (530, "5.7.0 Must issue a STARTTLS command first"),
        (538, "5.7.11 Encryption required for requested authentication mechanism"),
        (504, "5.5.4 Unrecognized authentication type"),
    ],
)
def test_login_over_plain_text_refused_is_auth_unsupported(code: int, text: str) -> None:
    diagnosis = classify_reply(code, text, Stage.AUTH, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.AUTH_UNSUPPORTED
    assert "enable encryption" in diagnosis.hint
    assert "SMTP service" in diagnosis.hint


def test_530_authentication_required_asks_for_the_login() -> None:
    diagnosis = classify_reply(530, "5.7.0 Authentication required", Stage.MAIL, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.AUTH_FAILED


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("DT:SPM 163 smtp14,EsCowAD3", Stage.DATA),
        ("5.7.1 Message rejected", Stage.DATA),
        ("5.7.1 Message content rejected", Stage.MAIL),
        ("5.7.1 spam detected", Stage.RCPT),
        ("5.7.1 Service unavailable; blocked", Stage.RCPT),
    ],
)
def test_554_with_data_or_spam_words_is_rejected_as_spam(text: str, stage: Stage) -> None:
    diagnosis = classify_reply(554, text, stage, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.REJECTED_AS_SPAM
    assert '"test"' in diagnosis.hint
    assert "subject" in diagnosis.hint


def test_550_unsolicited_after_data_is_spam_too() -> None:
    diagnosis = classify_reply(550, "5.7.1 likely unsolicited mail", Stage.DATA, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.REJECTED_AS_SPAM


def test_554_at_the_greeting_is_not_spam() -> None:
    diagnosis = classify_reply(554, "No SMTP service here", Stage.GREETING, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.ERROR
    assert "No SMTP service here" in diagnosis.hint


@pytest.mark.parametrize(
    ("code", "text", "stage"),
    [
        (552, "5.3.4 Error: Too much mail data", Stage.DATA),
        (552, "Error: message size exceeds fixed maximum message size", Stage.MAIL),
        (554, "5.3.4 Message size exceeds fixed limit", Stage.DATA),
        (550, "message too large", Stage.DATA),
    ],
)
def test_size_replies_are_message_too_large(code: int, text: str, stage: Stage) -> None:
    diagnosis = classify_reply(code, text, stage, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.MESSAGE_TOO_LARGE
    assert "reduce attachments" in diagnosis.hint


@pytest.mark.parametrize("text", ["5.5.3 Too many recipients", "5.2.2 Mailbox full"])
def test_552_at_rcpt_is_read_as_452(text: str) -> None:
    # RFC 5321 section 4.5.3.1.10: RFC 821's 552 for too many recipients means 452.
    diagnosis = classify_reply(552, text, Stage.RCPT, ENDPOINT)
    assert (diagnosis.code, diagnosis.transient) == (DiagnosisCode.THROTTLED, True)
    assert is_transient_reply(552, Stage.RCPT)


@given(code=st.integers(500, 599).filter(lambda c: c not in {530, 534, 535, 538, 552, 554}))
def test_5xx_at_mail_is_sender_rejected(code: int) -> None:
    diagnosis = classify_reply(code, "5.7.1 Sender address rejected", Stage.MAIL, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.SENDER_REJECTED
    assert "may not send as this address" in diagnosis.hint


@given(code=st.integers(500, 599).filter(lambda c: c not in {530, 534, 535, 538, 552, 554}))
def test_5xx_at_rcpt_is_recipient_rejected(code: int) -> None:
    diagnosis = classify_reply(code, "5.1.1 No such user", Stage.RCPT, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.RECIPIENT_REJECTED
    assert "check the recipient address" in diagnosis.hint


def test_anything_else_is_smtp_error_with_the_servers_words() -> None:
    diagnosis = classify_reply(500, "5.5.1 Unknown command FOO", Stage.EHLO, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.ERROR
    assert "5.5.1 Unknown command FOO" in diagnosis.hint


def test_hints_name_the_host_and_port() -> None:
    diagnosis = classify_reply(535, "nope", Stage.AUTH, Endpoint("smtp.163.com", 465, "ssl"))
    assert "smtp.163.com:465" in diagnosis.hint
    assert "[::1]:25" in diagnose_condition(Condition.UNREACHABLE, Endpoint("::1", 25)).hint


def test_unreachable_hint_names_firewall_and_external_network() -> None:
    diagnosis = diagnose_condition(Condition.UNREACHABLE, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.CONNECT_FAILED
    assert diagnosis.transient
    assert "cannot be reached from this server" in diagnosis.hint
    assert "firewall" in diagnosis.hint
    assert "external network access" in diagnosis.hint


@pytest.mark.parametrize(("encryption", "port"), [("tls", 465), ("none", 25), ("tls", 587)])
def test_no_greeting_without_ssl_suggests_ssl_and_465(encryption: str, port: int) -> None:
    endpoint = Endpoint("smtp.exmail.qq.com", port, encryption, 10)
    diagnosis = diagnose_condition(Condition.TIMEOUT, endpoint, stage=Stage.GREETING)
    assert diagnosis.code is DiagnosisCode.TIMEOUT
    assert diagnosis.transient
    assert f"If port {port} is 465 or another SSL port, choose SSL" in diagnosis.hint


def test_no_greeting_with_ssl_does_not_suggest_ssl_again() -> None:
    endpoint = Endpoint("smtp.exmail.qq.com", 465, "ssl", 10)
    diagnosis = diagnose_condition(Condition.TIMEOUT, endpoint, stage=Stage.TLS)
    assert "choose SSL Encryption" not in diagnosis.hint


def test_timeout_after_the_data_warns_the_mail_may_be_delivered() -> None:
    diagnosis = diagnose_condition(Condition.TIMEOUT, ENDPOINT, stage=Stage.DATA)
    assert "may have been delivered" in diagnosis.hint


@pytest.mark.parametrize(
    "condition", [Condition.TLS_WRONG_PORT, Condition.TLS_HANDSHAKE, Condition.TLS_OLD_PROTOCOL]
)
def test_tls_failures_suggest_the_matching_encryption(condition: Condition) -> None:
    diagnosis = diagnose_condition(condition, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.TLS_FAILED
    assert not diagnosis.transient
    assert (
        "choose TLS (STARTTLS) or None for this port, or the port that matches SSL (usually 465)"
        in diagnosis.hint
    )


def test_untrusted_certificate_asks_for_the_ca_pem() -> None:
    diagnosis = diagnose_condition(Condition.CERT_UNTRUSTED, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.CERTIFICATE_UNTRUSTED
    assert "add the server's CA certificate to the sender (PEM)" in diagnosis.hint


def test_wrong_host_certificate_asks_for_the_name_on_it() -> None:
    diagnosis = diagnose_condition(Condition.CERT_WRONG_HOST, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.CERTIFICATE_UNTRUSTED
    assert "another name" in diagnosis.hint
    assert "name on its certificate" in diagnosis.hint


def test_missing_starttls_suggests_ssl_or_none() -> None:
    diagnosis = diagnose_condition(Condition.STARTTLS_MISSING, ENDPOINT)
    assert diagnosis.code is DiagnosisCode.STARTTLS_UNSUPPORTED
    assert "choose SSL" in diagnosis.hint
    assert "or None, or fix the server" in diagnosis.hint
