"""Plain-text renderings of HTML bodies, as the text alternative of an HTML mail."""

from __future__ import annotations

import html
import re

__all__ = ["CUT_NOTE", "MAX_CONVERTED_HTML", "html_to_text"]

# One re.split() tokenises every tag; the tag names are mapped to line-break markers with
# C-level map() and joined, so the cost per tag stays a few dozen nanoseconds. Markers are
# control characters that str.split() keeps (not whitespace): "\x01" a block boundary (one
# line break however many meet), "\x02" a paragraph boundary (a blank line), "\x03" a <br>,
# "\x04" a space that must survive (inside <pre>).

_BLOCK, _PARAGRAPH, _BREAK, _KEPT_SPACE = "\x01", "\x02", "\x03", "\x04"
_MARKER_CHARACTERS = (_BLOCK, _PARAGRAPH, _BREAK, _KEPT_SPACE)
_NO_MARKERS = dict.fromkeys(map(ord, _MARKER_CHARACTERS))
_TAG = re.compile(r"<(/?[A-Za-z!?][A-Za-z0-9:_-]*+)([^>]*+)>")
# The same with quoted attribute values, which may hold ">"; a quote that nothing closes is
# an ordinary character. Slower: used only when _TAG left a ">" in the text.
_QUOTED_TAG = re.compile(
    r"""<(/?[A-Za-z!?][A-Za-z0-9:_-]*+)((?:[^>"']++|"[^"]*+"|'[^']*+'|["'])*+)>"""
)
# Both tag patterns are split over the HTML up to its last ">" only: there every "<" and
# name starts a tag that matches (at the latest at that ">"), so the regex engine never
# scans the rest of the input for a ">" that is not there and then tries again at the next
# "<" — which made an unclosed "<a" repeated a few thousand times take seconds. Each
# character is then read a bounded number of times: the work is linear in the input.
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_HREF = re.compile(r"""(?<![\w-])href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_RAW_TEXT = re.compile(r"<(script|style|title)\b.*?(?:</\1\s*>|\Z)", re.I | re.S)
# Runs of markers: a paragraph mark (with any block marks after it) makes a blank line,
# a run of block marks one line break. Both patterns start with a fixed character, which
# the regex engine finds with a fast scan.
_PARAGRAPH_RUN = re.compile("\x02[ \x01\x02]*+")
_BLOCK_RUN = re.compile("\x01[ \x01]*+")
_EXTRA_BLANK_LINES = re.compile("\n\n\n++")

# The most HTML converted, in characters. A report mail is a few to a few hundred KB, so
# this converts every real one whole, while 1 MiB, however crafted, converts in a fraction
# of a second; the text of a longer body is cut there and says so, so that one huge body
# cannot hold a worker for long. The HTML part itself is always sent whole.
MAX_CONVERTED_HTML = 1024 * 1024
CUT_NOTE = "[The rest of this message is in its HTML version.]"


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
    Only the first ``MAX_CONVERTED_HTML`` characters are converted; the text of a longer
    body ends with ``CUT_NOTE``.
    """
    if len(body) <= MAX_CONVERTED_HTML:
        return _to_text(body, reparse=True)
    cut = body[:MAX_CONVERTED_HTML]
    if cut.rfind("<") > cut.rfind(">"):  # not half a tag
        cut = cut[: cut.rfind("<")]
    return f"{_to_text(cut, reparse=True)}\n\n{CUT_NOTE}".lstrip()


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
    end = body.rfind(">") + 1  # no tag after the last ">"
    tagged = body[:end]
    parts = _TAG.split(tagged)
    # Each tag ends at its first ">": any other ">" is in the text, or in a quoted attribute
    # value that _TAG cut short.
    if tagged.count(">") > len(parts) // 3:
        parts = _QUOTED_TAG.split(tagged)
    parts[-1] += body[end:]
    return parts


def _line_breaks(text: str) -> str:
    """Turn the markers of a whitespace-collapsed text into line breaks."""
    text = text.replace(f" {_PARAGRAPH}", _PARAGRAPH)
    if f"{_BLOCK}{_PARAGRAPH}" in text:  # a paragraph mark absorbs the block marks before it
        *paragraphs, last = text.split(_PARAGRAPH)
        text = _PARAGRAPH.join([*(part.rstrip(_BLOCK) for part in paragraphs), last])
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
        _spell_out_links(parts, _links(names, found))
    return True


def _indexes(found: str, name: str) -> list[int]:
    """Where the tag ``name`` occurs in the list of tags that ``found`` joins with NULs."""
    needle = f"\0{name}\0"
    indexes: list[int] = []
    index, counted = 0, 0  # the NULs before ``counted`` number ``index``
    at = found.find(needle)
    while at >= 0:
        index += found.count("\0", counted, at)
        counted = at
        indexes.append(index)
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


def _links(names: list[str], found: str) -> list[tuple[int, int]]:
    """``(<a>, </a>)`` tag indexes of each visible link closed before the next one opens.

    Links do not nest: an ``<a>`` whose ``</a>`` comes only after another ``<a>`` is left
    as it reads. One walk over both lists, however many links are left open.
    """
    starts = [index for index in _indexes(found, "a") if names[index] == "a"]
    if not starts:  # every <a> was hidden (inside a <template>, say)
        return []
    ends = (index for index in _indexes(found, "/a") if names[index] == "/a")
    end, never = -1, len(names)
    links: list[tuple[int, int]] = []
    for start, following in zip(starts, [*starts[1:], never], strict=True):
        while end < start:
            end = next(ends, never)
        if end < following:
            links.append((start, end))
    return links


def _spell_out_links(parts: list[str], links: list[tuple[int, int]]) -> None:
    for start, end in links:
        found = _HREF.search(parts[3 * start + 2])
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
