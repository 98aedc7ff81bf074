"""Header fields as CRLF text: folding, RFC 2047 encoded-words, RFC 2231 parameters, addresses."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence

from postdesk.domain.addresses import MailAddress

__all__ = [
    "HEADER_LINE",
    "address_header",
    "field_with_params",
    "from_header",
    "shown_address",
    "unstructured_header",
]

HEADER_LINE = 78  # RFC 5322's recommended limit for header lines; 998 is the hard one


def _ascii_header(name: str, value: str) -> str:
    """``Name: value`` folded before spaces so that lines keep to 78 where the words allow."""
    line = f"{name}: {value}"
    lines: list[str] = []
    start = len(name) + 2  # never fold right after the colon
    while len(line) > HEADER_LINE:
        cut = line.rfind(" ", start + 1, HEADER_LINE + 1)
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
        if len(line) + len(separator) + len(item) > HEADER_LINE:
            lines.append(line + separator.rstrip())
            line = " " + item
        else:
            line = line + separator + item
    lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def unstructured_header(name: str, value: str) -> str:
    """A free-text field such as Subject: as it is when ASCII allows, else encoded-words."""
    if not _needs_encoding(value):
        field = _ascii_header(name, value)
        if len(field) <= HEADER_LINE + 2 or max(map(len, field.split("\r\n"))) <= HEADER_LINE:
            return field
    words = _encoded_words(value, HEADER_LINE - len(name) - 2)
    return _fold_items(f"{name}: ", words, " ")


def shown_address(address: MailAddress, smtputf8: bool) -> str:
    return address.address if smtputf8 else address.envelope


def from_header(address: str, display_name: str) -> str:
    """``From: "Display Name" <address>``; encoded-words for what ASCII cannot carry."""
    if not display_name:
        return f"From: {address}\r\n"
    quoted = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _needs_encoding(display_name) and len(quoted) <= HEADER_LINE - 6:
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
        return _encoded_words(phrase, HEADER_LINE - 6)
    words: list[str] = []
    run: list[str] = []
    for token in tokens:
        if len(token) <= _LONGEST_ATOM and _ATOM.fullmatch(token) and "=?" not in token:
            if run:
                words += _encoded_words(" ".join(run), HEADER_LINE - 6)
                run = []
            words.append(token)
        else:
            run.append(token)
    if run:
        words += _encoded_words(" ".join(run), HEADER_LINE - 6)
    return words


def address_header(name: str, addresses: Sequence[str]) -> str:
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


def field_with_params(name: str, value: str, params: Sequence[tuple[str, str]]) -> str:
    """``Name: value; p1=...; p2=...`` with each parameter on its own line when long."""
    rendered = [item for key, val in params for item in _param(key, val, HEADER_LINE - 2)]
    line = "; ".join([f"{name}: {value}", *rendered])
    if len(line) <= HEADER_LINE:
        return line + "\r\n"
    return ";\r\n ".join([f"{name}: {value}", *rendered]) + "\r\n"
