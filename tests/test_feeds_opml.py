"""Feeds from OPML (`[[feeds_from]]`), `syncd feeds list` and `syncd feeds export --opml`:
folders and categories become tags, names are derived stably and uniquely, [[feeds]] tables win
a clash with a note, a bad list is one line naming its file, an export reads back to the same
feeds, and a SIGHUP picks up a changed list."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from syncd.cli import main
from syncd.config import Config, load_config
from syncd.validation import ConfigErrors
from tests.conftest import file_sink, jsonl_so_far, syncd, write_config
from tests.support.feedserver import BloggerFeed, serve_feed
from tests.support.process import start_syncd
from tests.test_e2e_daemon import wait_until

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0"><head><title>from a reader</title></head><body>
"""
TECH = """  <outline text="Tech">
    <outline title="Python">
      <outline type="rss" text="Planet Python" xmlUrl="https://planetpython.org/rss20.xml"/>
    </outline>
    <outline type="rss" text="Google AI Blog" category="/ai, ml/"
             xmlUrl="feed://feeds.feedburner.com/blogspot/gJZg"/>
  </outline>
"""
NEWS = [
    '    <outline type="rss" text="Planet Python" xmlUrl="https://planetpython.org/rss20.xml"/>',
    '    <outline type="rss" text="Same Title" xmlUrl="https://a.example/feed"/>',
    '    <outline type="rss" text="Same Title" xmlUrl="https://b.example/feed"/>',
    '    <outline type="rss" xmlUrl="https://www.example.org/blog/feed.xml"/>',
    '    <outline type="rss" text="Research" xmlUrl="https://x.example/research"/>',
    '    <outline type="rss" text="Overridden" xmlUrl="https://toml.example/feed"/>',
    '    <outline type="rss" text="Podcast" xmlUrl="feed:https://c.example/rss"/>',
]
TAIL = "</body></opml>\n"


def news(lines: list[str]) -> str:
    return '  <outline text="News">\n' + "\n".join(lines) + "\n  </outline>\n"


OPML = HEAD + TECH + news(NEWS) + TAIL


def config_with_opml(tmp_path: Path, opml: str, extra: str = "") -> Path:
    (tmp_path / "lists").mkdir(exist_ok=True)
    (tmp_path / "lists" / "feeds.opml").write_text(opml)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[store]\npath = "{tmp_path / "syncd.db"}"\n'
        '[[feeds]]\nname = "research"\nurl = "https://research.example/feed"\ntags = ["ml"]\n'
        '[[feeds]]\nname = "mine"\nurl = "https://toml.example/feed"\n'
        '[[feeds_from]]\nopml = "lists/feeds.opml"\ninterval = "1h"\ntags = ["imported"]\n' + extra
    )
    return path


def by_name(config: Config) -> dict[str, tuple[str, tuple[str, ...], str]]:
    return {f.name: (f.url, f.tags, f.source) for f in config.feeds}


