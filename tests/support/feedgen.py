"""Hypothesis strategies for whole feed documents (Atom 1.0, RSS 2.0, RSS 1.0) with the constructs
where feedparser and a naive XML reading differ: entities, CDATA, `xml:base`, namespaced
extensions, `type="xhtml"` content, enclosures, several links per rel, missing fields, RFC 822
dates, whitespace, comments, processing instructions, BOMs and declared encodings.

Used by the differential test of the two parse paths and by bench/parse_paths.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from syncd.errors import ParseError
from syncd.model import ParsedEntry, ParsedPage
from syncd.parse import (
    Declined,
    FastPage,
    open_page_fast,
    parse_page_fast,
    parse_page_feedparser,
)

ATOM_NS = "http://www.w3.org/2005/Atom"
NAMESPACES = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:thr="http://purl.org/syndication/thread/1.0" '
    'xmlns:foo="urn:example:foo" '
    'xmlns:openSearch="http://a9.com/-/spec/opensearchrss/1.0/" '
    'xmlns:fh="http://purl.org/syndication/history/1.0" '
    'xmlns:at="http://purl.org/atompub/tombstones/1.0" '
    'xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0" '
    'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
)


@dataclass(frozen=True)
class Document:
    body: bytes
    headers: dict[str, str]
    kind: str


# Pieces of character data, as they appear in the document (already escaped where needed).
_TEXT_PIECES = st.sampled_from(
    [
        "Hello",
        "world",
        " ",
        "  ",
        "\n  ",
        "\t",
        "&amp;",
        "&lt;b&gt;bold&lt;/b&gt;",
        "&amp;lt;",
        "&quot;q&quot;",
        "&apos;",
        "&#233;",
        "&#x2019;",
        "&#150;",
        "&#x85;",
        "&#38;",
        "&#60;p&#62;",
        "<![CDATA[<p>cdata & more</p>]]>",
        "<![CDATA[]]>",
        "<!-- a comment -->",
        "<?pi data?>",
        "é",
        "’",
        "Ã©",
        "\u00c3\u00a9t\u00c3\u00a9",
        "\u0096",
        "日本",
        "x@y.example",
        "http://example.com/a?b=1&amp;c=2",
        "&amp;amp;",
    ]
)
TEXT = st.lists(_TEXT_PIECES, max_size=6).map("".join)

URLS = st.sampled_from(
    [
        "http://example.com/post/1",
        "https://example.com/post/2?a=1&amp;b=2",
        "http:///example.com/triple",
        "/relative/path",
        "relative",
        "",
        "  http://example.com/spaced  ",
        "tag:example.com,2024:post-3",
        "HTTP://EXAMPLE.COM/UPPER",
        "https://example.com/%E2%9C%93",
    ]
)
DATES = st.sampled_from(
    [
        "2024-05-01T12:30:00Z",
        "2024-05-01T12:30:00.123456+02:00",
        "  2024-05-01T12:30:00Z  ",
        "2024-05-01",
        "Wed, 01 May 2024 12:30:00 GMT",
        "Wed, 01 May 2024 12:30:00 +0200",
        "01 May 2024 12:30 EST",
        "not a date",
        "",
    ]
)


def _maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


def _attr(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), values.map(lambda v: f' {name}="{v}"'))


_TYPES = st.sampled_from(["text", "html", "xhtml", "TEXT", "text/html", "text/plain", "image/png"])
_XHTML = st.sampled_from(
    [
        '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hi <b>there</b></p></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml">plain</div>',
        "<p>undeclared html</p>",
    ]
)


@st.composite
def _text_construct(draw: st.DrawFn, tag: str, *, typed: bool = True) -> str:
    type_attr = draw(_attr("type", _TYPES)) if typed else ""
    xhtml = "xhtml" in type_attr and draw(st.booleans())
    body = draw(_XHTML) if xhtml else draw(TEXT)
    base = draw(st.one_of(st.just(""), st.just(' xml:base="http://base.example/dir/"')))
    return f"<{tag}{type_attr}{base}>{body}</{tag}>"


@st.composite
def _atom_link(draw: st.DrawFn) -> str:
    rel = draw(
        _attr(
            "rel",
            st.sampled_from(
                ["alternate", "self", "replies", "enclosure", "related", "ALTERNATE", "edit", ""]
            ),
        )
    )
    type_ = draw(
        _attr(
            "type", st.sampled_from(["text/html", "application/atom+xml", "TEXT/HTML", "audio/mp3"])
        )
    )
    href = draw(st.one_of(URLS.map(lambda u: f' href="{u}"'), st.just("")))
    title = draw(_attr("title", st.sampled_from(["3 Comments", "Post", ""])))
    length = draw(_attr("length", st.sampled_from(["123", "0", "x"])))
    if not href and draw(st.booleans()):
        return f"<link>{draw(URLS)}</link>"
    return f"<link{rel}{type_}{href}{title}{length}/>"


@st.composite
def _person(draw: st.DrawFn, tag: str) -> str:
    if draw(st.integers(0, 4)) == 0:
        return f"<{tag}>{draw(TEXT)}</{tag}>"
    parts = draw(
        st.lists(
            st.sampled_from(
                [
                    "<name>Jane Doe</name>",
                    "<name>  Ã©lise  </name>",
                    "<name></name>",
                    "<email>jane@example.com</email>",
                    "<uri>http:///example.com/jane</uri>",
                    "<uri>/about</uri>",
                    '<foo:image rel="x" src="y"/>',
                    "<foo:note>n</foo:note>",
                ]
            ),
            max_size=4,
        )
    )
    return f"<{tag}>{''.join(parts)}</{tag}>"


_EXTENSIONS = st.sampled_from(
    [
        "<thr:total>3</thr:total>",
        '<media:thumbnail url="http://example.com/t.jpg" width="72" height="72"/>',
        '<media:content url="http://example.com/v.mp4" type="video/mp4"/>',
        "<media:title>Media title</media:title>",
        "<media:description>Media text</media:description>",
        "<feedburner:origLink>http://example.com/orig</feedburner:origLink>",
        '<foo:bar a="1">text</foo:bar>',
        "<foo:plain>text</foo:plain>",
        "<foo:plain>&nbsp;</foo:plain>",
        "<foo:wrap><foo:inner>x</foo:inner></foo:wrap>",
        "<foo:wrap><title>hidden title</title></foo:wrap>",
        "<dc:subject>Subject</dc:subject>",
        "<dc:creator>Creator Name</dc:creator>",
        "<dc:date>2024-06-01T00:00:00Z</dc:date>",
        "<!-- between -->",
        "<?pi between?>",
        "<comments>http://example.com/c</comments>",
        '<source url="http://example.com/src">Source</source>',
        "<rights>All rights</rights>",
        "<itunes:author>Pod Author</itunes:author>",
        "<itunes:summary>Episode &lt;b&gt;summary&lt;/b&gt;</itunes:summary>",
        "<itunes:subtitle>Sub</itunes:subtitle>",
        "<itunes:duration>12:34</itunes:duration>",
        "<itunes:explicit>no</itunes:explicit>",
        '<itunes:image href="http://example.com/ep.jpg"/>',
        "<itunes:keywords>one, two,,three, one</itunes:keywords>",
        '<itunes:keywords a="b">x</itunes:keywords>',
        '<itunes:category text="Tech"/>',
        "\n    ",
    ]
)


@st.composite
def _atom_entry(draw: st.DrawFn) -> str:
    parts: list[str] = []
    if draw(st.integers(0, 5)):
        parts.append(f"<id>{draw(URLS)}</id>")
    if draw(st.integers(0, 5)):
        parts.append(draw(_text_construct("title")))
    if draw(st.booleans()):
        parts.append(f"<published>{draw(DATES)}</published>")
    if draw(st.integers(0, 3)):
        parts.append(f"<updated>{draw(DATES)}</updated>")
    parts += draw(st.lists(_atom_link(), max_size=4))
    parts += draw(st.lists(_person("author"), max_size=2))
    parts += draw(
        st.lists(
            st.builds(
                lambda term, scheme, label: f"<category{term}{scheme}{label}/>",
                _attr("term", st.sampled_from(["a", "b", "B", "", "Ã©"])),
                _attr("scheme", st.sampled_from(["http://s/", ""])),
                _attr("label", st.sampled_from(["L", ""])),
            ),
            max_size=3,
        )
    )
    parts += draw(st.lists(_text_construct("content"), max_size=2))
    parts += draw(st.lists(_text_construct("summary"), max_size=2))
    parts += draw(st.lists(_EXTENSIONS, max_size=3))
    parts = draw(st.permutations(parts))
    base = draw(st.sampled_from(["", "", ' xml:base="http://base.example/e/"']))
    return f"<entry{base}>{''.join(parts)}</entry>"


@st.composite
def _rss_item(draw: st.DrawFn, *, rdf: bool) -> str:
    parts: list[str] = []
    if draw(st.integers(0, 5)):
        parts.append(_plain("title", draw(TEXT)))
    parts += [f"<link>{u}</link>" for u in draw(st.lists(URLS, max_size=2))]
    if not rdf and draw(st.integers(0, 3)):
        permalink = draw(_attr("isPermaLink", st.sampled_from(["true", "false", "True"])))
        parts.append(f"<guid{permalink}>{draw(URLS)}</guid>")
    parts += [_plain("description", t) for t in draw(st.lists(TEXT, max_size=2))]
    if draw(st.booleans()):
        parts.append(f"<content:encoded>{draw(TEXT)}</content:encoded>")
    if draw(st.booleans()):
        parts.append(
            f"<{'dc:date' if rdf else 'pubDate'}>{draw(DATES)}</{'dc:date' if rdf else 'pubDate'}>"
        )
    parts += draw(
        st.lists(
            st.sampled_from(
                [
                    "<author>jane@example.com (Jane)</author>",
                    "<author>Jane Doe</author>",
                    "<dc:creator>Jane Doe</dc:creator>",
                    "<dc:creator>Ã©mile</dc:creator>",
                    "<dc:creator></dc:creator>",
                    "<author><name>Structured</name></author>",
                ]
            ),
            max_size=3,
        )
    )
    parts += draw(
        st.lists(
            st.sampled_from(
                [
                    "<category>News</category>",
                    '<category domain="http://d/">Tech</category>',
                    "<category>News</category>",
                    "<category></category>",
                ]
            ),
            max_size=3,
        )
    )
    if not rdf and draw(st.booleans()):
        url = draw(_attr("url", URLS))
        type_ = draw(_attr("type", st.sampled_from(["audio/mpeg", "Audio/MPEG"])))
        length = draw(_attr("length", st.sampled_from(["1234", ""])))
        parts.append(f"<enclosure{url}{type_}{length}/>")
    if draw(st.booleans()):
        parts.append(f'<atom:link rel="alternate" href="{draw(URLS)}"/>')
    parts += draw(st.lists(_EXTENSIONS, max_size=2))
    parts = draw(st.permutations(parts))
    about = f' rdf:about="{draw(URLS)}"' if rdf else ""
    return f"<item{about}>{''.join(parts)}</item>"


def _plain(tag: str, text: str) -> str:
    return f"<{tag}>{text}</{tag}>"


_FEED_EXTRAS = st.sampled_from(
    [
        '<link rel="next" href="http://example.com/feed?page=2"/>',
        '<link rel="next" href="/feed?page=3"/>',
        '<link rel="prev-archive" href="http://example.com/archive/1"/>',
        '<link rel="self" href="http://example.com/feed"/>',
        "<openSearch:totalResults>515</openSearch:totalResults>",
        "<openSearch:totalResults> 42 </openSearch:totalResults>",
        "<openSearch:totalResults>many</openSearch:totalResults>",
        "<fh:complete/>",
        "<fh:archive/>",
        '<at:deleted-entry ref="http://example.com/gone" when="2024-01-01T00:00:00Z"/>',
        "<generator>gen</generator>",
        "<foo:feedext>x</foo:feedext>",
        "<!-- feed comment -->",
    ]
)


@st.composite
def _atom(draw: st.DrawFn) -> tuple[str, str]:
    parts = [draw(_text_construct("title"))] if draw(st.integers(0, 4)) else []
    parts += draw(st.lists(_FEED_EXTRAS, max_size=4))
    parts += draw(st.lists(_atom_entry(), max_size=4))
    base = draw(st.sampled_from(["", "", ' xml:base="http://base.example/"']))
    return "atom", f'<feed xmlns="{ATOM_NS}" {NAMESPACES}{base}>{"".join(parts)}</feed>'


@st.composite
def _rss2(draw: st.DrawFn) -> tuple[str, str]:
    parts = [_plain("title", draw(TEXT))] if draw(st.integers(0, 4)) else []
    parts += draw(
        st.lists(
            st.sampled_from(
                [
                    "<link>http://example.com/</link>",
                    "<description>d</description>",
                    "<image><url>http://example.com/i.png</url><title>Img</title><link>http://example.com/</link></image>",
                    '<atom:link rel="next" href="http://example.com/rss?p=2"/>',
                    "<language>en</language>",
                    "<itunes:summary>Show summary</itunes:summary>",
                    "<itunes:author>Show Author</itunes:author>",
                    "<itunes:owner><itunes:name>O</itunes:name>"
                    "<itunes:email>o@example.com</itunes:email></itunes:owner>",
                    '<itunes:category text="Technology">'
                    '<itunes:category text="Gadgets"/></itunes:category>',
                    '<itunes:image href="http://example.com/show.jpg"/>',
                    "<itunes:keywords>show, words</itunes:keywords>",
                    "<itunes:explicit>clean</itunes:explicit>",
                    "<openSearch:totalResults>7</openSearch:totalResults>",
                ]
            ),
            max_size=4,
        )
    )
    parts += draw(st.lists(_rss_item(rdf=False), max_size=4))
    version = draw(st.sampled_from(["2.0", "2.0", "0.92"]))
    return "rss2", (
        f'<rss version="{version}" xmlns:atom="{ATOM_NS}" {NAMESPACES}>'
        f"<channel>{''.join(parts)}</channel></rss>"
    )


@st.composite
def _rss1(draw: st.DrawFn) -> tuple[str, str]:
    items = draw(st.lists(_rss_item(rdf=True), max_size=4))
    title = _plain("title", draw(TEXT)) if draw(st.integers(0, 4)) else ""
    return "rss1", (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        f'xmlns="http://purl.org/rss/1.0/" xmlns:atom="{ATOM_NS}" {NAMESPACES}>'
        f'<channel rdf:about="http://example.com/">{title}<link>http://example.com/</link>'
        "<description>d</description></channel>"
        f"{''.join(items)}</rdf:RDF>"
    )


_HEADERS = st.sampled_from(
    [
        {},
        {},
        {},
        {"content-type": "application/atom+xml"},
        {"content-type": "application/atom+xml"},
        {"content-type": "application/rss+xml; charset=utf-8"},
        {"content-type": "text/xml"},
        {"content-type": "text/xml; charset=UTF-8"},
        {"content-type": "text/html"},
        {"content-type": "application/xml; charset=iso-8859-1"},
    ]
)


@st.composite
def documents(draw: st.DrawFn) -> Document:
    kind, xml = draw(st.one_of(_atom(), _rss2(), _rss1()))
    encoding = draw(st.sampled_from(["utf-8"] * 6 + [None, None, "UTF-8", "iso-8859-1", "utf-16"]))
    prolog = ""
    if encoding is not None or draw(st.booleans()):
        enc = f' encoding="{encoding}"' if encoding else ""
        prolog = f'<?xml version="1.0"{enc}?>'
    prolog += draw(
        st.sampled_from(
            [
                "",
                "",
                "",
                "\n",
                "<!-- leading comment -->\n",
                '<?xml-stylesheet href="s.xsl" type="text/xsl"?>',
                '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                '"http://my.netscape.com/publish/formats/rss-0.91.dtd">',
                '<!--\n<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN">\n-->',
            ]
        )
    )
    text = prolog + xml
    if encoding == "iso-8859-1":
        body = text.encode("iso-8859-1", "xmlcharrefreplace")
    elif encoding == "utf-16":
        body = text.encode("utf-16")
    else:
        body = text.encode("utf-8")
        if draw(st.integers(0, 5)) == 0:
            body = b"\xef\xbb\xbf" + body
    return Document(body=body, headers=draw(_HEADERS), kind=kind)


def compare_paths(body: bytes, headers: dict[str, str], url: str) -> str | None:
    """Both parse paths on one document: None when they agree, else the fast path's decline reason.

    Raises AssertionError (naming the first differing field) when the fast path gives a page, or
    an error, that feedparser's path would not give.
    """
    fast: ParsedPage | Declined | ParseError
    slow: ParsedPage | ParseError
    try:
        fast = parse_page_fast(body, url=url, headers=headers)
    except ParseError as exc:
        fast = exc
    if isinstance(fast, Declined):
        return fast.reason
    if isinstance(fast, ParsedPage):
        _compare_readings(fast, body, headers, url)
    try:
        slow = parse_page_feedparser(body, url=url, headers=headers)
    except ParseError as exc:
        slow = exc
    if isinstance(fast, ParseError) or isinstance(slow, ParseError):
        assert isinstance(fast, ParseError) and isinstance(slow, ParseError), (fast, slow)
        assert str(fast) == str(slow)
        return None
    if fast != slow:
        raise AssertionError(describe_difference(fast, slow))
    return None


def _compare_readings(page: ParsedPage, body: bytes, headers: dict[str, str], url: str) -> None:
    """The fast path's direct reading of entries against its raw-dictionary reading.

    `page` is what the fast path gave (entries read directly where that reading models them);
    every entry is read again through feedparser's raw dictionary and `parse._entry`.
    """
    opened = open_page_fast(body, url=url, headers=headers)
    assert isinstance(opened, FastPage)
    via_raw = opened.page(None, direct=False)
    assert isinstance(via_raw, ParsedPage), via_raw
    if page != via_raw:
        raise AssertionError("direct vs raw reading: " + describe_difference(page, via_raw))
    assert repr(page) == repr(via_raw)


def describe_difference(fast: ParsedPage, slow: ParsedPage) -> str:
    for name in ParsedPage.__slots__:
        a, b = getattr(fast, name), getattr(slow, name)
        if name == "entries" and a != b:
            if len(a) != len(b):
                return f"entries: {len(a)} (fast) vs {len(b)} (feedparser)"
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                for field in ParsedEntry.__slots__:
                    if getattr(x, field) != getattr(y, field):
                        return (
                            f"entry {i} {field}: {getattr(x, field)!r} (fast) vs "
                            f"{getattr(y, field)!r} (feedparser)"
                        )
        elif a != b:
            return f"{name}: {a!r} (fast) vs {b!r} (feedparser)"
    return "no difference"
