"""A pass loads only the parsers it needs: lxml for well-formed feeds, nothing for 304s; and
`syncd sync` never loads what only other commands use (the daemon's web server and metrics,
rich's progress display off a terminal, the store copy). A pass of 304s opens no sink file.

The real `syncd sync` runs with Python's import-time report on (PYTHONPROFILEIMPORTTIME), which
names every module the process imported; starting a parser process would import the forkserver's
Popen. Nothing here measures time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Result, file_sink, syncd, webhook_sink, write_config
from tests.support.feedserver import FeedServer

PARSER_PROCESS = "multiprocessing.popen_forkserver"
# What a `syncd sync` that meets only 304s must not import: parsers, the daemon and its web server
# and metrics, the other commands, the progress display (stderr is no terminal here), the other
# store backend (psycopg), sqlite-utils (only a store with migrations pending needs it), and rich
# at all (structlog would import it for console tracebacks; these logs are JSON); nor the parse
# modules, the process machinery, OPML lists (none configured) or the store copy; nor pydantic
# (syncd's own checker accepts a config of feeds and a file sink, `syncd.configcheck`), the
# webhook sink's module, or the installed distributions' metadata (no plugin sink type); nor the
# values and store modules of operator reads and maintenance (`syncd.storage.reports`: listings,
# search, exports, prune, vacuum).
NOT_FOR_A_304_PASS = (
    "pydantic",
    "pydantic_core",
    "syncd.configmodels",
    "syncd.validation",
    "syncd.sinks.webhook",
    "syncd.sinks.options",
    "importlib.metadata",
    "feedparser",
    "lxml",
    PARSER_PROCESS,
    "multiprocessing",
    "concurrent.futures.process",
    "syncd.parse",
    "syncd.fastparse",
    "xml.etree",
    "syncd.opml",
    "syncd.storage.transfer",
    "aiohttp.web",
    "prometheus_client",
    "psycopg",
    "sqlite_utils",
    "rich.console",
    "rich.pretty",
    "rich.traceback",
    "rich.progress",
    "syncd.daemon",
    "syncd.web",
    "syncd.metrics",
    "syncd.cli.daemon",
    "syncd.cli.deliveries",
    "syncd.cli.status",
    "syncd.cli.progress",
    "syncd.storage.reports",
    "syncd.storage.sqlite.history",
    "syncd.storage.sqlite.prune",
    "syncd.storage.sqlite.vacuum",
    "syncd.storage.sqlite.reader",
)


def loaded(modules: set[str], names: tuple[str, ...]) -> set[str]:
    """The modules of `modules` that are one of `names` or inside one of them."""
    return {m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names)}


def imported(result: Result) -> set[str]:
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "syncd.sync" in modules  # the report works
    return modules


async def test_well_formed_feeds_then_304s_import_no_feedparser_and_start_no_process(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the GData changes query, whose answer is a 200 to parse on every poll (issue 9).
    feed = {"name": "blog", "url": feed_server.url, "changes": "off"}
    config = write_config(tmp_path, [feed], [file_sink(tmp_path)])
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")

    cold = await syncd(config, "sync")
    assert cold.code == 0, cold.stderr[-2000:]
    modules = imported(cold)
    assert "lxml.etree" in modules
    assert "feedparser" not in modules
    assert PARSER_PROCESS not in modules

    # A torn tail stays as it is: the sink has nothing to send, so its file is not opened.
    archive = tmp_path / "archive.jsonl"
    torn = archive.read_bytes() + b'{"id":"to'
    archive.write_bytes(torn)
    unchanged = await syncd(config, "sync")
    assert unchanged.code == 0, unchanged.stderr[-2000:]
    assert loaded(imported(unchanged), NOT_FOR_A_304_PASS) == set()
    assert archive.read_bytes() == torn


async def test_a_pass_of_304s_with_a_webhook_sink_imports_no_pydantic(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A webhook's first sync delivers nothing (its `initial` is "skip"): no receiver needed.
    feed = {"name": "blog", "url": feed_server.url, "changes": "off"}
    hook = webhook_sink("http://127.0.0.1:9/hook")
    config = write_config(tmp_path, [feed], [hook, file_sink(tmp_path)])
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    cold = await syncd(config, "sync")
    assert cold.code == 0, cold.stderr[-2000:]
    unchanged = await syncd(config, "sync")
    assert unchanged.code == 0, unchanged.stderr[-2000:]
    modules = imported(unchanged)
    assert "syncd.sinks.webhook" in modules  # the sink was built
    assert loaded(modules, ("pydantic", "syncd.configmodels", "importlib.metadata")) == set()


async def test_a_feed_the_fast_path_declines_starts_the_parser_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.documents import serve_documents

    # An RSS author with an e-mail address: feedparser's parsing of it is not modelled.
    rss = (Path(__file__).parent / "data" / "rss2.xml").read_bytes()
    rss = rss.replace(b'rel="next"', b'rel="related"')  # one page: nothing else to fetch
    async with serve_documents({"/rss": rss}) as base:
        config = write_config(tmp_path, [{"name": "rss", "url": f"{base}/rss"}])
        monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
        result = await syncd(config, "sync")
    assert result.code == 0, result.stderr[-2000:]
    modules = imported(result)
    assert "feedparser" in modules
    assert PARSER_PROCESS in modules
