"""The message builder: every message is parsed back with the stdlib and checked."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes, message_from_string, policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postdesk.domain.addresses import AddressError, MailAddress, parse_address
from postdesk.domain.attachments import AttachmentPart, MailContentError, encode_attachment
from postdesk.domain.html_text import CUT_NOTE
from postdesk.domain.mail import (
    TEST_MAIL_SENTENCE,
    TEST_MAIL_SUBJECT,
    OutgoingMail,
    build_mail,
    build_test_mail,
    new_message_id,
)
from postdesk.domain.senders import SenderSettings, validate_sender

NOW = datetime(2026, 11, 27, 8, 30, 15, tzinfo=UTC)
MESSAGE_ID = "<20261127.abc123@example.com>"
ALICE = parse_address("alice@example.org")


def sender(
    display_name: str = "BI Reports", address: str = "reports@example.com"
) -> SenderSettings:
    return validate_sender(
        {"smtp_host": "smtp.example.com", "address": address, "display_name": display_name}
    )


def build(
    *,
    subject: str = "Daily report",
    html: str | None = None,
    text: str | None = "Hello.\n",
    to: Sequence[MailAddress] = (ALICE,),
    cc: Sequence[MailAddress] = (),
    bcc: Sequence[MailAddress] = (),
    attachments: Sequence[AttachmentPart] = (),
    from_: SenderSettings | None = None,
    date: datetime = NOW,
) -> OutgoingMail:
    return build_mail(
        sender=from_ or sender(),
        to=to,
        cc=cc,
        bcc=bcc,
        subject=subject,
        html_body=html,
        text_body=text,
        message_id=MESSAGE_ID,
        date=date,
        attachments=attachments,
    )


def parse(mail: OutgoingMail) -> EmailMessage:
    """Check the wire format, then parse the message back."""
    data = mail.data
    assert len(data) == mail.size
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "a lone CR"
    lines = data.split(b"\r\n")
    assert max(map(len, lines)) <= 998
    head = data.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), head
    parsed = message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert not parsed.defects, parsed.defects
    for part in parsed.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return parsed


def rfc2047_display_name(mail: OutgoingMail) -> str:
    """The From display name decoded as RFC 2047 says.

    The stdlib's address-header parser differs in two ways: it keeps the white space
    between two adjacent encoded-words (visible only on names long enough to need two
    encoded-words for one run of non-ASCII text) and collapses runs of spaces inside one.
    """
    head = mail.data.split(b"\r\n\r\n")[0].decode("ascii")
    field = re.search(r"^From: (.*?)\r\n(?!\s)", head + "\r\nX", re.M | re.S)
    assert field is not None
    value = field.group(1).replace("\r\n", "")
    phrase = value[: value.rindex(" <")]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    phrase = re.sub(r"\?= +=\?", "?==?", phrase)  # white space between encoded-words goes
    return ENCODED_WORD.sub(lambda word: base64.b64decode(word.group(1)).decode(), phrase)


ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")


def structure(message: MIMEPart) -> object:
    """The MIME tree as nested lists of content types."""
    if message.is_multipart():
        return [message.get_content_type(), [structure(child) for child in message.iter_parts()]]
    return message.get_content_type()


def text_of(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def image(content_id: str = "logo") -> AttachmentPart:
    return encode_attachment(
        "logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(300), content_id=content_id
    )


def pdf(name: str = "report.pdf") -> AttachmentPart:
    return encode_attachment(name, "application/pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20)


def mail_to(to: MailAddress) -> OutgoingMail:
    return build(to=[to])


def the_test_mail(to: MailAddress = ALICE) -> OutgoingMail:
    """``build_test_mail`` from a non-ASCII display name and an address with ``#`` and ``&``."""
    return build_test_mail(sender("报表 Reports", "bi#reports&ops@example.com"), to, NOW)


Builder = Callable[[MailAddress], OutgoingMail]


# --- structure --------------------------------------------------------------------------


def test_text_only_is_a_single_text_plain_part() -> None:
    message = parse(build(text="Hello,\nthe report is ready.\n"))
    assert structure(message) == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "7bit"
    assert text_of(message, "plain") == "Hello,\nthe report is ready.\n"


