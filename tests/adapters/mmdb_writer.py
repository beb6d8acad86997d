"""A minimal MaxMind DB (.mmdb) writer for tests: IPv4 networks -> country codes.

No writer package is installed; the format is small (a binary search tree of 24-bit
records, a data section, a metadata map; see the MaxMind DB spec 2.0), so tests build
their databases with this and read them with the real ``maxminddb`` reader."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


def _control(kind: int, size: int) -> bytes:
    assert size < 29
    if kind <= 7:
        return bytes([(kind << 5) | size])
    return bytes([size, kind - 7])  # extended type


def _encode(value: Any) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, dict):
        out = _control(7, len(value))
        for key, item in value.items():
            out += _encode(str(key)) + _encode(item)
        return out
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(v) for v in value)
    if isinstance(value, _Uint):
        raw = value.value.to_bytes((value.value.bit_length() + 7) // 8, "big")
        return _control(value.kind, len(raw)) + raw
    raise TypeError(value)


class _Uint:
    """An unsigned integer of a given MaxMind type: 5 uint16, 6 uint32, 9 uint64."""

    def __init__(self, kind: int, value: int) -> None:
        self.kind, self.value = kind, value


def write_country_mmdb(path: Path, countries: Mapping[str, str]) -> Path:
    """``countries``: IPv4 CIDR -> ISO code (the record MaxMind's Country databases hold)."""
    nodes: list[list[Any]] = [[None, None]]
    data = b""
    for cidr, code in countries.items():
        network = ipaddress.IPv4Network(cidr)
        offset = len(data)
        data += _encode({"country": {"iso_code": code, "names": {"en": code}}})
        bits = int(network.network_address)
        node = 0
        for depth in range(network.prefixlen):
            bit = (bits >> (31 - depth)) & 1
            if depth == network.prefixlen - 1:
                nodes[node][bit] = ("data", offset)
                break
            child = nodes[node][bit]
            if not (isinstance(child, tuple) and child[0] == "node"):
                nodes.append([None, None])
                child = ("node", len(nodes) - 1)
                nodes[node][bit] = child
            node = child[1]
    count = len(nodes)

    def record(value: Any) -> int:
        if value is None:
            return count
        kind, target = value
        return int(target) if kind == "node" else count + 16 + int(target)

    tree = b"".join(
        struct.pack(">I", record(left))[1:] + struct.pack(">I", record(right))[1:]
        for left, right in nodes
    )
    metadata = {
        "node_count": _Uint(6, count),
        "record_size": _Uint(5, 24),
        "ip_version": _Uint(5, 4),
        "database_type": "Test-Country",
        "languages": ["en"],
        "binary_format_major_version": _Uint(5, 2),
        "binary_format_minor_version": _Uint(5, 0),
        "build_epoch": _Uint(9, 1_700_000_000),
        "description": {"en": "test countries"},
    }
    path.write_bytes(tree + b"\x00" * 16 + data + _METADATA_MARKER + _encode(metadata))
    return path
