"""Server-Sent Events framing (https://html.spec.whatwg.org/multipage/server-sent-events.html)."""

from __future__ import annotations

# Clients reconnect after this long when a stream drops; each new stream starts with the
# current state, so a reconnect re-syncs without replaying what was missed.
RETRY_MS = 3000

HEADERS = {
    "Cache-Control": "no-store",
    # nginx buffers proxied responses unless told otherwise; events must flow as sent.
    "X-Accel-Buffering": "no",
}


def retry(ms: int = RETRY_MS) -> bytes:
    return f"retry: {ms}\n\n".encode()


def event(name: str, data: str, event_id: str | None = None) -> bytes:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


def comment(text: str) -> bytes:
    return f": {text}\n\n".encode()
