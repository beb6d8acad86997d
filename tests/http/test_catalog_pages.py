"""The per-process cache of catalog pages: expiry, single flight, forgetting, bounds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rushgate.services.catalog import CatalogPages


class Ticking:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def cache(ttl: float, **options: Any) -> CatalogPages[int]:
    """Pages are numbers here, each weighing 1 unless ``weigh`` says otherwise."""
    options.setdefault("max_weight", 1000)
    options.setdefault("weigh", lambda _: 1)
    return CatalogPages[int](ttl, **options)


class Loader:
    """Counts its reads; each returns the next number, optionally after a gate opens."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.calls = 0
        self.gate = gate

    async def __call__(self) -> int:
        self.calls += 1
        value = self.calls
        if self.gate is not None:
            await self.gate.wait()
        return value


async def test_a_page_is_reused_until_it_expires() -> None:
    clock, load = Ticking(), Loader()
    pages = cache(1.0, monotonic=clock)
    assert await pages.get("t", 1, load) == 1
    clock.now += 0.99
    assert await pages.get("t", 1, load) == 1
    assert await pages.get("t", 2, load) == 2  # other params, other page
    clock.now += 0.02
    assert await pages.get("t", 1, load) == 3
    assert load.calls == 3


async def test_zero_seconds_keeps_nothing() -> None:
    load = Loader()
    pages = cache(0)
    assert [await pages.get("t", 1, load) for _ in range(3)] == [1, 2, 3]


async def test_concurrent_misses_share_one_read() -> None:
    gate = asyncio.Event()
    load = Loader(gate)
    pages = cache(5.0)
    waiting = [asyncio.create_task(pages.get("t", 1, load)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 50
    assert load.calls == 1


async def test_one_caller_giving_up_does_not_cancel_the_others() -> None:
    gate = asyncio.Event()
    load = Loader(gate)
    pages = cache(5.0)
    quitter = asyncio.create_task(pages.get("t", 1, load))
    stayer = asyncio.create_task(pages.get("t", 1, load))
    await asyncio.sleep(0)
    quitter.cancel()
    gate.set()
    assert await stayer == 1
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert await pages.get("t", 1, load) == 1
    assert load.calls == 1


async def test_errors_reach_every_waiter_and_are_not_kept() -> None:
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise LookupError("no such term")

    pages = cache(5.0)
    results = await asyncio.gather(
        *(pages.get("t", 1, failing) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)
    assert calls == 1
    with pytest.raises(LookupError):
        await pages.get("t", 1, failing)
    assert calls == 2


async def test_forget_drops_the_terms_pages_only() -> None:
    load = Loader()
    pages = cache(60.0)
    assert await pages.get("a", 1, load) == 1
    assert await pages.get("b", 1, load) == 2
    pages.forget("a")
    assert await pages.get("a", 1, load) == 3
    assert await pages.get("b", 1, load) == 2


async def test_a_read_begun_before_forget_is_not_kept_after_it() -> None:
    # The read may have seen the seats before the change: its callers get it (they asked
    # before the change), but a request after forget() must read again.
    gate = asyncio.Event()
    load = Loader(gate)
    pages = cache(60.0)
    before = asyncio.create_task(pages.get("t", 1, load))
    await asyncio.sleep(0)
    pages.forget("t")
    after = asyncio.create_task(pages.get("t", 1, load))
    await asyncio.sleep(0)
    gate.set()
    assert (await before, await after) == (1, 2)
    assert await pages.get("t", 1, load) == 2
    assert load.calls == 2


async def test_the_weight_of_the_pages_is_bounded() -> None:
    clock, load = Ticking(), Loader()
    pages = cache(10.0, max_weight=40, weigh=lambda page: 10, monotonic=clock)
    for cursor in range(4):
        await pages.get("a", cursor, load)
    assert pages.weight == 40
    clock.now += 5
    await pages.get("b", 0, load)  # full, nothing expired: the term stored first goes
    assert pages.weight == 10
    assert await pages.get("a", 0, load) == 6  # read again
    assert await pages.get("b", 0, load) == 5  # still kept
    clock.now += 20  # everything expired: room made from those first
    for cursor in range(10):
        await pages.get("c", cursor, load)
        assert pages.weight <= 40
    forgotten = pages.weight
    pages.forget("c")
    assert pages.weight < forgotten


async def test_a_page_heavier_than_the_bound_is_served_but_not_kept() -> None:
    load = Loader()
    pages = cache(10.0, max_weight=5, weigh=lambda page: 6)
    assert [await pages.get("t", 1, load) for _ in range(2)] == [1, 2]
    assert pages.weight == 0


async def test_forget_subtracts_what_it_drops() -> None:
    load = Loader()
    pages = cache(10.0, weigh=lambda page: 3)
    for cursor in range(3):
        await pages.get("a", cursor, load)
    await pages.get("b", 0, load)
    assert pages.weight == 12
    await pages.get("a", 0, load)  # a hit changes nothing
    pages.forget("a")
    assert pages.weight == 3
    pages.forget("a")
    pages.forget("never-seen")
    assert pages.weight == 3
