"""The parse stage: one fetched body (bytes) in, one `ParsedPage` out, or a `ParseError`.

This is where untrusted feed bytes meet feedparser, so it also holds the defences that must run
before feedparser sees them (DESIGN §7): DOCTYPE declarations are removed, because feedparser's
loose parser expands internal entities without limit; HTML, empty and truncated pages are refused
rather than read as empty feeds, so they can never cause deletions.

Content is kept exactly as published (no sanitizing, no URI rewriting: DESIGN §4.9). Timestamps come
from the raw strings, never from feedparser's `*_parsed` (DESIGN §4.5). `content_hash` is the
normalised fingerprint the diff compares when `updated` did not move (DESIGN §4.6); its projection
is part of the store's data, so changing it makes every stored hash look stale: the golden test
files pin it.

Pure CPU work: no network, no database, no clock. It is slow (feedparser holds the GIL for ~100 ms
per Blogger page), so the daemon runs it through `syncd.parsepool`, never on the event loop.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import html
import io
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

from syncd.errors import ParseError
from syncd.jsontext import literal
from syncd.model import IdSource, Link, ParsedEntry, ParsedPage, Person, Tombstone
from syncd.timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from syncd.fastparse import Fields

__all__ = [
    "HASH_FIELDS",
    "Declined",
    "FastPage",
    "Reuse",
    "code_digest",
    "content_hash",
    "open_page_fast",
    "parse_page",
    "parse_page_fast",
    "parse_page_feedparser",
    "strip_doctype",
]

# The parts of an entry the content hash covers; `ignore_fields` may name any of them.
HASH_FIELDS: Final = frozenset(
    {"title", "content", "summary", "links", "authors", "categories", "published"}
)

DEFAULT_MAX_ENTRIES: Final = 10_000


# feedparser flags these as bozo, yet the document was read completely and correctly.
def _survivable(exc: object) -> bool:
    from feedparser.exceptions import CharacterEncodingOverride, NonXMLContentType

    return isinstance(exc, (CharacterEncodingOverride, NonXMLContentType))


_HISTORY_NS: Final = "http://purl.org/syndication/history/1.0"  # RFC 5005
_OPENSEARCH_NS: Final = (
    "http://a9.com/-/spec/opensearchrss/1.0/",
    "http://a9.com/-/spec/opensearch/1.1/",
)
_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})

# Inside a DOCTYPE, the characters that change the scanner's state.
_DOCTYPE_TOKEN_RE: Final = re.compile(rb"""["'\[\]>]|<!--|<\?""")
# feedparser looks for DOCTYPE/ENTITY declarations in everything before the first `<` + word
# character, whatever the XML grammar says; this finds the end of that region.
_FIRST_ELEMENT_RE: Final = re.compile(rb"<\w")
_ENTITY_RE: Final = re.compile(rb"<!entity", re.IGNORECASE)


def parse_page(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str],
    ignore_fields: frozenset[str] = frozenset(),
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ParsedPage:
    """Parse one feed document. `url` is the final URL (after redirects); `headers` the response's.

    The fast path (lxml) reads it when it can; everything else goes to feedparser. Both give the
    same page for the same bytes. Raises ParseError for anything that is not a complete,
    well-formed feed, and ValueError when `ignore_fields` names something outside HASH_FIELDS (a
    configuration bug, not a feed problem).
    """
    page = parse_page_fast(
        body, url=url, headers=headers, ignore_fields=ignore_fields, max_entries=max_entries
    )
    if isinstance(page, ParsedPage):
        return page
    return parse_page_feedparser(
        body, url=url, headers=headers, ignore_fields=ignore_fields, max_entries=max_entries
    )


@dataclass(frozen=True, slots=True)
class Declined:
    """The fast path left this document to feedparser, for this reason."""

    reason: str


# The entries a caller already knows by key (`FastPage.keys`): for a page's keys, the stored
# entries those keys were written with. See FastPage.
Reuse = Callable[[Sequence[str]], Awaitable[Mapping[str, ParsedEntry]]]


def parse_page_fast(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str],
    ignore_fields: frozenset[str] = frozenset(),
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ParsedPage | Declined:
    """The lxml path alone: the page feedparser would give, or Declined when it cannot be sure."""
    opened = open_page_fast(
        body, url=url, headers=headers, ignore_fields=ignore_fields, max_entries=max_entries
    )
    return opened if isinstance(opened, Declined) else opened.page(None)


