"""syncd.parsepool: the fast path in-process, and real worker processes for the rest that parse,
fail cleanly, come back after a crash, and start only when a page needs them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from syncd.errors import ParseError
from syncd.parse import parse_page
from syncd.parsepool import INLINE_PARSE_BYTES, ParserPool

SEED = Path(__file__).parent / "data" / "google-research-blog-page1.atom.xml"
SEED_URL = "http://feeds.feedburner.com/blogspot/gJZg"
HEADERS = {"content-type": "application/atom+xml; charset=UTF-8"}
# A guard against a hung pool, not a speed target: a healthy parse takes well under a second.
HANG_GUARD_S = 60.0


async def parse(pool: ParserPool, body: bytes, url: str = SEED_URL, **kwargs: Any) -> Any:
    return await asyncio.wait_for(
        pool.parse(body, url=url, headers=HEADERS, **kwargs), HANG_GUARD_S
    )


def worker_pids(pool: ParserPool) -> list[int]:
    # The executor's process table is private; reading it is the only way to pick a victim.
    executor = pool._executor
    assert executor is not None
    return list(executor._processes)


def huge_feed(megabytes: int) -> bytes:
    """A valid feed whose parse needs several copies of `megabytes` in the worker."""
    filler = "a" * (megabytes * 1_000_000)
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<entry><id>big</id><content>{filler}</content></entry></feed>"
    ).encode()


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
async def test_parses_the_seed_in_a_worker(start_method: Any) -> None:
    body = SEED.read_bytes()
    async with ParserPool(workers=1, fast_in_process=False, start_method=start_method) as pool:
        page = await parse(pool, body)
        assert len(worker_pids(pool)) == 1
        assert os.getpid() not in worker_pids(pool)
    assert page == parse_page(body, url=SEED_URL, headers=HEADERS)


async def test_concurrent_parses_use_both_workers() -> None:
    body = SEED.read_bytes()
    async with ParserPool(workers=2, fast_in_process=False) as pool:
        pages = await asyncio.gather(*(parse(pool, body) for _ in range(6)))
        assert len(worker_pids(pool)) == 2
    assert {len(page.entries) for page in pages} == {25}


async def test_parse_error_comes_back_as_parse_error() -> None:
    truncated = SEED.read_bytes()[:1000]
    async with ParserPool(workers=1, fast_in_process=False) as pool:
        with pytest.raises(ParseError, match="truncated or unterminated") as caught:
            await parse(pool, truncated, url="https://example.com/truncated")
        assert caught.value.url == "https://example.com/truncated"
        # A bad page is not a broken pool: the same worker carries on.
        before = worker_pids(pool)
        assert len((await parse(pool, SEED.read_bytes())).entries) == 25
        assert worker_pids(pool) == before


async def test_ignore_fields_reach_the_worker() -> None:
    body = SEED.read_bytes()
    ignore = frozenset({"title", "content"})
    async with ParserPool(workers=1, fast_in_process=False) as pool:
        page = await parse(pool, body, ignore_fields=ignore)
    expected = parse_page(body, url=SEED_URL, headers=HEADERS, ignore_fields=ignore)
    assert page.entries[0].content_hash == expected.entries[0].content_hash
    assert (
        page.entries[0].content_hash
        != parse_page(body, url=SEED_URL, headers=HEADERS).entries[0].content_hash
    )


async def test_max_entries_applies_in_the_worker() -> None:
    async with ParserPool(workers=1, fast_in_process=False, max_entries=10) as pool:
        with pytest.raises(ParseError, match="too many entries"):
            await parse(pool, SEED.read_bytes())


async def test_survives_a_killed_worker() -> None:
    body = SEED.read_bytes()
    async with ParserPool(workers=1, fast_in_process=False) as pool:
        await parse(pool, body)
        (victim,) = worker_pids(pool)
        os.kill(victim, signal.SIGKILL)
        # The pool the dead worker belonged to is broken: the next page fails, naming its URL...
        with pytest.raises(ParseError, match="worker died") as caught:
            await parse(pool, body, url="https://example.com/unlucky")
        assert caught.value.url == "https://example.com/unlucky"
        # ...and then a fresh pool takes over.
        page = await parse(pool, body)
        assert len(page.entries) == 25
        assert victim not in worker_pids(pool)


async def test_survives_a_worker_exceeding_its_memory_limit() -> None:
    # A worker idles at ~35 MB of address space and parses the seed within ~40 MB; a 48 MB body
    # needs several copies of itself (UTF-8 conversion, DOCTYPE scan, feedparser's buffers).
    body = SEED.read_bytes()
    async with ParserPool(
        workers=1, fast_in_process=False, memory_limit_bytes=192 * 1024 * 1024
    ) as pool:
        assert len((await parse(pool, body)).entries) == 25
        with pytest.raises(ParseError) as caught:
            await parse(pool, huge_feed(48), url="https://example.com/huge")
        assert caught.value.url == "https://example.com/huge"
        assert len((await parse(pool, body)).entries) == 25


async def test_the_same_page_parses_with_no_memory_limit() -> None:
    # The control for the test above: the 48 MB feed is valid, only the limit refused it.
    async with ParserPool(workers=1, fast_in_process=False, memory_limit_bytes=None) as pool:
        page = await parse(pool, huge_feed(48))
    assert page.entries[0].content is not None
    assert len(page.entries[0].content) == 48_000_000


async def test_a_limit_too_small_to_start_a_worker_fails_every_page_cleanly() -> None:
    async with ParserPool(
        workers=1, fast_in_process=False, memory_limit_bytes=8 * 1024 * 1024
    ) as pool:
        for _ in range(2):  # the replacement pool fails the same way, and still cleanly
            with pytest.raises(ParseError, match="worker died"):
                await parse(pool, SEED.read_bytes())


async def test_exit_stops_the_workers() -> None:
    async with ParserPool(workers=2, fast_in_process=False) as pool:
        await asyncio.gather(parse(pool, SEED.read_bytes()), parse(pool, SEED.read_bytes()))
        pids = worker_pids(pool)
    assert pids
    assert not [pid for pid in pids if is_running(pid)]


def test_workers_do_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    # SIGKILL leaves no chance to shut the pool down; the workers must notice on their own, or
    # they linger forever holding the daemon's stdout/stderr (a supervisor waits on those).
    script = (
        "import asyncio, os, signal, sys\n"
        "from pathlib import Path\n"
        "from syncd.parsepool import ParserPool\n"
        "async def main():\n"
        "    async with ParserPool(workers=2, fast_in_process=False) as pool:\n"
        "        body = Path(sys.argv[1]).read_bytes()\n"
        "        await asyncio.gather(*(pool.parse(body, url='u', headers={}) for _ in range(2)))\n"
        "        print(*pool._executor._processes, flush=True)\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    # Output to a file, not a pipe: a lingering worker would hold a pipe open and hang the read.
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.run(
            [sys.executable, "-c", script, str(SEED)], stdout=stdout, stderr=stderr, timeout=60
        ).returncode
    assert code == -signal.SIGKILL, err.read_text()
    pids = [int(pid) for pid in out.read_text().split()]
    assert pids
    for _ in range(200):  # a generous deadline for a busy machine, not a speed assertion
        if not any(is_running(pid) for pid in pids):
            break
        time.sleep(0.05)
    assert not [pid for pid in pids if is_running(pid)]


def test_a_stop_to_the_whole_group_leaves_the_pool_able_to_start_workers(tmp_path: Path) -> None:
    # The daemon decides how to stop: a group SIGTERM must not kill the forkserver under it, or
    # a worker started afterwards (first use, or replacing a dead one) fails with EOFError.
    script = (
        "import asyncio, os, signal, subprocess, sys\n"
        "from pathlib import Path\n"
        "from multiprocessing import forkserver\n"
        "from syncd.parsepool import ParserPool\n"
        "async def main():\n"
        # A handler, as the daemon has (SIG_IGN would be inherited by the forkserver).
        "    signal.signal(signal.SIGTERM, lambda *_: None)  # this process plays the daemon\n"
        "    body = Path(sys.argv[1]).read_bytes()\n"
        "    async with ParserPool(workers=1, fast_in_process=False) as pool:\n"
        "        await pool.parse(body, url='u', headers={})\n"
        "        (worker,) = pool._executor._processes\n"
        "        subprocess.run(['kill', '-TERM', '--', f'-{os.getpgid(0)}'])  # as systemd would\n"
        "        await asyncio.sleep(0.5)\n"
        "        server = forkserver._forkserver._forkserver_pid\n"
        "        alive = os.waitpid(server, os.WNOHANG)[0] == 0\n"
        "        print('forkserver', 'alive' if alive else 'killed', flush=True)\n"
        "        if not alive:\n"
        "            return\n"
        "        os.kill(worker, signal.SIGKILL)  # the next parse needs a fresh worker\n"
        "        for _ in range(3):\n"
        "            try:\n"
        "                page = await pool.parse(body, url='u', headers={})\n"
        "            except Exception as exc:\n"
        "                print(type(exc).__name__, exc, flush=True)\n"
        "            else:\n"
        "                print('entries', len(page.entries), flush=True)\n"
        "asyncio.run(main())\n"
    )
    out = tmp_path / "out"
    with out.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-c", script, str(SEED)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            start_new_session=True,  # its own group, so the killpg stays inside the test
        )
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "forkserver alive", lines
    # The page in flight on the killed worker's pool fails; every later one parses.
    assert lines[1].startswith("ParseError") and "worker died" in lines[1], lines
    assert lines[2:] == ["entries 25", "entries 25"], lines


def is_running(pid: int) -> bool:
    """Alive and not a zombie awaiting its parent (the forkserver reaps asynchronously)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_parse_outside_the_context_is_a_programming_error() -> None:
    pool = ParserPool()
    with pytest.raises(RuntimeError, match="outside"):
        await pool.parse(b"<feed/>", url="u", headers={})


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="workers"):
        ParserPool(workers=0)
    with pytest.raises(ValueError, match="memory_limit_bytes"):
        ParserPool(memory_limit_bytes=0)


