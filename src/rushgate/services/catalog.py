"""Catalog pages, reused for a moment: during a rush every student refreshes the catalog,
and seats left a second old are as good as fresh to someone reading them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

_V = TypeVar("_V")

#: Bytes of rendered pages a process keeps at most. The cursor comes from the caller, so
#: the keys do too: without a bound, a client walking random cursors (at up to 1,000
#: sections, about 230 kB a page) would grow the cache without end.
MAX_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """One catalog page as sent: its bytes, their hash (the entity tag) and the cursor
    of the page after it (``None`` on the last page)."""

    body: bytes
    etag: str
    next_after: str | None


class CatalogPages(Generic[_V]):
    """Rendered pages of each term's catalog for ``ttl_seconds`` (0: none are kept).

    Concurrent misses of one page share one read (``single flight``): when a page expires
    in the middle of a rush, the database sees one query, not one per waiting request.
    ``forget(term)`` drops a term's pages at once, including a read still in flight, so a
    change made through this process is visible to the next request it serves."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_weight: int,
        weigh: Callable[[_V], int],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``weigh(page)``: what a page counts against ``max_weight`` (e.g. its bytes)."""
        self._ttl = ttl_seconds
        self._max_weight = max_weight
        self._weigh = weigh
        self._now = monotonic
        # Nested by term, with each term's weight, so that forget() (on the enroll path)
        # is a couple of dict operations however many pages the term has.
        self._pages: dict[str, dict[Hashable, tuple[float, _V, int]]] = {}
        self._term_weight: dict[str, int] = {}
        self._weight = 0
        self._loading: dict[str, dict[Hashable, asyncio.Task[_V]]] = {}
        # Bumped by forget(): a read that began before a change must not be stored after it.
        self._generation: dict[str, int] = {}

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    @property
    def weight(self) -> int:
        """What the kept pages weigh together."""
        return self._weight

    async def get(self, term: str, params: Hashable, load: Callable[[], Awaitable[_V]]) -> _V:
        """The page for ``(term, params)``: cached, or ``load()``-ed (and then cached).
        Exceptions of ``load`` reach every caller waiting for it and are not cached."""
        if self._ttl <= 0:
            return await load()
        cached = self._pages.get(term, {}).get(params)
        if cached is not None and cached[0] > self._now():
            return cached[1]
        loading = self._loading.setdefault(term, {})
        task = loading.get(params)
        if task is None:
            # The generation as of now, not as of when the task first runs.
            generation = self._generation.get(term, 0)
            task = asyncio.ensure_future(self._fill(term, params, load, generation))
            loading[params] = task
        # shield: one caller giving up (a client hung up) must not cancel the others' read.
        return await asyncio.shield(task)

    async def _fill(
        self, term: str, params: Hashable, load: Callable[[], Awaitable[_V]], generation: int
    ) -> _V:
        try:
            page = await load()
        finally:
            loading = self._loading.get(term, {})
            if loading.get(params) is asyncio.current_task():
                del loading[params]
                if not loading:
                    del self._loading[term]
        if self._generation.get(term, 0) == generation:
            self._store(term, params, page)
        return page

    def _store(self, term: str, params: Hashable, page: _V) -> None:
        weight = self._weigh(page)
        if weight > self._max_weight:
            return  # served, never kept
        self._remove(term, params)
        now = self._now()
        if self._weight + weight > self._max_weight:
            self._evict(now, self._max_weight - weight)
        self._pages.setdefault(term, {})[params] = (now + self._ttl, page, weight)
        self._term_weight[term] = self._term_weight.get(term, 0) + weight
        self._weight += weight

    def _remove(self, term: str, params: Hashable) -> None:
        pages = self._pages.get(term)
        if pages is None or params not in pages:
            return
        weight = pages.pop(params)[2]
        self._term_weight[term] -= weight
        self._weight -= weight
        if not pages:
            self._drop(term)

    def _evict(self, now: float, room: int) -> None:
        """Drop expired pages; if more than ``room`` is still taken, whole terms, the one
        first stored first."""
        for term, pages in list(self._pages.items()):
            for params in [p for p, (expires, _, _) in pages.items() if expires <= now]:
                self._remove(term, params)
        while self._weight > room and self._pages:
            self._drop(next(iter(self._pages)))

    def _drop(self, term: str) -> None:
        self._pages.pop(term, None)
        self._weight -= self._term_weight.pop(term, 0)

    def forget(self, term: str) -> None:
        """Drop ``term``'s pages: its sections or seats just changed through this process."""
        self._generation[term] = self._generation.get(term, 0) + 1
        self._drop(term)
        # Reads in flight still answer their callers, but are not stored; the next
        # request starts a read of its own.
        self._loading.pop(term, None)
