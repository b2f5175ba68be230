"""The fast parse path: well-formed Atom 1.0, RSS 2.0 and RSS 1.0 read with lxml (libxml2).

It builds the same raw entry and feed dictionaries feedparser's strict (expat) parser would build
for the keys `syncd.parse` reads, so both paths go through one assembly and give equal pages.
Most entries skip the dictionary: `FastRead.direct` reads an entry straight into the fields that
assembly takes, in one pass, and leaves what it does not model (a second author, ...) to the
dictionary's reading, which the differential tests compare it with.
It models a subset on purpose: for anything it does not model exactly (not well-formed, another
format, an encoding other than plain UTF-8, a DOCTYPE, `xml:base`, `type="xhtml"` or base64
content, elements feedparser would route somewhere unusual, media/iTunes extensions, e-mail
parsing of author strings, ...) it returns a reason instead, and feedparser reads the document.

Hardening equals the feedparser path's: no DTD is loaded, no entity is resolved (a document with a
DOCTYPE is declined before parsing, and refused by `syncd.parse` if it declares entities), no
network, no XInclude, libxml2's `huge_tree` limits stay on. Pure CPU work: no I/O, no clock.
Must not import feedparser: a pass that parses nothing but well-formed feeds never loads it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from syncd.model import Link, Person

__all__ = ["FastRead", "Fields", "read_fast"]

Raw = dict[str, Any]
# An entry as read, in the order `syncd.parse` assembles a ParsedEntry from it: id, title,
# published and updated (raw text), links (those with a target), whether the id is the
# permalink (feedparser's `guidislink`), authors, category terms, summary, content.
Fields = tuple[
    str | None,
    str | None,
    str | None,
    str | None,
    tuple[Link, ...],
    bool,
    tuple[Person, ...],
    tuple[str, ...],
    str | None,
    str | None,
]


@dataclass(frozen=True, slots=True)
class FastRead:
    """What feedparser would have returned, for the keys syncd reads; the entries unread.

    `items` are the entry elements in document order: `entry` reads one into feedparser's raw
    dictionary (or says why this path declines it), so a caller that already knows an entry by
    its bytes need not read it. What an entry's reading depends on outside its own element
    (namespace bindings, the version, the C1 flag) is in `context`.
    """

    version: str
    feed: Raw
    items: list[Any]  # lxml entry (item) elements
    namespaces: dict[str, str]
    root: Any  # the lxml root element (tombstones are read from it)
    context: bytes
    reader: _Reader

    def entry(self, el: Any) -> Raw | str:
        """The raw entry of `el` (one of `items`), or why this path declines the document."""
        try:
            return self.reader.entry(el)
        except _Decline as exc:
            return str(exc)

    def direct(self, el: Any) -> Fields | None:
        """The fields of `el`'s entry read straight from the element (see `Fields`), or None
        when it uses anything this reading leaves to `entry` (which gives the same entry, or
        declines the document)."""
        try:
            return self.reader.direct(el)
        except _Decline:
            return None


class _Decline(Exception):
    """The document uses something this path does not model; feedparser must read it."""


_ATOM: Final = "http://www.w3.org/2005/Atom"
_RSS10: Final = "http://purl.org/rss/1.0/"
_RSS090: Final = "http://my.netscape.com/rdf/simple/0.9/"
_RDF: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML: Final = "http://www.w3.org/XML/1998/namespace"

# The namespaces feedparser knows, by URI, with the prefix it files their elements under ("" is
# the core vocabulary). A unit test keeps this equal to feedparser's own table.
KNOWN_NAMESPACES: Final[Mapping[str, str]] = {
    **dict.fromkeys(
        (
            "",
            "http://backend.userland.com/rss",
            "http://blogs.law.harvard.edu/tech/rss",
            _RSS10,
            _RSS090,
            "http://example.com/newformat#",
            "http://example.com/necho",
            "http://purl.org/echo/",
            "uri/of/echo/namespace#",
            "http://purl.org/pie/",
            "http://purl.org/atom/ns#",
            _ATOM,
            "http://purl.org/rss/1.0/modules/rss091#",
        ),
        "",
    ),
    "http://webns.net/mvcb/": "admin",
    "http://purl.org/rss/1.0/modules/aggregation/": "ag",
    "http://purl.org/rss/1.0/modules/annotate/": "annotate",
    "http://media.tangent.org/rss/1.0/": "audio",
    "http://backend.userland.com/blogChannelModule": "blogChannel",
    "http://creativecommons.org/ns#license": "cc",
    "http://web.resource.org/cc/": "cc",
    "http://cyber.law.harvard.edu/rss/creativeCommonsRssModule.html": "creativeCommons",
    "http://backend.userland.com/creativeCommonsRssModule": "creativeCommons",
    "http://purl.org/rss/1.0/modules/company": "co",
    "http://purl.org/rss/1.0/modules/content/": "content",
    "http://my.theinfo.org/changed/1.0/rss/": "cp",
    "http://purl.org/dc/elements/1.1/": "dc",
    "http://purl.org/dc/terms/": "dcterms",
    "http://purl.org/rss/1.0/modules/email/": "email",
    "http://purl.org/rss/1.0/modules/event/": "ev",
    "http://rssnamespace.org/feedburner/ext/1.0": "feedburner",
    "http://freshmeat.net/rss/fm/": "fm",
    "http://xmlns.com/foaf/0.1/": "foaf",
    "http://www.w3.org/2003/01/geo/wgs84_pos#": "geo",
    "http://www.georss.org/georss": "georss",
    "http://www.opengis.net/gml": "gml",
    "http://postneo.com/icbm/": "icbm",
    "http://purl.org/rss/1.0/modules/image/": "image",
    "http://www.itunes.com/DTDs/PodCast-1.0.dtd": "itunes",
    "http://example.com/DTDs/PodCast-1.0.dtd": "itunes",
    "http://purl.org/rss/1.0/modules/link/": "l",
    "http://search.yahoo.com/mrss": "media",
    "http://search.yahoo.com/mrss/": "media",
    "http://madskills.com/public/xml/rss/module/pingback/": "pingback",
    "http://prismstandard.org/namespaces/1.2/basic/": "prism",
    _RDF: "rdf",
    "http://www.w3.org/2000/01/rdf-schema#": "rdfs",
    "http://purl.org/rss/1.0/modules/reference/": "ref",
    "http://purl.org/rss/1.0/modules/richequiv/": "reqv",
    "http://purl.org/rss/1.0/modules/search/": "search",
    "http://purl.org/rss/1.0/modules/slash/": "slash",
    "http://schemas.xmlsoap.org/soap/envelope/": "soap",
    "http://purl.org/rss/1.0/modules/servicestatus/": "ss",
    "http://hacks.benhammersley.com/rss/streaming/": "str",
    "http://purl.org/rss/1.0/modules/subscription/": "sub",
    "http://purl.org/rss/1.0/modules/syndication/": "sy",
    "http://schemas.pocketsoap.com/rss/myDescModule/": "szf",
    "http://purl.org/rss/1.0/modules/taxonomy/": "taxo",
    "http://purl.org/rss/1.0/modules/threading/": "thr",
    "http://purl.org/rss/1.0/modules/textinput/": "ti",
    "http://madskills.com/public/xml/rss/module/trackback/": "trackback",
    "http://wellformedweb.org/commentAPI/": "wfw",
    "http://purl.org/rss/1.0/modules/wiki/": "wiki",
    "http://www.w3.org/1999/xhtml": "xhtml",
    "http://www.w3.org/1999/xlink": "xlink",
    _XML: "xml",
    "http://podlove.org/simple-chapters": "psc",
}
_KNOWN_LOWER: Final = {uri.lower(): prefix for uri, prefix in KNOWN_NAMESPACES.items()}

# Every element name feedparser has a start or end handler for (its `_start_<name>` and
# `_end_<name>` methods); a unit test keeps it equal to feedparser's. An element with such a name
# does something special there, so it is accepted only where this module models it.
HANDLED_NAMES: Final = frozenset(
    [
        "abstract",
        "author",
        "body",
        "category",
        "cc_license",
        "channel",
        "cloud",
        "content",
        "content_encoded",
        "contributor",
        "copyright",
        "created",
        "creativeCommons_license",
        "creativecommons_license",
        "dc_author",
        "dc_contributor",
        "dc_creator",
        "dc_date",
        "dc_description",
        "dc_language",
        "dc_publisher",
        "dc_rights",
        "dc_subject",
        "dc_title",
        "dcterms_created",
        "dcterms_issued",
        "dcterms_modified",
        "dcterms_valid",
        "description",
        "email",
        "enclosure",
        "entry",
        "expirationdate",
        "feed",
        "feedburner_browserfriendly",
        "fullitem",
        "generator",
        "geom",
        "georss_box",
        "georss_line",
        "georss_point",
        "georss_polygon",
        "georss_where",
        "georssgeom",
        "gml_exterior",
        "gml_linearring",
        "gml_linestring",
        "gml_point",
        "gml_polygon",
        "gml_pos",
        "gml_poslist",
        "guid",
        "height",
        "homepage",
        "id",
        "image",
        "info",
        "issued",
        "item",
        "itunes_author",
        "itunes_block",
        "itunes_category",
        "itunes_email",
        "itunes_explicit",
        "itunes_image",
        "itunes_keywords",
        "itunes_link",
        "itunes_name",
        "itunes_owner",
        "itunes_subtitle",
        "itunes_summary",
        "keywords",
        "language",
        "lastbuilddate",
        "link",
        "managingeditor",
        "media_category",
        "media_content",
        "media_credit",
        "media_description",
        "media_group",
        "media_keywords",
        "media_license",
        "media_player",
        "media_rating",
        "media_restriction",
        "media_thumbnail",
        "media_title",
        "modified",
        "name",
        "newlocation",
        "psc_chapter",
        "psc_chapters",
        "pubdate",
        "published",
        "rights",
        "rss",
        "source",
        "subtitle",
        "summary",
        "tagline",
        "tags",
        "textInput",
        "textinput",
        "title",
        "updated",
        "uri",
        "url",
        "webmaster",
        "where",
        "width",
        "xhtml_body",
    ]
)
_HANDLED_LOWER: Final = frozenset(name.lower() for name in HANDLED_NAMES)

# Keys of feedparser's result that syncd reads or that steer how feedparser fills them: an
# unhandled element filed under one of these names would overwrite them.
_READ_KEYS: Final = frozenset(
    [
        "id",
        "title",
        "title_detail",
        "published",
        "updated",
        "links",
        "link",
        "guidislink",
        "authors",
        "author",
        "author_detail",
        "tags",
        "content",
        "summary",
        "summary_detail",
        "image",
        "textinput",
    ]
)

# Element names (feedparser's, lower-cased) by role inside an entry.
_UPDATED: Final = frozenset({"updated", "modified", "lastbuilddate", "dc_date", "dcterms_modified"})
_PUBLISHED: Final = frozenset({"published", "issued", "pubdate", "dcterms_issued"})
_TITLE: Final = frozenset({"title", "dc_title"})
_AUTHOR: Final = frozenset({"author", "dc_creator", "dc_author", "itunes_author"})
_CATEGORY: Final = frozenset({"category", "dc_subject"})
_SUMMARY: Final = frozenset({"summary", "description", "dc_description", "itunes_summary"})
_ITUNES_SCHEME: Final = "http://www.itunes.com/"
_CONTENT: Final = frozenset({"content", "content_encoded"})
_PERSON_PARTS: Final = frozenset({"name", "email", "uri"})
# Harmless at feed level: they only fill feed keys syncd never reads. Leaves only.
_FEED_LEAVES: Final = frozenset(
    [
        "subtitle",
        "tagline",
        "rights",
        "copyright",
        "updated",
        "modified",
        "lastbuilddate",
        "published",
        "pubdate",
        "id",
        "category",
        "generator",
        "language",
        "cloud",
        "description",
        "info",
        "dc_date",
        "dc_language",
        "dc_rights",
        "dc_publisher",
        "dc_subject",
        "dcterms_modified",
        "webmaster",
        "itunes_subtitle",
        "itunes_image",
        "itunes_link",
        "itunes_explicit",
        "itunes_block",
    ]
)
# Those feed_child takes as leaves, less the names it tests for before (kept in step with it).
_PLAIN_FEED_LEAVES: Final = _FEED_LEAVES - {
    "generator",
    "itunes_summary",
    "description",
    "itunes_keywords",
    "itunes_owner",
    "itunes_category",
}
# Harmless inside an entry: they fill entry keys syncd never reads. Leaves only.
_ENTRY_LEAVES: Final = frozenset(
    [
        "rights",
        "copyright",
        "created",
        "dcterms_created",
        "dc_rights",
        "dc_language",
        "language",
        "media_thumbnail",
        "media_content",
        "itunes_subtitle",
        "itunes_image",
        "itunes_link",
        "itunes_explicit",
        "itunes_block",
    ]
)
_FEED_PEOPLE: Final = frozenset(
    {"author", "managingeditor", "contributor", "dc_creator", "itunes_author"}
)
_IMAGE_PARTS: Final = frozenset({"title", "url", "link", "width", "height", "description"})
_TEXTINPUT_PARTS: Final = frozenset({"title", "description", "name", "link"})
_MAX_TAGS: Final = 256
# What the direct reading (`_Reader.direct`) does with an entry's child, by kind.
_K_INERT: Final = 0  # reaches no handler and no key syncd reads: checked, then skipped
_K_LINK: Final = 1
_K_CATEGORY: Final = 2
_K_ID: Final = 3
_K_UPDATED: Final = 4
_K_PUBLISHED: Final = 5
_K_TITLE: Final = 6
_K_CONTENT: Final = 7
_K_HTML_CONTENT: Final = 8  # content:encoded: HTML unless it says otherwise
_K_SUMMARY: Final = 9
_K_HTML_SUMMARY: Final = 10  # description, dc:description
_K_AUTHOR: Final = 11
_K_CONTRIBUTOR: Final = 12
_K_ENCLOSURE: Final = 13
_K_LEAF: Final = 14
_K_KEYWORDS: Final = 15
_K_RAW: Final = 16  # anything else: the raw reading (`_Reader.entry`) handles the entry
_LINK_ATTRS: Final = frozenset({"rel", "type", "href", "title", "length", "hreflang", "lang"})
_CATEGORY_ATTRS: Final = frozenset({"term", "scheme", "domain", "label", "lang"})
_ENCLOSURE_ATTRS: Final = frozenset({"url", "type", "length"})
_ID_ATTRS: Final = frozenset({"ispermalink"})
_ENTRY_ATTRS: Final = frozenset({"about", "lang"})
_RDF_ABOUT: Final = f"{{{_RDF}}}about"
_HTML_LINK_TYPES: Final = ("text/html", "application/xhtml+xml")
_TEXT_TYPES: Final = frozenset({"text/plain", "text/html"})
_XML_MEDIA_TYPES: Final = frozenset(
    {
        "application/atom+xml",
        "application/rss+xml",
        "application/rdf+xml",
        "application/xml",
        "text/xml",
    }
)

_FIRST_ELEMENT_RE: Final = re.compile(rb"<\w")
_XML_DECL_START_RE: Final = re.compile(rb"<\?xml\s")
_XML_DECL_RE: Final = re.compile(
    rb"""<\?xml\s+version\s*=\s*(["'])1\.0\1(?:\s+encoding\s*=\s*(["'])([A-Za-z0-9._-]*)\2)?"""
    rb"""(?:\s+standalone\s*=\s*(["'])(?:yes|no)\4)?\s*\?>"""
)
# An attribute named `base` in any namespace and any case: feedparser takes it as an xml:base.
_BASE_ATTRS: Final = etree.XPath("//@*[translate(local-name(), 'BASE', 'base') = 'base']")
# Such an attribute is spelt `[prefix:]base`, whitespace, `=` in the (UTF-8) source, since names
# hold no references. A body (lower-cased) without that spelling needs no XPath walk over every
# attribute, which costs several times more than lower-casing the body and finding the spelling.
# A plain regex search: its literal prefix makes re scan for "base" faster than `_spelt` would
# (bytes.find of a four-letter needle whose letters are all common; no single rare byte to start
# from), on any input.
_BASE_SPELLING_RE: Final = re.compile(rb"base[ \t\r\n]*=")
# Where a C1 control (U+0080..U+009F) can come from in UTF-8 XML: its encoding, or a character
# reference (over-approximated). A body with neither has no text feedparser's Windows-1252
# mapping would change.
_C1_UTF8: Final = (b"\xc2", re.compile(rb"\xc2[\x80-\x9f]"), 0)
_CHARREF: Final = (b"#", re.compile(rb"&#[xX]?0*[1-9]"), 1)  # "#" is rarer than "&"
# How many occurrences of a needle _spelt checks one by one before it lets the regex scan on.
_SPELT_PROBES: Final = 1024
# feedparser collapses extra slashes after "scheme://" when it "resolves" a URI against no base.
_URI_FIXER_RE: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+-.]*://)(/*)(.*?)")
_QUERY_ENTITY_RE: Final = re.compile(r"&([A-Za-z0-9_]+);")
# feedparser maps C1 controls to the characters Windows-1252 puts there.
_CP1252: Final = {
    code: bytes([code]).decode("cp1252")
    for code in range(128, 160)
    if code not in (129, 141, 143, 144, 157)
}


