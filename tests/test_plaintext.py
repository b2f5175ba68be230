"""The index text of markup: `html_to_text` gives exactly the string the lxml.html walk it
replaced gave, for generated fragments and for every field of the real feeds in tests/data.

`reference` below is that walk, kept verbatim as the definition of the text users search: any
difference between it and the fast path is a change in what the index holds.
"""

from __future__ import annotations

import re
from pathlib import Path

import lxml.etree
import lxml.html
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syncd.parse import parse_page
from syncd.plaintext import html_to_text

# --- the reference: syncd.plaintext before it ran its walk in C -----------------------------

_REF_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul", "img",
    }
)  # fmt: skip
_REF_DROP = ("script", "style", "template", "noscript")
_REF_SPACE = re.compile(r"\s+")


def reference(markup: str | None) -> str:
    if not markup or not markup.strip():
        return ""
    if "<" not in markup and "&" not in markup:
        return _REF_SPACE.sub(" ", markup).strip()
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return _REF_SPACE.sub(" ", markup).strip()
    parts: list[str] = []
    walk = lxml.etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walk:
        tag = element.tag
        if event in ("comment", "pi"):
            parts.append(element.tail or "")
        elif event == "start":
            if tag in _REF_DROP:
                walk.skip_subtree()
                continue
            if tag in _REF_BLOCK:
                parts.append(" ")
            if tag == "img":
                parts.append(element.get("alt") or "")
            parts.append(element.text or "")
        else:
            if tag in _REF_BLOCK:
                parts.append(" ")
            parts.append(element.tail or "")
    return _REF_SPACE.sub(" ", "".join(parts)).strip()


def assert_same_text(markup: str) -> None:
    """The fast path gives the reference's string. Where the reference crashed (an assertion
    inside lxml.html: a whole document without a body), the fast path says "no text"; any other
    exception is the same exception."""
    try:
        expected = reference(markup)
    except AssertionError:
        expected = ""
    except Exception as e:  # whatever else the reference raises, the fast path raises too
        with pytest.raises(type(e)):
            html_to_text(markup)
        return
    assert html_to_text(markup) == expected, markup


# --- generated markup ------------------------------------------------------------------------

_BLOCKS = sorted(_REF_BLOCK - {"img", "br", "hr"})
_INLINE = ["a", "b", "i", "em", "span", "code", "sub", "small", "font", "x-custom", "svg:g"]
_ODD = [
    "title", "head", "body", "html", "textarea", "select", "option", "iframe", "object",
    "svg", "math", "frameset", "caption", "label", "button", "form", "svg:script", "SCRIPT",
    "Div", "P",
]  # fmt: skip
_VOID = ["img", "br", "hr", "input", "meta", "link", "wbr", "area", "source"]
_WORDS = st.sampled_from(
    [
        "word", "Café", "naïve", "日本語", "😀", "\U0001d400", "x" * 70, "a", "0", "don't",
        "AT&T", "<", ">", "a>b", "&", "&amp;", "&lt;b&gt;", "&eacute;", "&nbsp;", "&#169;",
        "&#x1F600;", "&#0;", "&#xD800;", "&#1114112;", "&bogus;", "&amp", "&#", "\"", "'",
        "\x01", "\x0b", "\x7f", "\x1c", "\x85", "\ufeff", "\ufffe", "]]>", "<![CDATA[c]]>",
    ]
)  # fmt: skip
_SPACES = st.sampled_from(
    ["", " ", "  ", "\n", "\t", "\r\n", "\xa0", "\u2003", "\u3000", "\u2028", "\x0c", " \n "]
)
_TEXT = st.lists(st.tuples(_SPACES, _WORDS), max_size=4).map(
    lambda pairs: "".join(space + word for space, word in pairs)
)
_ATTR_VALUE = st.one_of(_TEXT, st.sampled_from(["", "a tortoise", "x &amp; y", "'q'", '"q"']))
_ATTRS = st.lists(
    st.tuples(st.sampled_from(["alt", "ALT", "href", "title", "class", "id", "src"]), _ATTR_VALUE),
    max_size=3,
).map(
    lambda attrs: "".join(f' {name}="{value.replace(chr(34), "&quot;")}"' for name, value in attrs)
)
_COMMENT = st.one_of(
    _TEXT.map(lambda t: f"<!--{t}-->"),
    st.sampled_from(["<!---->", "<!-->", "<!-- unterminated", "<!-- a -- b -->", "<!>", "<!x>"]),
)
_PI = st.one_of(
    _TEXT.map(lambda t: f"<?php {t} ?>"),
    st.sampled_from(['<?xml version="1.0"?>', "<?pi>", "<? unterminated"]),
)
_VOIDS = st.builds(lambda tag, attrs: f"<{tag}{attrs}>", st.sampled_from(_VOID), _ATTRS)
_LEAF = st.one_of(
    _TEXT,
    _TEXT,
    _COMMENT,
    _PI,
    _VOIDS,
    st.sampled_from(["</p>", "</div>", "<", "</", "</body>", "<body>", "</html>", "<head>"]),
)


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    tags = st.sampled_from([*_BLOCKS, *_INLINE, *_REF_DROP, *_ODD, "img", "br"])
    return st.builds(
        lambda tag, attrs, inner, closed: (
            f"<{tag}{attrs}>{''.join(inner)}" + (f"</{tag}>" if closed else "")
        ),
        tags,
        _ATTRS,
        st.lists(children, max_size=4),
        st.booleans(),  # unclosed elements: the parser's recovery decides where they end
    )


