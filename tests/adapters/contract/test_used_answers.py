"""Contract of the single-use memory of challenge answers: the in-process and the Redis
implementations agree, and two Redis clients (two nodes) offered one answer at once
accept it once. Redis runs for real (a key prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from rushgate.adapters.memory.used_answers import MemoryUsedAnswers
from rushgate.services.ports.challenge import UsedAnswers
from tests.support import REDIS_URL, redis_reachable, require_service

# Makes another handle on the same store: another node.
NodeFactory = Callable[[], UsedAnswers]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def nodes(request: pytest.FixtureRequest) -> AsyncIterator[NodeFactory]:
    if request.param == "memory":
        shared = MemoryUsedAnswers()
        yield lambda: shared
        return
    reason = await redis_reachable()
    if reason is not None:
        require_service("Redis", reason)
    from rushgate.adapters.redis.coordination import RedisCoordination

    prefix = f"rgtest:{uuid.uuid4().hex[:12]}:"
    opened: list[RedisCoordination] = []

    def node() -> UsedAnswers:
        coordination = RedisCoordination.from_url(REDIS_URL, prefix=prefix)
        opened.append(coordination)
        return coordination.used_answers

    try:
        yield node
    finally:
        for coordination in opened:
            await coordination.delete_all_keys()
            await coordination.close()


async def test_an_answer_is_accepted_once(nodes: NodeFactory) -> None:
    used = nodes()
    assert await used.first_use("pow:abc", 30)
    assert not await used.first_use("pow:abc", 30)
    assert not await used.first_use("pow:abc", 30)


async def test_answers_are_independent(nodes: NodeFactory) -> None:
    used = nodes()
    assert await used.first_use("pow:one", 30)
    assert await used.first_use("pow:two", 30)
    assert await used.first_use("turnstile:one", 30)


async def test_an_answer_is_forgotten_once_it_expires(nodes: NodeFactory) -> None:
    used = nodes()
    assert await used.first_use("pow:short", 0.2)
    assert not await used.first_use("pow:short", 0.2)
    await asyncio.sleep(0.35)
    assert await used.first_use("pow:short", 0.2)


async def test_another_node_refuses_an_answer_used_on_one(nodes: NodeFactory) -> None:
    first, second = nodes(), nodes()
    assert await first.first_use("hcaptcha:token", 30)
    assert not await second.first_use("hcaptcha:token", 30)


async def test_one_answer_offered_everywhere_at_once_passes_once(nodes: NodeFactory) -> None:
    handles = [nodes() for _ in range(4)]
    results = await asyncio.gather(
        *(handles[i % len(handles)].first_use("pow:race", 30) for i in range(200))
    )
    assert results.count(True) == 1