def read_fast(body: bytes, headers: Mapping[str, str]) -> FastRead | str:
    """Read `body` like feedparser would, or return why this path declines it.

    `headers` are the response headers with lower-cased names. The caller has checked that the
    body is not empty; everything else (format, encoding, well-formedness) is checked here.
    """
    reason = _encoding_decline(body, headers)
    if reason:
        return reason
    try:
        return _read(body)
    except _Decline as exc:
        return str(exc)


def _encoding_decline(body: bytes, headers: Mapping[str, str]) -> str | None:
    """Why feedparser might decode `body` as anything but plain UTF-8 (None: it will not)."""
    if "content-location" in headers:
        return "Content-Location header (feedparser resolves against it)"
    content_type = headers.get("content-type")
    charset = None
    if content_type is not None:
        media, _, params = content_type.partition(";")
        if media.strip().lower() not in _XML_MEDIA_TYPES:
            return f"content type {media.strip()!r}"
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset":
                charset = value.strip().lower()
            elif name.strip():
                return f"content type parameter {name.strip()!r}"
        if charset is not None and charset != "utf-8":
            return f"charset {charset!r}"
        if charset is None and media.strip().lower().startswith("text/"):
            return "text/* without a charset (us-ascii by RFC 3023)"
    start = 3 if body.startswith(b"\xef\xbb\xbf") else 0
    if _XML_DECL_START_RE.match(body, start):
        decl = _XML_DECL_RE.match(body, start)
        if decl is None:
            return "unusual XML declaration"
        declared = decl.group(3)
        if declared is not None and declared.lower() != b"utf-8":
            # libxml2 would decode by the declaration, feedparser by the HTTP charset.
            return f"declared encoding {declared.decode('ascii')!r}"
    elif body[start : start + 1] not in (b"<", b" ", b"\t", b"\r", b"\n"):
        return "does not start with markup"
    return None


