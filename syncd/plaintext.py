"""Readable text from the HTML a feed carries: what the full-text index holds.

A real HTML parser (lxml.html) reads the markup, so entities are decoded, comments, scripts and
styles vanish, and block elements separate words ("<p>a</p><p>b</p>" is "a b", not "ab"). This
module is pure: it never touches the store.
"""

from __future__ import annotations

import re

# Elements whose boundaries separate words; inline ones (<b>, <a>, <span>) do not.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
        "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
        "tfoot", "th", "thead", "tr", "ul", "img",
    }
)  # fmt: skip
_DROP = ("script", "style", "template", "noscript")
_SPACE = re.compile(r"\s+")


def html_to_text(markup: str | None) -> str:
    """The text of `markup` with whitespace collapsed; "" for None or markup with no text.
    Plain text goes through unchanged apart from entities ("AT&amp;T" is "AT&T")."""
    if not markup or not markup.strip():
        return ""
    if "<" not in markup and "&" not in markup:
        return _SPACE.sub(" ", markup).strip()  # most titles: no parse needed
    # Imported here: a pass of unchanged (304) pages stores no text and must load no parser.
    import lxml.etree
    import lxml.html

    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return _SPACE.sub(" ", markup).strip()
    parts: list[str] = []
    # One pass over start/end events: text at a start, tail at an end (the tail follows the
    # element, inside its parent). Dropped elements and comments contribute their tail only.
    walk = lxml.etree.iterwalk(root, events=("start", "end", "comment", "pi"))
    for event, element in walk:
        tag = element.tag
        if event in ("comment", "pi"):
            parts.append(element.tail or "")
        elif event == "start":
            if tag in _DROP:
                walk.skip_subtree()
                continue
            if tag in _BLOCK:
                parts.append(" ")
            if tag == "img":
                # An image's alternative text is what a reader would be told is there.
                parts.append(element.get("alt") or "")
            parts.append(element.text or "")
        else:
            if tag in _BLOCK:
                parts.append(" ")
            parts.append(element.tail or "")
    return _SPACE.sub(" ", "".join(parts)).strip()
