"""HostThrottle: one window per host; a throttled host never holds up another."""

from __future__ import annotations

import asyncio
import math

import pytest

from syncd.throttle import HostThrottle, window_for_rate


@pytest.mark.parametrize(
    ("rate", "window"),
    [(1.0, (1, 1.0)), (5.0, (5, 1.0)), (2.7, (2, 1.0)), (0.5, (1, 2.0)), (0.25, (1, 4.0))],
)
def test_window_for_rate(rate: float, window: tuple[int, float]) -> None:
    assert window_for_rate(rate) == window


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_invalid_rates(rate: float) -> None:
    with pytest.raises(ValueError):
        HostThrottle(rate)


async def test_second_host_is_not_held_up_by_a_throttled_one() -> None:
    throttle = HostThrottle(5.0)
    granted: list[str] = []

    async def request(host: str) -> None:
        await throttle.wait(host)
        granted.append(host)

    # Twelve requests to host a: five fit in its one-second window, the rest need two more
    # seconds of sliding. Host b asks a little later and must not queue behind them.
    a_tasks = [asyncio.create_task(request("a.example")) for _ in range(12)]
    await asyncio.sleep(0.1)
    # Ready tasks run before the sleep's timer fires, so the five immediate grants happened.
    assert granted.count("a.example") >= 5
    await asyncio.wait_for(request("b.example"), timeout=10)
    a_still_waiting = 12 - granted.count("a.example")
    await asyncio.gather(*a_tasks)

    assert granted.count("a.example") == 12
    # Only a loop stalled for about two seconds could have let all of host a through first.
    assert a_still_waiting > 0


async def test_one_host_is_paced() -> None:
    throttle = HostThrottle(5.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(6):
        await throttle.wait("A.example.")  # same host as "a.example" once normalised
    # The sixth request had to wait for the first to leave the one-second window.
    assert loop.time() - started >= 0.9
    await throttle.wait("b.example")


async def test_idle_hosts_are_forgotten() -> None:
    throttle = HostThrottle(100.0)  # a one-second window
    for i in range(100):
        await throttle.wait(f"host{i}.example")
    assert len(throttle) == 100  # none idle for a whole window yet: all kept
    await asyncio.sleep(1.1)
    await throttle.wait("new.example")
    assert len(throttle) == 1  # every window older than its period was empty, so dropped
