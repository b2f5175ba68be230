"""Sync one feed: walk its page chain, diff each page, commit each page with its events.

This is the orchestration of the data path (DESIGN §4): fetch ─► parse ─► diff ─► events ─► store,
one transaction per page, so a crash between pages loses nothing and the next run resumes without
duplicate events. Decisions live in the pure modules (diff, events, schedule); this module only
sequences them and turns failures into a recorded outcome. It never raises for a feed's failure:
one broken feed must not stop the others.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from syncd.changes import (
    OFF_FOR,
    ChangesSetting,
    budget,
    check_page,
    detect_base,
    is_off,
    query_url,
    since_instant,
)
from syncd.config import FeedConfig
from syncd.diff import (
    DEFAULT_HASH_ONLY_CAP,
    absence_deletions,
    complete_feed_deletions,
    diff_page,
    stored_as_read,
    tombstone_deletions,
)
from syncd.errors import FetchError, GoneError, LeaseLost, ParseError, SyncdError
from syncd.events import build_deletion_event, build_event
from syncd.model import (
    Change,
    ChangeKind,
    Deletion,
    EventDraft,
    FeedRef,
    FetchResult,
    ParsedEntry,
    ParsedPage,
    StoredEntry,
    Validators,
)
from syncd.moves import MoveState, observe_move
from syncd.netguard import host_of
from syncd.schedule import (
    AUTO_WINDOW,
    Cadence,
    Floor,
    cache_lifetime,
    count_says_crawl,
    needs_full_crawl,
    next_poll,
    page_shortfall,
    publisher_cadence,
)
from syncd.storage import Store
from syncd.storage.values import (
    ChangesOutcome,
    CrawlOutcome,
    EntryDeletion,
    EntryWrite,
    FeedLease,
    FeedState,
    PageCommit,
    PageState,
    PresenceCommit,
    UnchangedPage,
)
from syncd.websub import Discovery, discover

if TYPE_CHECKING:
    from syncd.parse import Reuse  # a pass of 304s does not import the parser

log = structlog.get_logger("syncd.sync")


class PageFetcher(Protocol):
    async def fetch(
        self, url: str, validators: Validators | None = None, *, trusted_host: str | None = None
    ) -> FetchResult: ...


class PageParser(Protocol):
    async def parse(
        self,
        body: bytes,
        *,
        url: str,
        headers: Mapping[str, str],
        ignore_fields: frozenset[str] = frozenset(),
        reuse: Reuse | None = None,
    ) -> ParsedPage: ...


class Progress(Protocol):
    """Told after every page of a crawl; the CLI draws a progress line from it on a TTY."""

    def page(self, feed: str, entries: int, total: int | None) -> None: ...


class SyncObserver(Protocol):
    """Told the report of every crawl (the daemon's metrics)."""

    def crawled(self, report: SyncReport) -> None: ...


Clock = Callable[[], datetime]
Router = Callable[[str, EventDraft], Sequence[str]]  # (feed name, event) ─► sink names


@dataclass(frozen=True)
class Loaded:
    """A fetched page: parsed, or None when it is unchanged since `known`."""

    known: PageState | None
    result: FetchResult
    page: ParsedPage | None


READ_AHEAD = 2  # pages loading beyond the one being committed: one per parser worker


@dataclass
class ReadAhead:
    """Pages a full crawl started loading before it needed them, by URL."""

    visited: set[str]
    budget: int  # fetches it may still start: never past max_pages
    tasks: dict[str, asyncio.Task[Loaded]] = field(default_factory=dict)

    async def cancel(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        # Their errors (a page after a failed one) belong to no one: collect them quietly.
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.tasks.clear()


@dataclass(frozen=True)
class PageChanges:
    """What committing one page changed."""

    changes: tuple[Change, ...]
    silent: tuple[Change, ...]
    deletions: tuple[Deletion, ...]
    seqs: list[int]

    @property
    def any(self) -> bool:
        return bool(self.changes or self.silent or self.deletions)


@dataclass
class SyncReport:
    """What one poll of a feed did: pages fetched and parsed, entries by outcome, and how it
    ended."""

    feed: str
    full: bool = False
    pages: int = 0
    pages_parsed: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    silent: int = 0
    changes_overflow: bool = False  # the changes query had more pages than the poll may ask
    changed_ids: set[str] = field(default_factory=set)  # created or updated by this poll
    counted: tuple[int | None, int] | None = None  # page 1's stated total and its shortfall
    # Page 1's stated cadence (ttl, sy:*): outer None when page 1 was not parsed this time.
    publisher: tuple[Floor | None] | None = None
    missing: int = 0  # live entries a complete full crawl did not list (deleted at the 2nd)
    outcome: str = "ok"
    error: str | None = None
    completed: bool = False  # ended without error
    chain_complete: bool = False  # a full, clean walk to the end of the chain
    recorded: bool = True  # the outcome (and so the next due time) reached the store
    lease_lost: bool = False  # abandoned: another worker took the feed over mid-crawl
    released: bool = False  # the crawl's lease ended with the recorded outcome (`hand_back`)
    move: MoveState | None = None  # what the first page's redirects said, if it was fetched
    changes_pages: int = 0  # requests the changes query made (not counted in `pages`)
    changes_base: str | None = None  # where the feed answers the changes query, if it does
    changes: ChangesOutcome | None = None  # what to record about the changes query
    websub: Discovery | None = None  # the hub page 1 advertised, when it was fetched whole
    ms: float = 0.0
    seqs: list[int] = field(default_factory=list)
    # Pages found unchanged: their validators are written with the outcome, in one transaction.
    unchanged_pages: list[UnchangedPage] = field(default_factory=list)

    def add(self, page: PageChanges, entries: int) -> None:
        self.seqs.extend(page.seqs)
        self.changed_ids.update(c.entry.entry_id for c in (*page.changes, *page.silent))
        self.created += sum(c.kind is ChangeKind.CREATED for c in page.changes)
        self.updated += sum(c.kind is ChangeKind.UPDATED for c in page.changes)
        self.deleted += len(page.deletions)
        self.silent += len(page.silent)
        self.unchanged += max(entries - len(page.changes) - len(page.silent), 0)


class FeedSyncer:
    """Runs crawls. Holds only collaborators, no per-feed state between crawls."""

    def __init__(
        self,
        *,
        store: Store,
        fetcher: PageFetcher,
        parser: PageParser,
        clock: Clock,
        router: Router,
        rng: random.Random,
        hash_only_cap: int = DEFAULT_HASH_ONLY_CAP,
        progress: Progress | None = None,
        observer: SyncObserver | None = None,
        edit_skip: bool = True,
    ) -> None:
        """`edit_skip=False` reads every entry of a changed page again, even one the store
        knows by its key (the keys are still computed and stored): the reference the skip is
        tested against."""
        self.observer = observer
        self.edit_skip = edit_skip
        self.store = store
        self.fetcher = fetcher
        self.parser = parser
        self.clock = clock
        self.router = router
        self.rng = rng
        self.hash_only_cap = hash_only_cap
        self.progress = progress

    async def sync(
        self,
        feed: FeedConfig,
        *,
        full: bool = False,
        lease: FeedLease | None = None,
        hand_back: bool = False,
    ) -> SyncReport:
        """Crawl `feed`. Under a `lease`, every write is fenced with its token: once another
        worker has taken the feed over, the crawl is abandoned and writes nothing more. With
        `hand_back`, the lease ends in the transaction that records the outcome (a poll's
        writes: one transaction, not two); `report.released` says whether it did, so the caller
        releases it only when not (the outcome could not be recorded, the crawl was abandoned)."""
        started = time.perf_counter()
        try:
            if lease is not None and lease.state is not None and lease.state.url == feed.url:
                state = lease.state  # read when leased; nothing else writes what a crawl reads
            else:
                state = await self.store.ensure_feed(feed.name, feed.url, self.clock())
        except SyncdError as e:  # the store is unwritable: nothing can be crawled or recorded
            log.error("feed sync not started", feed=feed.name, error=str(e))
            return SyncReport(feed=feed.name, outcome="error", error=str(e), recorded=False)
        if lease is not None and state.fence != lease.token:  # a lease's own row carries it
            state = replace(state, fence=lease.token)
        try:
            return await self._sync(feed, state, full, started, hand_back and lease is not None)
        except LeaseLost as e:
            log.warning(
                "crawl abandoned: another worker took the feed over", feed=feed.name, error=str(e)
            )
            return SyncReport(feed=feed.name, outcome="lease_lost", error=str(e), lease_lost=True)

    async def _sync(
        self, feed: FeedConfig, state: FeedState, full: bool, started: float, hand_back: bool
    ) -> SyncReport:
        full = (
            full
            # The last crawl committed pages and then died or failed: those pages answer 304
            # now, so a regular poll would stop on page 1 and never reach what it missed.
            or state.crawl_incomplete
            # The feed's own count, or an overflowing changes query, asked for one.
            or state.full_crawl_reason is not None
            or needs_full_crawl(
                first_synced_at=state.first_synced_at,
                last_full_sync_at=state.last_full_sync_at,
                full_sync_every_s=feed.full_sync_every_s,
                now=self.clock(),
            )
        )
        report = SyncReport(feed=feed.name, full=full, changes_base=state.changes_base)
        title = state.title
        cache: Floor | None = None
        retry_after: float | None = None
        since: datetime | None = None
        try:
            if not full and feed.changes != "off":
                # Taken before this poll commits anything: an edit made before a new post must
                # not hide behind that post's newer `updated`.
                newest = await self.store.newest_updated(state.id)
                since = since_instant(newest, state.changes_since, self.clock())
            title, cache = await self._walk(feed, state, report, since)
            report.completed = True
        except GoneError as e:
            if e.url == feed.url:
                report.outcome, report.error = "gone", _describe(e, e.url)
            else:  # a retired deep page is a failed page, not a feed the publisher withdrew
                report.outcome, report.error = "error", _describe(e, e.url, "failed page: ")
        except FetchError as e:
            retry_after = e.retry_after_s
            # A distinct state for status and logs: timeout, dns, tls, forbidden, challenge, …
            throttled = e.retry_after_s is not None and e.kind != "challenge"
            report.outcome = "throttled" if throttled else e.kind
            report.error = _describe(e, e.url)
        except ParseError as e:
            report.outcome, report.error = "error", _describe(e, e.url, "failed page: ")
        except LeaseLost:
            raise  # not the feed's outcome: another worker's crawl now records that
        except SyncdError as e:
            report.outcome, report.error = "error", str(e)
        except Exception as e:  # a bug must not leave the feed due again every second
            log.exception("feed sync crashed", feed=feed.name)
            report.outcome, report.error = "error", f"internal error: {type(e).__name__}: {e}"
        if report.changes is None:
            # The changes query was not asked (a full crawl, or a failure before it): keep what
            # page 1 said about it, and an incremental poll's instant for the next one.
            report.changes = ChangesOutcome(
                report.changes_base,
                since or state.changes_since,
                state.changes_off_until,
                state.changes_error,
            )
        try:
            await self._finish(feed, state, report, title, cache, retry_after, hand_back)
        except LeaseLost:
            raise
        except SyncdError as e:  # e.g. the disk is full: nothing more can be recorded now
            report.recorded = False
            log.error("feed outcome not recorded", feed=feed.name, error=str(e))
        report.ms = (time.perf_counter() - started) * 1000
        fields = dict(
            feed=feed.name,
            full=report.full,
            pages=report.pages,
            parsed=report.pages_parsed,
            created=report.created,
            updated=report.updated,
            deleted=report.deleted,
            unchanged=report.unchanged,
            ms=round(report.ms, 1),
            outcome=report.outcome,
        )
        if report.changes_pages:
            fields["changes_requests"] = report.changes_pages
        if report.error:
            log.warning("feed sync failed", **fields, error=report.error)
        else:
            log.info("feed synced", **fields)
        if self.observer is not None:
            self.observer.crawled(report)
        return report

    async def _walk(
        self, feed: FeedConfig, state: FeedState, report: SyncReport, since: datetime | None
    ) -> tuple[str | None, Floor | None]:
        initial = state.first_synced_at is None
        title = state.title
        cache: Floor | None = None  # how long page 1 said it stays fresh
        crawl_seen: dict[str, datetime | None] = {}  # ids handled in this crawl → their updated
        listed: set[str] = set()  # every id the crawl's pages list, parsed or known unchanged
        clean = True  # no page was read leniently: absences may count as evidence
        complete_doc = False  # an fh:complete document was read: absences already decided
        visited: set[str] = set()
        total: int | None = None  # openSearch:totalResults, for progress
        stated: set[int | None] = set()  # the totalResults each page of the crawl stated
        # Full crawls read ahead: every page is needed, so the next ones load while this commits.
        ahead = ReadAhead(visited, feed.max_pages - 1) if report.full else None
        # A feed that moved for good (§4.10) is fetched where it lives now.
        url: str | None = state.adopted_url or feed.url
        try:
            while url is not None and report.pages < feed.max_pages:
                if url in visited:
                    log.warning("next link loops back", feed=feed.name, url=url)
                    return title, cache  # an incomplete chain: no absence counts
                visited.add(url)
                known_page = await self.store.page_state(state.id, url)
                if known_page is not None and known_page.archive:
                    # RFC 5005 archive documents never change: fetched once, then taken as read.
                    listed.update(known_page.entry_ids)
                    stated.add(known_page.total_results)
                    if not report.full:
                        break
                    url = known_page.next_url
                    continue
                task = ahead.tasks.pop(url, None) if ahead else None
                loaded = await (task or self._load(feed, state, url, known_page, ahead))
                report.pages += 1
                if report.pages == 1:
                    cache = cache_lifetime(loaded.result.headers, self.clock())
                    report.move = self._observe_move(state, url, loaded)
                    if loaded.page is not None:
                        result = loaded.result
                        report.websub = discover(result.headers, result.body, result.final_url)
                        report.changes_base = detect_base(loaded.page, loaded.result.final_url)
                        report.publisher = _publisher_of(loaded.page)
                if loaded.page is None:
                    assert loaded.known is not None
                    report.unchanged_pages.append(self._unchanged(loaded.result))
                    listed.update(loaded.known.entry_ids)
                    stated.add(loaded.known.total_results)
                    self._tell(feed, listed, total)
                    if not report.full:
                        break  # everything from here on was seen and has not changed
                    url = loaded.known.next_url
                    continue
                page = loaded.page
                report.pages_parsed += 1
                if page.malformed:
                    clean = False
                    log.warning("page read leniently", feed=feed.name, url=url, why=page.warnings)
                title = page.feed_title or title
                changed = await self._commit(
                    feed, state, page, loaded.result, title, initial, crawl_seen, listed
                )
                report.add(changed, len(page.entries))
                listed.update(e.entry_id for e in page.entries)
                total = page.total_results or total
                stated.add(page.total_results)
                self._tell(feed, listed, total)
                complete_doc = complete_doc or _is_complete_doc(page)
                if report.pages == 1:
                    report.counted = _count_of(page)
                    reason = count_says_crawl(
                        total=page.total_results,
                        per_page=page.items_per_page,
                        listed=len(page.entries),
                        known_total=state.total_results,
                        known_shortfall=state.page1_shortfall,
                    )
                    if reason is not None and not report.full:
                        # The feed counted itself one short: walk it all now, in this poll.
                        log.info("feed count asks for a full crawl", feed=feed.name, why=reason)
                        report.full = True
                        ahead = ReadAhead(visited, feed.max_pages - 1)
                if not report.full and not changed.any:
                    break  # a page of known, unchanged entries: the rest is older still
                if not report.full and self._changes_will_ask(feed, state, since):
                    # New posts and edits alike carry a fresh `updated`: the changes query lists
                    # them all, so the walk stops at page 1 and the poll stays within 3 requests.
                    break
                url = page.next_url or page.prev_archive_url
                if ahead is not None:  # the parsed link is authoritative: make sure it loads
                    await self._read_ahead(feed, state, url, ahead)
            else:
                if url is None and report.full and clean and not complete_doc:
                    report.chain_complete = True
                    # Counted only if every page stated the same total (it did not move).
                    counted = next(iter(stated)) if len(stated) == 1 else None
                    await self._count_absences(feed, state, listed, title, initial, report, counted)
            if since is not None and not report.full:
                report.changes = await self._ask_changes(
                    feed, state, report, since, title, crawl_seen, listed
                )
        finally:
            if ahead is not None:
                await ahead.cancel()
        return title, cache

    async def apply_push(
        self,
        feed: FeedConfig,
        body: bytes,
        headers: Mapping[str, str],
        page_key: str,
        *,
        lease: FeedLease | None = None,
    ) -> tuple[PageChanges, int]:
        """A document a WebSub hub pushed, parsed, diffed and committed like a fetched page, as a
        partial one: hubs send only new or changed entries, so it proves no absence and is no
        step of a crawl (its tombstones are explicit evidence, and delete as in a poll).
        `page_key` names it in the pages table. Returns the changes and how many entries and
        tombstones it carried (none: a thin ping). Under a `lease`, its commit is fenced as a
        crawl's. Raises ParseError/SyncdError (LeaseLost among them)."""
        state = await self.store.ensure_feed(feed.name, feed.url, self.clock())
        if lease is not None:
            state = replace(state, fence=lease.token)
        page = await self.parser.parse(
            body,
            url=feed.url,
            headers=headers,
            ignore_fields=feed.ignore_fields,
            reuse=self._reuse(state),
        )
        result = FetchResult(
            url=page_key,
            final_url=feed.url,
            status=200,
            body=b"",
            headers=dict(headers),
            etag=None,
            last_modified=None,
            body_hash=None,
            elapsed_ms=0.0,
        )
        title = page.feed_title or state.title
        usable = len(page.entries) + len(page.tombstones)
        if not usable:
            return PageChanges((), (), (), []), 0
        changed = await self._commit(
            feed, state, page, result, title, state.first_synced_at is None, {}, set(), True
        )
        return changed, usable

    def _changes_will_ask(self, feed: FeedConfig, state: FeedState, since: datetime | None) -> bool:
        """Whether this poll's changes query will run (known to be offered and not off)."""
        offered = state.changes_base is not None or feed.changes_url is not None
        return (
            since is not None
            and offered
            and feed.changes != "off"
            and not is_off(state.changes_off_until, self.clock())
        )

    async def _ask_changes(
        self,
        feed: FeedConfig,
        state: FeedState,
        report: SyncReport,
        since: datetime,
        title: str | None,
        crawl_seen: dict[str, datetime | None],
        listed: set[str],
    ) -> ChangesOutcome:
        """The changes query after an incremental walk: the entries updated since `since`,
        newest first, following next links while pages bring changes, within the poll's
        request budget. Its pages are partial views: committed like any page, but never a step
        of a crawl and never evidence of an absence. A refused or malformed answer turns the
        query off for a while; any other failure leaves `since` pinned for the next poll."""
        base = report.changes_base
        now = self.clock()
        unchanged = ChangesOutcome(base, state.changes_since, state.changes_off_until, None)
        if is_off(state.changes_off_until, now):
            return replace(unchanged, error=state.changes_error)
        url = query_url(ChangesSetting(feed.changes, feed.changes_url), base, since)
        if url is None:
            return unchanged
        kept: list[str] = []
        left = budget(report.pages)
        while url is not None and left > 0:
            left -= 1
            known = await self.store.page_state(state.id, url)
            try:
                loaded = await self._load(feed, state, url, known, None)
            except (FetchError, ParseError) as e:
                return self._changes_failed(feed, base, since, e, now)
            report.changes_pages += 1
            report.pages_parsed += loaded.page is not None
            kept.append(url)
            if loaded.page is None:  # a 304: nothing was updated since the last time
                report.unchanged_pages.append(self._unchanged(loaded.result))
                return ChangesOutcome(base, None, keep_pages=tuple(kept))
            problem = check_page(loaded.page, since)
            if problem is not None:
                return self._changes_failed(feed, base, since, ParseError(problem, url=url), now)
            changed = await self._commit(
                feed, state, loaded.page, loaded.result, title, False, crawl_seen, listed, True
            )
            # Entries this poll already took from page 1 are news too: keep following.
            news = changed.any or any(e.entry_id in report.changed_ids for e in loaded.page.entries)
            report.add(changed, len(loaded.page.entries))
            if not news:
                break  # the rest was updated earlier still, and has been seen
            url = loaded.page.next_url
        else:
            if url is not None:
                # More edits than the budget shows: a full crawl finds the rest.
                log.warning("changes query overflows the poll's budget", feed=feed.name, url=url)
                report.changes_overflow = True
                return ChangesOutcome(base, since, keep_pages=tuple(kept))
        return ChangesOutcome(base, None, keep_pages=tuple(kept))

    def _changes_failed(
        self, feed: FeedConfig, base: str | None, since: datetime, error: Exception, now: datetime
    ) -> ChangesOutcome:
        refused = isinstance(error, ParseError) or (
            isinstance(error, FetchError)
            and error.status is not None
            and 400 <= error.status < 500
            and error.status not in (408, 429)
        )
        text = str(error)
        if not refused:  # a timeout, a 5xx: ask again from the same instant next time
            log.warning("changes query failed", feed=feed.name, error=text)
            return ChangesOutcome(base, since)
        until = now + OFF_FOR
        log.warning(
            "changes query turned off for this feed",
            feed=feed.name,
            until=until.isoformat(),
            error=text,
        )
        return ChangesOutcome(base, since, off_until=until, error=text)

    async def _load(
        self,
        feed: FeedConfig,
        state: FeedState,
        url: str,
        known: PageState | None,
        ahead: ReadAhead | None,
    ) -> Loaded:
        """Fetch one page and, unless it is unchanged (304, or the stored body), parse it. In a
        full crawl (`ahead` given) the next page starts loading as soon as this one's bytes are
        in, so two pages parse at once on the two worker processes."""
        validators = known.validators if known else None
        # Trust is per feed (DESIGN §7): only this feed's configured host, never another feed's.
        result = await self.fetcher.fetch(url, validators, trusted_host=host_of(feed.url))
        unchanged = result.not_modified or (
            validators is not None
            and validators.body_hash is not None
            and result.body_hash == validators.body_hash
        )
        if ahead is not None:
            if unchanged and known is not None:
                guess = known.next_url
            else:
                from syncd.parse import guess_next_url  # only a fetched body needs the parser

                guess = guess_next_url(result.body, result.final_url)
            await self._read_ahead(feed, state, guess, ahead)
        if unchanged and known is not None:
            return Loaded(known, result, None)
        page = await self.parser.parse(
            result.body,
            url=result.final_url,
            headers=result.headers,
            ignore_fields=feed.ignore_fields,
            reuse=self._reuse(state),
        )
        return Loaded(known, result, page)

    def _reuse(self, state: FeedState) -> Reuse:
        """The feed's stored entries by key, for the parser: an entry whose key the store
        holds is the stored one, byte for byte (parse.FastPage), so it is not read again and
        the diff finds it unchanged as it would have. Only this feed's rows: an entry that
        moved between feeds is read anew. Looked up before the commit of an earlier page of
        the crawl may be: a key names one reading, so a row found by it is right whenever."""

        async def known(keys: Sequence[str]) -> Mapping[str, ParsedEntry]:
            # A feed's first crawl finds nothing to take: no lookup (the keys are still stored).
            if not self.edit_skip or not keys or state.first_synced_at is None:
                return {}
            return await self.store.entries_by_key(state.id, keys)

        return known

    async def _read_ahead(
        self, feed: FeedConfig, state: FeedState, guess: str | None, ahead: ReadAhead
    ) -> None:
        """Start loading the page a full crawl will most likely need next. The guess comes from
        the raw bytes; if the parsed page names another next link, the guess is never used and
        is cancelled when the crawl ends. Bounded: a crawl never reads far ahead of its commits."""
        if guess is None or guess in ahead.visited or guess in ahead.tasks:
            return
        if len(ahead.tasks) >= READ_AHEAD or ahead.budget <= 0:
            return
        known = await self.store.page_state(state.id, guess)
        if known is not None and known.archive:
            return
        ahead.budget -= 1
        ahead.tasks[guess] = asyncio.create_task(self._load(feed, state, guess, known, ahead))

    def _unchanged(self, result: FetchResult) -> UnchangedPage:
        return UnchangedPage(result.url, result.etag, result.last_modified, self.clock())

    def _tell(self, feed: FeedConfig, listed: set[str], total: int | None) -> None:
        if self.progress is not None:
            self.progress.page(feed.name, len(listed), total)

    async def _commit(
        self,
        feed: FeedConfig,
        state: FeedState,
        page: ParsedPage,
        result: FetchResult,
        title: str | None,
        initial: bool,
        crawl_seen: dict[str, datetime | None],
        listed: set[str],
        partial: bool = False,
    ) -> PageChanges:
        """Diff one parsed page against the store and commit it, with its events, atomically.
        A `partial` page (the changes query's) proves no absence, even if it says fh:complete."""
        ref = FeedRef(feed.name, feed.url, title)
        ids = [e.entry_id for e in page.entries]
        # The entries as read, by key: a row stored under one of them is this reading, so the
        # store builds it from the entry instead of reading and decoding it again (the parse's
        # lookup read it already). Trusted only as far as the edit skip is.
        as_read = (
            {k: e for e, k in zip(page.entries, page.entry_keys, strict=False)}
            if self.edit_skip
            else None
        )
        known = await self.store.known_entries(
            state.id, [*ids, *(t.ref for t in page.tombstones)], as_read
        )
        for i in ids:
            if i in listed and i not in crawl_seen and i in known:
                # Listed by an unchanged page earlier in this crawl: the stored version is the
                # copy this crawl already saw, so a stale duplicate here is not a change.
                crawl_seen[i] = known[i].updated
        decided = diff_page(page.entries, known, crawl_seen, hash_only_cap=self.hash_only_cap)
        deletions = tombstone_deletions(page.tombstones, known, set(ids))
        if _is_complete_doc(page) and not partial:
            live = await self._live_unlisted(state.id, set(ids))
            already = {d.entry.entry_id for d in deletions}
            deletions += tuple(
                d
                for d in complete_feed_deletions(live, set(ids))
                if d.entry.entry_id not in already
            )
        now = self.clock()
        # Each entry is stored with its key, so the next reading of the same bytes is skipped.
        # By identity: the diff hands on the page's own entry objects, and two copies of one id
        # on a page may differ (the one the diff chose is the one written).
        keys = {id(e): k for e, k in zip(page.entries, page.entry_keys, strict=False)}
        writes = []
        for c in decided.changes:
            event = build_event(c, ref, initial=initial, now=now)
            sinks = tuple(self.router(feed.name, event))
            writes.append(EntryWrite(c, event, sinks, keys.get(id(c.entry))))
        # No event: past the cap.
        writes += [EntryWrite(c, None, key=keys.get(id(c.entry))) for c in decided.silent]
        # An entry read again whose row holds it to the byte, under another key (the parser
        # changed, the page moved): the row takes this key, so the next reading is skipped.
        written = {w.change.entry.entry_id for w in writes}
        rekeyed = {
            e.entry_id: key
            for e, key in zip(page.entries, page.entry_keys, strict=False)
            if e.entry_id not in written
            and (stored := known.get(e.entry_id)) is not None
            and stored.parse_key != key
            and stored_as_read(e, stored)
        }
        commit = PageCommit(
            feed_id=state.id,
            result=result,
            page=page,
            next_url=page.next_url or page.prev_archive_url,
            now=now,
            writes=tuple(writes),
            deletions=self._deletions(feed, ref, deletions, initial, now),
            partial=partial,
            fence=state.fence,
            rekeyed=tuple(rekeyed.items()),
        )
        seqs = await self.store.commit_page(commit)
        return PageChanges(decided.changes, decided.silent, deletions, seqs)

    async def _live_unlisted(self, feed_id: int, listed: Collection[str]) -> dict[str, StoredEntry]:
        """The feed's live entries that `listed` does not name, in the order the store lists
        its live entries: all that the absence rules look at (`complete_feed_deletions`,
        `absence_deletions`). Their ids are read first, so a crawl that missed nothing (every
        cold one) reads and decodes no entry."""
        unlisted = [i for i in await self.store.live_entry_ids(feed_id) if i not in listed]
        if not unlisted:
            return {}
        found = await self.store.live_entries(feed_id, unlisted)
        return {i: found[i] for i in unlisted if i in found}

    def _deletions(
        self,
        feed: FeedConfig,
        ref: FeedRef,
        deletions: Sequence[Deletion],
        initial: bool,
        now: datetime,
    ) -> tuple[EntryDeletion, ...]:
        """Each deletion with its event and the sinks that want it."""
        out = []
        for d in deletions:
            event = build_deletion_event(d, ref, initial=initial, now=now)
            out.append(EntryDeletion(d, event, tuple(self.router(feed.name, event))))
        return tuple(out)

    async def _count_absences(
        self,
        feed: FeedConfig,
        state: FeedState,
        listed: set[str],
        title: str | None,
        initial: bool,
        report: SyncReport,
        stated_total: int | None,
    ) -> None:
        """A complete, clean full crawl: absences count, and the second in a row deletes, or the
        first already when the crawl listed exactly the total every page stated."""
        decision = absence_deletions(
            await self._live_unlisted(state.id, listed), listed, stated_total=stated_total
        )
        ref = FeedRef(feed.name, feed.url, title)
        now = self.clock()
        seqs = await self.store.commit_presence(
            PresenceCommit(
                feed_id=state.id,
                now=now,
                seen=frozenset(listed),
                missing=tuple(decision.missing),
                deletions=self._deletions(feed, ref, decision.deletions, initial, now),
                fence=state.fence,
            )
        )
        report.seqs.extend(seqs)
        report.deleted += len(decision.deletions)
        report.missing = len(decision.missing)

    def _observe_move(self, state: FeedState, url: str, loaded: Loaded) -> MoveState:
        """Where the first page's permanent redirects lead, and whether to move there."""
        page = loaded.page
        same_feed = (
            None if page is None else (state.title is None or page.feed_title == state.title)
        )
        move = observe_move(
            MoveState(state.moved_to, state.moved_seen),
            requested=url,
            final=loaded.result.final_url,
            permanent=loaded.result.permanent_redirect,
            same_feed=same_feed,
        )
        if move.adopt:
            log.warning(
                "feed moved permanently; fetching it at its new URL (update the config)",
                feed=state.name,
                old_url=url,
                new_url=move.moved_to,
            )
        return move

    async def _finish(
        self,
        feed: FeedConfig,
        state: FeedState,
        report: SyncReport,
        title: str | None,
        cache: Floor | None,
        retry_after: float | None,
        hand_back: bool,
    ) -> None:
        now = self.clock()
        failed = not report.completed
        errors = state.consecutive_errors + 1 if failed else 0
        if report.publisher is not None:
            (publisher,) = report.publisher
        elif state.publisher_interval_s is not None:
            publisher = Floor(state.publisher_interval_s, state.publisher_interval_why or "")
        else:
            publisher = None
        recent = (
            await self.store.recent_entries(state.id, now - AUTO_WINDOW)
            if feed.interval_auto
            else 0
        )
        due = next_poll(
            now=now,
            cadence=Cadence(
                interval_s=feed.interval_s,
                auto=feed.interval_auto,
                min_interval_s=feed.min_interval_s,
                max_interval_s=feed.max_interval_s,
                max_backoff_s=feed.max_backoff_s,
            ),
            rng=self.rng,
            failed=failed,
            consecutive_errors=errors,
            error_kind=report.outcome,
            retry_after_s=retry_after,
            cache=cache,
            publisher=publisher,
            recent_entries=recent,
        )
        if report.completed and report.pages_parsed == 0:
            report.outcome = "not_modified"
        await self.store.finish_crawl(
            state.id,
            now,
            CrawlOutcome(
                outcome=report.outcome,
                error=report.error,
                next_due_at=due.at,
                next_due_reason=due.reason + _changes_note(feed, report.changes, now),
                consecutive_errors=errors,
                full=report.full,
                completed=report.completed,
                retry_after_until=due.at if retry_after is not None else None,
                title=title,
                move=report.move,
                changes=report.changes,
                counted=report.counted,
                full_crawl_reason=(
                    "the changes query listed more edits than one poll may fetch"
                    if report.changes_overflow
                    else None
                ),
                publisher=(
                    None
                    if report.publisher is None
                    else (publisher.seconds, publisher.why)
                    if publisher is not None
                    else (None, None)
                ),
                unchanged_pages=tuple(report.unchanged_pages),
            ),
            fence=state.fence,
            release=hand_back,
        )
        report.released = hand_back


def _publisher_of(page: ParsedPage) -> tuple[Floor | None]:
    return (publisher_cadence(page.ttl_minutes, page.update_period, page.update_frequency),)


def _changes_note(feed: FeedConfig, changes: ChangesOutcome | None, now: datetime) -> str:
    """What the changes query adds to the reason for the next poll."""
    if feed.changes == "off" or changes is None:
        return ""
    if changes.base is None and feed.changes_url is None:
        return ""
    if is_off(changes.off_until, now):
        assert changes.off_until is not None
        return f"; changes query off until {changes.off_until.isoformat()}"
    return "; deep edits by the changes query"


def _count_of(page: ParsedPage) -> tuple[int | None, int]:
    """What page 1 says about the feed's size: its stated total and how short of it it is."""
    shortfall = page_shortfall(page.total_results, page.items_per_page, len(page.entries))
    return page.total_results, shortfall


def _is_complete_doc(page: ParsedPage) -> bool:
    """An `fh:complete` document lists every entry, so it proves absences; one that also pages
    (next or prev-archive links) contradicts itself and proves nothing."""
    return (
        page.complete
        and not page.malformed
        and page.next_url is None
        and page.prev_archive_url is None
    )


def _describe(error: Exception, url: str, prefix: str = "") -> str:
    """One readable line naming the URL once."""
    text = str(error)
    return f"{prefix}{text}" if url in text else f"{prefix}{text} ({url})"
