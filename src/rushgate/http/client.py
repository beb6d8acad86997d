"""Who is calling, as far as the network tells: the client's address.

The socket peer is the client unless the peer is a trusted proxy (the load balancer,
``RUSHGATE_TRUSTED_PROXIES``). Then ``X-Forwarded-For`` is walked from the right: each
hop appended by a trusted proxy is skipped, and the first address no trusted proxy vouches
for is the client. Everything left of it was written by the client itself and may be a
lie, so it is never read. Without ``X-Forwarded-For``, a trusted proxy's ``X-Real-IP`` is
used. An entry that is not an address stops the walk at the nearest trusted hop: garbage
never becomes a key.

It is resolved once per request and kept in the ASGI scope.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import Scope

SCOPE_KEY = "rushgate.client"
# Peers whose trust was decided, kept (a node sees few distinct peers: the balancers).
_TRUST_CACHE_SIZE = 4096

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Client:
    """``ip``: the client's address (``None`` when the server gave no peer).
    ``via_proxy``: the request came through a trusted proxy, whose headers (forwarded
    address, the edge's country header) are believed."""

    ip: str | None
    via_proxy: bool


def parse_address(text: str) -> IPAddress | None:
    """An address as a proxy writes it (``[v6]`` brackets allowed), or ``None``."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Networks:
    """A set of addresses and CIDR ranges, with a cache of answers per address string."""

    def __init__(self, items: Sequence[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(item, strict=False) for item in items)
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, host: object) -> bool:
        if not isinstance(host, str) or not self._networks:
            return False
        known = self._known.get(host)
        if known is not None:
            return known
        address = parse_address(host)
        inside = address is not None and any(
            address.version == net.version and address in net for net in self._networks
        )
        if len(self._known) >= _TRUST_CACHE_SIZE:
            self._known.clear()
        self._known[host] = inside
        return inside


class ClientResolver:
    """Resolves (once per request) the client behind the trusted proxies."""

    def __init__(self, trusted_proxies: Sequence[str]) -> None:
        self.trusted = Networks(trusted_proxies)

    def resolve(self, scope: Scope) -> Client:
        found: Client | None = scope.get(SCOPE_KEY)
        if found is not None:
            return found
        peer = scope.get("client")
        host: str | None = peer[0] if peer else None
        if host is None or host not in self.trusted:
            found = Client(host, via_proxy=False)
        else:
            found = Client(self._forwarded(scope, host), via_proxy=True)
        scope[SCOPE_KEY] = found
        return found

    def _forwarded(self, scope: Scope, peer: str) -> str:
        forwarded: list[bytes] = []
        real_ip: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.append(value)
            elif name == b"x-real-ip":
                real_ip = value
        if forwarded:
            # Several headers count as one list, in order (RFC 9110 field lines).
            hops = b",".join(forwarded).decode("latin-1").split(",")
            nearest = peer  # the nearest hop known to be trusted so far
            for hop in reversed(hops):
                address = parse_address(hop)
                if address is None:
                    return nearest
                text = str(address)
                if text not in self.trusted:
                    return text
                nearest = text
            return nearest  # every hop is a trusted proxy: the farthest one is the client
        if real_ip is not None:
            address = parse_address(real_ip.decode("latin-1"))
            if address is not None:
                return str(address)
        return peer


def client_of(request: Request) -> Client:
    """The request's :class:`Client`, resolved by the app's resolver (or the bare peer
    for an app without one)."""
    found: Client | None = request.scope.get(SCOPE_KEY)
    if found is not None:
        return found
    resolver: ClientResolver | None = getattr(request.app.state, "client_resolver", None)
    if resolver is None:
        return Client(request.client.host if request.client else None, via_proxy=False)
    return resolver.resolve(request.scope)


def client_ip(request: Request) -> str | None:
    """The client's address, for rate limits, login protection and the country rule."""
    return client_of(request).ip