def open_page_fast(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str],
    ignore_fields: frozenset[str] = frozenset(),
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> FastPage | Declined:
    """The lxml path's first half: the document read and checked, its entries not yet."""
    _check_ignore_fields(ignore_fields)
    if not body.strip():
        raise ParseError("empty body", url=url)
    from syncd.fastparse import read_fast  # lazily: lxml is not needed by a pass of 304s

    lowered = {name.lower(): value for name, value in headers.items()}
    read = read_fast(body, lowered)
    if isinstance(read, str):
        return Declined(read)
    return FastPage(read, url, ignore_fields, max_entries)


class FastPage:
    """A document the fast path reads, its entries keyed by their bytes before they are read.

    An entry's key is a sha256 over its element as libxml2 holds it (serialised: text, CDATA
    and character references already resolved, attributes in order, comments, the namespace
    declarations in scope) and over everything else its `ParsedEntry` depends on: the
    document's bindings, version and C1 flag, the page URL (the base of relative links),
    `ignore_fields` (the content hash) and the code that reads it (`code_digest`). Equal keys
    therefore mean equal `ParsedEntry`s, whenever and wherever computed: `page(reuse)` takes a
    known entry from `reuse` instead of reading and normalising its element again, and gives the
    page the full reading gives. The feedparser path keys nothing.
    """

    __slots__ = ("_keys", "ignore_fields", "max_entries", "read", "url")

    def __init__(
        self, read: Any, url: str, ignore_fields: frozenset[str], max_entries: int
    ) -> None:
        self.read = read
        self.url = url
        self.ignore_fields = ignore_fields
        self.max_entries = max_entries
        self._keys: tuple[str, ...] | None = None

    def keys(self) -> tuple[str, ...]:
        """The key of each entry, in document order (computed once)."""
        if self._keys is None:
            from lxml import etree

            context = hashlib.sha256(code_digest())
            context.update(
                _json_bytes([self.url, sorted(self.ignore_fields), self.read.context.decode()])
            )
            context.update(b"\0")
            keys = []
            for el in self.read.items:
                digest = context.copy()
                digest.update(
                    etree.tostring(el, encoding="UTF-8", xml_declaration=False, with_tail=False)
                )
                keys.append(digest.hexdigest())
            self._keys = tuple(keys)
        return self._keys

    def page(
        self, reuse: Mapping[str, ParsedEntry] | None, *, direct: bool = True
    ) -> ParsedPage | Declined:
        """The page; with `reuse` (possibly empty), keyed, and its known entries taken from it.

        Entries are read straight into their fields (`FastRead.direct`) where that reading
        models them, else into feedparser's raw dictionary first (`FastRead.entry`), which
        `direct=False` uses for every entry (the differential tests compare both)."""
        read, url = self.read, self.url
        if len(read.items) > self.max_entries:
            # Too many, unless this path cannot read the document at all (then feedparser
            # decides), as when every entry was read before the count.
            reasons = (read.entry(el) for el in read.items)
            reason = next((r for r in reasons if isinstance(r, str)), None)
            if reason is not None:
                return Declined(reason)
            _check_count(len(read.items), self.max_entries, url)
        keys = self.keys() if reuse is not None else ()
        entries: list[ParsedEntry] = []
        version, ignore_fields = read.version, self.ignore_fields
        for i, el in enumerate(read.items):
            if reuse and keys[i] in reuse:
                entries.append(reuse[keys[i]])
                continue
            fields: Fields | None = read.direct(el) if direct else None
            if fields is not None:
                entries.append(_make_entry(*fields, url, version, ignore_fields, True))
                continue
            raw = read.entry(el)  # what the direct reading leaves: the raw dictionary's way
            if isinstance(raw, str):
                return Declined(raw)
            entries.append(_entry(raw, url, version, ignore_fields, xml=True))
        return _assemble(
            url=url,
            version=read.version,
            feed=read.feed,
            entries=tuple(entries),
            namespaces=read.namespaces,
            tombstones=_tombstones_in(read.root),
            malformed=False,
            warnings=(),
            entry_keys=keys,
        )


def code_digest() -> bytes:
    """A digest of the code an entry's reading runs (its keys cover it): the parse modules'
    sources, syncd's, lxml's, libxml2's and Python's versions. Any change makes every stored key
    miss, so a changed reading is never skipped. Read once per process (the files do not change
    under a running one)."""
    return _code_digest()


