"""Reads meant for the replica degrade to the primary while the replica is unreachable."""

from __future__ import annotations

import logging

import pytest

from rushgate.adapters.sql.engine import SqlStorage
from rushgate.domain.clock import SystemClock
from tests.support import closed_port, new_section, new_term, seed

pytestmark = pytest.mark.postgres


async def test_catalog_reads_fall_back_to_the_primary(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    replica = f"postgresql://postgres@127.0.0.1:{closed_port()}/nowhere"
    storage = SqlStorage.from_urls(postgres_url, replica, SystemClock(), pool_size=2)
    try:
        term = new_term()
        await seed(storage, term=term, sections=[new_section("S-01")], students=[])
        with caplog.at_level(logging.WARNING, logger="rushgate.sql"):
            first = await storage.reads().catalog(term.code)
            second = await storage.reads().catalog(term.code)  # the replica is skipped now
        assert [s.section_id for s in first] == ["S-01"]
        assert second == first
        warnings = [r for r in caplog.records if "replica unreachable" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await storage.close()
