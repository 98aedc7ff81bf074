"""The bytes of the DATA phase: CRLF line ends, dot-stuffing and the final dot, in pieces.

A message arrives as bytes or as a sequence of chunks (the builder streams attachments
from storage as memoryviews); it is never joined into one copy, only walked in pieces.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

MessageData = bytes | Sequence[bytes | memoryview]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_PIECE = 64 * 1024  # what one sendall() pushes; memoryview chunks are copied this much at a time


def measure(message: MessageData) -> tuple[int, bool]:
    """The size SIZE declares (line ends counted as CRLF) and whether there are 8-bit bytes."""
    size = 0
    eight_bit = False
    for piece in _crlf_pieces(message):
        size += len(piece)
        eight_bit = eight_bit or not piece.isascii()
    return size, eight_bit


def data_pieces(message: MessageData) -> Iterator[bytes]:
    """The DATA stream: CRLF line ends, dot-stuffed, ending with the final dot line.

    Pieces are at most about 64 KiB; small ones are gathered so that a short message
    goes out in one write.
    """
    gathered: list[bytes] = []
    size = 0
    at_line_start = True
    for piece in _crlf_pieces(message):
        if at_line_start and piece.startswith(b"."):
            piece = b"." + piece
        if b"\n." in piece:
            piece = piece.replace(b"\n.", b"\n..")
        at_line_start = piece.endswith(b"\n")
        gathered.append(piece)
        size += len(piece)
        if size >= _PIECE:
            yield b"".join(gathered)
            gathered, size = [], 0
    gathered.append(b".\r\n" if at_line_start else b"\r\n.\r\n")
    yield b"".join(gathered)


def _crlf_pieces(message: MessageData) -> Iterator[bytes]:
    """The message in pieces with CRLF line ends, a CR at a piece's end held for the next."""
    held_cr = False
    for piece in _raw_pieces(message):
        if held_cr:
            piece = b"\r" + piece
            held_cr = False
        if piece.endswith(b"\r"):
            held_cr = True
            piece = piece[:-1]
        if not _only_crlf(piece):
            piece = _LINE_END.sub(b"\r\n", piece)
        if piece:
            yield piece
    if held_cr:
        yield b"\r\n"


def _only_crlf(piece: bytes) -> bool:
    crlf = piece.count(b"\r\n")
    return piece.count(b"\n") == crlf and piece.count(b"\r") == crlf


def _raw_pieces(message: MessageData) -> Iterator[bytes]:
    """Bytes of at most 64 KiB; a large chunk is copied one piece at a time, never whole."""
    chunks = (message,) if isinstance(message, bytes | bytearray | memoryview) else message
    for chunk in chunks:
        if isinstance(chunk, bytes) and len(chunk) <= _PIECE:
            yield chunk
            continue
        view = memoryview(chunk).cast("B")
        for start in range(0, view.nbytes, _PIECE):
            yield bytes(view[start : start + _PIECE])
