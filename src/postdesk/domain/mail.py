"""Building outgoing mail: MIME structure, headers, attachments and text alternatives.

Messages are written directly as CRLF bytes (no ``email.message`` round trip): the builder
sits on the hot path of the queue worker. An attachment is base64-encoded once, when the
message is submitted (``encode_attachment``); every build references those bytes as a
separate chunk of ``OutgoingMail.chunks`` instead of copying them into one buffer.
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import re
import secrets
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

from postdesk.domain.addresses import MailAddress, check_header_value
from postdesk.domain.senders import SenderSettings

__all__ = [
    "MAX_FILENAME",
    "MAX_SUBJECT",
    "TEST_MAIL_SENTENCE",
    "TEST_MAIL_SUBJECT",
    "AttachmentPart",
    "MailContentError",
    "OutgoingMail",
    "build_mail",
    "build_test_mail",
    "check_content_id",
    "check_content_type",
    "decode_base64_attachment",
    "encode_attachment",
    "html_to_text",
    "new_message_id",
    "sanitise_filename",
]

TEST_MAIL_SENTENCE = "Congratulations! Your mail server is configured successfully."
# Some providers (163 among them) reject a subject containing "test" as spam.
TEST_MAIL_SUBJECT = "postdesk: mail server check"
MAX_SUBJECT = 500
MAX_FILENAME = 200
MAX_CONTENT_ID = 200

_LINE = 78  # RFC 5322's recommended limit for header lines; 998 is the hard one
_MAX_LINE = 998
_CRLF = b"\r\n"


class MailContentError(ValueError):
    """Content that cannot go into a message; ``str()`` says what to change.

    ``field`` names the input concerned: "content_base64", "filename", "content_type",
    "content_id", "subject", "message_id" or "recipients".
    """

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message, field)
        self.field = field

    def __str__(self) -> str:
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# Data handed between the API, the queue and the worker


@dataclass(frozen=True)
class AttachmentPart:
    """One attachment as the queue stores it: checked metadata and the wire-ready body.

    ``encoded`` is base64 with a CRLF after every 76 characters (and after the last line).
    """

    filename: str
    content_type: str
    content_id: str | None
    size: int
    encoded: bytes


@dataclass(frozen=True)
class OutgoingMail:
    """A message ready for SMTP: the envelope and the message as CRLF byte chunks.

    Attachment bodies are chunks of their own that reference ``AttachmentPart.encoded``;
    the transport streams the chunks without joining them.
    """

    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    smtputf8: bool
    chunks: tuple[bytes | memoryview, ...]

    @property
    def size(self) -> int:
        """The size of the message in bytes."""
        return sum(c.nbytes if isinstance(c, memoryview) else len(c) for c in self.chunks)

    @property
    def data(self) -> bytes:
        """The whole message as one buffer: for tests and small mails only."""
        return b"".join(self.chunks)


# ---------------------------------------------------------------------------------------------
# Attachments


def encode_attachment(
    filename: str, content_type: str, data: bytes, *, content_id: str | None = None
) -> AttachmentPart:
    """Check an attachment's metadata and base64-encode its content once, ready for the wire.

    Raises ``MailContentError`` for a file name that is empty once sanitised, a content
    type that is not ``type/subtype`` or a content id that cannot be a Content-ID.
    """
    return AttachmentPart(
        filename=sanitise_filename(filename),
        content_type=check_content_type(content_type),
        content_id=None if content_id is None else check_content_id(content_id),
        size=len(data),
        encoded=_base64_lines(data),
    )


def decode_base64_attachment(content_base64: str) -> bytes:
    """Decode standard base64 strictly; line breaks and spaces between groups are tolerated."""
    if not content_base64.isascii():
        raise MailContentError(
            "is not base64: it contains characters other than A-Z, a-z, 0-9, +, /, =",
            "content_base64",
        )
    try:
        return base64.b64decode(content_base64, validate=True)
    except binascii.Error:
        pass
    compact = "".join(content_base64.split())
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error:
        raise MailContentError(_base64_problem(compact), "content_base64") from None


def _base64_problem(text: str) -> str:
    if text.startswith("data:"):
        return "is a data: URL; send only the base64 text after the comma"
    if "-" in text or "_" in text:
        return "uses the URL-safe base64 alphabet (- and _); use standard base64 (+ and /)"
    if re.search(r"[^A-Za-z0-9+/=]", text):
        return "is not base64: it contains characters other than A-Z, a-z, 0-9, +, /, ="
    return "is not valid base64: the length or the = padding is wrong"


_UNSAFE_IN_FILENAME = re.compile(r'[<>:"|?*]')
_FILENAME_DROPPED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def sanitise_filename(filename: str) -> str:
    """The file name a recipient's computer can safely use.

    Drops any path, control and formatting characters (CR, LF, bidi overrides), leading
    dots; replaces characters Windows refuses; keeps Unicode letters; at most 200
    characters, keeping the extension.
    """
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if char.isspace() else char
        for char in name
        if unicodedata.category(char) not in _FILENAME_DROPPED or char in "\t\n\r"
    )
    name = " ".join(_UNSAFE_IN_FILENAME.sub("_", name).split()).strip(" .")
    if not name:
        raise MailContentError(
            "the file name is empty once paths and unsafe characters are removed", "filename"
        )
    return _shorten_filename(name)


def _shorten_filename(name: str) -> str:
    if len(name) <= MAX_FILENAME:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 16 or " " in extension:
        return name[:MAX_FILENAME].rstrip(" .")
    return f"{stem[: MAX_FILENAME - len(extension) - 1].rstrip(' .')}.{extension}"


_MIME_NAME = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_CONTENT_TYPE = re.compile(rf"({_MIME_NAME})/({_MIME_NAME})")


def check_content_type(content_type: str) -> str:
    """A lower-case ``type/subtype``; multipart and message types cannot be attachments."""
    value = content_type.strip().lower()
    if not _CONTENT_TYPE.fullmatch(value) or len(value) > 127:
        raise MailContentError(
            "the content type must be a MIME type such as application/pdf (type/subtype)",
            "content_type",
        )
    if value.startswith(("multipart/", "message/")):
        raise MailContentError(
            f"the content type {value} cannot be an attachment; "
            "send it as application/octet-stream",
            "content_type",
        )
    return value


_CONTENT_ID = re.compile(r"[A-Za-z0-9!#$%&'*+\-./=?^_`{|}~@]+")


def check_content_id(content_id: str) -> str:
    """The id an HTML body refers to as ``cid:...``, without angle brackets."""
    value = content_id.strip()
    if value.lower().startswith("cid:"):
        value = value[4:]
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if not _CONTENT_ID.fullmatch(value) or len(value) > MAX_CONTENT_ID:
        raise MailContentError(
            "the content id must be 1 to 200 ASCII letters, digits or . - _ @ "
            "(the HTML refers to it as cid:<id>)",
            "content_id",
        )
    return value


def _base64_lines(data: bytes) -> bytes:
    """Base64 with CRLF after every 76 characters (57 bytes), as MIME bodies carry it.

    Encoded a block at a time, so that a 20 MiB file needs about two encoded copies of
    memory at the peak (the blocks and the result), not three.
    """
    if not data:
        return b""
    view = memoryview(data)
    blocks: list[bytes] = []
    for start in range(0, len(view), _BASE64_BLOCK):
        flat = binascii.b2a_base64(view[start : start + _BASE64_BLOCK], newline=False)
        lines = [flat[i : i + 76] for i in range(0, len(flat), 76)]
        lines.append(b"")
        blocks.append(_CRLF.join(lines))
    return b"".join(blocks)


_BASE64_BLOCK = 57 * 1024  # whole 76-character lines


# ---------------------------------------------------------------------------------------------
# Message-ID


def new_message_id(sender_address: MailAddress) -> str:
    """A fresh Message-ID in the sender's domain; store it so that every attempt reuses it."""
    domain = sender_address.envelope.rsplit("@", 1)[1]
    return f"<{secrets.token_hex(16)}@{domain}>"


