"""Attachments: strict base64 input, safe file names, content types, encoding for the wire."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postdesk.domain.addresses import parse_address
from postdesk.domain.attachments import (
    MAX_FILENAME,
    AttachmentPart,
    MailContentError,
    decode_base64_attachment,
    encode_attachment,
    sanitise_filename,
)
from postdesk.domain.mail import build_mail
from postdesk.domain.senders import validate_sender

SENDER = validate_sender(
    {"smtp_host": "smtp.example.com", "address": "reports@example.com", "display_name": "BI"}
)


def attached(*attachments: AttachmentPart) -> tuple[bytes, list[EmailMessage]]:
    """Build a message carrying the attachments; its bytes and the parsed attachment parts."""
    mail = build_mail(
        sender=SENDER,
        to=[parse_address("alice@example.org")],
        subject="Exports",
        html_body=None,
        text_body="See attached.",
        message_id="<exports@example.com>",
        date=datetime(2026, 11, 27, tzinfo=UTC),
        attachments=attachments,
    )
    data = mail.data
    assert max(map(len, data.split(b"\r\n"))) <= 998
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return data, list(parsed.iter_attachments())


# --- decoding what applications send -----------------------------------------------------


def test_standard_base64_decodes() -> None:
    assert decode_base64_attachment(base64.b64encode(b"%PDF-1.7 \x00\xff").decode()) == (
        b"%PDF-1.7 \x00\xff"
    )


def test_line_breaks_in_base64_are_tolerated() -> None:
    wrapped = base64.encodebytes(bytes(range(256)) * 4).decode()
    assert "\n" in wrapped
    assert decode_base64_attachment(wrapped) == bytes(range(256)) * 4
    assert decode_base64_attachment(wrapped.replace("\n", "\r\n")) == bytes(range(256)) * 4


def test_an_empty_file_is_fine() -> None:
    assert decode_base64_attachment("") == b""


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("aGVsbG8*", "characters other than"),
        ("aGVsbG8", "padding"),
        ("aGVsbG8==", "padding"),
        ("-_-_", "URL-safe"),
        ("data:application/pdf;base64,aGVsbG8=", "data: URL"),
        ("aGVsbG8=é", "characters other than"),
    ],
)
def test_bad_base64_is_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(MailContentError, match=re.escape(says)) as caught:
        decode_base64_attachment(text)
    assert caught.value.field == "content_base64"


@given(st.binary(max_size=3000))
def test_decoding_inverts_standard_base64(data: bytes) -> None:
    assert decode_base64_attachment(base64.b64encode(data).decode()) == data


# --- file names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\bi\\Desktop\\Q3 export.xlsx", "Q3 export.xlsx"),
        ("..hidden.csv", "hidden.csv"),
        ("  spaced   out  .txt ", "spaced out .txt"),
        ("line\r\nbreak.txt", "line break.txt"),
        ("tab\there.txt", "tab here.txt"),
        ('say "cheese".png', "say _cheese_.png"),
        ("what?<why>|how*:.txt", "what__why__how__.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("报表 2026年11月.xlsx", "报表 2026年11月.xlsx"),
        ("Übersicht.pdf", "Übersicht.pdf"),
        ("Cafe\u0301.txt", "Café.txt"),
        ("trailing dots...", "trailing dots"),
    ],
)
def test_file_names_are_made_safe(given_name: str, safe: str) -> None:
    assert sanitise_filename(given_name) == safe


@pytest.mark.parametrize("name", ["", "   ", "...", "../", "dir/", "\u202e\u200b", "\r\n"])
def test_a_name_with_nothing_left_is_refused(name: str) -> None:
    with pytest.raises(MailContentError, match="file name is empty") as caught:
        sanitise_filename(name)
    assert caught.value.field == "filename"


def test_a_long_name_is_cut_keeping_its_extension() -> None:
    name = sanitise_filename("quarterly sales " * 30 + ".xlsx")
    assert len(name) <= MAX_FILENAME
    assert name.endswith("sales.xlsx") or name.endswith(".xlsx")
    assert not name.startswith(" ")
    long_extension = sanitise_filename("x" * 300 + "." + "y" * 30)
    assert len(long_extension) == MAX_FILENAME


@given(st.text(max_size=400))
def test_sanitised_names_are_always_safe(name: str) -> None:
    try:
        safe = sanitise_filename(name)
    except MailContentError:
        return
    assert safe
    assert len(safe) <= MAX_FILENAME
    assert not any(char in safe for char in '/\\"<>:|?*\r\n\t\x00')
    assert not safe.startswith((".", " "))
    assert sanitise_filename(safe) == safe


# --- content types and ids ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_type", "kept"),
    [
        ("application/pdf", "application/pdf"),
        (
            " Application/VND.openxmlformats-officedocument.spreadsheetml.sheet ",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        ("image/svg+xml", "image/svg+xml"),
        ("text/csv", "text/csv"),
    ],
)
def test_content_types_are_checked_and_lower_cased(given_type: str, kept: str) -> None:
    assert encode_attachment("f", given_type, b"").content_type == kept


@pytest.mark.parametrize(
    "bad",
    [
        "pdf",
        "application/",
        "/pdf",
        "application/pdf; charset=x",
        "text/plain\r\nX: y",
        "a/b/c",
        "image/pn g",
    ],
)
def test_malformed_content_types_are_refused(bad: str) -> None:
    with pytest.raises(MailContentError, match="content type .*type/subtype") as caught:
        encode_attachment("f", bad, b"")
    assert caught.value.field == "content_type"


@pytest.mark.parametrize("structural", ["multipart/mixed", "message/rfc822"])
def test_structural_types_cannot_be_attachments(structural: str) -> None:
    with pytest.raises(MailContentError, match="content type .*octet-stream") as caught:
        encode_attachment("f", structural, b"")
    assert caught.value.field == "content_type"


@pytest.mark.parametrize(
    ("given_id", "kept"),
    [("logo", "logo"), ("<logo@bi.example>", "logo@bi.example"), ("cid:chart-1", "chart-1")],
)
def test_content_ids_are_kept_without_brackets(given_id: str, kept: str) -> None:
    assert encode_attachment("l.png", "image/png", b"", content_id=given_id).content_id == kept


@pytest.mark.parametrize("bad", ["", "two words", "line\r\nbreak", "<>", "ünïcode", "x" * 201])
def test_bad_content_ids_are_refused(bad: str) -> None:
    with pytest.raises(MailContentError, match="content id") as caught:
        encode_attachment("l.png", "image/png", b"", content_id=bad)
    assert caught.value.field == "content_id"


# --- encoding for the wire ----------------------------------------------------------------


def test_encoded_is_base64_in_76_character_crlf_lines() -> None:
    data = bytes(range(256)) * 10
    part = encode_attachment("bytes.bin", "application/octet-stream", data)
    lines = part.encoded.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) == 76 for line in lines[:-2])
    assert 0 < len(lines[-2]) <= 76
    assert base64.b64decode(part.encoded) == data
    assert part.size == len(data)
    assert part.filename == "bytes.bin"
    assert part.content_id is None


@pytest.mark.parametrize(
    "size", [0, 1, 56, 57, 58, 114, 57 * 1024, 57 * 1024 + 1, 3 * 57 * 1024 + 5]
)
def test_every_size_encodes_exactly(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    encoded = encode_attachment("a", "application/octet-stream", data).encoded
    assert base64.b64decode(encoded) == data
    assert encoded == base64.encodebytes(data).replace(b"\n", b"\r\n")


def test_ascii_names_are_quoted_and_non_ascii_names_use_rfc2231() -> None:
    data, [plain, chinese] = attached(
        encode_attachment("report.pdf", "application/pdf", b"1"),
        encode_attachment("销售报表.xlsx", "application/vnd.ms-excel", b"2"),
    )
    assert b'Content-Disposition: attachment; filename="report.pdf"\r\n' in data
    assert b"filename*=utf-8''%E9%94%80%E5%94%AE%E6%8A%A5%E8%A1%A8.xlsx" in data
    assert plain.get_filename() == "report.pdf"
    assert chinese.get_filename() == "销售报表.xlsx"
    assert chinese.get_param("name") == "销售报表.xlsx"


def test_a_long_non_ascii_name_is_continued_over_several_lines() -> None:
    name = "二〇二六年第四季度各地区销售业绩与库存周转情况汇总分析报告" * 3 + ".xlsx"
    data, [part] = attached(encode_attachment(name, "application/pdf", b"x"))
    assert b"filename*0*=utf-8''" in data and b"filename*1*=" in data
    assert max(map(len, data.split(b"\r\n"))) <= 78
    assert part.get_filename() == name


def test_a_long_ascii_name_is_continued_too() -> None:
    name = "quarterly-sales-by-region-" * 7 + "final.pdf"
    data, [part] = attached(encode_attachment(name, "application/pdf", b"x"))
    assert b'filename*0="' in data
    assert part.get_filename() == name


def test_inline_and_attached_parts_carry_their_bytes() -> None:
    pdf = bytes(range(256)) * 100
    _, [part] = attached(encode_attachment("r.pdf", "application/pdf", pdf))
    assert part.get_content_type() == "application/pdf"
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content() == pdf


@settings(max_examples=100)
@given(
    name=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=250),
    data=st.binary(max_size=2000),
)
def test_any_file_name_and_content_round_trip(name: str, data: bytes) -> None:
    try:
        attachment = encode_attachment(name, "application/octet-stream", data)
    except MailContentError:
        return
    _, [part] = attached(attachment)
    assert part.get_filename() == attachment.filename
    assert part.get_content() == data
