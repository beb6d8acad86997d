"""Redis values <-> port records: room counters and the room snapshots on the bus."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rushgate.domain.waiting_room import RoomPhase, RoomSnapshot
from rushgate.services.ports.waiting_room import QueueCounters

# The room hash fields a QueueCounters is read from, in the order advance.lua returns them.
COUNTER_FIELDS = (
    "issued",
    "serving",
    "prequeue_size",
    "seed",
    "active",
    "carry",
    "admission_rate",
    "last_tick_ms",
)


def encode_float(value: float) -> str:
    """Floats cross as Python's shortest round-trip text: Lua's ``tostring`` could round."""
    return repr(float(value))


def _optional_int(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def counters_from_values(values: Sequence[bytes | None]) -> QueueCounters:
    """A QueueCounters from the room hash fields, in ``COUNTER_FIELDS`` order (a missing
    room reads as an empty one)."""
    issued, serving, prequeue, seed, active, carry, rate, last_tick = values
    return QueueCounters(
        issued=int(issued or 0),
        serving=int(serving or 0),
        prequeue_size=_optional_int(prequeue),
        seed=seed,
        active=int(active or 0),
        carry=float(carry or 0.0),
        admission_rate=float(rate or 0.0),
        last_tick_ms=_optional_int(last_tick),
    )


def snapshot_to_json(snapshot: RoomSnapshot) -> bytes:
    return json.dumps(
        {
            "term": snapshot.term,
            "phase": snapshot.phase.value,
            "issued": snapshot.issued,
            "serving": snapshot.serving,
            "prequeue_size": snapshot.prequeue_size,
            "seed": None if snapshot.seed is None else snapshot.seed.hex(),
            "active": snapshot.active,
            "admission_rate": snapshot.admission_rate,
            "admit_per_second": snapshot.admit_per_second,
            "paused": snapshot.paused,
            "opens_at": snapshot.opens_at.isoformat(),
            "taken_at": snapshot.taken_at.isoformat(),
        },
        separators=(",", ":"),
    ).encode()


def _field(raw: dict[str, Any], name: str, kind: type) -> Any:
    value = raw[name]
    # bool is an int subclass: a flag must not pass for a count, nor a count for a flag
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def _optional(raw: dict[str, Any], name: str, kind: type) -> Any:
    return None if raw.get(name) is None else _field(raw, name, kind)


def snapshot_from_json(payload: bytes) -> RoomSnapshot:
    """Raises ``ValueError``, ``KeyError`` or ``TypeError`` on a malformed payload."""
    raw = json.loads(payload)
    if not isinstance(raw, dict):
        raise TypeError("a snapshot is a JSON object")
    seed = _optional(raw, "seed", str)
    rate = raw["admission_rate"]
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TypeError(f"admission_rate: expected a number, got {rate!r}")
    return RoomSnapshot(
        term=_field(raw, "term", str),
        phase=RoomPhase(_field(raw, "phase", str)),
        issued=_field(raw, "issued", int),
        serving=_field(raw, "serving", int),
        prequeue_size=_optional(raw, "prequeue_size", int),
        seed=None if seed is None else bytes.fromhex(seed),
        active=_field(raw, "active", int),
        admission_rate=float(rate),
        admit_per_second=_field(raw, "admit_per_second", int),
        paused=_field(raw, "paused", bool),
        opens_at=datetime.fromisoformat(_field(raw, "opens_at", str)),
        taken_at=datetime.fromisoformat(_field(raw, "taken_at", str)),
    )