_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")


def _check_message_id(message_id: str) -> str:
    if not _MESSAGE_ID.fullmatch(message_id) or message_id.count("@") != 1:
        raise MailContentError("the Message-ID must look like <unique@domain>", "message_id")
    return message_id


# ---------------------------------------------------------------------------------------------
# HTML to text
#
# One re.split() tokenises every tag; the tag names are mapped to line-break markers with
# C-level map() and joined, so the cost per tag stays a few dozen nanoseconds. Markers are
# control characters that str.split() keeps (not whitespace): "\x01" a block boundary (one
# line break however many meet), "\x02" a paragraph boundary (a blank line), "\x03" a <br>,
# "\x04" a space that must survive (inside <pre>).

_BLOCK, _PARAGRAPH, _BREAK, _KEPT_SPACE = "\x01", "\x02", "\x03", "\x04"
_MARKER_CHARACTERS = (_BLOCK, _PARAGRAPH, _BREAK, _KEPT_SPACE)
_NO_MARKERS = dict.fromkeys(map(ord, _MARKER_CHARACTERS))
_TAG = re.compile(r"<(/?[A-Za-z!?][A-Za-z0-9:_-]*+)([^>]*+)>")
# The same with quoted attribute values, which may hold ">"; an unterminated quote falls
# back to the first ">". Slower: used only when _TAG left a ">" in the text.
_QUOTED_TAG = re.compile(
    r"""<(/?[A-Za-z!?][A-Za-z0-9:_-]*+)"""
    r"""([^>"']*+(?:(?:"[^"]*+"|'[^']*+')[^>"']*+)*+|[^>]*+)>"""
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HREF = re.compile(r"""(?<![\w-])href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_RAW_TEXT = re.compile(r"<(script|style|title)\b.*?(?:</\1\s*>|\Z)", re.I | re.S)
# Runs of markers: a paragraph mark (with any block marks after it) makes a blank line,
# a run of block marks one line break. Both patterns start with a fixed character, which
# the regex engine finds with a fast scan.
_PARAGRAPH_RUN = re.compile("\x02[ \x01\x02]*+")
_BLOCK_RUN = re.compile("\x01[ \x01]*+")
_EXTRA_BLANK_LINES = re.compile("\n\n\n++")


def _tag_markers() -> dict[str, str]:
    markers = {"br": _BREAK, "br/": _BREAK, "td": " ", "th": " ", "li": f"{_BLOCK}- "}
    markers.update({"/tr": "", "/li": "", "/dt": "", "/dd": ""})  # the next one breaks
    paragraphs = "p h1 h2 h3 h4 h5 h6 table ul ol dl blockquote pre hr address figure"
    blocks = (
        "div tr li dt dd section article header footer main nav aside caption center form "
        "fieldset legend details summary figcaption"
    )
    for name in paragraphs.split():
        markers.setdefault(name, _PARAGRAPH)
        markers[f"/{name}"] = _PARAGRAPH
    for name in blocks.split():
        markers.setdefault(name, _BLOCK)
        markers[f"/{name}"] = _BLOCK
    return markers


_MARKERS = _tag_markers()
_NEEDS_WORK = [
    (name, f"\0{name}\0") for name in ("head", "title", "style", "script", "template", "a", "pre")
]


def html_to_text(body: str) -> str:
    """A readable plain-text rendering of an HTML body.

    Paragraphs and headings are separated by a blank line, blocks and ``<br>`` start a new
    line, list items start with "- ", table cells are separated by spaces, links read
    "text (url)"; comments, scripts, styles and the head are dropped and entities decoded.
    """
    return _to_text(body, reparse=True)


def _to_text(body: str, *, reparse: bool) -> str:
    parts = _tokens(body)
    if len(parts) > 1:
        names = parts[1::3]
        # Tag names joined, lower-cased and between NULs: one string that str.find() searches
        # for special tags, far cheaper than per-tag calls or list scans.
        joined = "\0".join(names)
        lowered = joined.lower()
        if lowered != joined:
            names = lowered.split("\0")
        found = f"\0{lowered}\0"
        special = {name for name, needle in _NEEDS_WORK if needle in found}
        if special and not _rework(parts, names, found, special) and reparse:
            return _to_text(_RAW_TEXT.sub("", body), reparse=False)
        parts[1::3] = map(_MARKERS.get, names, [""] * len(names))
        parts[2::3] = [""] * len(names)
    text = _line_breaks(" ".join("".join(parts).split()))
    if "&" in text:
        text = html.unescape(text)
    return text.replace(_KEPT_SPACE, " ").replace("\xa0", " ")


def _tokens(body: str) -> list[str]:
    """``[text, tag name, tag attributes, text, ...]`` once comments and doctype are gone."""
    if any(marker in body for marker in _MARKER_CHARACTERS):  # invisible in HTML anyway
        body = body.translate(_NO_MARKERS)
    if "<!--" in body:
        body = _COMMENT.sub("", body)
    if body[:20].lstrip()[:9].lower() == "<!doctype":
        body = body[body.find(">") + 1 :]
    parts = _TAG.split(body)
    # Each tag ends at its first ">": any other ">" is in the text, or in a quoted attribute
    # value that _TAG cut short.
    if body.count(">") > len(parts) // 3:
        parts = _QUOTED_TAG.split(body)
    return parts


def _line_breaks(text: str) -> str:
    """Turn the markers of a whitespace-collapsed text into line breaks."""
    text = text.replace(f" {_PARAGRAPH}", _PARAGRAPH)
    while f"{_BLOCK}{_PARAGRAPH}" in text:
        text = text.replace(f"{_BLOCK}{_PARAGRAPH}", _PARAGRAPH)
    text = _BLOCK_RUN.sub("\n", _PARAGRAPH_RUN.sub("\n\n", text)).replace(_BREAK, "\n")
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    if "\n\n\n" in text:
        text = _EXTRA_BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _rework(parts: list[str], names: list[str], found: str, special: set[str]) -> bool:
    """Hide invisible elements, keep <pre> layout, spell out links; False if re-parse needed.

    ``found`` is every tag name between NULs, as ``html_to_text`` built it.
    """
    for name in ("style", "script", "title"):  # their content is text, never tags
        if name in special and not _hide_raw_text(parts, names, _indexes(found, name), name):
            return False
    if "head" in special:
        for start in _indexes(found, "head"):
            _hide(parts, names, start, _head_end(parts, names, start))
    if "template" in special:
        for start in _indexes(found, "template"):
            if names[start] == "template":  # not hidden yet inside another one
                _hide(parts, names, start, _closing(names, start, "template"))
    if "pre" in special:
        _keep_preformatted(parts, names)
    if "a" in special:
        _spell_out_links(parts, names, _indexes(found, "a"))
    return True


def _indexes(found: str, name: str) -> list[int]:
    """Where the tag ``name`` occurs in the list of tags that ``found`` joins with NULs."""
    needle = f"\0{name}\0"
    indexes: list[int] = []
    at = found.find(needle)
    while at >= 0:
        indexes.append(found.count("\0", 0, at))
        at = found.find(needle, at + 1)
    return indexes


def _closing(names: list[str], start: int, name: str) -> int:
    """Index of the tag that closes ``names[start]``; past the last tag when unclosed."""
    end = f"/{name}"
    for index in range(start + 1, len(names)):
        if names[index] == end:
            return index
    return len(names)


_HEAD_CONTENT = frozenset(
    {"meta", "link", "base", "title", "style", "script", "noscript", "template", "", "/noscript"}
    | {"/title", "/style", "/script", "/template"}
)


def _head_end(parts: list[str], names: list[str], start: int) -> int:
    """Where the head starting at ``start`` ends: at ``</head>``, or as browsers end it,
    before the first tag or text that belongs in the body."""
    for index in range(start, len(names)):
        if index > start and names[index] not in _HEAD_CONTENT:
            return index if names[index] == "/head" else index - 1
        if parts[3 * index + 3].strip():
            return index
    return len(names)


def _hide(parts: list[str], names: list[str], start: int, end: int) -> None:
    """Drop tags ``start`` to ``end`` and the text between them (``end`` may be past the
    last tag: an element never closed hides everything after it)."""
    for index in range(start, min(end + 1, len(names))):
        names[index] = ""
        parts[3 * index + 2] = ""
    for index in range(start, min(end, len(names))):
        parts[3 * index + 3] = ""  # the text after tag ``index``


def _hide_raw_text(parts: list[str], names: list[str], starts: list[int], name: str) -> bool:
    for start in starts:
        if start + 1 >= len(names) or names[start + 1] != f"/{name}":
            return False  # "<" inside a script or style: re-parse without them
        _hide(parts, names, start, start + 1)
    return True


def _keep_preformatted(parts: list[str], names: list[str]) -> None:
    depth = 0
    for index, name in enumerate(names):
        depth += (name == "pre") - (name == "/pre")
        if depth > 0:
            text = parts[3 * index + 3].replace("\r\n", "\n").replace("\t", "    ")
            parts[3 * index + 3] = text.replace(" ", _KEPT_SPACE).replace("\n", _BREAK)


def _spell_out_links(parts: list[str], names: list[str], starts: list[int]) -> None:
    for start in starts:
        end = _closing(names, start, "a")
        found = _HREF.search(parts[3 * start + 2]) if end < len(names) else None
        if found is None or found.lastindex is None:
            continue
        url = " ".join(found.group(found.lastindex).split())
        label = " ".join("".join(parts[3 * start + 3 : 3 * end + 1 : 3]).split())
        if _url_worth_showing(url, label):
            parts[3 * end] = f"{parts[3 * end]} ({url})" if label else url


def _url_worth_showing(url: str, label: str) -> bool:
    if not url or url.startswith("#") or url.lower().startswith(("javascript:", "cid:")):
        return False
    shown = html.unescape(url)
    bare = shown[7:] if shown.lower().startswith("mailto:") else shown
    return html.unescape(label) not in (shown, bare)


# ---------------------------------------------------------------------------------------------
# Header fields


def _ascii_header(name: str, value: str) -> str:
    """``Name: value`` folded before spaces so that lines keep to 78 where the words allow."""
    line = f"{name}: {value}"
    lines: list[str] = []
    start = len(name) + 2  # never fold right after the colon
    while len(line) > _LINE:
        cut = line.rfind(" ", start + 1, _LINE + 1)
        while cut > start + 1 and line[cut - 1] == " ":  # fold before a run of spaces
            cut -= 1
        if cut <= start or not line[cut:].strip():
            break  # no space to fold at: the caller decides
        lines.append(line[:cut])
        line = line[cut:]
        start = 1
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _needs_encoding(text: str) -> bool:
    """Whether text cannot go into a header as it is and must become encoded-words."""
    return not (text.isascii() and text.isprintable()) or "=?" in text or text[:1] == " "


def _encoded_words(text: str, first_room: int) -> list[str]:
    """RFC 2047 encoded-words (UTF-8, base64), the first fitting ``first_room`` characters.

    Words break between characters, never inside one; each is at most 72 characters, so
    that every further word fits a continuation line.
    """
    raw = text.encode("utf-8", "replace")
    words: list[str] = []
    take = min(45, (first_room - 12) // 4 * 3)  # bytes: 4 base64 characters per 3
    start = 0
    while start < len(raw) or not words:
        end = min(start + take, len(raw))
        while end < len(raw) and raw[end] & 0xC0 == 0x80:  # not inside a UTF-8 sequence
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(raw[start:end]).decode('ascii')}?=")
        start = end
        take = 45
    return words


def _fold_items(head: str, items: Sequence[str], separator: str) -> str:
    """Join items after ``head``, starting a continuation line when one would pass 78."""
    lines: list[str] = []
    line = head + items[0]
    for item in items[1:]:
        if len(line) + len(separator) + len(item) > _LINE:
            lines.append(line + separator.rstrip())
            line = " " + item
        else:
            line = line + separator + item
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def _unstructured_header(name: str, value: str) -> str:
    """A free-text field such as Subject: as it is when ASCII allows, else encoded-words."""
    if not _needs_encoding(value):
        field = _ascii_header(name, value)
        if len(field) <= _LINE + 2 or max(map(len, field.split("\r\n"))) <= _LINE:
            return field
    words = _encoded_words(value, _LINE - len(name) - 2)
    return _fold_items(f"{name}: ", words, " ")


def _shown_address(address: MailAddress, smtputf8: bool) -> str:
    return address.address if smtputf8 else address.envelope


def _from_header(address: str, display_name: str) -> str:
    """``From: "Display Name" <address>``; encoded-words for what ASCII cannot carry."""
    if not display_name:
        return f"From: {address}\r\n"
    quoted = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _needs_encoding(display_name) and len(quoted) <= _LINE - 6:
        return _fold_items("From: ", [quoted, f"<{address}>"], " ")
    return _fold_items("From: ", [*_phrase_words(display_name), f"<{address}>"], " ")


_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_LONGEST_ATOM = 60  # longer words become encoded-words, which can be folded


def _phrase_words(phrase: str) -> list[str]:
    """A display name as atoms and encoded-words, split at its spaces.

    Words that are plain atoms stay readable; runs of other words become encoded-words.
    Splitting at the name's own spaces keeps the name exact for parsers that (unlike RFC
    2047) keep the white space between two encoded-words in an address header.
    """
    tokens = phrase.split(" ")
    if "" in tokens:  # leading, trailing or repeated spaces: only encoded-words keep them
        return _encoded_words(phrase, _LINE - 6)
    words: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) <= _LONGEST_ATOM and _ATOM.fullmatch(token) and "=?" not in token:
            if run:
                words += _encoded_words(" ".join(run), _LINE - 6)
                run = []
            words.append(token)
        else:
            run.append(token)
    if run:
        words += _encoded_words(" ".join(run), _LINE - 6)
    return words


def _address_header(name: str, addresses: Sequence[str]) -> str:
    return _fold_items(f"{name}: ", [f"{a}," for a in addresses[:-1]] + [addresses[-1]], " ")


def _param(name: str, value: str, room: int) -> list[str]:
    """One MIME parameter, RFC 2231 encoded when not ASCII, split into continuations."""
    if _needs_encoding(value):
        units = _percent_encoded_chars(value)
        if len(name) + 9 + sum(map(len, units)) <= room:
            return [f"{name}*=utf-8''{''.join(units)}"]
        segments = _segments(units, room - len(name) - 8, first_extra=7)
        segments[0] = "utf-8''" + segments[0]
        return [f"{name}*{n}*={segment}" for n, segment in enumerate(segments)]
    units = [f"\\{char}" if char in '\\"' else char for char in value]
    if len(name) + 3 + sum(map(len, units)) <= room:
        return [f'{name}="{"".join(units)}"']
    segments = _segments(units, room - len(name) - 8, first_extra=0)
    return [f'{name}*{n}="{segment}"' for n, segment in enumerate(segments)]


def _segments(units: Sequence[str], room: int, *, first_extra: int) -> list[str]:
    """Pack units (characters, escapes or percent-encoded characters) into segments."""
    segments: list[str] = []
    current = ""
    limit = room - first_extra
    for unit in units:
        if current and len(current) + len(unit) > limit:
            segments.append(current)
            current = ""
            limit = room
        current += unit
    segments.append(current)
    return segments


_ATTRIBUTE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~"
)


def _percent_encoded_chars(value: str) -> list[str]:
    """Each character percent-encoded as RFC 2231 asks; one list item per character."""
    return [
        char
        if char in _ATTRIBUTE_CHARS
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "replace"))
        for char in value
    ]


def _field_with_params(name: str, value: str, params: Sequence[tuple[str, str]]) -> str:
    """``Name: value; p1=...; p2=...`` with each parameter on its own line when long."""
    rendered = [item for key, val in params for item in _param(key, val, _LINE - 2)]
    line = "; ".join([f"{name}: {value}", *rendered])
    if len(line) <= _LINE:
        return line + "\r\n"
    return ";\r\n ".join([f"{name}: {value}", *rendered]) + "\r\n"


# ---------------------------------------------------------------------------------------------
# MIME parts

# A part is its header block (each field ending CRLF, no blank line) and its body chunks,
# the last of which ends with CRLF. Bytes chunks are ours; memoryviews are attachments.
_Chunk = bytes | memoryview


@dataclass(frozen=True)
class _Part:
    headers: bytes
    body: tuple[_Chunk, ...]


def _text_part(text: str, subtype: str) -> _Part:
    """A UTF-8 text part in 7bit, quoted-printable or base64, whichever suits it."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    raw = text.encode("utf-8", "replace")
    if (
        raw.isascii()
        and (len(raw) <= _MAX_LINE or _longest_line(raw) <= _MAX_LINE)
        and b"\0" not in raw  # 7bit forbids NUL (RFC 2045)
    ):
        encoding, body = b"7bit", raw.replace(b"\n", _CRLF)
    elif (len(raw) - len(text)) * 10 < len(raw):
        encoding, body = b"quoted-printable", binascii.b2a_qp(raw).replace(b"\n", _CRLF)
    else:
        encoding, body = b"base64", _base64_lines(raw)
    headers = (
        b"Content-Type: text/" + subtype.encode("ascii") + b"; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: " + encoding + b"\r\n"
    )
    return _Part(headers, (body,))


def _longest_line(raw: bytes) -> int:
    return max(map(len, raw.split(b"\n")))


def _attachment_part(attachment: AttachmentPart, disposition: str) -> _Part:
    content_type = _field_with_params(
        "Content-Type", attachment.content_type, [("name", attachment.filename)]
    )
    headers = [
        content_type,
        "Content-Transfer-Encoding: base64\r\n",
        _field_with_params("Content-Disposition", disposition, [("filename", attachment.filename)]),
    ]
    if attachment.content_id is not None:
        headers.append(f"Content-ID: <{attachment.content_id}>\r\n")
    return _Part("".join(headers).encode("ascii"), (memoryview(attachment.encoded),))


class _Boundaries:
    """Random multipart boundaries, one per nesting level, never a prefix of another."""

    def __init__(self) -> None:
        self._token = secrets.token_hex(12)
        self._level = 0

    def new(self) -> str:
        self._level += 1
        return f"=_{self._level}_{self._token}"


def _multipart(
    subtype: str, children: Sequence[_Part], boundaries: _Boundaries, type_param: str = ""
) -> _Part:
    boundary = boundaries.new()
    while any(_contains(child, boundary) for child in children):
        boundary = boundaries.new()
    delimiter = f"--{boundary}\r\n".encode("ascii")
    body: list[_Chunk] = []
    for child in children:
        body += [delimiter, child.headers, _CRLF, *child.body, _CRLF]
    body.append(f"--{boundary}--\r\n".encode("ascii"))
    extra = f' type="{type_param}";' if type_param else ""
    headers = f'Content-Type: multipart/{subtype};{extra} boundary="{boundary}"\r\n'
    if len(headers) > _LINE + 2:
        headers = f'Content-Type: multipart/{subtype};{extra}\r\n boundary="{boundary}"\r\n'
    return _Part(headers.encode("ascii"), tuple(body))


def _contains(part: _Part, boundary: str) -> bool:
    """Whether the boundary occurs in one of our own chunks (base64 never holds "=_")."""
    needle = boundary.encode("ascii")
    return any(isinstance(chunk, bytes) and needle in chunk for chunk in part.body)


def _generated_text(html_body: str) -> str:
    """The text alternative; the same HTML sent to many recipients is converted once."""
    if len(html_body) > _CACHED_HTML:
        return html_to_text(html_body)
    return _cached_html_to_text(html_body)


_CACHED_HTML = 256 * 1024
_cached_html_to_text = functools.lru_cache(maxsize=64)(html_to_text)


def _structure(
    text_body: str | None,
    html_body: str | None,
    attachments: Sequence[AttachmentPart],
) -> _Part:
    """mixed[ alternative[ text, related[ html, inline images ] ], attachments ]."""
    boundaries = _Boundaries()
    has_html = html_body is not None
    inline = [a for a in attachments if a.content_id is not None and has_html]
    files = [a for a in attachments if a.content_id is None or not has_html]
    if html_body is not None and text_body is None:
        text_body = _generated_text(html_body)
    body = _text_part(text_body or "", "plain")
    if html_body is not None:
        html_part = _text_part(html_body, "html")
        if inline:
            images = [_attachment_part(a, "inline") for a in inline]
            html_part = _multipart("related", [html_part, *images], boundaries, "text/html")
        body = _multipart("alternative", [body, html_part], boundaries)
    if files:
        parts = [_attachment_part(a, "attachment") for a in files]
        body = _multipart("mixed", [body, *parts], boundaries)
    return body


# ---------------------------------------------------------------------------------------------
# The message


def build_mail(
    *,
    sender: SenderSettings,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress] = (),
    bcc: Sequence[MailAddress] = (),
    subject: str,
    html_body: str | None,
    text_body: str | None,
    message_id: str,
    date: datetime,
    attachments: Sequence[AttachmentPart] = (),
) -> OutgoingMail:
    """Compose a message; Bcc recipients get the mail but never appear in its headers.

    An HTML body without ``text_body`` gets a generated text alternative. Raises
    ``ValueError`` subclasses for a subject with line breaks or control characters, a
    subject over 500 characters, no recipient, or a malformed ``message_id``.
    """
    if not (subject.isascii() and subject.isprintable()):  # the quick answer for most
        check_header_value(subject)
    if len(subject) > MAX_SUBJECT:
        raise MailContentError(f"must be at most {MAX_SUBJECT} characters", "subject")
    if not (to or cc or bcc):
        raise MailContentError("a message needs at least one recipient", "recipients")
    smtputf8 = any(a.needs_smtputf8 for a in (sender.address, *to, *cc, *bcc))
    head = _headers(sender, to, cc, subject, _check_message_id(message_id), date, smtputf8)
    body = _structure(text_body, html_body, attachments)
    return OutgoingMail(
        envelope_from=sender.address.envelope,
        recipients=tuple(dict.fromkeys(a.envelope for a in (*to, *cc, *bcc))),
        message_id=message_id,
        smtputf8=smtputf8,
        chunks=tuple(_coalesce([head, body.headers, _CRLF, *body.body])),
    )