def _read(body: bytes) -> FastRead:
    first = _FIRST_ELEMENT_RE.search(body)
    head = body[: first.start()] if first else body
    upper_head = head.upper()
    if b"<!DOCTYPE" in upper_head or b"<!ENTITY" in upper_head:
        raise _Decline("DOCTYPE")
    # iterparse reports into lxml's per-thread error log, which keeps earlier documents'
    # errors: without clearing it, every decline named the first malformed document's error.
    etree.clear_error_log()
    events = etree.iterparse(
        io.BytesIO(body),
        events=("start-ns",),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        collect_ids=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=True,
    )
    declarations: list[tuple[str, str]] = []
    try:
        for _, (prefix, uri) in events:
            declarations.append((prefix, uri))
    except etree.XMLSyntaxError as exc:
        # The exception names the last error; the log's first line names the first one.
        parts = str(exc.error_log).partition("\n")[0].split(":", 6)
        message = parts[6].strip() if len(parts) == 7 else str(exc)
        raise _Decline(f"not well-formed: {message}") from None
    root = events.root
    if _BASE_SPELLING_RE.search(body.lower()) and _BASE_ATTRS(root):
        raise _Decline("xml:base (or another attribute named base)")
    c1 = _spelt(body, *_C1_UTF8) or _spelt(body, *_CHARREF)
    reader = _Reader(declarations, c1=c1)
    return reader.document(root)