def test_opml_feeds_join_the_config_with_tags_and_stable_unique_names(tmp_path: Path) -> None:
    config = load_config(config_with_opml(tmp_path, OPML))
    assert by_name(config) == {
        "research": ("https://research.example/feed", ("ml",), "toml"),
        "mine": ("https://toml.example/feed", (), "toml"),
        # Nested folders tag a feed with each; a feed in two folders is one feed.
        "planet-python": (
            "https://planetpython.org/rss20.xml",
            ("News", "Python", "Tech", "imported"),
            "opml",
        ),
        # category="/ai, ml/" items are tags too; feed:// is a reader's http://.
        "google-ai-blog": (
            "http://feeds.feedburner.com/blogspot/gJZg",
            ("Tech", "ai", "imported", "ml"),
            "opml",
        ),
        # Two outlines with one title: each name takes a suffix from its own URL.
        "same-title-f4dd3b": ("https://a.example/feed", ("News", "imported"), "opml"),
        "same-title-4e90bd": ("https://b.example/feed", ("News", "imported"), "opml"),
        # No title: the name comes from the URL.
        "example.org-blog-feed.xml": (
            "https://www.example.org/blog/feed.xml",
            ("News", "imported"),
            "opml",
        ),
        # A [[feeds]] table named "research" keeps its name; the outline is renamed.
        "research-65f7d6": ("https://x.example/research", ("News", "imported"), "opml"),
        "podcast": ("https://c.example/rss", ("News", "imported"), "opml"),
    }
    opml_feed = config.feed("planet-python")
    assert opml_feed.interval_s == 3600 and opml_feed.opml == tmp_path / "lists" / "feeds.opml"
    assert config.feed("mine").interval_s == 900  # [[feeds_from]] options are its feeds' only
    # Both clashes with [[feeds]] are told, naming the file and the line.
    opml_path = tmp_path / "lists" / "feeds.opml"
    assert config.notes == (
        f"{opml_path}: line 16: https://toml.example/feed is configured by [[feeds]] as 'mine';"
        " that table wins over the OPML outline",
        f"{opml_path}: line 15: the name 'research' belongs to a [[feeds]] table; this"
        " outline's feed (https://x.example/research) is 'research-65f7d6'",
    )
    # The same outlines in another order get the same names.
    reordered = HEAD + news(NEWS[::-1]) + TECH + TAIL
    assert by_name(load_config(config_with_opml(tmp_path, reordered))) == by_name(config)


