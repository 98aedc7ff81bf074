"""Attachments and ``MailContentError``: checked metadata and content base64-encoded for the wire.

An attachment is base64-encoded once, when the message is submitted (``encode_attachment``);
every build references those bytes as a separate chunk instead of copying them.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "MAX_CONTENT_ID",
    "MAX_FILENAME",
    "AttachmentPart",
    "MailContentError",
    "base64_lines",
    "check_content_id",
    "check_content_type",
    "decode_base64_attachment",
    "encode_attachment",
    "sanitise_filename",
]

MAX_FILENAME = 200
MAX_CONTENT_ID = 200

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
        encoded=base64_lines(data),
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


def base64_lines(data: bytes) -> bytes:
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