def test_html_only_gets_a_generated_text_alternative_first() -> None:
    message = parse(build(html="<h1>Sales</h1><p>Up <b>4%</b> &amp; rising.</p>", text=None))
    assert structure(message) == ["multipart/alternative", ["text/plain", "text/html"]]
    assert text_of(message, "plain") == "Sales\n\nUp 4% & rising.\n"
    assert text_of(message, "html") == "<h1>Sales</h1><p>Up <b>4%</b> &amp; rising.</p>\n"


def test_the_same_html_twice_gives_the_same_text_and_big_html_works() -> None:
    html = "<p>Repeated report</p>" * 10
    first, second = build(html=html, text=None), build(html=html, text=None)
    assert text_of(parse(first), "plain") == text_of(parse(second), "plain")
    big = "<p>Row</p>\n" * 30_000  # over the size the generated text is cached for
    assert text_of(parse(build(html=big, text=None)), "plain").count("Row") == 30_000


def test_a_huge_adversarial_html_body_builds_with_a_cut_text_part() -> None:
    html = "<p>Report</p>" + "<a" * (1024 * 1024)  # 2 MiB of tags that never close
    message = parse(build(html=html, text=None))
    text = text_of(message, "plain")
    assert text.startswith("Report\n\n<a<a")
    assert text.endswith(f"<a\n\n{CUT_NOTE}\n")
    assert len(text) < len(html) // 2 + 1000
    assert text_of(message, "html") == f"{html}\n"


def test_html_and_text_are_both_kept_as_given() -> None:
    message = parse(build(html="<p>HTML version</p>", text="Text version"))
    assert structure(message) == ["multipart/alternative", ["text/plain", "text/html"]]
    assert text_of(message, "plain") == "Text version\n"


def test_inline_images_sit_in_a_related_part_around_the_html() -> None:
    mail = build(html='<p><img src="cid:logo"></p>', text=None, attachments=[image()])
    message = parse(mail)
    assert structure(message) == [
        "multipart/alternative",
        ["text/plain", ["multipart/related", ["text/html", "image/png"]]],
    ]
    _, related = message.iter_parts()
    assert related.get_param("type") == "text/html"
    _, logo = related.iter_parts()
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_content_disposition() == "inline"
    assert logo.get_content() == b"\x89PNG\r\n\x1a\n" + bytes(300)


def test_everything_together_nests_mixed_alternative_related() -> None:
    mail = build(html='<img src="cid:logo">', text="Text", attachments=[pdf(), image()])
    message = parse(mail)
    assert structure(message) == [
        "multipart/mixed",
        [
            [
                "multipart/alternative",
                ["text/plain", ["multipart/related", ["text/html", "image/png"]]],
            ],
            "application/pdf",
        ],
    ]


def test_attachments_with_a_text_body_make_multipart_mixed() -> None:
    message = parse(build(text="See the attachment.", attachments=[pdf()]))
    assert structure(message) == ["multipart/mixed", ["text/plain", "application/pdf"]]
    [attachment] = message.iter_attachments()
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_content() == b"%PDF-1.7\n" + bytes(range(256)) * 20


def test_an_inline_image_without_html_becomes_an_attachment() -> None:
    message = parse(build(text="No HTML here.", attachments=[image()]))
    assert structure(message) == ["multipart/mixed", ["text/plain", "image/png"]]
    [attachment] = message.iter_attachments()
    assert attachment.get_content_disposition() == "attachment"
    assert attachment["Content-ID"] == "<logo>"


def test_no_body_at_all_is_an_empty_text_part() -> None:
    message = parse(build(text=None, attachments=[pdf()]))
    assert structure(message) == ["multipart/mixed", ["text/plain", "application/pdf"]]


def test_attachment_bytes_are_referenced_not_copied() -> None:
    attachment = pdf()
    mail = build(attachments=[attachment])
    views = [chunk for chunk in mail.chunks if isinstance(chunk, memoryview)]
    assert len(views) == 1
    assert views[0].obj is attachment.encoded
    assert mail.size == len(mail.data)


def test_a_message_without_attachments_is_one_chunk() -> None:
    mail = build(html="<p>hi</p>", text=None)
    assert len(mail.chunks) == 1
    assert isinstance(mail.chunks[0], bytes)


# --- headers ----------------------------------------------------------------------------


