"""A server's per-transaction limits: every recipient gets one copy, over as many
transactions as the server needs, on the same connection, the same bytes each time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from postdesk.transport import open_connection
from tests.support.mail import raw_mail
from tests.support.smtp import SmtpTestServer

StartServer = Callable[..., SmtpTestServer]
SIX = [f"r{i}@example.com" for i in range(1, 7)]
FROM = "reports@example.com"


@pytest.mark.parametrize(
    "limit_reply",
    ["452 4.5.3 Too many recipients", "552 5.5.3 Too many recipients"],
    ids=["452", "legacy-552"],
)
def test_recipients_beyond_the_limit_go_in_further_transactions(
    smtp_server: StartServer, limit_reply: str
) -> None:
    server = smtp_server(rcpt_limit=2, rcpt_limit_reply=limit_reply)

    with open_connection(server.sender()) as connection:
        receipt = connection.send(envelope_from=FROM, recipients=SIX, message=raw_mail())

    assert receipt.accepted == SIX
    assert (receipt.refused, receipt.deferred, receipt.problem) == ({}, {}, None)
    assert [m.rcpt_tos for m in server.messages] == [SIX[:2], SIX[2:4], SIX[4:]]
    assert server.copies() == dict.fromkeys(SIX, 1)
    assert len({m.content for m in server.messages}) == 1
    assert len({m.peer for m in server.messages}) == 1  # one connection
    assert "RSET" not in server.verbs()  # a completed DATA ends its transaction
    # Once the server said the transaction is full, the rest wait for the next one.
    assert server.verbs().count("RCPT") == 6 + 2
    assert "queued as 1" in receipt.reply and "queued as 3" in receipt.reply
    assert receipt.replies[SIX[4]][0] == 250
    assert "queued as 3" in receipt.replies[SIX[4]][1]


def test_a_transaction_without_progress_ends_the_sending_and_leaves_them_deferred(
    smtp_server: StartServer,
) -> None:
    server = smtp_server(rcpt_limit=2, refuse={SIX[5]: "451 4.7.1 Greylisted, try later"})

    with open_connection(server.sender()) as connection:
        receipt = connection.send(envelope_from=FROM, recipients=SIX, message=raw_mail())
        assert connection.is_open
        connection.send(envelope_from=FROM, recipients=["next@example.com"], message=raw_mail())

    assert receipt.accepted == SIX[:5]
    assert receipt.deferred == {SIX[5]: (451, "4.7.1 Greylisted, try later")}
    assert receipt.refused == {}
    assert receipt.problem is not None
    assert (receipt.problem.code, receipt.problem.transient) == ("smtp_throttled", True)
    assert receipt.problem.smtp_code == 451
    assert SIX[5] in receipt.problem.message
    assert server.copies() == {**dict.fromkeys(SIX[:5], 1), "next@example.com": 1}
    # The transaction that took nobody is reset before the next message.
    assert server.verbs().count("RSET") == 1


def test_a_permanent_refusal_is_final_while_the_others_are_sent(
    smtp_server: StartServer,
) -> None:
    server = smtp_server(rcpt_limit=2, refuse={SIX[1]: "550 5.1.1 No such user"})

    with open_connection(server.sender()) as connection:
        receipt = connection.send(envelope_from=FROM, recipients=SIX, message=raw_mail())

    assert receipt.accepted == [SIX[0], *SIX[2:]]
    assert receipt.refused == {SIX[1]: (550, "5.1.1 No such user")}
    assert receipt.deferred == {}
    assert receipt.problem is not None and not receipt.problem.transient
    assert server.copies() == {a: 1 for a in SIX if a != SIX[1]}
    assert server.verbs().count("RCPT") == 8  # the refused one was asked once, not again


def test_a_later_transaction_that_fails_reports_its_recipients_deferred(
    smtp_server: StartServer,
) -> None:
    server = smtp_server(rcpt_limit=2, replies={"DATA": [None, "451 4.3.0 Queue full"]})

    with open_connection(server.sender()) as connection:
        receipt = connection.send(envelope_from=FROM, recipients=SIX[:4], message=raw_mail())

    assert receipt.accepted == SIX[:2]
    assert set(receipt.deferred) == set(SIX[2:4])
    assert receipt.deferred[SIX[2]][0] == 451
    assert receipt.problem is not None and receipt.problem.code == "smtp_throttled"
    assert server.copies() == dict.fromkeys(SIX[:2], 1)
