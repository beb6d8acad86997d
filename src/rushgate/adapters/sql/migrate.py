"""Apply Alembic migrations from code (``rushgate migrate``, ``rushgate serve``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["rushgate_url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Blocking: call it outside a running event loop
    (or through ``asyncio.to_thread``)."""
    command.upgrade(alembic_config(url), revision)