def test_the_headers_the_spec_lists() -> None:
    mail = build(cc=[parse_address("carol@example.org")])
    message = parse(mail)
    assert message["From"].addresses[0].display_name == "BI Reports"
    assert message["From"].addresses[0].addr_spec == "reports@example.com"
    assert b'From: "BI Reports" <reports@example.com>\r\n' in mail.data
    assert message["To"] == "alice@example.org"
    assert message["Cc"] == "carol@example.org"
    assert message["Subject"] == "Daily report"
    assert message["Date"] == format_datetime(NOW)
    assert message["Date"].datetime == NOW
    assert message["Message-ID"] == MESSAGE_ID
    assert message["MIME-Version"] == "1.0"
    assert mail.message_id == MESSAGE_ID


def test_the_date_keeps_its_time_zone() -> None:
    shanghai = datetime(2026, 11, 27, 16, 30, tzinfo=timezone(timedelta(hours=8)))
    message = parse(build(date=shanghai))
    assert message["Date"].datetime == shanghai
    assert "+0800" in message["Date"]


@pytest.mark.parametrize(
    ("html", "text"), [(None, "Hello.\n"), ("<p>hi</p>", None)], ids=["text", "html"]
)
def test_bcc_gets_the_mail_but_is_never_in_the_headers(html: str | None, text: str | None) -> None:
    hidden = parse_address("hidden@example.org")
    mail = build(html=html, text=text, cc=[parse_address("c@example.org")], bcc=[hidden])
    assert mail.recipients == ("alice@example.org", "c@example.org", "hidden@example.org")
    assert b"hidden" not in mail.data
    assert "Bcc" not in parse(mail)


def test_only_bcc_recipients_get_an_undisclosed_to() -> None:
    mail = build(to=[], bcc=[parse_address("hidden@example.org")])
    assert mail.recipients == ("hidden@example.org",)
    assert b"hidden" not in mail.data
    assert parse(mail)["To"] == "undisclosed-recipients:;"


def test_a_recipient_named_twice_gets_one_copy() -> None:
    mail = build(to=[ALICE], cc=[ALICE], bcc=[ALICE])
    assert mail.recipients == ("alice@example.org",)


def test_many_recipients_are_folded_over_several_lines() -> None:
    to = [parse_address(f"recipient.number{i}@example.org") for i in range(60)]
    mail = build(to=to)
    message = parse(mail)
    assert [a.addr_spec for a in message["To"].addresses] == [a.address for a in to]


def test_a_non_ascii_subject_is_an_encoded_word() -> None:
    subject = "Täglicher Bericht: 销售日报 📈"
    mail = build(subject=subject)
    assert re.search(rb"^Subject: =\?utf-8\?b\?", mail.data, re.M)
    assert mail.data.isascii()
    assert parse(mail)["Subject"] == subject


def test_a_long_subject_is_folded_at_spaces() -> None:
    subject = " ".join(f"word{i}" for i in range(60))
    mail = build(subject=subject)
    header = mail.data.split(b"\r\n\r\n")[0]
    assert header.count(b"\r\n ") >= 3
    assert parse(mail)["Subject"] == subject


def test_a_long_non_ascii_subject_is_folded_into_several_encoded_words() -> None:
    subject = "销售日报" * 100
    mail = build(subject=subject)
    assert parse(mail)["Subject"] == subject


def test_a_subject_that_looks_like_an_encoded_word_is_encoded() -> None:
    subject = "=?utf-8?q?not_decoded?= literally"
    assert parse(build(subject=subject))["Subject"] == subject


def test_a_non_ascii_display_name_is_an_encoded_word() -> None:
    mail = build(from_=sender("报表 Reports"))
    assert mail.data.isascii()
    assert b"From: =?utf-8?b?5oql6KGo?= Reports <reports@example.com>\r\n" in mail.data
    assert parse(mail)["From"].addresses[0].display_name == "报表 Reports"


def test_quotes_and_backslashes_in_a_display_name_are_escaped() -> None:
    mail = build(from_=sender('The "BI" team \\ reports'))
    assert parse(mail)["From"].addresses[0].display_name == 'The "BI" team \\ reports'


def test_repeated_spaces_in_a_display_name_survive() -> None:
    mail = build(from_=sender("BI  Reports   报表"))
    assert rfc2047_display_name(mail) == "BI  Reports   报表"
    # The stdlib collapses runs of spaces inside an encoded-word of an address header.
    assert parse(mail)["From"].addresses[0].display_name == "BI Reports 报表"


def test_a_sender_without_display_name_is_a_bare_address() -> None:
    mail = build(from_=replace(sender(), display_name=""))
    assert b"From: reports@example.com\r\n" in mail.data


