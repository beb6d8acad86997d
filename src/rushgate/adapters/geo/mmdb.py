"""Country of an address from a MaxMind (GeoLite2/GeoIP2 Country) or DB-IP country
``.mmdb`` file, read with ``maxminddb`` (memory-mapped: lookups cost microseconds and
no I/O; every worker process shares the pages)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import maxminddb


class MmdbCountries:
    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)

    def country(self, address: str) -> str | None:
        try:
            record: Any = self._reader.get(address)
        except ValueError:  # not an address
            return None
        if not isinstance(record, dict):
            return None
        # MaxMind and DB-IP both use country.iso_code; fall back to the registered
        # country (an address whose users' country is not known, e.g. anycast).
        for field in ("country", "registered_country"):
            entry = record.get(field)
            if isinstance(entry, dict):
                code = entry.get("iso_code")
                if isinstance(code, str) and len(code) == 2:
                    return code.upper()
        return None

    def close(self) -> None:
        self._reader.close()