@functools.cache
def _code_digest() -> bytes:
    import sys

    from lxml import etree

    import syncd
    from syncd import fastparse, model, timestamps

    digest = hashlib.sha256(repr((syncd.__version__, sys.version, etree.LXML_VERSION)).encode())
    digest.update(repr((etree.LIBXML_VERSION, etree.LIBXML_COMPILED_VERSION)).encode())
    for module in (sys.modules[__name__], fastparse, model, timestamps):
        path = module.__file__
        # Installed without sources, the version above stands for them.
        if path is not None and path.endswith(".py"):
            with open(path, "rb") as source:
                digest.update(hashlib.sha256(source.read()).digest())
    return digest.digest()


def parse_page_feedparser(
    body: bytes,
    *,
    url: str,
    headers: Mapping[str, str],
    ignore_fields: frozenset[str] = frozenset(),
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> ParsedPage:
    """The feedparser path alone (what parse_page falls back to)."""
    _check_ignore_fields(ignore_fields)
    if not body.strip():
        raise ParseError("empty body", url=url)
    # Imported here: a daemon whose feeds all take the fast path never loads feedparser.
    import feedparser
    from feedparser.encodings import convert_to_utf8

    lowered = {name.lower(): value for name, value in headers.items()}
    warnings: list[str] = []

    try:
        # Convert to UTF-8 first, exactly as feedparser would, and look for DOCTYPEs in the
        # result: a byte-level search misses a declaration hidden in UTF-16, UTF-7 or EBCDIC.
        encoding_result: dict[str, Any] = {}
        utf8 = convert_to_utf8(lowered, body, encoding_result)
        _check_bozo(encoding_result, url, warnings)
        if any(b"<!ENTITY" in utf8[a:b].upper() for a, b in _doctype_spans(utf8)):
            # Entities are how amplification attacks work, and no real feed needs its own:
            # refuse rather than read the document without them.
            raise _DoctypeRefused("the DOCTYPE declares entities (entity expansion is refused)")
        utf8 = strip_doctype(utf8)

        # The body is UTF-8 now; say so, or feedparser would decode it again with the server's
        # charset.
        reparse_headers = dict(lowered)
        if "content-type" in reparse_headers:
            media_type = reparse_headers["content-type"].split(";", 1)[0].strip()
            reparse_headers["content-type"] = f"{media_type}; charset=utf-8"

        # A BytesIO, not the bytes: feedparser treats a bytes/str argument that names an existing
        # file as a path and reads it.
        parsed = feedparser.parse(
            io.BytesIO(utf8),
            response_headers=reparse_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except (ParseError, MemoryError):
        raise  # MemoryError: the worker pool owns it, and recycles the worker
    except _DoctypeRefused as exc:
        raise ParseError(f"refused: {exc}", url=url) from None
    except Exception as exc:
        # feedparser's own bugs on hostile input (e.g. a stray byte in the XML declaration's
        # encoding name escapes as UnicodeDecodeError): still just a bad page.
        raise ParseError(f"feedparser failed: {type(exc).__name__}: {exc}", url=url) from exc

    if not parsed.get("version"):
        raise ParseError(_not_a_feed_reason(parsed, lowered, utf8), url=url)
    malformed = _check_document(parsed, utf8, url, warnings)
    tombstones: tuple[Tombstone, ...] = ()
    if not malformed and b"deleted-entry" in utf8:
        # A document that is not well-formed XML has no tombstones we could trust.
        with contextlib.suppress(ElementTree.ParseError):
            tombstones = _tombstones_in(ElementTree.fromstring(utf8))
    version = str(parsed.get("version"))
    raw_entries = parsed.get("entries") or []
    _check_count(len(raw_entries), max_entries, url)
    return _assemble(
        url=url,
        version=version,
        feed=parsed.get("feed") or {},
        entries=tuple(_entry(e, url, version, ignore_fields) for e in raw_entries),
        namespaces=parsed.get("namespaces") or {},
        tombstones=tombstones,
        malformed=malformed,
        warnings=tuple(dict.fromkeys(warnings)),  # de-duplicated, order kept
    )


def _check_ignore_fields(ignore_fields: frozenset[str]) -> None:
    unknown = ignore_fields - HASH_FIELDS
    if unknown:
        raise ValueError(f"unknown ignore_fields: {sorted(unknown)}")


def _check_count(entries: int, max_entries: int, url: str) -> None:
    if entries > max_entries:
        raise ParseError(f"too many entries: {entries} > max_entries {max_entries}", url=url)


def _assemble(
    *,
    url: str,
    version: str,
    feed: Any,
    entries: tuple[ParsedEntry, ...],
    namespaces: Mapping[str, str],
    tombstones: tuple[Tombstone, ...],
    malformed: bool,
    warnings: tuple[str, ...],
    entry_keys: tuple[str, ...] = (),
) -> ParsedPage:
    """The page from feedparser-shaped raw feed data and its entries: one assembly for both
    paths (each entry from its raw dictionary by `_entry`)."""
    return ParsedPage(
        url=url,
        feed_title=_text(_raw(feed, "title")),
        next_url=_link_url(feed, url, "next"),
        entries=entries,
        total_results=_total_results(feed, namespaces),
        complete=_has_extension(feed, namespaces, (_HISTORY_NS,), "complete"),
        archive=_has_extension(feed, namespaces, (_HISTORY_NS,), "archive"),
        prev_archive_url=_link_url(feed, url, "prev-archive"),
        tombstones=tombstones,
        malformed=malformed,
        warnings=warnings,
        generator=_generator(feed),
        namespaces=tuple(sorted({u for u in namespaces.values() if isinstance(u, str) and u})),
        items_per_page=_opensearch_int(feed, namespaces, "itemsperpage"),
        ttl_minutes=_digits(_text(_raw(feed, "ttl"))),
        update_period=_sy(feed, namespaces, "updateperiod"),
        update_frequency=_digits(_sy(feed, namespaces, "updatefrequency")),
        entry_keys=entry_keys,
    )


def content_hash(
    *,
    title: str | None,
    content: str | None,
    summary: str | None,
    links: Iterable[Link],
    authors: Iterable[Person],
    categories: Iterable[str],
    published: datetime | None,
    ignore_fields: frozenset[str] = frozenset(),
) -> str:
    """sha256 hex over a canonical JSON of the entry's non-volatile projection.

    Volatile things never enter it: link titles (Blogger's replies link says "3 Comments"),
    `thr:total`, `feedburner:origLink`, and `updated` (the diff compares that on its own).
    Links are grouped by rel and sorted, categories sorted: their order carries no meaning, and a
    reshuffle must not look like an edit. `published` enters as an instant, so rewriting the same
    time with another offset changes nothing. `ignore_fields` drops parts named in HASH_FIELDS.
    """
    _check_ignore_fields(ignore_fields)
    return _content_hash(
        title, content, summary, links, authors, categories, published, ignore_fields
    )


def _content_hash(
    title: str | None,
    content: str | None,
    summary: str | None,
    links: Iterable[Link],
    authors: Iterable[Person],
    categories: Iterable[str],
    published: datetime | None,
    ignore_fields: frozenset[str],
    *,
    xml: bool = False,
) -> str:
    """content_hash, `ignore_fields` already checked (once per page, not per entry).

    `xml`: the free text comes from a well-formed XML 1.0 document (the fast path), so the only
    control characters it can hold are tab, line feed and carriage return (see `_json_text`).
    """
    grouped: dict[str, list[list[str | None]]] = {}
    for link in links:
        item: list[str | None] = [link.href, link.type]
        if link.rel == "enclosure":
            item.append(link.length)
        grouped.setdefault(link.rel, []).append(item)
    # The canonical form is json.dumps(projection, sort_keys=True, separators=(",", ":"),
    # ensure_ascii=False) encoded as UTF-8 (surrogatepass): the hash is stored, so those bytes may
    # never change. They are built member by member, in sorted key order; the free-text members
    # (often tens of KB of non-ASCII HTML, which json's C encoder escapes a character at a time)
    # are escaped on their UTF-8 bytes instead: the same bytes in less than half the time.
    # tests/test_parse.py checks this against the plain json.dumps form.
    authors_json = _json_bytes([[a.name, a.email, a.uri] for a in authors])
    categories_json = _json_bytes(sorted(categories))
    links_json = _json_bytes(
        {
            rel: sorted(items, key=_sort_key) if len(items) > 1 else items
            for rel, items in grouped.items()
        }
    )
    # format_timestamp gives ASCII digits, "-", ":", ".", "T" and "Z": nothing JSON escapes.
    published_json = (
        b'"%s"' % format_timestamp(published).encode() if published is not None else b"null"
    )
    if not ignore_fields:
        # Every member (nearly every feed): one buffer and one sha256 call.
        return hashlib.sha256(
            b"".join(
                (
                    b'{"authors":',
                    authors_json,
                    b',"categories":',
                    categories_json,
                    b',"content":',
                    _json_text(content, xml=xml),
                    b',"links":',
                    links_json,
                    b',"published":',
                    published_json,
                    b',"summary":',
                    _json_text(summary, xml=xml),
                    b',"title":',
                    _json_text(title, xml=xml),
                    b"}",
                )
            )
        ).hexdigest()
    members: dict[str, bytes] = {
        "authors": authors_json,
        "categories": categories_json,
        "content": _json_text(content, xml=xml),
        "links": links_json,
        "published": published_json,
        "summary": _json_text(summary, xml=xml),
        "title": _json_text(title, xml=xml),
    }
    digest = hashlib.sha256(b"{")
    first = True
    for name, value in members.items():  # already in sorted order
        if name not in ignore_fields:
            digest.update(_MEMBER_NAMES[name][first])
            digest.update(value)
            first = False
    digest.update(b"}")
    return digest.hexdigest()


# Each member's name as the canonical JSON spells it: (after another member, first).
_MEMBER_NAMES: Final = {
    name: (b',"%s":' % name.encode(), b'"%s":' % name.encode()) for name in HASH_FIELDS
}


# Stateless, like json.dumps's own default encoder; one instance saves building it per call.
_CANONICAL_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _json_bytes(value: Any) -> bytes:
    """`value` as the canonical JSON of content_hash, UTF-8 encoded."""
    return _CANONICAL_JSON.encode(value).encode("utf-8", "surrogatepass")


def _json_text(text: str | None, *, xml: bool = False) -> bytes:
    """json.dumps(text, ensure_ascii=False) UTF-8 encoded (surrogatepass), from the bytes
    (`syncd.jsontext.literal`; `xml` as there)."""
    return b"null" if text is None else literal(text, xml=xml)


class _DoctypeRefused(ValueError):
    """A DOCTYPE that cannot be removed safely; parse_page turns it into a ParseError."""


def strip_doctype(data: bytes) -> bytes:
    """Remove every DOCTYPE declaration (internal subset included) from an XML prolog.

    `data` must be in an ASCII-compatible encoding (feedparser's UTF-8 conversion output).
    Without the DOCTYPE, an entity reference is undefined: expat reports the document as bozo and
    feedparser's loose parser has no entity to expand. Raises ValueError for a DOCTYPE that cannot
    be removed safely (unterminated), and for an entity declaration placed where only
    feedparser's regexes would find it.
    Works on the bytes in place of a decoded copy: workers run under a memory limit.
    """
    spans = _doctype_spans(data)
    if spans:
        pieces: list[bytes] = []
        start = 0
        for begin, end in spans:
            pieces.append(data[start:begin])
            start = end
        pieces.append(data[start:])
        data = b"".join(pieces)
    first = _FIRST_ELEMENT_RE.search(data)
    if _ENTITY_RE.search(data, 0, first.start() if first else len(data)):
        # Inside a comment or after junk: expat would ignore it, but feedparser's regex would
        # still hand the entities to the loose parser. A DOCTYPE there that declares no entity
        # (a commented-out RSS 0.91 DOCTYPE) is harmless and stays.
        raise _DoctypeRefused(
            "entity declaration outside a well-formed prolog (entity expansion is refused)"
        )
    return data


def _doctype_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each DOCTYPE in the prolog, walking it as XML does (PIs, comments)."""
    spans: list[tuple[int, int]] = []
    # feedparser's conversion drops a UTF-8 byte order mark; other callers may not.
    i = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    length = len(data)
    while i < length:
        if data[i] in b" \t\r\n":
            i += 1
        elif data.startswith(b"<?", i):
            close = data.find(b"?>", i + 2)
            if close < 0:
                break
            i = close + 2
        elif data.startswith(b"<!--", i):
            close = data.find(b"-->", i + 4)
            if close < 0:
                break
            i = close + 3
        elif data[i : i + 9].upper() == b"<!DOCTYPE":
            end = _doctype_end(data, i + 9)
            spans.append((i, end))
            i = end
        else:
            break  # the root element, or junk that expat will refuse anyway
    return spans


def _doctype_end(data: bytes, pos: int) -> int:
    """Offset just past the `>` closing a DOCTYPE whose body starts at `pos`."""
    in_subset = False
    while True:
        match = _DOCTYPE_TOKEN_RE.search(data, pos)
        if match is None:
            raise _DoctypeRefused("unterminated DOCTYPE declaration")
        token = match.group()
        pos = match.end()
        if token in (b'"', b"'"):
            close = data.find(token, pos)
            if close < 0:
                raise _DoctypeRefused("unterminated literal in DOCTYPE declaration")
            pos = close + 1
        elif token == b"<!--" and in_subset:
            close = data.find(b"-->", pos)
            if close < 0:
                raise _DoctypeRefused("unterminated comment in DOCTYPE declaration")
            pos = close + 3
        elif token == b"<?" and in_subset:
            close = data.find(b"?>", pos)
            if close < 0:
                raise _DoctypeRefused("unterminated processing instruction in DOCTYPE")
            pos = close + 2
        elif token == b"[":
            in_subset = True
        elif token == b"]":
            in_subset = False
        elif token == b">" and not in_subset:
            return pos


def _check_bozo(result: Mapping[str, Any], url: str, warnings: list[str]) -> None:
    if not result.get("bozo"):
        return
    exc = result.get("bozo_exception")
    if _survivable(exc):
        warnings.append(f"{type(exc).__name__}: {exc}")
        return
    # Truncated bodies ("no element found"), undefined entities (a stripped DOCTYPE), mismatched
    # tags: feedparser would still return a half-read document, which must not pass for a feed.
    raise ParseError(f"malformed feed: {type(exc).__name__}: {exc}", url=url)


# The end tag of a feed's root element, at the very end of the document.
_ROOT_END_RE: Final = re.compile(rb"</(?:[A-Za-z_][\w.-]*:)?(?:feed|rss|RDF)\s*>\s*$")


def _check_document(parsed: Mapping[str, Any], utf8: bytes, url: str, warnings: list[str]) -> bool:
    """Whether the document was read leniently (malformed). Raises ParseError when it is cut short.

    A truncated body "parses" into a half-filled last entry: that is a failed page (§7). Any other
    XML error (an undefined entity such as `&nbsp;`, an unbound prefix) still leaves every entry
    readable through feedparser's lenient parser, so the page is used, flagged as malformed: it
    may announce entries but can never prove that one is absent.
    """
    if not parsed.get("bozo"):
        return False
    exc = parsed.get("bozo_exception")
    if _survivable(exc):
        warnings.append(f"{type(exc).__name__}: {exc}")
        return False
    message = f"{type(exc).__name__}: {exc}"
    if "no element found" in str(exc) or not _ROOT_END_RE.search(utf8[-4096:]):
        raise ParseError(f"truncated or unterminated document ({message})", url=url)
    warnings.append(f"read leniently: {message}")
    return True


_TOMBSTONE_NS: Final = "http://purl.org/atompub/tombstones/1.0"  # RFC 6721


def _tombstones_in(root: Any) -> tuple[Tombstone, ...]:
    """RFC 6721 `at:deleted-entry` elements of a parsed Atom document (feedparser ignores them).

    `root` is an ElementTree or lxml element; the DOCTYPE is already gone, so no entity expands.
    """
    found = []
    for el in root.iter(f"{{{_TOMBSTONE_NS}}}deleted-entry"):
        ref = el.get("ref")
        if ref:
            found.append(Tombstone(ref=ref, when=parse_timestamp(el.get("when"))))
    return tuple(found)


def _not_a_feed_reason(parsed: Mapping[str, Any], headers: Mapping[str, str], data: bytes) -> str:
    looks_html = (
        "html" in headers.get("content-type", "").lower() or b"<html" in data[:4096].lower()
    )
    hint = " (looks like an HTML page)" if looks_html else ""
    if not hint and parsed.get("bozo"):
        hint = f" ({type(parsed.get('bozo_exception')).__name__}: {parsed.get('bozo_exception')})"
    return f"not a feed: no RSS or Atom root element{hint}"


def _entry(
    raw: Any, page_url: str, version: str, ignore_fields: frozenset[str], *, xml: bool = False
) -> ParsedEntry:
    # Runs for every entry read: dict.get and isinstance inline where _raw and _text would be
    # a call each (what they return is spelt out beside each use).
    get = dict.get
    if not isinstance(raw, dict):
        raw = {}  # _raw of a non-dict: nothing
    raw_id = get(raw, "id")
    raw_id = raw_id if isinstance(raw_id, str) else None
    title = get(raw, "title")
    title = title if isinstance(title, str) else None
    # Raw keys, not raw["updated"]: feedparser's `updated` silently falls back to `published`.
    published_raw = get(raw, "published")
    published_raw = published_raw if isinstance(published_raw, str) else None
    updated_raw = get(raw, "updated")
    updated_raw = updated_raw if isinstance(updated_raw, str) else None
    links = _links(get(raw, "links"))
    content_list = get(raw, "content")
    content = None
    if content_list:
        first = content_list[0]
        content = get(first, "value") if isinstance(first, dict) else None
        content = content if isinstance(content, str) else None
    # feedparser copies content into `summary` when there is no summary; only a real summary
    # element leaves a `summary_detail` behind.
    summary = None
    if get(raw, "summary_detail") is not None:
        summary = get(raw, "summary")
        summary = summary if isinstance(summary, str) else None
    return _make_entry(
        raw_id,
        title,
        published_raw,
        updated_raw,
        links,
        get(raw, "guidislink") is True,
        _authors(get(raw, "authors")),
        _categories(get(raw, "tags")),
        summary,
        content,
        _base_url(raw, content_list, page_url),
        version,
        ignore_fields,
        xml,
    )


def _make_entry(
    raw_id: str | None,
    title: str | None,
    published_raw: str | None,
    updated_raw: str | None,
    links: tuple[Link, ...],
    guidislink: bool,
    authors: tuple[Person, ...],
    categories: tuple[str, ...],
    summary: str | None,
    content: str | None,
    base_url: str,
    version: str,
    ignore_fields: frozenset[str],
    xml: bool,
) -> ParsedEntry:
    """The entry from its fields as read: one assembly for the raw dictionaries (`_entry`) and
    the fast path's direct reading (`fastparse.FastRead.direct`)."""
    published = parse_timestamp(published_raw)
    link = _alternate_link(links)
    if link is None and guidislink and version.startswith("rss"):
        # RSS 2.0: a guid without isPermaLink="false" is the item's permalink.
        link = _http_url(raw_id)
    entry_id: str
    id_source: IdSource
    if raw_id:
        entry_id, id_source = raw_id, "id"
    elif link:
        entry_id, id_source = link, "link"
    else:
        basis = json.dumps([title, published_raw], ensure_ascii=False)
        entry_id, id_source = (
            hashlib.sha256(basis.encode("utf-8", "surrogatepass")).hexdigest(),
            "hash",
        )

    return ParsedEntry(
        entry_id,
        id_source,
        title,
        link,
        published,
        parse_timestamp(updated_raw),
        authors,
        categories,
        summary,
        content,
        links,
        base_url,
        _content_hash(
            title, content, summary, links, authors, categories, published, ignore_fields, xml=xml
        ),
    )


def _links(raw_links: Any) -> tuple[Link, ...]:
    links: list[Link] = []
    get = dict.get  # what _raw does, without a call per key: this runs for every link
    for item in raw_links or ():
        href = get(item, "href") if isinstance(item, dict) else None
        if not href or not isinstance(href, str):
            continue  # a link without a target carries nothing a consumer could use
        rel, kind, title, length = (
            get(item, "rel"),
            get(item, "type"),
            get(item, "title"),
            get(item, "length"),
        )
        links.append(
            Link(
                href,
                (rel if isinstance(rel, str) else None) or "alternate",
                kind if isinstance(kind, str) else None,
                title if isinstance(title, str) else None,
                length if isinstance(length, str) else None,
            )
        )
    return tuple(links)


def _alternate_link(links: Iterable[Link]) -> str | None:
    alternates = [link for link in links if link.rel == "alternate"]
    # Prefer the HTML permalink over, say, an alternate JSON or audio representation.
    for link in alternates:
        if link.type is None or link.type in _HTML_TYPES:
            return link.href
    return alternates[0].href if alternates else None


def _authors(raw_authors: Any) -> tuple[Person, ...]:
    people: list[Person] = []
    get = dict.get
    for item in raw_authors or ():
        if not isinstance(item, dict):
            continue  # _raw of it is None for every part: an empty person, left out
        name, email, uri = get(item, "name"), get(item, "email"), get(item, "href")
        person = Person(
            name if isinstance(name, str) else None,
            email if isinstance(email, str) else None,
            uri if isinstance(uri, str) else None,  # feedparser files Atom's <uri> under "href"
        )
        if person != _NOBODY:
            people.append(person)
    return tuple(people)


_NOBODY: Final = Person()


def _categories(raw_tags: Any) -> tuple[str, ...]:
    get = dict.get
    terms = (get(tag, "term") if isinstance(tag, dict) else None for tag in raw_tags or ())
    return tuple(term for term in terms if term and isinstance(term, str))


def _base_url(raw: Any, content_list: Any, page_url: str) -> str:
    """The xml:base in effect for the entry's content (else its summary, its title), else the page.

    feedparser records the base per text construct; it may be relative when no Content-Location
    was given, so it is resolved against the page URL.
    """
    get = dict.get
    first = content_list[0] if content_list else None
    for detail in (first, _raw(raw, "summary_detail"), _raw(raw, "title_detail")):
        base = get(detail, "base") if isinstance(detail, dict) else None
        if base and isinstance(base, str):
            return urljoin(page_url, base)
    return page_url


# Bounded on purpose: this runs on the event loop over untrusted bytes. A tag may not contain
# "<" and is at most 2 KB, so every start position scans a bounded, non-overlapping stretch.
_NEXT_LINK_RE: Final = re.compile(
    rb"<(?:[A-Za-z_][\w.-]{0,64}:)?link\b[^<>]{0,2048}?\brel\s*=\s*[\"']next[\"'][^<>]{0,2048}>",
    re.IGNORECASE,
)
_HREF_RE: Final = re.compile(rb"\bhref\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_FIRST_ITEM_RE: Final = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,64}:)?(?:entry|item)\b")
_GUESS_WINDOW: Final = 65536  # feed-level links come before the entries, near the top


def guess_next_url(body: bytes, url: str) -> str | None:
    """A cheap guess at a document's rel="next" URL, from the raw bytes of its feed header.

    For read-ahead only: it never decides anything, `parse_page` does. It looks at no more than
    the first 64 KB, up to the first entry, so it costs the event loop microseconds on any input.
    """
    window = body[:_GUESS_WINDOW]
    first = _FIRST_ITEM_RE.search(window)
    head = window[: first.start()] if first else window
    link = _NEXT_LINK_RE.search(head)
    if link is None:
        return None
    href = _HREF_RE.search(link.group(0))
    if href is None:
        return None
    raw = (href.group(1) or href.group(2) or b"").decode("utf-8", "replace")
    return urljoin(url, html.unescape(raw)) if raw else None


def _link_url(feed: Any, page_url: str, rel: str) -> str | None:
    for link in _links(_raw(feed, "links")):
        if link.rel == rel:
            # Used exactly as given (§4.1), only made absolute against the final URL.
            return urljoin(page_url, link.href)
    return None


def _total_results(feed: Any, namespaces: Mapping[str, str]) -> int | None:
    return _opensearch_int(feed, namespaces, "totalresults")


def _opensearch_int(feed: Any, namespaces: Mapping[str, str], local: str) -> int | None:
    for value in _extension_values(feed, namespaces, _OPENSEARCH_NS, local):
        number = _digits(_text(value))
        if number is not None:
            return number
    return None


def _digits(text: str | None) -> int | None:
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    return int(text.strip()) if text is not None and text.strip().isdecimal() else None


_SY_NS: Final = ("http://purl.org/rss/1.0/modules/syndication/",)


def _sy(feed: Any, namespaces: Mapping[str, str], local: str) -> str | None:
    for value in _extension_values(feed, namespaces, _SY_NS, local):
        text = _text(value)
        if text and text.strip():
            return text.strip()
    return None


def _generator(feed: Any) -> str | None:
    detail = _raw(feed, "generator_detail")
    uri = _text(_raw(detail, "href")) if detail is not None else None
    return _text(_raw(feed, "generator")) or uri


def _has_extension(
    feed: Any, namespaces: Mapping[str, str], uris: tuple[str, ...], local: str
) -> bool:
    return any(True for _ in _extension_values(feed, namespaces, uris, local))


def _extension_values(
    feed: Any, namespaces: Mapping[str, str], uris: tuple[str, ...], local: str
) -> Iterator[Any]:
    """Values feedparser stored for `<ns:local>`, whatever prefix the document bound `ns` to.

    feedparser keys unknown extension elements as "<prefix>_<local>" with the document's own
    prefix (lower-cased), or bare "<local>" when the namespace is the default one.
    """
    wanted = {uri.lower() for uri in uris}
    for prefix, uri in namespaces.items():
        if isinstance(uri, str) and uri.lower() in wanted:
            key = f"{prefix.lower()}_{local}" if prefix else local
            if isinstance(feed, dict) and dict.__contains__(feed, key):
                yield dict.get(feed, key)


def _raw(container: Any, key: str) -> Any:
    """dict.get without FeedParserDict's aliasing (e.g. `updated` falling back to `published`)."""
    if isinstance(container, dict):
        return dict.get(container, key)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _http_url(value: str | None) -> str | None:
    if value and urlsplit(value).scheme in ("http", "https"):
        return value
    return None


def _sort_key(item: list[str | None]) -> list[str]:
    return [part or "" for part in item]