def _headers(
    sender: SenderSettings,
    to: Sequence[MailAddress],
    cc: Sequence[MailAddress],
    subject: str,
    message_id: str,
    date: datetime,
    smtputf8: bool,
) -> bytes:
    fields = [
        _from_header(_shown_address(sender.address, smtputf8), sender.display_name),
        _address_header("To", [_shown_address(a, smtputf8) for a in to])
        if to
        else ("To: undisclosed-recipients:;\r\n" if not cc else ""),
        _address_header("Cc", [_shown_address(a, smtputf8) for a in cc]) if cc else "",
        _unstructured_header("Subject", subject),
        f"Date: {format_datetime(date)}\r\n",
        f"Message-ID: {message_id}\r\n",
        "MIME-Version: 1.0\r\n",
    ]
    return "".join(fields).encode("utf-8")


def _coalesce(chunks: Sequence[_Chunk]) -> Iterator[_Chunk]:
    """Join neighbouring chunks of our own; attachment memoryviews stay as they are."""
    pending: list[bytes] = []
    for chunk in chunks:
        if isinstance(chunk, bytes):
            pending.append(chunk)
            continue
        if pending:
            yield b"".join(pending)
            pending = []
        yield chunk
    if pending:
        yield b"".join(pending)


# ---------------------------------------------------------------------------------------------
# The test mail


def build_test_mail(sender: SenderSettings, to: MailAddress, now: datetime) -> OutgoingMail:
    """The test mail: the SPEC's sentence in HTML, a plain-text alternative, a safe subject."""
    where = f"{sender.smtp_host}:{sender.port} ({_ENCRYPTION_NAMES[sender.encryption.value]})"
    text = (
        f"{TEST_MAIL_SENTENCE}\n\n"
        f"This mail was sent by postdesk from {sender.display_name} <{sender.address}> "
        f"through {where}.\n"
    )
    body = (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<p>{TEST_MAIL_SENTENCE}</p>\n"
        f"<p>This mail was sent by postdesk from {html.escape(sender.display_name)} "
        f"&lt;{html.escape(str(sender.address))}&gt; through {html.escape(where)}.</p>\n"
        "</body></html>\n"
    )
    return build_mail(
        sender=sender,
        to=[to],
        subject=TEST_MAIL_SUBJECT,
        html_body=body,
        text_body=text,
        message_id=new_message_id(sender.address),
        date=now,
    )


_ENCRYPTION_NAMES = {"ssl": "SSL Encryption", "tls": "TLS Encryption", "none": "No Encryption"}