def test_a_long_subject_with_runs_of_spaces_folds_before_them() -> None:
    subject = "Quarterly   report   " * 8 + "end"
    mail = build(subject=subject)
    assert parse(mail)["Subject"] == subject
    assert b"=?utf-8?" not in mail.data


@pytest.mark.parametrize("make", [mail_to, the_test_mail], ids=["mail", "test-mail"])
def test_an_idn_recipient_goes_out_as_idna_without_smtputf8(make: Builder) -> None:
    mail = make(parse_address("bob@münchen.de"))
    assert not mail.smtputf8
    assert mail.recipients == ("bob@xn--mnchen-3ya.de",)
    assert parse(mail)["To"] == "bob@xn--mnchen-3ya.de"


@pytest.mark.parametrize(
    ("make", "address"),
    [(mail_to, "用户@例子.中国"), (the_test_mail, "用户@example.org")],
    ids=["mail", "test-mail"],
)
def test_a_utf8_local_part_switches_to_smtputf8_and_utf8_headers(
    make: Builder, address: str
) -> None:
    mail = make(parse_address(address))
    assert mail.smtputf8
    assert f"To: {address}\r\n".encode() in mail.data
    # message_from_bytes() would surrogate-escape UTF-8 headers; parse them as text.
    parsed = message_from_string(mail.data.decode("utf-8"), policy=policy.SMTPUTF8)
    assert parsed["To"].addresses[0].addr_spec == address


def test_an_international_sender_address_is_the_envelope_sender() -> None:
    mail = build(from_=sender(address="berichte.müller@example.com"))
    assert mail.smtputf8
    assert mail.envelope_from == "berichte.müller@example.com"


# --- bodies -------------------------------------------------------------------------------


def transfer_encoding(mail: OutgoingMail, subtype: str = "plain") -> str:
    body = parse(mail).get_body((subtype,))
    assert body is not None
    return str(body["Content-Transfer-Encoding"])


def test_ascii_with_short_lines_is_7bit() -> None:
    assert transfer_encoding(build(text="Hello.\nAll fine.\n")) == "7bit"


def test_a_line_over_998_characters_is_quoted_printable() -> None:
    text = "x" * 5000
    mail = build(text=text)
    assert transfer_encoding(mail) == "quoted-printable"
    assert text_of(parse(mail), "plain") == text + "\n"


def test_mostly_latin_text_is_quoted_printable() -> None:
    text = "Grüße aus München, der Bericht ist fertig.\n" * 3
    mail = build(text=text)
    assert transfer_encoding(mail) == "quoted-printable"
    assert text_of(parse(mail), "plain") == text


def test_cjk_text_is_base64() -> None:
    text = "您好，本月销售报表已生成，请查收附件。\n" * 5
    mail = build(text=text)
    assert transfer_encoding(mail) == "base64"
    assert text_of(parse(mail), "plain") == text


def test_a_long_single_line_of_html_stays_under_998() -> None:
    html = "<table>" + "<tr><td>cell</td><td>value</td></tr>" * 400 + "</table>"
    mail = build(html=html, text=None)
    assert transfer_encoding(mail, "html") == "quoted-printable"
    assert text_of(parse(mail), "html") == html + "\n"


def test_any_line_ending_becomes_crlf() -> None:
    mail = build(text="one\ntwo\r\nthree\rfour")
    assert b"one\r\ntwo\r\nthree\r\nfour\r\n" in mail.data
    assert text_of(parse(mail), "plain") == "one\ntwo\nthree\nfour\n"


def test_lines_starting_with_a_dot_are_left_for_the_transport() -> None:
    mail = build(text=".hidden\n..two\n.\n")
    assert b"\r\n.hidden\r\n..two\r\n.\r\n" in mail.data
    assert text_of(parse(mail), "plain") == ".hidden\n..two\n.\n"


def test_boundaries_are_random() -> None:
    first, second = build(attachments=[pdf()]), build(attachments=[pdf()])
    boundary = parse(first).get_boundary()
    assert boundary is not None
    assert boundary != parse(second).get_boundary()


def test_a_boundary_found_in_the_content_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("postdesk.domain.mail.secrets.token_hex", lambda _: "fixedtoken")
    text = "--=_1_fixedtoken\n--=_2_fixedtoken--\n"
    mail = build(html="<p>x</p>", text=text)
    message = parse(mail)
    assert message.get_boundary() == "=_3_fixedtoken"
    assert text_of(message, "plain") == text


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject", ["Report\r\nBcc: victim@example.org", "a\nb", "a\x00b", "a\u2028b"]
)
def test_line_breaks_and_control_characters_in_the_subject_are_refused(subject: str) -> None:
    with pytest.raises(AddressError):
        build(subject=subject)


