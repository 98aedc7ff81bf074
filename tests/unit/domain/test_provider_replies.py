"""Known provider replies: recognised by enhanced status code and words, nothing else."""

from __future__ import annotations

import pytest

from postdesk.domain.diagnosis import DiagnosisCode, Stage, classify_reply
from postdesk.domain.provider_replies import PROVIDER_REPLIES, provider_reply


def test_every_entry_is_a_diagnosis_code() -> None:
    codes = {code.value for code in DiagnosisCode}
    assert {reply.code for reply in PROVIDER_REPLIES} <= codes


@pytest.mark.parametrize(
    ("smtp_code", "text"),
    [
        (535, "Authentication unsuccessful 5.7.139"),  # the enhanced code must lead
        (535, "5.7.1390 Authentication unsuccessful"),
        (536, "5.7.139 Authentication unsuccessful"),
        (554, "5.2.2520 mailbox full"),
        (535, "5.7.8 Authentication credentials invalid"),  # not Gmail's words
    ],
)
def test_lookalikes_are_not_provider_replies(smtp_code: int, text: str) -> None:
    assert provider_reply(smtp_code, text) is None


def test_the_most_specific_535_5_7_139_wins() -> None:
    tenant = provider_reply(
        535,
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
    )
    generic = provider_reply(
        535, "5.7.139 Authentication unsuccessful, the request did not meet the criteria"
    )

    assert tenant is not None and generic is not None
    assert tenant is not generic
    assert "whole tenant" in tenant.hint
    assert "Conditional Access" in generic.hint


def test_a_provider_reply_keeps_its_transience_from_the_code() -> None:
    diagnosis = classify_reply(554, "5.2.252 SendAsDenied; a not allowed to send as b", Stage.DATA)

    assert diagnosis.code is DiagnosisCode.SENDER_REJECTED
    assert not diagnosis.transient