def _spelt(data: bytes, needle: bytes, pattern: re.Pattern[bytes], lead: int) -> bool:
    """Whether `pattern` matches anywhere in `data`; its match has `needle` after `lead` bytes.

    bytes.find skips to a one-byte or rare needle at memchr speed, where re's own scan stops at
    every candidate: on escaped HTML (an `&` in every tag) a plain search costs up to ten times
    more. After a few probes the regex scans the rest, so a body full of needles costs no more
    than a search would.
    """
    start = data.find(needle, lead)
    for _ in range(_SPELT_PROBES):
        if start < 0:
            return False
        if pattern.match(data, start - lead):
            return True
        start = data.find(needle, start + 1)
    return start >= 0 and pattern.search(data, start - lead) is not None


class _Reader:
    """One document's namespace bindings and the walk over its elements."""

    def __init__(self, declarations: list[tuple[str, str]], *, c1: bool) -> None:
        self.c1 = c1
        self.declarations = tuple(declarations)
        # feedparser's `namespaces_in_use` (prefix -> URI, in first-declaration order) and the
        # version it derives from the first format-defining declaration.
        self.namespaces: dict[str, str] = {}
        self.version = ""
        bound: dict[str, str] = {}
        for prefix, uri in declarations:
            lower_uri = uri.lower()
            if not uri:
                raise _Decline("namespace undeclaration")
            if "backend.userland.com/rss" in lower_uri:
                raise _Decline("a backend.userland.com namespace")
            if bound.setdefault(prefix.lower(), uri) != uri:
                raise _Decline(f"prefix {prefix!r} bound to several namespaces")
            if not self.version:
                if prefix == "" and lower_uri == _RSS090:
                    self.version = "rss090"
                elif lower_uri == _RSS10:
                    self.version = "rss10"
                elif lower_uri == _ATOM.lower():
                    self.version = "atom10"
            canonical = _KNOWN_LOWER.get(lower_uri)  # feedparser matches them in any case
            if canonical is not None:
                if canonical and prefix != canonical:
                    raise _Decline(f"prefix {prefix!r} for the {canonical!r} namespace")
                self.namespaces[canonical] = uri
            else:
                if not prefix:
                    # feedparser would file its elements under their bare names.
                    raise _Decline(f"default namespace {uri!r}")
                self.namespaces[prefix] = uri
        self._names: dict[str, str] = {}
        self._kinds: dict[str, int] = {}  # tag -> _K_* of an entry child, memoised
        self._attr_names: dict[str, str] = {}  # attribute key -> feedparser's key, memoised
        self._first_prefix: dict[str, str] = {}
        for prefix, uri in self.namespaces.items():
            if prefix:
                self._first_prefix.setdefault(uri, prefix)

    def popped(self, text: str, *, relative: bool) -> str:
        if text.isascii() and not (relative and ":///" in text):
            return text  # what _popped gives for it, without the calls: most values are ASCII
        return _popped(text, relative=relative, c1=self.c1)

    # -- names ---------------------------------------------------------------------------------

    def name(self, el: Any) -> str:
        """The name feedparser dispatches `el` under: "title", "dc_creator", "thr_total", ..."""
        tag: str = el.tag
        cached = self._names.get(tag)
        if cached is not None:
            return cached
        if tag[0] != "{":
            name = tag.lower()
        else:
            uri, local = tag[1:].split("}", 1)
            canonical = _KNOWN_LOWER.get(uri.lower())
            if canonical is None:
                # expat reports no prefix: feedparser files the element under the first prefix
                # declared for its namespace.
                prefix = self._first_prefix.get(uri)
                if prefix is None:
                    raise _Decline(f"unprefixed element {local!r} in namespace {uri!r}")
                canonical = prefix.lower()
            name = f"{canonical.lower()}_{local.lower()}" if canonical else local.lower()
        self._names[tag] = name
        return name

    def attrs(self, el: Any) -> dict[str, str]:
        """Attributes as feedparser keys them: lower-cased local names, namespace dropped."""
        result: dict[str, str] = {}
        known = self._attr_names
        # el.items(): one list of pairs built in C, the same pairs in the same order as
        # el.attrib.items() without its proxy (about 40 % less per element on the seed page).
        for key, value in el.items():
            local = known.get(key)
            if local is None:
                local = known[key] = key.rsplit("}", 1)[-1].lower()
            if local in result:
                raise _Decline(f"two attributes named {local!r}")
            result[local] = value
        return result

    # -- structure -----------------------------------------------------------------------------

    def document(self, root: Any) -> FastRead:
        name = self.name(root)
        feed: Raw = {}
        entries: list[Any] = []
        if root.tag == f"{{{_ATOM}}}feed":
            if self.version != "atom10":
                raise _Decline(f"Atom root in a document feedparser calls {self.version!r}")
            self._no_special_attrs(root)
            self.channel(root, feed, entries, item="entry")
        elif root.tag == "rss":
            # feedparser says rss20, rss091u, rss092, ... or rss: the same reading for syncd.
            self.version = "rss20" if root.get("version", "").startswith("2.") else "rss"
            channels = list(_elements(root))
            if len(channels) != 1 or channels[0].tag != "channel":
                raise _Decline("RSS root without exactly one channel")
            self._no_special_attrs(channels[0])
            self.channel(channels[0], feed, entries, item="item")
        elif root.tag == f"{{{_RDF}}}RDF" and self.version == "rss10":
            children = list(_elements(root))
            if not children or children[0].tag != f"{{{_RSS10}}}channel":
                raise _Decline("RSS 1.0 document not starting with its channel")
            self._no_special_attrs(children[0])
            self.channel(children[0], feed, entries, item=None)
            for child in children[1:]:
                child_name = self.name(child)
                if child.tag == f"{{{_RSS10}}}item":
                    entries.append(child)
                elif child_name == "image":
                    self.image(child, _IMAGE_PARTS)
                elif child_name == "textinput":
                    self.image(child, _TEXTINPUT_PARTS)
                else:
                    self.feed_child(child, feed)
        else:
            raise _Decline(f"root element {name!r} (version {self.version!r})")
        return FastRead(
            version=self.version,
            feed=feed,
            items=entries,
            namespaces=dict(self.namespaces),
            root=root,
            # Everything `entry` reads outside the element: the bindings (prefixes, the first
            # prefix of each URI), the version the walk settled on, the C1 flag.
            context=repr((self.declarations, self.version, self.c1)).encode(),
            reader=self,
        )

    def channel(self, channel: Any, feed: Raw, entries: list[Any], item: str | None) -> None:
        titles = 0
        names = self._names
        for child in _elements(channel):
            name = names.get(child.tag) or self.name(child)  # the memo inline, as in `direct`
            if item is not None and name == item:
                entries.append(child)  # read later (FastRead.entry), unless known by its bytes
            elif name in _PLAIN_FEED_LEAVES:
                # What feed_child would do with it, without its chain of tests: a Blogger page
                # lists every label of the blog (about 200 categories) at the feed level.
                if len(child):
                    self.leaf(child)
            elif name in _TITLE:
                titles += 1
                if titles > 1:
                    raise _Decline("several feed titles")
                feed["title"] = self.text_construct(child, "text/plain")
            elif name == "link":
                self.link(child, feed, in_entry=False)
            elif name == "image":
                self.image(child, _IMAGE_PARTS)
            elif name == "textinput":
                self.image(child, _TEXTINPUT_PARTS)
            else:
                self.feed_child(child, feed)

    def feed_child(self, el: Any, feed: Raw) -> None:
        """A feed-level element that syncd does not read, unless it is an extension value."""
        name = self.name(el)
        if name == "generator":
            self.generator(el, feed)
        elif name in ("itunes_summary", "description"):
            # A feed-level summary sets feedparser's `summary`; a summary-like element after it
            # is read as content, which sets a flag that leaks into the first entry.
            if "summary" in feed:
                raise _Decline("a second feed-level summary")
            text = self.popped(self.leaf(el).strip(), relative=False)
            if name == "itunes_summary":
                feed["summary"] = text
        elif name == "itunes_keywords":
            self.itunes_keywords(el, {})
        elif name == "itunes_owner":
            for child in _elements(el):
                if self.name(child) in ("itunes_name", "itunes_email"):
                    self.leaf(child)
                else:
                    self.check_inert(child)
        elif name == "itunes_category":
            for node in el.iter(etree.Element):
                if node is not el and self.name(node) != "itunes_category":
                    raise _Decline(f"{self.name(node)!r} inside itunes:category")
            if "".join(el.itertext()).strip():
                raise _Decline("text inside itunes:category")
        elif name in _FEED_LEAVES:
            self.leaf(el)
        elif name in _FEED_PEOPLE:
            self.person_parts(el)
        elif name == "items" and self.version == "rss10":
            self.check_inert(el)  # the rdf:Seq of item references
        elif name in _HANDLED_LOWER or name in _READ_KEYS:
            raise _Decline(f"feed-level element {name!r}")
        else:
            self.check_inert(el)
            # Unhandled elements: feedparser stores their text (or attributes) under their names,
            # nested ones too, in the feed's dictionary.
            for node in el.iter(etree.Element):
                feed[self.name(node)] = self.generic_value(node)

    def generator(self, el: Any, feed: Raw) -> None:
        detail: Raw = dict(self.attrs(el))
        href = detail.get("url", detail.get("uri", detail.get("href")))
        if href:
            detail.pop("url", None)
            detail.pop("uri", None)
            detail["href"] = href
        if "href" in detail:
            detail["href"] = _fix_uri(detail["href"])
        feed["generator_detail"] = detail
        feed["generator"] = self.popped(self.leaf(el).strip(), relative=False)

    def image(self, el: Any, parts: frozenset[str]) -> None:
        self._no_special_attrs(el)
        for child in _elements(el):
            name = self.name(child)
            if name in parts:
                self.leaf(child)
            else:
                # feedparser forgets it is inside the image at any other core element.
                raise _Decline(f"{name!r} inside an image or textinput")

    def person_parts(self, el: Any) -> list[tuple[str, str]]:
        """The name/email/uri children of a person construct, checked, as (part, value)."""
        self._no_special_attrs(el)
        parts: list[tuple[str, str]] = []
        for child in _elements(el):
            name = self.name(child)
            if name in _PERSON_PARTS:
                self._no_special_attrs(child)
                text = self.leaf(child).strip()
                if name == "uri":
                    parts.append(("href", self.popped(text, relative=True)))
                else:
                    parts.append((name, text))  # pushed without "expecting text": stripped only
            else:
                self.check_inert(child)
        return parts

    def check_inert(self, el: Any) -> None:
        """`el` and everything inside it reach no feedparser handler and no key syncd reads."""
        for node in el.iter(etree.Element):
            name = self.name(node)
            if name in _HANDLED_LOWER or name in _READ_KEYS:
                raise _Decline(f"element {name!r} in an unmodelled position")

    def generic_value(self, el: Any) -> Any:
        if len(el.attrib):
            return dict(self.attrs(el))
        if any(True for _ in _elements(el)):
            if self.name(el).endswith("totalresults"):
                raise _Decline("openSearch:totalResults with children")
            return {}  # its value is no text syncd could read
        return self.popped(self.leaf(el).strip(), relative=False)

    def leaf(self, el: Any) -> str:
        """The character data of an element that must hold no elements (comments and PIs may)."""
        if len(el) == 0:
            return el.text or ""
        for child in el:
            if isinstance(child.tag, str):
                raise _Decline(f"markup inside {self.name(el)!r}")
        return "".join(el.itertext())

    def text_construct(self, el: Any, default_type: str) -> str:
        attrs = self.attrs(el)
        for key in attrs:
            if key not in ("type", "lang"):
                raise _Decline(f"attribute {key!r} on {self.name(el)!r}")
        content_type = _map_content_type(attrs.get("type", default_type).lower())
        if content_type not in _TEXT_TYPES:
            raise _Decline(f"{self.name(el)!r} of type {content_type!r}")
        return self.popped(self.leaf(el).strip(), relative=False)

    def _no_special_attrs(self, el: Any) -> None:
        for key in self.attrs(el):
            if key in ("href", "lastmod", "base", "url", "uri"):
                raise _Decline(f"attribute {key!r} on {self.name(el)!r}")

    # -- entries -------------------------------------------------------------------------------

    def entry(self, el: Any) -> Raw:
        """One entry, filled the way feedparser's handlers fill it, in document order."""
        raw: Raw = {}
        attrs = self.attrs(el)
        for key in attrs:
            if key not in ("about", "lang"):
                raise _Decline(f"attribute {key!r} on an entry")
        about = el.get(f"{{{_RDF}}}about")
        if about is not None:
            raw["id"] = about
        elif "about" in attrs:
            raise _Decline("an about attribute outside the RDF namespace")
        title_set = False
        has_content = False
        names = self._names
        for child in _elements(el):
            name = names.get(child.tag) or self.name(child)  # the memo inline: the hottest loop
            if name in _TITLE:
                value = self.text_construct(child, "text/plain")
                if not title_set:  # feedparser keeps the first non-empty title
                    raw["title"] = value
                    raw["title_detail"] = {}
                    title_set = bool(value)
            elif name in ("id", "guid"):
                self.guid(child, raw)
            elif name in _UPDATED:
                raw["updated"] = self._date(child)
            elif name in _PUBLISHED:
                raw["published"] = self._date(child)
            elif name == "link":
                self.link(child, raw, in_entry=True)
            elif name == "enclosure":
                self.enclosure(child, raw)
            elif name in _AUTHOR:
                self.author(child, raw)
            elif name == "contributor":
                self.person_parts(child)
            elif name in _CATEGORY:
                self.category(child, raw)
            elif name in _CONTENT:
                default = "text/html" if name == "content_encoded" else "text/plain"
                value = self.text_construct(child, default)
                has_content = True
                raw.setdefault("content", []).append({"value": value})
                raw.setdefault("summary", value)  # feedparser copies content into the summary
            elif name == "itunes_keywords":
                self.itunes_keywords(child, raw)
            elif name in _SUMMARY:
                default = "text/html" if name in ("description", "dc_description") else "text/plain"
                if "summary" in raw and not has_content:
                    # feedparser reads a second summary as the content.
                    value = self.text_construct(child, "text/plain")
                    has_content = True
                    raw.setdefault("content", []).append({"value": value})
                else:
                    raw["summary"] = self.text_construct(child, default)
                    raw["summary_detail"] = {}
            elif name in _ENTRY_LEAVES:
                self.leaf(child)
            elif name in _HANDLED_LOWER or name in _READ_KEYS:
                raise _Decline(f"entry element {name!r}")
            else:
                self.check_inert(child)
        return raw

    def kind(self, el: Any) -> int:
        """What `direct` does with the entry child `el` (the branch `entry` would take)."""
        name = self.name(el)
        if name in _TITLE:
            kind = _K_TITLE
        elif name in ("id", "guid"):
            kind = _K_ID
        elif name in _UPDATED:
            kind = _K_UPDATED
        elif name in _PUBLISHED:
            kind = _K_PUBLISHED
        elif name == "link":
            kind = _K_LINK
        elif name == "enclosure":
            kind = _K_ENCLOSURE
        elif name in _AUTHOR:
            kind = _K_AUTHOR
        elif name == "contributor":
            kind = _K_CONTRIBUTOR
        elif name in _CATEGORY:
            kind = _K_CATEGORY
        elif name in _CONTENT:
            kind = _K_HTML_CONTENT if name == "content_encoded" else _K_CONTENT
        elif name == "itunes_keywords":
            kind = _K_KEYWORDS
        elif name in _SUMMARY:
            kind = _K_HTML_SUMMARY if name in ("description", "dc_description") else _K_SUMMARY
        elif name in _ENTRY_LEAVES:
            kind = _K_LEAF
        elif name in _HANDLED_LOWER or name in _READ_KEYS:
            kind = _K_RAW
        else:
            kind = _K_INERT
        self._kinds[el.tag] = kind
        return kind

    def direct(self, el: Any) -> Fields | None:
        """The entry `entry` reads, as the fields `syncd.parse` assembles from its raw dictionary,
        in one pass and without the dictionary; None for an entry that needs more than this
        models (a second author, iTunes keywords, ...): `entry` reads that one. Raises _Decline
        where `entry` would (the caller lets `entry` say so).

        Each branch does what `entry`'s does for the keys `syncd.parse` reads; the differential
        tests compare both readings on every fixture and the generated corpus.
        """
        raw_id: str | None = None
        if len(el.attrib):
            attrs = self.attrs(el)
            if not attrs.keys() <= _ENTRY_ATTRS:
                return None
            raw_id = el.get(_RDF_ABOUT)  # an RSS 1.0 item's rdf:about, unless an id follows
            if raw_id is None and "about" in attrs:
                return None
        kinds = self._kinds
        popped = self.popped
        guidislink: bool | None = None  # feedparser sets it at the first id or guid
        has_link = False  # whether feedparser's `link` key is set (it decides guidislink)
        title: str | None = None
        title_set = False
        published: str | None = None
        updated: str | None = None
        links: list[Link] = []
        authors: list[Person] = []
        author_seen = False
        tags: list[Raw] = []
        content: str | None = None
        has_content = False
        summary: str | None = None
        has_summary = False  # feedparser's `summary` key (content fills it too)
        summary_detail = False  # only a summary element sets it: then `summary` counts
        for child in el.iterchildren(etree.Element):
            kind = kinds.get(child.tag)
            if kind is None:
                kind = self.kind(child)
            if kind == _K_INERT:
                if len(child):
                    self.check_inert(child)
            elif kind == _K_LINK:
                attrs = self.attrs(child)
                if not attrs.keys() <= _LINK_ATTRS:
                    return None
                rel = attrs.get("rel", "alternate").lower()
                default_type = "application/atom+xml" if rel == "self" else "text/html"
                link_type = attrs.get("type", default_type).lower()
                href = attrs.get("href")
                if href is not None:
                    if ":///" in href:
                        href = _fix_uri(href)
                    if rel == "alternate" and _map_content_type(link_type) in _HTML_LINK_TYPES:
                        has_link = True
                    if len(child):
                        self.leaf(child)
                    if href:
                        title_attr, length = attrs.get("title"), attrs.get("length")
                        links.append(Link(href, rel or "alternate", link_type, title_attr, length))
                    continue
                if attrs:
                    return None
                value = popped(self.leaf(child).strip(), relative=True)
                if "&" in value:
                    value = _QUERY_ENTITY_RE.sub(r"&\g<1>", value.replace("&amp;", "&"))
                has_link = True
                if value:
                    links.append(Link(value, rel or "alternate", link_type))
            elif kind == _K_CATEGORY:
                attrs = self.attrs(child)
                if not attrs.keys() <= _CATEGORY_ATTRS or len(tags) >= _MAX_TAGS:
                    return None
                scheme = attrs.get("scheme", attrs.get("domain"))
                _add_tag(tags, attrs.get("term"), scheme, attrs.get("label"))
                value = popped(self.leaf(child).strip(), relative=False)
                if value:
                    if tags and not tags[-1]["term"]:
                        tags[-1]["term"] = value
                    else:
                        _add_tag(tags, value, None, None)
            elif kind == _K_ID:
                attrs = self.attrs(child)
                if not attrs.keys() <= _ID_ATTRS:
                    return None
                is_link = attrs.get("ispermalink", "true") == "true"
                raw_id = popped(self.leaf(child).strip(), relative=is_link)
                if guidislink is None:
                    guidislink = is_link and not has_link
                if is_link:
                    has_link = True
            elif kind in (_K_UPDATED, _K_PUBLISHED):
                if len(child.attrib):
                    return None
                value = popped(self.leaf(child).strip(), relative=False)
                if kind == _K_UPDATED:
                    updated = value
                else:
                    published = value
            elif kind == _K_TITLE:
                value = self.text_construct(child, "text/plain")
                if not title_set:  # feedparser keeps the first non-empty title
                    title = value
                    title_set = bool(value)
            elif kind in (_K_CONTENT, _K_HTML_CONTENT):
                value = self.text_construct(
                    child, "text/html" if kind == _K_HTML_CONTENT else "text/plain"
                )
                if not has_content:
                    content = value
                    has_content = True
                if not has_summary:  # feedparser copies content into the summary
                    summary = value
                    has_summary = True
            elif kind in (_K_SUMMARY, _K_HTML_SUMMARY):
                if has_summary and not has_content:
                    # feedparser reads a second summary as the content.
                    content = self.text_construct(child, "text/plain")
                    has_content = True
                else:
                    default = "text/html" if kind == _K_HTML_SUMMARY else "text/plain"
                    summary = self.text_construct(child, default)
                    has_summary = summary_detail = True
            elif kind == _K_AUTHOR:
                if author_seen:
                    return None  # feedparser's running author string: `entry` follows it
                author_seen = True
                person = self.first_author(child)
                if person is None:
                    return None
                if person != _NOBODY:
                    authors.append(person)
            elif kind == _K_CONTRIBUTOR:
                self.person_parts(child)
            elif kind == _K_ENCLOSURE:
                attrs = self.attrs(child)
                url = attrs.get("url")
                if not attrs.keys() <= _ENCLOSURE_ATTRS or url == "":
                    return None
                if len(child):
                    self.leaf(child)
                if url:
                    enclosure_type = attrs.get("type")
                    links.append(
                        Link(
                            url,
                            "enclosure",
                            None if enclosure_type is None else enclosure_type.lower(),
                            None,
                            attrs.get("length"),
                        )
                    )
            elif kind == _K_LEAF:
                if len(child):
                    self.leaf(child)
            elif kind == _K_KEYWORDS:
                self.itunes_keywords(child, {"tags": tags})  # adds to `tags` itself
            else:
                return None
        return (
            raw_id,
            title,
            published,
            updated,
            tuple(links),
            guidislink is True,
            tuple(authors),
            tuple(term for tag in tags if (term := tag["term"])),
            summary if summary_detail else None,
            content,
        )

    def first_author(self, el: Any) -> Person | None:
        """An entry's first author as `author` reads it (None: leave it to `author`).

        One pass over the children where `author` makes two (`person_parts`, then the text
        beside the parts)."""
        if len(el.attrib):
            self._no_special_attrs(el)
        names = self._names
        person: dict[str, str] = {}
        has_parts = has_elements = stray = False
        for child in el:
            if (child.tail or "").strip():
                stray = True
            tag = child.tag
            if not isinstance(tag, str):
                continue  # a comment or processing instruction
            has_elements = True
            name = names.get(tag) or self.name(child)
            if name in _PERSON_PARTS:
                if len(child.attrib):
                    self._no_special_attrs(child)
                has_parts = True
                text = (self.leaf(child) if len(child) else child.text or "").strip()
                if name == "uri":
                    person["href"] = self.popped(text, relative=True)
                else:
                    person[name] = text  # pushed without "expecting text": stripped only
            else:
                self.check_inert(child)
                # feedparser pushes no element for an extension element with attributes: its
                # text lands in the author's string.
                if len(child.attrib) and self.leaf(child).strip():
                    stray = True
        if has_parts:
            if stray or (el.text or "").strip():
                return None
            return Person(person.get("name"), person.get("email"), person.get("href"))
        if has_elements:
            return None
        text = self.popped(self.leaf(el).strip(), relative=False)
        if "@" in text:
            return None
        return Person(text) if text else _NOBODY

    def _date(self, el: Any) -> str:
        if len(el.attrib):
            raise _Decline(f"attributes on {self.name(el)!r}")
        return self.popped(self.leaf(el).strip(), relative=False)

    def guid(self, el: Any, raw: Raw) -> None:
        attrs = self.attrs(el)
        for key in attrs:
            if key != "ispermalink":
                raise _Decline(f"attribute {key!r} on a guid")
        is_link = attrs.get("ispermalink", "true") == "true"
        raw["id"] = self.popped(self.leaf(el).strip(), relative=is_link)
        raw.setdefault("guidislink", is_link and "link" not in raw)
        if is_link:
            raw.setdefault("link", raw["id"])

    def link(self, el: Any, context: Raw, *, in_entry: bool) -> None:
        attrs = self.attrs(el)
        for key in attrs:
            if key not in ("rel", "type", "href", "title", "length", "hreflang", "lang"):
                raise _Decline(f"attribute {key!r} on a link")
        rel = attrs.get("rel", "alternate").lower()
        default_type = "application/atom+xml" if rel == "self" else "text/html"
        link: Raw = {"rel": rel, "type": attrs.get("type", default_type).lower()}
        for key in ("title", "length", "hreflang"):
            if key in attrs:
                link[key] = attrs[key]
        links = context.setdefault("links", [])
        links.append(link)
        if "href" in attrs:
            href = _fix_uri(attrs["href"])
            link["href"] = href
            if rel == "alternate" and _map_content_type(link["type"]) in (
                "text/html",
                "application/xhtml+xml",
            ):
                context["link"] = href
            self.leaf(el)
            return
        # An RSS link: the URL is the element's text.
        if attrs:
            raise _Decline("a link with attributes but no href")
        value = self.popped(self.leaf(el).strip(), relative=True)
        if in_entry:
            value = _QUERY_ENTITY_RE.sub(r"&\g<1>", value.replace("&amp;", "&"))
            context["link"] = value
            if value:
                link["href"] = value
        else:
            value = _QUERY_ENTITY_RE.sub(r"&\g<1>", value)
            context["link"] = value
            link["href"] = value

    def enclosure(self, el: Any, raw: Raw) -> None:
        attrs = self.attrs(el)
        for key in attrs:
            if key not in ("url", "type", "length"):
                raise _Decline(f"attribute {key!r} on an enclosure")
        link: Raw = {"rel": "enclosure"}
        if "type" in attrs:
            link["type"] = attrs["type"].lower()
        if "length" in attrs:
            link["length"] = attrs["length"]
        if attrs.get("url"):
            link["href"] = attrs["url"]
        elif "url" in attrs:
            raise _Decline("an enclosure with an empty url")
        self.leaf(el)
        raw.setdefault("links", []).append(link)

    def author(self, el: Any, raw: Raw) -> None:
        """An author, and feedparser's running `author` string that leaks into the next one."""
        authors = raw.setdefault("authors", [])
        parts = self.person_parts(el)
        person: Raw = {}
        authors.append(person)
        previous = raw.get("author") or ""
        if parts:
            if raw.get("author_detail") == "aliased":
                # feedparser made its author_detail the earlier text author's own dictionary,
                # and now writes this author's parts into that one too.
                raise _Decline("a structured author after a plain-text one")
            raw.setdefault("author_detail", "own")
            # Text directly inside the author, or inside an extension element with attributes
            # (feedparser pushes no element for those), lands in feedparser's `author` string.
            stray = [el.text or "", *(child.tail or "" for child in el)]
            stray += [
                self.leaf(c)
                for c in _elements(el)
                if len(c.attrib) and self.name(c) not in _PERSON_PARTS
            ]
            if any(text.strip() for text in stray):
                raise _Decline("text beside an author's parts")
            if previous:
                # Saving this author's first part, feedparser finds the author empty and fills
                # its name from the previous author's string.
                if "@" in previous:
                    raise _Decline("an author string with an e-mail address")
                person["name"] = previous
            for key, value in parts:
                person[key] = value
            name, email = person.get("name"), person.get("email")
            raw["author"] = f"{name} ({email})" if name and email else (name or email or "")
            return
        if any(True for _ in _elements(el)):
            raise _Decline("an author with only extension children")
        text = self.popped(self.leaf(el).strip(), relative=False)
        raw["author"] = text
        if "@" in text:
            raise _Decline("an author string with an e-mail address")
        if text:
            raw.setdefault("author_detail", "aliased")
            person["name"] = text

    def itunes_keywords(self, el: Any, raw: Raw) -> None:
        if len(el.attrib):
            raise _Decline("itunes:keywords with attributes")  # feedparser fails on it
        text = self.popped(self.leaf(el).strip(), relative=False)
        tags: list[Raw] = raw.setdefault("tags", [])
        for term in text.split(","):
            if term.strip():
                if len(tags) >= _MAX_TAGS:
                    raise _Decline("too many categories")
                _add_tag(tags, term.strip(), _ITUNES_SCHEME, None)

    def category(self, el: Any, raw: Raw) -> None:
        attrs = self.attrs(el)
        for key in attrs:
            if key not in ("term", "scheme", "domain", "label", "lang"):
                raise _Decline(f"attribute {key!r} on a category")
        tags: list[Raw] = raw.setdefault("tags", [])
        if len(tags) >= _MAX_TAGS:
            # feedparser de-duplicates categories in quadratic time: leave that to its worker.
            raise _Decline("too many categories")
        scheme = attrs.get("scheme", attrs.get("domain"))
        _add_tag(tags, attrs.get("term"), scheme, attrs.get("label"))
        value = self.popped(self.leaf(el).strip(), relative=False)
        if not value:
            return
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            _add_tag(tags, value, None, None)


