"""Messages given as chunks: streamed in order, CRLF and dot-stuffing right across boundaries."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postdesk.domain.addresses import parse_address
from postdesk.domain.attachments import encode_attachment
from postdesk.domain.mail import build_mail
from postdesk.errors import DeliveryError
from postdesk.transport import open_connection, send_message
from postdesk.transport.data import MessageData, data_pieces, measure
from tests.support.smtp import SmtpTestServer, make_sender

StartServer = Callable[..., SmtpTestServer]
NOW = datetime(2026, 11, 27, 8, 30, tzinfo=UTC)


def wire(message: MessageData) -> bytes:
    """What goes on the wire after DATA, final dot line included."""
    return b"".join(data_pieces(message))


def unstuff(stream: bytes) -> bytes:
    """What a server keeps of a DATA stream (RFC 5321 4.5.2), to compare with the input."""
    assert stream.endswith(b"\r\n.\r\n") or stream == b".\r\n"
    lines = stream[: -len(b".\r\n")].split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


# --- the stream, without a server --------------------------------------------------------


def test_a_dot_at_the_start_of_a_chunk_after_a_line_end_is_stuffed() -> None:
    assert wire([b"Subject: x\r\n\r\nfirst\r\n", b".second\r\n"]) == (
        b"Subject: x\r\n\r\nfirst\r\n..second\r\n.\r\n"
    )


def test_a_dot_after_a_crlf_split_between_chunks_is_stuffed() -> None:
    assert wire([b"a\r", b"\n.b\r\n"]) == b"a\r\n..b\r\n.\r\n"


def test_a_dot_mid_line_at_a_chunk_start_is_left_alone() -> None:
    assert wire([b"a", b".b\r\n"]) == b"a.b\r\n.\r\n"


def test_the_very_first_byte_being_a_dot_is_stuffed() -> None:
    assert wire([b".", b"\r\n"]) == b"..\r\n.\r\n"


def test_bare_line_ends_across_chunks_become_crlf() -> None:
    assert wire([b"a\n", b"b\r", b"c\r", b"", b"\nd"]) == b"a\r\nb\r\nc\r\nd\r\n.\r\n"


def test_a_trailing_lone_cr_becomes_the_last_line_end() -> None:
    assert wire([b"a", b"\r"]) == b"a\r\n.\r\n"


def test_memoryviews_are_streamed_like_bytes() -> None:
    body = b"x" * 100 + b"\r\n.dot\r\n"
    assert wire([b"head\r\n", memoryview(body), b"tail"]) == (
        b"head\r\n" + b"x" * 100 + b"\r\n..dot\r\ntail\r\n.\r\n"
    )


def test_a_big_chunk_goes_out_in_pieces_of_about_64_kib() -> None:
    big = (b"y" * 998 + b"\r\n") * 300  # 300 KB
    pieces = list(data_pieces([b"Subject: big\r\n\r\n", memoryview(big)]))
    assert len(pieces) >= 4
    assert all(len(piece) <= 2 * 64 * 1024 for piece in pieces)
    assert b"".join(pieces) == b"Subject: big\r\n\r\n" + big + b".\r\n"


def test_a_small_message_goes_out_in_one_write() -> None:
    assert len(list(data_pieces([b"Subject: a\r\n\r\n", b"body\r\n"]))) == 1


def test_measure_counts_crlf_line_ends_and_spots_8bit() -> None:
    assert measure([b"a\n", memoryview(b"b\r"), b"\nc"]) == (len(b"a\r\nb\r\nc"), False)
    assert measure(b"Gr\xc3\xbc\xc3\x9fe\r\n") == (9, True)


chunk_lists = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\x00", b"")), max_size=8)


@given(chunk_lists)
def test_any_chunking_gives_the_same_stream_as_the_joined_message(chunks: list[bytes]) -> None:
    joined = b"".join(chunks)
    assert wire(chunks) == wire(joined)
    assert measure(chunks) == measure(joined)


@given(chunk_lists)
def test_the_stream_unstuffs_to_the_crlf_message(chunks: list[bytes]) -> None:
    expected = crlf(b"".join(chunks))
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    stream = wire(chunks)
    assert b"\n" not in stream.replace(b"\r\n", b"")
    assert unstuff(stream) == expected
    assert measure(chunks)[0] == len(crlf(b"".join(chunks)))


def test_building_and_streaming_a_20_mib_attachment_makes_no_second_copy() -> None:
    attachment = encode_attachment("big.bin", "application/octet-stream", os.urandom(20 << 20))
    tracemalloc.start()
    try:
        mail = build_mail(
            sender=make_sender("127.0.0.1", 25),
            to=[parse_address("alice@example.com")],
            subject="Big export",
            html_body="<p>The export is attached.</p>",
            text_body=None,
            message_id="<big@example.com>",
            date=NOW,
            attachments=[attachment],
        )
        size, _ = measure(mail.chunks)
        streamed = sum(len(piece) for piece in data_pieces(mail.chunks))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == mail.size > len(attachment.encoded)
    assert streamed == size + len(b".\r\n")
    assert peak < 1 << 20  # pieces of 64 KiB, never the 27 MiB of encoded bytes again


# --- through a real server ---------------------------------------------------------------


def mail_with_attachment(
    size: int, extra: Sequence[str] = ()
) -> tuple[bytes, tuple[bytes | memoryview, ...]]:
    """A built message with a ``size``-byte attachment: (attachment bytes, chunks)."""
    data = os.urandom(size)
    mail = build_mail(
        sender=make_sender("127.0.0.1", 25),
        to=[parse_address("alice@example.com")],
        subject="Quarterly export",
        html_body=None,
        text_body="\n".join(["Hello,", ".a line with a leading dot", "..two", ".", *extra]),
        message_id="<export-1@example.com>",
        date=NOW,
        attachments=[encode_attachment("export.bin", "application/octet-stream", data)],
    )
    return data, mail.chunks


def test_a_multi_mib_attachment_arrives_byte_identical(smtp_server: StartServer) -> None:
    server = smtp_server()
    data, chunks = mail_with_attachment(3 * 1024 * 1024 + 7)
    assert any(isinstance(chunk, memoryview) for chunk in chunks)

    send_message(server.sender(), recipients=["alice@example.com"], message=chunks)

    [received] = server.messages
    assert received.content == b"".join(chunks)
    parsed = message_from_bytes(received.content, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    [attachment] = parsed.iter_attachments()
    assert attachment.get_content() == data
    body = parsed.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    assert ".a line with a leading dot\n..two\n.\n" in text


def test_dot_lines_split_across_chunks_arrive_intact(smtp_server: StartServer) -> None:
    server = smtp_server()
    chunks: list[bytes | memoryview] = [
        b"Subject: dots\r\n\r\nfirst\r",
        b"\n.second\r\n",
        memoryview(b"..third\r\n"),
        b".",
        b"\r\n",
        b"end\r\n",
    ]

    send_message(server.sender(), recipients=["alice@example.com"], message=chunks)

    assert server.messages[0].content == b"".join(bytes(c) for c in chunks)


def test_size_is_declared_from_all_chunks(smtp_server: StartServer) -> None:
    server = smtp_server(size_limit=10_000_000)
    _, chunks = mail_with_attachment(200_000)
    total = sum(len(c) for c in chunks)

    send_message(server.sender(), recipients=["alice@example.com"], message=chunks)

    assert f"SIZE={total}" in server.messages[0].mail_options
    assert "BODY=8BITMIME" not in server.messages[0].mail_options


def test_chunks_over_the_size_limit_are_refused_before_data(smtp_server: StartServer) -> None:
    server = smtp_server(size_limit=100_000)
    _, chunks = mail_with_attachment(200_000)

    with pytest.raises(DeliveryError) as caught:
        send_message(server.sender(), recipients=["alice@example.com"], message=chunks)

    assert caught.value.code == "smtp_message_too_large"
    assert "DATA" not in server.verbs()
    assert not server.messages


def test_one_connection_sends_chunked_and_plain_messages(smtp_server: StartServer) -> None:
    server = smtp_server()
    _, chunks = mail_with_attachment(70_000)
    plain = b"Subject: plain\r\n\r\nhello\r\n"

    with open_connection(server.sender()) as connection:
        connection.send(
            envelope_from="reports@example.com", recipients=["a@example.com"], message=chunks
        )
        connection.send(
            envelope_from="reports@example.com", recipients=["b@example.com"], message=plain
        )

    first, second = server.messages
    assert first.content == b"".join(chunks)
    assert second.content == plain