@pytest.mark.parametrize(
    ("opml", "problem"),
    [
        ("<opml><body><outline xmlUrl='https://x/'></body></opml>", "not well-formed XML"),
        ("<rss><channel/></rss>", "line 1: the root element is <rss>, not <opml>"),
        ("<opml><head/></opml>", "no <body> element"),
        (
            "<opml><body>\n<outline xmlUrl='ftp://x/feed'/></body></opml>",
            "line 2: xmlUrl 'ftp://x/feed' is not an http(s) URL",
        ),
        (None, "cannot read OPML file: No such file or directory (feeds_from[0].opml)"),
    ],
)
def test_a_bad_opml_list_is_one_line_naming_the_file(
    tmp_path: Path, opml: str | None, problem: str
) -> None:
    config = config_with_opml(tmp_path, opml or "")
    if opml is None:
        (tmp_path / "lists" / "feeds.opml").unlink()
    result = CliRunner().invoke(main, ["--config", str(config), "feeds", "list"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"syncd: config error: {tmp_path / 'lists' / 'feeds.opml'}: ")
    assert problem in line


def test_export_reads_back_to_the_same_feeds(tmp_path: Path) -> None:
    config = load_config(config_with_opml(tmp_path, OPML))
    exported = tmp_path / "exported.opml"
    result = CliRunner().invoke(
        main, ["--config", str(config.source), "feeds", "export", "--opml", "-o", str(exported)]
    )
    assert result.exit_code == 0, result.output
    # OPML 2.0: a head with a title and a date, every feed an outline with text and xmlUrl.
    root = etree.fromstring(exported.read_bytes())
    assert root.tag == "opml" and root.get("version") == "2.0"
    assert root.findtext("head/title") and root.findtext("head/dateCreated")
    feeds = root.findall(".//outline[@xmlUrl]")
    assert feeds and all(o.get("type") == "rss" and o.get("text") for o in feeds)
    # A folder per tag; the untagged feed at the top level.
    folders = [o.get("text") for o in root.findall("body/outline") if o.get("xmlUrl") is None]
    assert folders == ["News", "Python", "Tech", "ai", "imported", "ml"]
    assert [o.get("xmlUrl") for o in root.findall("body/outline[@xmlUrl]")] == [
        "https://toml.example/feed"
    ]
    # Read back through [[feeds_from]] alone: the same names, URLs and tags, toml ones included.
    again = tmp_path / "again"
    again.mkdir()
    (again / "syncd.toml").write_text('[[feeds_from]]\nopml = "../exported.opml"\n')
    back = load_config(again / "syncd.toml")
    assert {n: (u, t) for n, (u, t, _) in by_name(back).items()} == {
        n: (u, t) for n, (u, t, _) in by_name(config).items()
    }
    assert {f.source for f in back.feeds} == {"opml"}


async def test_feeds_list_status_and_sync_take_tags(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(3)) as a, serve_feed(BloggerFeed(2)) as b:
        opml = (
            '<opml version="2.0"><body><outline text="Work">'
            f'<outline type="rss" text="Feed A" xmlUrl="{a.url}"/></outline>'
            f'<outline type="rss" text="Feed B" xmlUrl="{b.url}"/></body></opml>'
        )
        (tmp_path / "feeds.opml").write_text(opml)
        config = write_config(tmp_path, feeds=[])
        config.write_text(config.read_text() + '\n[[feeds_from]]\nopml = "feeds.opml"\n')

        listed = await syncd(config, "feeds", "list")  # no database yet: never synced
        assert listed.code == 0, listed.stderr
        assert "never synced" in listed.stdout and not (tmp_path / "syncd.db").exists()

        synced = await syncd(config, "sync", "--tag", "Work")
        assert synced.code == 0, synced.stderr
        result = await syncd(config, "feeds", "list", "--json")
    rows = {f["name"]: f for f in json.loads(result.stdout)}
    assert rows["feed-a"]["tags"] == ["Work"] and rows["feed-a"]["source"] == "opml"
    assert rows["feed-a"]["last_outcome"] == "ok" and rows["feed-a"]["entries"] == 3
    assert rows["feed-a"]["interval"] == 900 and rows["feed-a"]["url"] == a.url
    assert rows["feed-b"]["last_outcome"] == "never synced"  # not tagged Work
    tagged = await syncd(config, "status", "--json", "--tag", "Work")
    assert [f["name"] for f in json.loads(tagged.stdout)["feeds"]] == ["feed-a"]
    unknown = await syncd(config, "feeds", "list", "--tag", "Play")
    assert unknown.code == 2
    assert unknown.stderr.strip() == "syncd: no feed is tagged 'Play' (tags: Work)"


async def test_sighup_picks_up_a_changed_opml_list(tmp_path: Path) -> None:
    async with serve_feed(BloggerFeed(3)) as a, serve_feed(BloggerFeed(2)) as b:
        outline = '<outline type="rss" text="{}" xmlUrl="{}"/>'
        opml = tmp_path / "feeds.opml"
        opml.write_text(f"<opml><body>{outline.format('A', a.url)}</body></opml>")
        config = write_config(tmp_path, feeds=[], sinks=[file_sink(tmp_path)])
        config.write_text(config.read_text() + '\n[[feeds_from]]\nopml = "feeds.opml"\n')
        log_path = tmp_path / "stderr.log"
        with log_path.open("wb") as log_file:
            proc = await start_syncd(
                config, "run", stdout=asyncio.subprocess.DEVNULL, stderr=log_file
            )
        try:
            archive = tmp_path / "archive.jsonl"
            await wait_until(lambda: len(jsonl_so_far(archive)) == 3)
            opml.write_text(
                f"<opml><body>{outline.format('B', b.url)}{outline.format('A', a.url)}"
                "</body></opml>"
            )
            proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: len(jsonl_so_far(archive)) == 5)
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    assert {e["data"]["feed"]["name"] for e in jsonl_so_far(archive)} == {"a", "b"}
    logs = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    (reloaded,) = [e for e in logs if e["event"] == "config reloaded"]
    assert reloaded["feeds"] == {"added": ["b"], "removed": [], "changed": []}


def test_config_errors_in_a_feeds_from_table_name_it(tmp_path: Path) -> None:
    config = config_with_opml(tmp_path, OPML, extra='max_pages = "many"\n')
    with pytest.raises(ConfigErrors) as caught:
        load_config(config)
    assert str(caught.value) == (f"{config}: feeds_from[0].max_pages: 'many' is not a whole number")