# --- the fast path and the lazy pool ------------------------------------------------------------

RSS2 = Path(__file__).parent / "data" / "rss2.xml"  # declined by the fast path (an author e-mail)


async def test_well_formed_pages_parse_in_process_and_start_no_worker() -> None:
    body = SEED.read_bytes()
    async with ParserPool(workers=2) as pool:
        page = await parse(pool, body)
        assert pool._executor is None
    assert page == parse_page(body, url=SEED_URL, headers=HEADERS)


async def test_a_declined_page_starts_the_workers_and_gets_feedparser() -> None:
    body = RSS2.read_bytes()
    async with ParserPool(workers=1) as pool:
        assert pool._executor is None
        page = await parse(pool, body)
        assert len(worker_pids(pool)) == 1
    assert page == parse_page(body, url=SEED_URL, headers=HEADERS)


def test_a_fast_path_process_never_imports_feedparser() -> None:
    script = (
        "import asyncio, sys\n"
        "from syncd.parsepool import INLINE_PARSE_BYTES, ParserPool\n"
        "async def main():\n"
        "    async with ParserPool() as pool:\n"
        f"        body = open({str(SEED)!r}, 'rb').read()\n"
        "        page = await pool.parse(body, url='https://x/', headers={})\n"
        "    print(len(page.entries), 'feedparser' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["25", "False"]


async def test_workers_ignore_a_sigterm_that_is_not_the_pools() -> None:
    # systemd's stop signals the whole control group; the daemon stops the pool itself.
    body = SEED.read_bytes()
    async with ParserPool(workers=1, fast_in_process=False) as pool:
        await parse(pool, body)
        (worker,) = worker_pids(pool)
        # From another process, as systemd's would be (the pool's own SIGTERM ends a worker).
        kill = await asyncio.create_subprocess_exec("kill", "-TERM", str(worker))
        assert await kill.wait() == 0
        await asyncio.sleep(0.2)
        assert is_running(worker)
        assert len((await parse(pool, body)).entries) == 25
        assert worker_pids(pool) == [worker]
    assert not is_running(worker)


async def test_a_broken_pool_still_stops_its_surviving_workers() -> None:
    # When one worker dies, the executor SIGTERMs the others and waits for them: that SIGTERM
    # (the daemon's own) must still end them, or the replacement and the exit would hang.
    body = SEED.read_bytes()
    async with ParserPool(workers=2, fast_in_process=False) as pool:
        await asyncio.gather(*(parse(pool, body) for _ in range(4)))
        victim, survivor = worker_pids(pool)
        os.kill(victim, signal.SIGKILL)
        # A page sent before the executor notices the death may still be parsed by the survivor.
        for _ in range(100):
            try:
                await parse(pool, body)
            except ParseError as exc:
                assert "worker died" in str(exc)
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the pool never noticed its dead worker")
        assert len((await parse(pool, body)).entries) == 25
        for _ in range(100):
            if not is_running(survivor):
                break
            await asyncio.sleep(0.1)
        assert not is_running(survivor)
    # (reaching this line at all means the exit did not hang)


def big_well_formed_feed(entries: int) -> bytes:
    """Many small entries: a page the fast path reads, well over INLINE_PARSE_BYTES."""
    one = (
        "<entry><id>tag:x,2024:{n}</id><title>Entry {n}</title>"
        '<link rel="alternate" type="text/html" href="https://x.example/{n}"/>'
        '<updated>2024-05-01T12:00:00Z</updated><content type="html">{body}</content></entry>'
    )
    body = "&lt;p&gt;" + "words " * 40 + "&lt;/p&gt;"
    items = "".join(one.format(n=n, body=body) for n in range(entries))
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>Big</title>{items}</feed>'.encode()


async def test_a_big_page_parses_in_a_thread_and_the_loop_keeps_running() -> None:
    body = big_well_formed_feed(5000)
    assert len(body) > INLINE_PARSE_BYTES
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async with ParserPool(workers=1, max_entries=10_000) as pool:
        counting = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        page = await parse(pool, body)
        done.set()
        await counting
        assert pool._executor is None  # the fast path read it: no worker was needed
    assert len(page.entries) == 5000
    # Parsed inline, the page would hold the loop from start to end: a few ticks while the
    # parse is scheduled, then none (3 here); in a thread the loop keeps ticking (~40,000).
    assert ticks > before + 100