def test_a_subject_over_500_characters_is_refused() -> None:
    build(subject="x" * 500)
    with pytest.raises(MailContentError, match="500") as caught:
        build(subject="x" * 501)
    assert caught.value.field == "subject"


def test_a_message_needs_a_recipient() -> None:
    with pytest.raises(MailContentError, match="recipient") as caught:
        build(to=[])
    assert caught.value.field == "recipients"


@pytest.mark.parametrize(
    "message_id", ["abc@example.com", "<abc>", "<a b@example.com>", "<a@b>\r\nX: y"]
)
def test_a_malformed_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(MailContentError, match="Message-ID"):
        build_mail(
            sender=sender(),
            to=[ALICE],
            subject="s",
            html_body=None,
            text_body="t",
            message_id=message_id,
            date=NOW,
        )


def test_new_message_ids_are_unique_in_the_senders_domain() -> None:
    address = parse_address("reports@bücher.example")
    ids = {new_message_id(address) for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"<[0-9a-f]{32}@xn--bcher-kva\.example>", i) for i in ids)
    build_mail(
        sender=sender(address="reports@bücher.example"),
        to=[ALICE],
        subject="s",
        html_body=None,
        text_body="t",
        message_id=ids.pop(),
        date=NOW,
    )


# --- the test mail ----------------------------------------------------------------------


def test_test_mail_has_the_sentence_in_html_and_a_text_alternative() -> None:
    mail = the_test_mail()
    msg = parse(mail)
    html = text_of(msg, "html")
    text = text_of(msg, "plain")
    assert TEST_MAIL_SENTENCE in html and TEST_MAIL_SENTENCE in text
    assert "test" not in msg["Subject"].lower() and msg["Subject"] == TEST_MAIL_SUBJECT
    assert msg["From"].addresses[0].display_name == "报表 Reports"
    assert msg["From"].addresses[0].addr_spec == "bi#reports&ops@example.com"
    assert msg["Message-ID"] == mail.message_id and mail.message_id.endswith("@example.com>")


def test_every_line_of_the_test_mail_ends_with_crlf() -> None:
    mail = the_test_mail()
    assert b"\n" not in mail.data.replace(b"\r\n", b"")


# --- properties ---------------------------------------------------------------------------

# Text a header may carry: no control characters, no surrogates, no line separators.
header_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=120
)


# Printable ASCII, often in long unbroken runs: the case for folding and plain quoting.
ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=200)


@settings(max_examples=200)
@given(subject=header_text | ascii_text | ascii_text.map(lambda t: t * 3))
def test_any_subject_round_trips(subject: str) -> None:
    assert parse(build(subject=subject))["Subject"] == subject


display_names = (header_text | ascii_text).map(str.strip).filter(bool)


@settings(max_examples=200)
@given(name=display_names)
def test_any_display_name_round_trips(name: str) -> None:
    mail = build(from_=sender(display_name=name))
    address = parse(mail)["From"].addresses[0]
    assert address.addr_spec == "reports@example.com"
    assert rfc2047_display_name(mail) == name
    if len(name.encode()) <= 40 or name.isascii():
        # Exact, but for runs of spaces inside encoded-words, which the stdlib collapses.
        assert address.display_name in (name, re.sub(" {2,}", " ", name))


body_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=3000)


def as_sent(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@settings(max_examples=150)
@given(text=body_text, html=st.none() | body_text)
def test_any_body_round_trips(text: str, html: str | None) -> None:
    message = parse(build(text=text, html=html))
    assert text_of(message, "plain") == as_sent(text)
    if html is not None:
        assert text_of(message, "html") == as_sent(html)


@settings(max_examples=100)
@given(data=st.binary(max_size=5000), name=header_text)
def test_any_attachment_round_trips(data: bytes, name: str) -> None:
    try:
        attachment = encode_attachment(name, "application/octet-stream", data)
    except MailContentError:
        return  # a name made only of unsafe characters
    message = parse(build(attachments=[attachment]))
    [part] = message.iter_attachments()
    assert part.get_filename() == attachment.filename
    assert part.get_content() == data
