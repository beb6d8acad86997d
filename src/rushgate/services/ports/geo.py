"""Where a client address is: its country, for the operator's country rule."""

from __future__ import annotations

from typing import Protocol


class CountryLookup(Protocol):
    def country(self, address: str) -> str | None:
        """The ISO 3166-1 alpha-2 code (upper case) of ``address``, or ``None`` when the
        database does not know it (private and loopback addresses, unlisted ranges)."""
        ...
