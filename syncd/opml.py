"""OPML subscription lists: read the feeds an OPML document lists, write one for `syncd feeds
export --opml`, and derive feed names for outlines that carry none.

Reading: every `<outline>` with an `xmlUrl` is a feed; the `text` (else `title`) of each outline
it is nested in, and each item of its `category` attribute, become its tags. A feed listed twice
(in two folders) is one feed with both folders' tags. Writing puts a feed in the folder of each
of its tags (untagged feeds at the top), and records its syncd name in `syncd:name`, so a list
exported by syncd reads back to the same names, URLs and tags.

Pure: bytes in, data out. Reads no file (the config loader does), no network; the XML parser
neither loads DTDs nor expands entities.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from lxml import etree

__all__ = [
    "SYNCD_NS",
    "ExportedFeed",
    "OpmlError",
    "OpmlFeed",
    "derive_name",
    "name_with_suffix",
    "read_opml",
    "write_opml",
]

# The namespace of syncd's own outline attribute (`syncd:name`); readers ignore it.
SYNCD_NS = "urn:syncd:opml"
_NAME_ATTR = f"{{{SYNCD_NS}}}name"
_HTTP_URL = re.compile(r"^https?://[^/\s]+", re.IGNORECASE)
_NOT_NAME = re.compile(r"[^\w.]+")
MAX_NAME = 60


class OpmlError(ValueError):
    """The document is not a usable OPML subscription list; the message says where and why."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed an OPML document lists."""

    url: str
    title: str | None
    tags: tuple[str, ...]  # sorted, distinct
    name: str | None = None  # `syncd:name`, when a syncd export wrote it
    line: int = 0  # where its (first) outline is, for messages


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds `data` lists, in document order (a feed listed again only adds tags).
    Raises OpmlError naming the line of the first problem."""
    from lxml import etree  # here: loading the config must not load lxml (a pass of 304s)

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        raise OpmlError(f"not well-formed XML: {e.msg}") from None
    if etree.QName(root).localname != "opml":
        raise OpmlError(f"line {_line(root)}: the root element is <{root.tag}>, not <opml>")
    body = next((c for c in root if c.tag == "body"), None)
    if body is None:
        raise OpmlError("no <body> element")
    found: dict[str, OpmlFeed] = {}
    for outline, folders in _outlines(body, ()):
        feed = _feed(outline, folders)
        if feed is None:
            continue
        seen = found.get(feed.url)
        if seen is None:
            found[feed.url] = feed
        else:
            tags = tuple(sorted({*seen.tags, *feed.tags}))
            found[feed.url] = OpmlFeed(
                seen.url, seen.title or feed.title, tags, seen.name or feed.name, seen.line
            )
    return list(found.values())


def _outlines(
    parent: etree._Element, folders: tuple[str, ...]
) -> Iterator[tuple[etree._Element, tuple[str, ...]]]:
    for child in parent:
        if child.tag != "outline":
            continue
        yield child, folders
        if child.get("xmlUrl") is None:  # a folder: its name tags what it holds
            label = _text(child.get("text")) or _text(child.get("title"))
            yield from _outlines(child, (*folders, label) if label else folders)


def _feed(outline: etree._Element, folders: tuple[str, ...]) -> OpmlFeed | None:
    url = _text(outline.get("xmlUrl"))
    if url is None:
        return None
    if url.lower().startswith("feed:"):  # a reader's scheme for "subscribe to this"
        rest = url[len("feed:") :].lstrip("/")
        url = rest if rest.lower().startswith(("http://", "https://")) else f"http://{rest}"
    if not _HTTP_URL.match(url):
        raise OpmlError(f"line {_line(outline)}: xmlUrl {url!r} is not an http(s) URL")
    categories = (c.strip().strip("/").strip() for c in (outline.get("category") or "").split(","))
    tags = {*folders, *(c for c in categories if c)}
    title = _text(outline.get("title")) or _text(outline.get("text"))
    name = _text(outline.get(_NAME_ATTR))
    return OpmlFeed(url, title, tuple(sorted(tags)), name, _line(outline))


def _line(element: etree._Element) -> int:
    line: int | None = getattr(element, "sourceline", None)  # the stubs mistype it
    return line or 0


def _text(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else None
    return value or None


def derive_name(title: str | None, url: str) -> str:
    """A feed name from its title ("Google AI Blog" -> "google-ai-blog"), else from its URL
    ("https://www.example.com/feeds/posts" -> "example.com-feeds-posts"). Depends on nothing
    else, so the same outline gets the same name at every load."""
    name = _slug(title or "")
    if not name:
        parts = urlsplit(url)
        host = (parts.hostname or "").removeprefix("www.")
        name = _slug(f"{host} {parts.path}")
    return name or "feed"


def name_with_suffix(name: str, url: str) -> str:
    """`name` made distinct by its URL: a clash with another feed's name is resolved the same
    way whatever order the feeds come in."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:6]
    return f"{name[: MAX_NAME - 7]}-{digest}"


def _slug(text: str) -> str:
    return _NOT_NAME.sub("-", text.casefold()).strip("-.")[:MAX_NAME].rstrip("-.")


@dataclass(frozen=True, slots=True)
class ExportedFeed:
    name: str
    url: str
    title: str | None
    tags: Sequence[str]


def write_opml(feeds: Iterable[ExportedFeed], *, title: str, now: datetime) -> bytes:
    """An OPML 2.0 document listing `feeds`: one folder per tag holding its feeds (a feed with
    two tags is in both), untagged feeds at the top level."""
    from lxml import etree

    etree.register_namespace("syncd", SYNCD_NS)
    root = etree.Element("opml", version="2.0", nsmap={"syncd": SYNCD_NS})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    etree.SubElement(head, "docs").text = "http://opml.org/spec2.opml"
    body = etree.SubElement(root, "body")
    feeds = list(feeds)
    for tag in sorted({t for f in feeds for t in f.tags}):
        folder = etree.SubElement(body, "outline", text=tag, title=tag)
        for f in feeds:
            if tag in f.tags:
                _outline(folder, f)
    for f in feeds:
        if not f.tags:
            _outline(body, f)
    out: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return out


def _outline(parent: etree._Element, feed: ExportedFeed) -> None:
    from lxml import etree

    label = feed.title or feed.name
    outline = etree.SubElement(parent, "outline", type="rss", text=label, title=label)
    outline.set("xmlUrl", feed.url)
    outline.set(_NAME_ATTR, feed.name)
