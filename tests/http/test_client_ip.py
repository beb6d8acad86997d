"""The client address behind trusted proxies (``X-Forwarded-For`` walked from the right)."""

from __future__ import annotations

from typing import Any

import pytest

from rushgate.http.client import SCOPE_KEY, Client, ClientResolver

TRUSTED = ("127.0.0.1", "::1", "10.0.0.0/8")


def scope(peer: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "client": None if peer is None else (peer, 5000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


def resolve(peer: str | None, *headers: tuple[str, str]) -> Client:
    return ClientResolver(TRUSTED).resolve(scope(peer, *headers))


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.7", [("X-Forwarded-For", "1.2.3.4")], Client("203.0.113.7", False)),
        ("203.0.113.7", [("X-Real-IP", "1.2.3.4")], Client("203.0.113.7", False)),
        # The trusted proxy's view of the client.
        ("127.0.0.1", [("X-Forwarded-For", "198.51.100.1")], Client("198.51.100.1", True)),
        ("127.0.0.1", [("X-Real-IP", "198.51.100.1")], Client("198.51.100.1", True)),
        ("127.0.0.1", [], Client("127.0.0.1", True)),
        # Several hops: trusted ones skipped from the right; a client-written prefix ignored.
        (
            "127.0.0.1",
            [("X-Forwarded-For", "6.6.6.6, 198.51.100.1, 10.1.2.3, 10.0.0.9")],
            Client("198.51.100.1", True),
        ),
        # Several header lines form one list, in order.
        (
            "10.0.0.5",
            [("X-Forwarded-For", "6.6.6.6, 198.51.100.2"), ("X-Forwarded-For", "10.0.0.4")],
            Client("198.51.100.2", True),
        ),
        # X-Forwarded-For wins over X-Real-IP.
        (
            "127.0.0.1",
            [("X-Real-IP", "192.0.2.1"), ("X-Forwarded-For", "198.51.100.3")],
            Client("198.51.100.3", True),
        ),
        # Garbage stops the walk at the nearest trusted hop: it never becomes the key.
        ("127.0.0.1", [("X-Forwarded-For", "not-an-ip")], Client("127.0.0.1", True)),
        (
            "127.0.0.1",
            [("X-Forwarded-For", "198.51.100.1, garbage, 10.0.0.3")],
            Client("10.0.0.3", True),
        ),
        ("127.0.0.1", [("X-Forwarded-For", "")], Client("127.0.0.1", True)),
        ("127.0.0.1", [("X-Real-IP", "<script>")], Client("127.0.0.1", True)),
        # Every hop trusted: the farthest is the client.
        ("127.0.0.1", [("X-Forwarded-For", "10.0.0.1, 10.0.0.2")], Client("10.0.0.1", True)),
        # IPv6, bracketed or not, and IPv4-mapped IPv6 normalised.
        ("::1", [("X-Forwarded-For", "[2001:db8::1]")], Client("2001:db8::1", True)),
        ("::1", [("X-Forwarded-For", "2001:DB8:0::2")], Client("2001:db8::2", True)),
        ("127.0.0.1", [("X-Forwarded-For", "::ffff:198.51.100.4")], Client("198.51.100.4", True)),
        # No peer (a server that does not say) or a peer that is not an address.
        (None, [("X-Forwarded-For", "1.2.3.4")], Client(None, False)),
        ("testclient", [("X-Forwarded-For", "1.2.3.4")], Client("testclient", False)),
    ],
)
def test_resolution(peer: str | None, headers: list[tuple[str, str]], expected: Client) -> None:
    assert resolve(peer, *headers) == expected


def test_resolved_once_per_request_and_kept_in_the_scope() -> None:
    resolver = ClientResolver(TRUSTED)
    request = scope("127.0.0.1", ("X-Forwarded-For", "198.51.100.1"))
    first = resolver.resolve(request)
    assert request[SCOPE_KEY] is first
    request["headers"] = [(b"x-forwarded-for", b"192.0.2.99")]
    assert resolver.resolve(request) is first


def test_no_trusted_proxies_means_the_peer_always() -> None:
    resolver = ClientResolver(())
    assert resolver.resolve(scope("127.0.0.1", ("X-Forwarded-For", "1.2.3.4"))) == Client(
        "127.0.0.1", False
    )