_NOBODY: Final = Person()


def _add_tag(tags: list[Raw], term: str | None, scheme: str | None, label: str | None) -> None:
    if not term and not scheme and not label:
        return
    tag = {"term": term, "scheme": scheme, "label": label}
    if tag not in tags:
        tags.append(tag)


def _elements(el: Any) -> Iterator[Any]:
    """Child elements, without comments and processing instructions."""
    children: Iterator[Any] = el.iterchildren(etree.Element)
    return children


def _map_content_type(value: str) -> str:
    if value in ("text", "plain"):
        return "text/plain"
    if value == "html":
        return "text/html"
    if value == "xhtml":
        return "application/xhtml+xml"
    return value


def _fix_uri(uri: str) -> str:
    # Only slashes right after "://" change anything; most URIs have none.
    return _URI_FIXER_RE.sub(r"\1\3", uri) if ":///" in uri else uri


def _popped(text: str, *, relative: bool, c1: bool) -> str:
    """What feedparser's `pop` makes of an element's stripped text (it runs with UTF-8 input).

    It "resolves" URI-valued elements against an empty base, undoes text that looks like UTF-8
    misread as Latin-1, and maps C1 controls to their Windows-1252 characters.
    """
    if relative and text:
        text = _fix_uri(text)
    if not text.isascii():
        try:
            fixed = text.encode("iso-8859-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            fixed = text
        text = fixed
        if c1:
            text = text.translate(_CP1252)
    return text
