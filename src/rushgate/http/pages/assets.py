"""Static files under names that carry their content's hash (``app.3f9c1e02ab.css``), so
browsers and proxies may keep them for a year: a changed file is a new name.

The one stylesheet, ``app.css``, is the files of ``static/css/`` joined in name order
(``00-base.css``, then each area's), so each area keeps its rules in a file of its own."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # as stored: app.css
    hashed: str  # as served: app.3f9c1e02ab.css
    body: bytes
    content_type: str
    etag: str


class Assets:
    """Every file of ``http/static``, read once at start."""

    def __init__(self) -> None:
        self._by_name: dict[str, Asset] = {}
        self._by_hashed: dict[str, Asset] = {}
        folder = resources.files("rushgate.http").joinpath("static")
        for entry in folder.iterdir():
            if entry.is_file() and not entry.name.startswith("."):
                self._add(entry.name, entry.read_bytes())
        parts = sorted(
            (e for e in folder.joinpath("css").iterdir() if e.name.endswith(".css")),
            key=lambda e: e.name,
        )
        self._add("app.css", b"\n".join(part.read_bytes() for part in parts))

    def _add(self, name: str, body: bytes) -> None:
        digest = hashlib.sha256(body).hexdigest()[:10]
        stem, dot, suffix = name.rpartition(".")
        hashed = f"{stem}.{digest}.{suffix}" if dot else f"{name}.{digest}"
        content_type = _TYPES.get(f".{suffix}") or (
            mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        asset = Asset(name, hashed, body, content_type, f'"{digest}"')
        self._by_name[name] = asset
        self._by_hashed[hashed] = asset

    def url(self, name: str) -> str:
        """Where a page links ``name`` (a KeyError for a file that does not exist: a
        template naming a missing file fails its test, not a visitor)."""
        return f"/static/{self._by_name[name].hashed}"

    def find(self, served_name: str) -> tuple[Asset, bool] | None:
        """The asset served under ``served_name`` and whether that name is the hashed
        one (cacheable for good) rather than the plain one."""
        asset = self._by_hashed.get(served_name)
        if asset is not None:
            return asset, True
        asset = self._by_name.get(served_name)
        return None if asset is None else (asset, False)
