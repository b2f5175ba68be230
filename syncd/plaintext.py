"""Readable text from the HTML a feed carries: what the full-text index holds.

A real HTML parser (libxml2's, through lxml) reads the markup, so entities are decoded, comments,
scripts and styles vanish, and block elements separate words ("<p>a</p><p>b</p>" is "a b", not
"ab"). The walk over the tree is a fixed XSLT stylesheet, so it runs in C: the index text of a
Blogger post costs half the CPU it did through lxml.html and a Python walk, for the same string
(docs/design.md, "Search text at C speed"; tests/test_plaintext.py holds that walk as the
reference). This module is pure: it never touches the store.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import lxml.etree

# Elements whose boundaries separate words; inline ones (<b>, <a>, <span>) do not.
_BLOCK = (
    "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
    "figcaption", "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "ul",
)  # fmt: skip
# Elements whose content is not text a reader sees; their tails are.
_DROP = ("script", "style", "template", "noscript")

# The text of a body: a block element's text between spaces, an image's alternative text
# between spaces (what a reader would be told is there), dropped elements without their content.
# Comments and processing instructions say nothing (the built-in rules), while the text after
# them does: it is a sibling text node.
_STYLESHEET = f"""<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/"><xsl:apply-templates select="body/node()"/></xsl:template>
  <xsl:template match="{"|".join(_BLOCK)}">
    <xsl:text> </xsl:text><xsl:apply-templates/><xsl:text> </xsl:text>
  </xsl:template>
  <xsl:template match="img">
    <xsl:text> </xsl:text><xsl:value-of select="@alt"/><xsl:apply-templates/><xsl:text> </xsl:text>
  </xsl:template>
  <xsl:template match="{"|".join(_DROP)}"/>
</xsl:stylesheet>"""

# A fragment is wrapped in <html><body> unless it already starts a document: lxml.html's own
# test, kept so that the same markup lands in the same tree as it always has.
_WHOLE_DOCUMENT = re.compile(r"^\s*<(?:html|!doctype)", re.I)


@functools.cache
def _not_xml_char() -> re.Pattern[str]:
    """What XML does not allow in text (lxml refuses to set such text on an element). Compiled
    on first use: ~4.5 ms of CPU, which every process that imports the store would pay."""
    return re.compile("[^\t\n\r -\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class _Tools(NamedTuple):
    parser: lxml.etree.HTMLParser
    text_of: lxml.etree.XSLT


@functools.cache
def _tools() -> _Tools:
    """The parser and the compiled stylesheet, made on first use: a pass of unchanged (304)
    pages stores no text and must load no parser."""
    import lxml.etree

    # A plain etree parser with lxml.html's options (all defaults), minus its Python element
    # classes, which cost a call into Python per element.
    return _Tools(lxml.etree.HTMLParser(), lxml.etree.XSLT(lxml.etree.XML(_STYLESHEET)))


def _collapse(text: str) -> str:
    """Runs of whitespace (str.isspace, as the regex \\s) as one space, none at either end."""
    return " ".join(text.split())


def html_to_text(markup: str | None) -> str:
    """The text of `markup` with whitespace collapsed; "" for None or markup with no text.
    Plain text goes through unchanged apart from entities ("AT&amp;T" is "AT&T"). Markup the
    parser refuses is indexed as it stands; a document with no body, or two, has no text."""
    if not markup or not markup.strip():
        return ""
    if "<" not in markup and "&" not in markup:
        return _collapse(markup)  # most titles: no parse needed
    import lxml.etree

    tools = _tools()
    document = markup if _WHOLE_DOCUMENT.match(markup) else f"<html><body>{markup}</body></html>"
    try:
        root = lxml.etree.fromstring(document, tools.parser)
    except (lxml.etree.ParserError, ValueError):
        return _collapse(markup)
    if root is None:  # nothing but a doctype, say
        return _collapse(markup)
    bodies = root.findall("body") if root.tag == "html" else []
    if len(bodies) != 1:  # none, or "</body><body>" made two: lxml.html failed an assertion
        return ""
    body = bodies[0]
    # lxml.html moved text before the first element onto a new element, which refused it if it
    # held a character XML does not allow; that markup has always been indexed as it stands.
    leading = body.text
    if leading and leading.strip() and _not_xml_char().search(leading):
        return _collapse(markup)
    # The body alone: libxml2 may put a second <html> beside the root ("</html><body>x"),
    # whose text lxml.html never saw; given an element, XSLT sees it as the root of its own.
    return _collapse(str(tools.text_of(body)))
