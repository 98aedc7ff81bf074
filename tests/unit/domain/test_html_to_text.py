"""The plain-text alternative generated from an HTML body."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postdesk.domain.html_text import CUT_NOTE, MAX_CONVERTED_HTML, html_to_text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            "<h1>Sales</h1><p>First paragraph.</p><p>Second.</p>",
            "Sales\n\nFirst paragraph.\n\nSecond.",
        ),
        ("<p>one<br>two<br/>three<BR />four</p>", "one\ntwo\nthree\nfour"),
        ("<p>one<br><br>two</p>", "one\n\ntwo"),
        ("<div>one</div><div>two</div><div><div>three</div></div>", "one\ntwo\nthree"),
        (
            "<div>line</div><div><br></div><div>after a blank line</div>",
            "line\n\nafter a blank line",
        ),
        (
            "<ul><li>apples</li><li>pears</li></ul><ol><li>first</li></ol>",
            "- apples\n- pears\n\n- first",
        ),
        (
            "<table><tr><th>Region</th><th>Sales</th></tr>"
            "<tr><td>North</td><td>1,200</td></tr><tr><td>South</td><td>900</td></tr></table>",
            "Region Sales\nNorth 1,200\nSouth 900",
        ),
        ("  <p>\n   spread   over\n\tlines  </p>\n", "spread over lines"),
        ("Plain text, no tags.", "Plain text, no tags."),
        ("", ""),
    ],
    ids=[
        "paragraphs",
        "line-breaks",
        "two-breaks",
        "blocks",
        "gmail-blank-line",
        "lists",
        "table",
        "whitespace",
        "no-tags",
        "empty",
    ],
)
def test_layout(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        (
            '<a href="https://bi.example.com/r/42">the report</a>',
            "the report (https://bi.example.com/r/42)",
        ),
        (
            "<a href='https://x.example/a?b=1&amp;c=2'>link</a>",
            "link (https://x.example/a?b=1&c=2)",
        ),
        ("<a class=btn href=https://x.example/>Open</a>", "Open (https://x.example/)"),
        ('<a href="https://x.example/">https://x.example/</a>', "https://x.example/"),
        ('<a href="mailto:bi@example.com">bi@example.com</a>', "bi@example.com"),
        ('<a href="mailto:bi@example.com">write to us</a>', "write to us (mailto:bi@example.com)"),
        ('<a href="#top">Back to top</a>', "Back to top"),
        ('<a href="javascript:void(0)">Menu</a>', "Menu"),
        ('<a href="https://x.example/"><img src="cid:logo"></a>', "https://x.example/"),
        ('<a name="anchor">Section</a>', "Section"),
        ('<a data-href="https://no.example/">Label</a>', "Label"),
        ('<A HREF="https://x.example/">Shouting</A>', "Shouting (https://x.example/)"),
        ('<a href="https://x.example/">never closed', "never closed"),
        (
            '<p>See <a href="https://x.example/"><b>bold</b> link</a>.</p>',
            "See bold link (https://x.example/).",
        ),
    ],
)
def test_links_read_text_then_url(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Fish &amp; chips &lt;3 &#8364;5 &euro;6 &#x4E2D;</p>", "Fish & chips <3 €5 €6 中"),
        ("<p>a&nbsp;b&nbsp;&nbsp;c</p>", "a b  c"),
        ("<p>a &gt; b and c > d</p>", "a > b and c > d"),
        ("<p>if a < b then</p>", "if a < b then"),
    ],
)
def test_entities_are_decoded(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        "<html><head><title>Title</title><style>p{color:red}</style></head><body><p>Body</p></body></html>",
        "<!DOCTYPE html><html><body><p>Body</p></body></html>",
        '<?xml version="1.0"?><p>Body</p>',
        "<p>Body</p><script>if (a<b && c>d) { alert('<p>x</p>') }</script>",
        "<SCRIPT type='text/javascript'>var x = '<div>';</SCRIPT><p>Body</p>",
        "<Style>p > b { color: red }</Style><p>Body</p>",
        "<!-- a comment with <p>tags</p> --><p>Body</p>",
        "<!--[if mso]><table><tr><td>Outlook only</td></tr></table><![endif]--><p>Body</p>",
        "<template><p>Not shown</p></template><p>Body</p>",
        "<p>Body</p><!-- unterminated comment <p>hidden</p>",
        '<p>Body</p><o:p></o:p><img alt="x > y" src="cid:logo">',
        "<title>Only a title outside head</title><p>Body</p>",
    ],
    ids=[
        "head",
        "doctype",
        "xml-declaration",
        "script-with-lt",
        "uppercase-script",
        "mixed-case-style",
        "comment",
        "conditional-comment",
        "template",
        "unterminated-comment",
        "office-tags-and-quoted-gt",
        "stray-title",
    ],
)
def test_invisible_content_is_dropped(html: str) -> None:
    assert html_to_text(html) == "Body"


@pytest.mark.parametrize(
    "html",
    [
        "<style>p { color: red }</style>After",
        "<title>Title</title>After",
        "<head><title>T</title><style>x</style></head>After",
        "<head><meta charset=utf-8>After",
        "<html><head><title>T</title><body>After</body></html>",
        "<head><link rel=stylesheet href=x.css></head>\n<p>After</p>",
        "<template>hidden</template>After",
    ],
)
def test_text_right_after_a_hidden_element_stays(html: str) -> None:
    assert html_to_text(html) == "After"


def test_an_unclosed_style_hides_the_rest() -> None:
    assert html_to_text("<p>Before</p><style>p { color: red }") == "Before"


def test_preformatted_text_keeps_its_lines_and_spaces() -> None:
    html = "<p>Totals:</p><pre>Region   Sales\nNorth    1,200\n  South    900</pre><p>End</p>"
    assert html_to_text(html) == "Totals:\n\nRegion   Sales\nNorth    1,200\n  South    900\n\nEnd"


def test_uppercase_tags_from_office_tools() -> None:
    assert html_to_text(
        "<P>One</P><P>Two<BR>Three</P><TABLE><TR><TD>a</TD><TD>b</TD></TR></TABLE>"
    ) == ("One\n\nTwo\nThree\n\na b")


def test_attribute_values_with_angle_brackets_do_not_leak() -> None:
    html = '<p title="a > b">Text</p><img alt=\'1 > 0\' src="x.png"><p data-x="<b>">More</p>'
    assert html_to_text(html) == "Text\n\nMore"


def test_non_ascii_text_and_wide_spaces() -> None:
    html = "<p>您好，<br>本月销售报表已生成。</p><p>Grüße\u3000aus München</p>"
    assert html_to_text(html) == "您好，\n本月销售报表已生成。\n\nGrüße aus München"


# --- properties ---------------------------------------------------------------------------

HIDDEN_MARK = "zzhidden"  # never a generated word: words are at most 12 characters, no "zz" prefix
ATTRIBUTE_MARK = "_attr_"  # words have no underscore

words = st.text(
    st.characters(whitelist_categories=("Lu", "Ll", "Lo", "Nd")), min_size=1, max_size=12
).filter(lambda w: not w.lower().startswith("zz"))
tag_names = st.sampled_from(
    [
        "p",
        "div",
        "span",
        "b",
        "I",
        "td",
        "tr",
        "table",
        "li",
        "ul",
        "h2",
        "a",
        "font",
        "EM",
        "blockquote",
    ]
)
attribute_values = st.sampled_from(
    [
        f'"{ATTRIBUTE_MARK}1"',
        f"'{ATTRIBUTE_MARK} > 2'",
        f'"{ATTRIBUTE_MARK} < 3"',
        f"{ATTRIBUTE_MARK}4",
    ]
)


@st.composite
def elements(draw: st.DrawFn, depth: int = 0) -> tuple[str, list[str]]:
    """An HTML fragment and the visible words in it, in order."""
    pieces: list[str] = []
    visible: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["word", "word", "element", "hidden", "break"]))
        if kind == "word" or (kind == "element" and depth >= 3):
            word = draw(words)
            pieces.append(f" {word} ")
            visible.append(word)
        elif kind == "element":
            name = draw(tag_names)
            attribute = draw(attribute_values)
            inner, inner_words = draw(elements(depth + 1))
            pieces.append(f"<{name} title={attribute}>{inner}</{name}>")
            visible += inner_words
        elif kind == "hidden":
            name = draw(st.sampled_from(["script", "style", "title", "template"]))
            # Only script, style and title hold text that merely looks like tags.
            tricky = "if (a<b) { x = '<p>' }" if name != "template" else "<b>x</b>"
            content = draw(st.sampled_from([tricky, "a { b: c }", ""]))
            pieces.append(f"<{name}>{HIDDEN_MARK} {content}</{name}>")
        else:
            pieces.append(
                draw(st.sampled_from(["<br>", "<br/>", "<hr>", "<!-- c <b> -->", "&nbsp;"]))
            )
    return "".join(pieces), visible


@settings(max_examples=300)
@given(elements())
def test_never_returns_markup_and_keeps_the_visible_words(fragment: tuple[str, list[str]]) -> None:
    html, visible = fragment
    text = html_to_text(html)
    assert "<" not in text and ">" not in text
    assert HIDDEN_MARK not in text
    assert ATTRIBUTE_MARK not in text
    position = 0
    for word in visible:
        found = text.find(word, position)
        assert found >= 0, (word, text)
        position = found + len(word)


@given(st.text(max_size=500))
def test_any_input_gives_clean_text(html: str) -> None:
    text = html_to_text(html)
    assert text == text.strip()
    assert "\n\n\n" not in text
    assert not any(line != line.strip(" ") for line in text.split("\n") if line.strip())


# --- bounded, linear work -----------------------------------------------------------------


def test_a_long_body_is_converted_up_to_the_limit_and_says_so() -> None:
    row = "<p>Row</p>\n"
    text = html_to_text(row * (2 * MAX_CONVERTED_HTML // len(row)))
    assert text.endswith(f"Row\n\n{CUT_NOTE}")
    assert text.count("Row") == MAX_CONVERTED_HTML // len(row)
    assert "<" not in text  # the cut leaves no half tag behind


def test_a_body_at_the_limit_is_converted_whole() -> None:
    html = "<p>Row</p>" + " " * (MAX_CONVERTED_HTML - 10)
    assert html_to_text(html) == "Row"


def best_time(html: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()  # not the time other processes take the CPU
        html_to_text(html)
        best = min(best, time.process_time() - started)
    return best


# Four times the input takes about four times as long when the work is linear, sixteen
# times when it is quadratic. A ratio of CPU times (the best of several runs, measured up
# to five times) absorbs the speed of the machine and most of its noise.
GROWTH_LIMIT = 8.0


def growth(html: Callable[[int], str], n: int) -> float:
    small, large = html(n), html(4 * n)
    ratios = []
    for _ in range(5):
        ratios.append(best_time(large) / best_time(small))
        if ratios[-1] < GROWTH_LIMIT:
            break
    return min(ratios)


ADVERSARIAL = {
    "unclosed-tags": "<a",
    "unclosed-comments": "<!--",
    "unclosed-quotes": '<a href="',
    "quoted-gt-then-a-stray-quote": '<a t="x>" ',
    "links-closed-once": "<a href=x>y",
    "unclosed-links": "<a href=x>",
    "blocks-before-a-paragraph": "<div>",
    "unclosed-scripts": "<script>",
    "unclosed-end-tags": "</script ",
    "heads": "<head><meta x>",
    "entity-fragments": "&#x4E&am&",
}
ADVERSARIAL_ENDS = {
    "quoted-gt-then-a-stray-quote": '" a > b',
    "links-closed-once": "</a>",
    "blocks-before-a-paragraph": "<p>x",
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_input_takes_linear_time(name: str) -> None:
    unit, end = ADVERSARIAL[name], ADVERSARIAL_ENDS.get(name, "")
    assert growth(lambda n: unit * n + end, 40_000 // len(unit)) < GROWTH_LIMIT


def test_deep_nesting_takes_linear_time() -> None:
    def nested(n: int) -> str:
        return '<div><span title="a > b">' * n + "x" + "</span></div>" * n

    assert growth(nested, 1_000) < GROWTH_LIMIT


html_pieces = st.sampled_from(
    [
        "<", ">", '"', "'", "=", "&", ";", "&amp", "&#", "&#x4E", "&nbsp;", " ", "\n", "x",
        "word", "<a", "<a href=", '<a href="https://x.example/">', "</a>", "<p>", "</p>",
        "<div>", "</div>", "<br>", "<li>", "<pre>", "</pre>", "<!--", "-->", "<!DOCTYPE html>",
        "<script>", "</script>", "<style>", "</style>", "<title>", "<head>", "</head>",
        "<template>", "</template>", "<?xml", "<b title='a > b'>", "\x01", "\x02",
    ]
)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.lists(html_pieces, min_size=1, max_size=12).map("".join))
def test_any_html_like_text_converts_in_linear_time(fragment: str) -> None:
    assert isinstance(html_to_text(fragment), str)
    # The same text repeated is where a rescan costs most.
    repeats = max(1, 4_000 // len(fragment))
    assert growth(lambda n: fragment * n, repeats) < GROWTH_LIMIT


@pytest.mark.parametrize(
    ("html", "text"),
    [("<template><a", ""), ("<template><a href=x>y</a></template>z", "z")],
)
def test_links_hidden_inside_a_template_leave_nothing_to_spell_out(html: str, text: str) -> None:
    assert html_to_text(html) == text
