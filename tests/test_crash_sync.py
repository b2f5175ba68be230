"""Crash consistency of syncing (DESIGN §4.8, §5), proven with real processes and real SQLite.

The real `syncd sync --full` crawls a 515-entry Blogger-like feed served slowly (50 ms per page)
and is SIGKILLed, together with its parser workers (the whole process group), at least 24 times at
seeded points: during startup (imports, migrations, pool start), mid-crawl (a fetch, a parse, a
page's commit), mid-delivery (between a sink's write and its bookkeeping) and late (the last
commit, the delivery pass, exit). Between runs the feed changes: posts are added on top (every page
shifts by one), posts deep in the chain are edited (one of them twice), one `<updated>` moves
alone and one content changes without `<updated>` moving.

After every run, killed or not, the store is read read-only and these invariants must hold:

* the database is whole: `PRAGMA integrity_check` is "ok", no foreign-key violation, and the
  schema is either all there or not there at all;
* the store only moves forward and never tears a page: no entry disappears, none is marked
  deleted (nothing left the feed), and each stored version is either the one held before the run
  or the one the feed served during it;
* the events table holds each change exactly once: the multiset of (entry, type, updated,
  content hash) over all events equals the transitions of the stored versions from run to run
  (one `entry.created` per entry, one `entry.updated` per version change, so the expected change
  set follows the feed's edits as far as the store had seen them), each event wrote exactly one
  version row, ids are unique, and `seq` is never reused: an event keeps its seq, later events
  get larger ones, and the sequence counter never goes back;
* `initial` is set on exactly the events committed before the first complete crawl;
* no sink has anything the store does not: every complete line of the JSON Lines file and every
  webhook request (answered or not) is, byte for byte, the payload of an event already committed,
  and every webhook request carries a valid signature. This is checked after each crash, not only
  at the end: event ids are deterministic, so an event delivered, then lost by the store and
  re-detected later would look fine at the end.

Then `syncd sync --full` runs to completion twice (the second adds no event and delivers nothing),
and the store is compared with a clean run into a fresh database against the same feed state: the
same set of (entry_id, updated, content_hash). Every event reached both sinks at least once (the
duplicates at-least-once allows are counted and reported, not forbidden), every delivery row is
"delivered", and no torn tail is left in the file.

Kill points are random but seeded (`SYNCD_CRASH_SEED` and `SYNCD_CRASH_KILLS` override the
defaults); every assertion holds for any kill point, so what the test asserts is deterministic.
Run with `-s` to see one line per run and the figures (`crash-sync: seed=… kills=… runs=…`).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from tests.conftest import file_sink, syncd, webhook_sink, write_config
from tests.support.crash import (
    OFFSETS,
    KillPoint,
    StoreSnapshot,
    committed_pages,
    count_anchor,
    kill_point,
    page_anchor,
    pending_payload_bytes,
    plan_kill_points,
    read_lines,
    read_store,
    run_and_kill,
)
from tests.support.feedserver import BloggerFeed, parse_time, serve_feed
from tests.support.receiver import TEST_SECRET, ReceiverServer, serve_receiver

SEED = int(os.environ.get("SYNCD_CRASH_SEED", "20261128"))
KILLS = int(os.environ.get("SYNCD_CRASH_KILLS", "24"))
MAX_RUNS = KILLS * 2 + 10  # a run that finishes before its kill point does not count as a kill
PAGE_DELAY_S = 0.05
FEED = "research"
SINKS = ("archive", "hook")
SYNCD_TABLES = frozenset(
    {"feeds", "pages", "entries", "entry_versions", "events", "deliveries", "sinks"}
)
# Feed changes made between kills, at seeded runs; "edit_again" edits the first edited post again.
MUTATIONS = ("add", "edit", "touch", "silent_edit", "edit", "add", "edit_again")

Version = tuple[str, str]  # (updated as stored, content_hash)
ExpectedEvent = tuple[str, str, str, str]  # (entry_id, type, updated, content_hash)


# --------------------------------------------------------------------------------------------
# the oracle: which events the store must hold, from what it stored and what the feed served


@dataclass
class ChangeOracle:
    """Expected events, derived run by run.

    After each run the stored version of every entry must be the one it held before the run or
    the one the feed served during it (the feed changes only between runs, and a full crawl
    handles each entry once). Each change of stored version is exactly one event:
    `entry.created` for a new id, `entry.updated` otherwise.
    """

    stored: dict[str, Version] = field(default_factory=dict)
    expected: Counter[ExpectedEvent] = field(default_factory=Counter)

    def observe(self, served: Mapping[str, int], entries: Mapping[str, Version], run: str) -> None:
        lost = sorted(self.stored.keys() - entries.keys())
        assert not lost, f"{run}: entries vanished from the store: {lost[:3]}"
        for entry_id, version in entries.items():
            before = self.stored.get(entry_id)
            if version == before:
                continue
            assert entry_id in served, f"{run}: stored an entry the feed never served: {entry_id}"
            assert parse_time(version[0]) == served[entry_id], (
                f"{run}: {entry_id} stored with updated={version[0]}, but the feed served"
                f" {served[entry_id]} ms and the store held {before}"
            )
            kind = "entry.created" if before is None else "entry.updated"
            self.expected[(entry_id, kind, *version)] += 1
        self.stored = dict(entries)


def check_store(
    snap: StoreSnapshot, previous: StoreSnapshot, oracle: ChangeOracle, run: str
) -> None:
    """The invariants of the store after any run, killed or not."""
    if not snap.exists:
        assert not previous.exists, f"{run}: the database disappeared"
        return
    assert snap.integrity == ("ok",), f"{run}: integrity_check: {snap.integrity[:5]}"
    assert snap.foreign_key_violations == 0, f"{run}: foreign_key_check found violations"
    present = SYNCD_TABLES & snap.tables
    assert present in (frozenset(), SYNCD_TABLES), f"{run}: half a schema: {sorted(present)}"
    # Nothing leaves the feed here, so nothing may be declared deleted (§4.7: evidence only).
    assert not snap.deleted, f"{run}: entries marked deleted: {sorted(snap.deleted)[:3]}"

    # Ids unique; seq never reused: kept by old events, larger for new ones, counter monotonic.
    ids = [e.id for e in snap.events]
    assert len(ids) == len(set(ids)), f"{run}: duplicate event ids"
    old = {e.id: e.seq for e in previous.events}
    old_max = max(old.values(), default=0)
    assert old.keys() <= set(ids), f"{run}: events vanished"
    for e in snap.events:
        envelope = json.loads(e.payload)
        assert (envelope["id"], envelope["type"], envelope["data"]["seq"]) == (e.id, e.type, e.seq)
        assert envelope["data"]["entry"]["id"] == e.entry_id
        assert envelope["data"]["initial"] == e.initial
        if e.id in old:
            assert old[e.id] == e.seq, f"{run}: event {e.id} changed seq {old[e.id]} -> {e.seq}"
        else:
            assert e.seq > old_max, f"{run}: new event {e.id} reuses seq {e.seq} <= {old_max}"
    top = snap.events[-1].seq if snap.events else 0
    assert snap.max_seq_allocated >= max(top, previous.max_seq_allocated), f"{run}: seq went back"

    # Each change exactly once: events are the stored-version transitions, nothing more or less.
    torn = [e.id for e in snap.events if e.version is None or snap.versions_per_event[e.id] != 1]
    assert not torn, f"{run}: events without exactly one version row: {torn[:3]}"
    actual = Counter((e.entry_id, e.type, *e.version) for e in snap.events if e.version)
    missing, extra = oracle.expected - actual, actual - oracle.expected
    assert not missing and not extra, (
        f"{run}: events differ from the stored changes: missing {list(missing.items())[:3]},"
        f" extra {list(extra.items())[:3]}"
    )
    keys = Counter((e.entry_id, e.type, e.version[0]) for e in snap.events if e.version)
    twice = [k for k, n in keys.items() if n > 1]
    assert not twice, f"{run}: the same (entry, type, updated) twice: {twice[:3]}"
    rows = [(seq, sink) for seq, sink, _ in snap.deliveries]
    assert len(rows) == len(set(rows)), f"{run}: duplicate delivery rows"
    assert {seq for seq, _ in rows} <= {e.seq for e in snap.events}


# --------------------------------------------------------------------------------------------
# what the sinks saw


@dataclass
class SinkTally:
    file_lines: int = 0
    file_ids: Counter[str] = field(default_factory=Counter)
    torn_tails_seen: int = 0
    hook_requests: int = 0
    hook_unanswered: int = 0
    hook_accepted_ids: Counter[str] = field(default_factory=Counter)

    @property
    def file_duplicates(self) -> int:
        return self.file_lines - len(self.file_ids)

    @property
    def hook_duplicates(self) -> int:
        return sum(self.hook_accepted_ids.values()) - len(self.hook_accepted_ids)


def check_sinks(
    snap: StoreSnapshot, archive: Path, rx: ReceiverServer, tally: SinkTally, run: str
) -> None:
    """Every line and every webhook request is an event the store has, byte for byte."""
    payloads = snap.payloads()
    lines, tail = read_lines(archive)
    ids: Counter[str] = Counter()
    for n, line in enumerate(lines, 1):
        try:
            event_id = json.loads(line)["id"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"{run}: {archive.name} line {n} is torn: {line[:80]!r}") from None
        assert event_id in payloads, f"{run}: {archive.name} line {n} has {event_id}, not in store"
        assert line == payloads[event_id], f"{run}: line {n} differs from the stored payload"
        ids[event_id] += 1
    if tail:
        # A crash mid-write may leave bytes after the last newline: no line, and the sink cuts
        # them when it next opens the file. Counted; they must not be a whole event either.
        tally.torn_tails_seen += 1
        assert tail not in payloads.values(), f"{run}: a whole event without its newline"
    tally.file_lines, tally.file_ids = len(lines), ids

    accepted: Counter[str] = Counter()
    requests = rx.receiver.requests
    for r in requests:
        hook_id = r.webhook_id or ""
        assert r.verified, f"{run}: webhook request {r.seq} failed verification: {r.verify_error}"
        assert hook_id in payloads, f"{run}: webhook request {r.seq} has {hook_id}, not in store"
        assert r.body == payloads[hook_id], f"{run}: webhook {hook_id} body differs from store"
        if r.accepted:
            accepted[hook_id] += 1
    tally.hook_requests = len(requests)
    tally.hook_unanswered = sum(not r.answered for r in requests)
    tally.hook_accepted_ids = accepted


# --------------------------------------------------------------------------------------------
# the feed's changes between kills


@dataclass
class Mutator:
    """Changes the feed between runs: only forward moves of `updated`, one kind per post (and
    one post edited twice), so no two events may share (entry, type, updated)."""

    feed: BloggerFeed
    rng: random.Random
    changed: set[str] = field(default_factory=set)
    edited: list[str] = field(default_factory=list)
    added: int = 0
    done: list[str] = field(default_factory=list)

    def apply(self, kind: str) -> None:
        if kind == "add":
            self.added += 1
            entry_id = self.feed.add_entry(f"Published between crashes {self.added}")
        elif kind == "edit_again":
            entry_id = self.edited[0]
            self.feed.edit_entry(entry_id)
        else:
            entry_id = self.rng.choice([i for i in self.feed.ids() if i not in self.changed])
            if kind == "edit":
                self.feed.edit_entry(entry_id)
                self.edited.append(entry_id)
            elif kind == "touch":
                self.feed.touch(entry_id, self.rng.randint(1, 999))
            elif kind == "silent_edit":
                self.feed.edit_entry(entry_id, bump_updated_ms=0)
            else:
                raise ValueError(kind)
        self.changed.add(entry_id)
        self.done.append(f"{kind}@p{self.feed.page_of(entry_id)}")


# --------------------------------------------------------------------------------------------
# the scenario


@dataclass
class Scenario:
    feed: BloggerFeed
    rx: ReceiverServer
    tmp_path: Path
    oracle: ChangeOracle = field(default_factory=ChangeOracle)
    tally: SinkTally = field(default_factory=SinkTally)
    previous: StoreSnapshot = field(default_factory=lambda: StoreSnapshot(exists=False))
    initial_ids: set[str] | None = None  # events present when the first crawl completed
    trace: list[str] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.tmp_path / "syncd.db"

    @property
    def archive(self) -> Path:
        return self.tmp_path / "archive.jsonl"

    def checkpoint(self, run: str) -> StoreSnapshot:
        """Read what the last run left and check every invariant against it."""
        snap = read_store(self.db)
        served = {e.id: e.updated_ms for e in self.feed.entries()}
        self.oracle.observe(served, snap.entries, run)
        check_store(snap, self.previous, self.oracle, run)
        check_sinks(snap, self.archive, self.rx, self.tally, run)
        # Events stay initial until a crawl completes; none after it is (§4.2, docs/design.md).
        if snap.first_synced_at is None:
            assert all(e.initial for e in snap.events), f"{run}: non-initial backfill event"
        else:
            if self.initial_ids is None:
                self.initial_ids = {e.id for e in snap.events}
            else:
                assert snap.first_synced_at == self.previous.first_synced_at, (
                    f"{run}: first_synced_at changed"
                )
            initial = {e.id for e in snap.events if e.initial}
            assert initial == self.initial_ids, f"{run}: initial flags wrong"
        self.previous = snap
        return snap

    def resolve(self, point: KillPoint) -> KillPoint:
        """A delivery point for a sink with nothing pending moves to the other sink, or, if
        neither has anything queued, becomes a late point (nothing to kill mid-delivery)."""
        if point.phase != "delivery":
            return point
        queued = [sink for sink in SINKS if pending_payload_bytes(self.db, sink)[0]]
        if point.sink in queued:
            return point
        if queued:
            return replace(point, sink=queued[0])
        return replace(point, phase="late", sink=None, offset_s=point.fraction * OFFSETS["late"][1])

    def anchor(self, point: KillPoint) -> Callable[[], bool] | None:
        """The predicate after which (plus the point's offset) a run is killed."""
        feed, rx, archive = self.feed, self.rx, self.archive
        if point.phase == "startup":
            return None  # the offset counts from the spawn
        pages = feed.page_count()
        if point.phase == "late":
            return lambda: feed.count() >= pages
        if point.phase == "crawl":
            # Up to three pages past what the store has committed: where this run has work to
            # do (anywhere once the backfill is done: an added post makes every page new).
            page = page_anchor(point, min(pages, committed_pages(self.db) + 3))
            return lambda: feed.count() >= page
        if point.sink == "archive":
            pending, size = pending_payload_bytes(self.db, "archive")
            base = archive.stat().st_size if archive.exists() else 0
            target = base + (max(1, int(point.fraction * size)) if pending else 1)
            return lambda: archive.exists() and archive.stat().st_size >= target
        pending, _ = pending_payload_bytes(self.db, "hook")
        base = len(rx.receiver.requests)
        nth = count_anchor(point, pending) if pending else 1
        return lambda: len(rx.receiver.requests) - base >= nth


async def test_sigkill_during_full_sync_loses_and_duplicates_nothing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    feed = BloggerFeed()
    feed.set_delay(PAGE_DELAY_S)
    mutator = Mutator(feed, rng)
    points = plan_kill_points(rng, KILLS, SINKS)
    mutate_before = dict(
        zip(sorted(rng.sample(range(1, KILLS), len(MUTATIONS))), MUTATIONS, strict=True)
    )
    (tmp_path / "logs").mkdir()
    kills: Counter[str] = Counter()
    survived = runs = 0
    async with serve_feed(feed) as server, serve_receiver(TEST_SECRET) as rx:
        config = write_config(
            tmp_path,
            feeds=[{"name": FEED, "url": server.url}],
            sinks=[
                file_sink(tmp_path, name="archive", initial="deliver"),
                webhook_sink(rx.url, name="hook", initial="deliver"),
            ],
        )
        s = Scenario(feed, rx, tmp_path)

        # Kill, check, change the feed now and then, until enough kills have landed.
        while sum(kills.values()) < KILLS:
            assert runs < MAX_RUNS, f"only {sum(kills.values())} kills landed in {runs} runs"
            if runs in mutate_before:
                mutator.apply(mutate_before[runs])
            point = s.resolve(points[runs] if runs < len(points) else kill_point(rng, "crawl"))
            anchor = s.anchor(point)
            feed.reset_log()
            outcome = await run_and_kill(
                config,
                ["sync", "--full"],
                anchor=anchor,
                offset_s=point.offset_s,
                log_path=tmp_path / "logs" / f"run-{runs:02d}.log",
            )
            label = f"run {runs} ({point.describe()}, seed {SEED})"
            assert outcome.killed or outcome.returncode == 0, (
                f"{label}: syncd exited {outcome.returncode}\n{outcome.log_tail()}"
            )
            kills[point.phase] += outcome.killed
            survived += not outcome.killed
            snap = s.checkpoint(label)
            s.trace.append(
                f"run {runs:02d} {point.describe():<27}"
                f" {'killed' if outcome.killed else 'exited'} at {outcome.elapsed_s:5.2f}s"
                f" (anchor {'-' if outcome.anchor_s is None else f'{outcome.anchor_s:.2f}s'})"
                f" events={len(snap.events)} lines={s.tally.file_lines}"
                f" hooks={s.tally.hook_requests}"
            )
            runs += 1

        # One more change; the next run completes everything, and the one after finds nothing.
        mutator.apply("edit")
        final = await syncd(config, "sync", "--full")
        assert final.code == 0, final.stderr
        done = s.checkpoint("final run")
        sent = (s.tally.file_lines, s.tally.hook_requests)
        again = await syncd(config, "sync", "--full")
        assert again.code == 0, again.stderr
        settled = s.checkpoint("second final run")
        assert [e.id for e in settled.events] == [e.id for e in done.events], "new events"
        assert (s.tally.file_lines, s.tally.hook_requests) == sent, "delivered again"
        assert settled.last_outcome == "not_modified"  # every page answered 304

        # A clean reference: the same feed state synced once into a fresh database, no kills.
        feed.set_delay(0)
        (tmp_path / "reference").mkdir()
        ref_config = write_config(tmp_path / "reference", feeds=[{"name": FEED, "url": server.url}])
        reference = await syncd(ref_config, "sync", "--full")
        assert reference.code == 0, reference.stderr
        ref = read_store(tmp_path / "reference" / "syncd.db")

    # The store holds exactly what a clean run holds, each entry created once.
    assert ref.integrity == ("ok",)
    assert set(settled.entries.items()) == set(ref.entries.items())
    assert len(settled.entries) == len(feed) == 515 + mutator.added
    created = Counter(e.entry_id for e in settled.events if e.type == "entry.created")
    assert set(created) == set(ref.entries) and set(created.values()) == {1}
    updates = [e for e in settled.events if e.type == "entry.updated"]
    assert len(created) + len(updates) == len(settled.events)
    assert {e.entry_id for e in updates} <= mutator.changed

    # Every event reached both sinks at least once; every delivery row says so; no torn tail.
    tally = s.tally
    event_ids = {e.id for e in settled.events}
    undelivered = f"undelivered rows: {len(settled.undelivered)}, e.g. {settled.undelivered[:2]}"
    assert set(tally.file_ids) == event_ids, f"file lacks events; {undelivered}"
    assert set(tally.hook_accepted_ids) == event_ids, f"receiver lacks events; {undelivered}"
    assert not settled.undelivered, undelivered
    assert {(seq, sink) for seq, sink, _ in settled.deliveries} == {
        (e.seq, sink) for e in settled.events for sink in SINKS
    }
    assert read_lines(s.archive)[1] == b"", "the file still ends in a torn line"

    figures = {
        "seed": SEED,
        "kills": sum(kills.values()),
        "kills_by_phase": ",".join(f"{p}:{n}" for p, n in sorted(kills.items())),
        "runs": runs + 2,
        "runs_not_killed": survived + 2,
        "events": len(settled.events),
        "updates": len(updates),
        "initial": len(s.initial_ids or ()),
        "seq_gaps": settled.events[-1].seq - len(settled.events),
        "mutations": ",".join(mutator.done),
        "file_lines": tally.file_lines,
        "file_duplicates": tally.file_duplicates,
        "file_torn_tails_seen": tally.torn_tails_seen,
        "hook_requests": tally.hook_requests,
        "hook_unanswered": tally.hook_unanswered,
        "hook_duplicates": tally.hook_duplicates,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    for key, value in figures.items():
        record_property(key, value)
    print("\n" + "\n".join(s.trace))
    print("crash-sync: " + " ".join(f"{k}={v}" for k, v in figures.items()))