_FRAGMENT = st.recursive(_LEAF, _element, max_leaves=30)
_MARKUP = st.builds(
    lambda prefix, parts: prefix + "".join(parts),
    st.sampled_from(
        ["", "", "", " ", "<!DOCTYPE html>", "\n<html>", "<HTML><body>", "<!doctype x>"]
    ),
    st.lists(_FRAGMENT, max_size=5),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_MARKUP)
@example('<p>Caf&eacute; <a href="x">tab<b>les</b></a></p><p>next</p><!-- c -->end<img alt="t">')
@example("<script>a<!-- b --></script>c<style>d</style>e<template><p>f</p></template>g")
@example("lead <p>a</p><!-- c -->tail<?pi x?>after<br>br")
@example("<noscript><script>x</script>y</noscript>z")
@example("<html></html>")
@example("<!doctype html>")
@example("<html><head><title>t</title></head></html>")
@example("a</body><body>b")
@example("a</html><body>b")
@example("<title>t</title><meta name=x><p>body</p>")
@example("AT&amp;T &lt;b&gt;")
@example("Plain  title\n")
@example("  \xa0\u2003<b> </b>\n")
@example("\U0001f600<b>\x01\x0b\x1c</b>")
def test_generated_markup_gives_the_reference_text(markup: str) -> None:
    assert_same_text(markup)


# --- real content ----------------------------------------------------------------------------

_DATA = Path(__file__).parent / "data"


def _fields() -> list[str]:
    """Every title, summary and content of every entry (and the feed titles) in tests/data."""
    fields: list[str] = []
    for path in sorted(_DATA.glob("*.xml")):
        page = parse_page(path.read_bytes(), url=f"https://x.test/{path.name}", headers={})
        fields.append(page.feed_title or "")
        for entry in page.entries:
            fields.extend(f or "" for f in (entry.title, entry.summary, entry.content))
    return fields


FIELDS = _fields()


def test_every_real_field_gives_the_reference_text() -> None:
    assert sum(len(f) for f in FIELDS) > 250_000  # the Blogger page's posts are in it
    for field in FIELDS:
        assert_same_text(field)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([f for f in FIELDS if "<" in f]), st.data())
def test_cut_and_spliced_real_content_gives_the_reference_text(
    field: str, data: st.DataObject
) -> None:
    """Real posts cut anywhere (mid-tag, mid-entity, mid-comment) and spliced with generated
    markup: what a truncated summary or a broken feed carries."""
    start = data.draw(st.integers(0, len(field)))
    end = data.draw(st.integers(start, min(len(field), start + 5000)))
    insert = data.draw(_FRAGMENT)
    assert_same_text(field[start:end] + insert + field[end : end + 200])


def test_huge_input_gives_the_reference_text() -> None:
    post = next(f for f in FIELDS if len(f) > 10_000)
    markup = post * 40 + "<div>" * 300 + "deep" + "</div>" * 300
    assert len(markup) > 400_000
    assert_same_text(markup)
    assert_same_text(markup + "x" * 12_000_000)  # one text node past libxml2's 10 MB limit


def test_no_single_body_is_no_text_where_the_reference_crashed() -> None:
    with pytest.raises(AssertionError):
        reference("<html><head><title>t</title></head></html>")
    assert html_to_text("<html><head><title>t</title></head></html>") == ""
    with pytest.raises(AssertionError):
        reference("a</body><body>b")  # libxml2 made two bodies
    assert html_to_text("a</body><body>b") == ""
    assert html_to_text("<!doctype html>") == "<!doctype html>"  # refused: indexed as it stands
