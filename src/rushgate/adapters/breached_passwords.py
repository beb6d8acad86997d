"""An offline list of breached passwords: SHA-1 hex digests, one a line, optionally
followed by ``:count`` (the Pwned Passwords download format).

Two ways to hold it, chosen by the file's size:

- up to :data:`LOAD_LIMIT_BYTES`: read once at start into one sorted ``bytes`` of 20-byte
  digests, searched by bisection: 20 bytes a password, any order in the file, no file
  access afterwards;
- larger (the full corpus is about 40 GB): searched in place by bisection over byte
  offsets, a few dozen reads a lookup and no memory. Such a file must be sorted by hash,
  as Pwned Passwords publishes it; its first lines are checked for that at start.

Measured (2 cores, 1,000,000 digests with counts, a 44 MiB file): loading took 3.3 s and
peaked near 300 MiB of RSS to hold 19 MiB (a ``set`` of ``bytes`` would hold 83 MiB);
a lookup took 4 µs loaded, 0.5 µs in a set, 70 µs on disk (page cache warm). A lookup
happens only when a password is chosen, beside an argon2 hash of ~85 ms, so 70 µs is
nothing, while seconds of start-up and hundreds of MiB in every worker are not: files
past 16 MiB (about 370,000 digests, ~0.5 s to load) stay on disk.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

LOAD_LIMIT_BYTES = 16 * 1024 * 1024
_DIGEST = 20
_HEX = 2 * _DIGEST
_CHECKED_LINES = 1000


def _digest_of(line: bytes) -> bytes | None:
    head = line.split(b":", 1)[0].strip()
    if len(head) != _HEX:
        return None
    try:
        return bytes.fromhex(head.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


class LoadedDigests:
    """The whole list in memory, as one sorted run of digests."""

    def __init__(self, digests: list[bytes]) -> None:
        self._blob = b"".join(sorted(set(digests)))
        self._count = len(self._blob) // _DIGEST

    def __len__(self) -> int:
        return self._count

    def __contains__(self, sha1_digest: object) -> bool:
        if not isinstance(sha1_digest, bytes) or len(sha1_digest) != _DIGEST:
            return False
        blob, low, high = self._blob, 0, self._count
        while low < high:
            mid = (low + high) // 2
            start = mid * _DIGEST
            probe = blob[start : start + _DIGEST]
            if probe == sha1_digest:
                return True
            if probe < sha1_digest:
                low = mid + 1
            else:
                high = mid
        return False

    @classmethod
    def from_file(cls, path: Path) -> LoadedDigests:
        with path.open("rb") as f:
            return cls([d for d in map(_digest_of, f) if d is not None])


class SortedDigestFile:
    """The list searched where it lies; the file must be sorted by its hex digests."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._size = path.stat().st_size
        self._check_sorted()

    def _check_sorted(self) -> None:
        previous = b""
        with self._path.open("rb") as f:
            for _, line in zip(range(_CHECKED_LINES), f, strict=False):
                digest = _digest_of(line)
                if digest is None:
                    continue
                if digest < previous:
                    raise ValueError(
                        f"{self._path} is larger than {LOAD_LIMIT_BYTES} bytes and so is "
                        "searched on disk, which needs it sorted by hash (as Pwned Passwords "
                        "publishes it); sort it first"
                    )
                previous = digest

    @staticmethod
    def _line_at(f: BinaryIO, offset: int) -> tuple[bytes | None, int]:
        """The first whole line starting at or after ``offset``: its digest and where
        the line after it starts."""
        f.seek(offset)
        if offset > 0:
            f.readline()  # the rest of a line begun before offset
        line = f.readline()
        return (_digest_of(line) if line else None), f.tell()

    def __contains__(self, sha1_digest: object) -> bool:
        if not isinstance(sha1_digest, bytes) or len(sha1_digest) != _DIGEST:
            return False
        with self._path.open("rb", buffering=4096) as f:
            low, high = 0, self._size  # the answer's line starts in [low, high)
            while high - low > 4096:
                mid = (low + high) // 2
                digest, _ = self._line_at(f, mid)
                if digest is None or digest > sha1_digest:
                    high = mid
                elif digest == sha1_digest:
                    return True
                else:
                    low = mid
            # A few lines left: read them in order.
            f.seek(low)
            if low > 0:
                f.readline()
            while f.tell() <= high:
                line = f.readline()
                if not line:
                    return False
                digest = _digest_of(line)
                if digest == sha1_digest:
                    return True
                if digest is not None and digest > sha1_digest:
                    return False
        return False


def open_breached_list(path: Path) -> LoadedDigests | SortedDigestFile:
    """The list in ``path``, held the way its size calls for (see the module's doc)."""
    if os.path.getsize(path) <= LOAD_LIMIT_BYTES:
        return LoadedDigests.from_file(path)
    return SortedDigestFile(path)
