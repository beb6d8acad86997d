"""Which storage errors mean "the database cannot answer right now" rather than a bug.

A rush is when a primary fails over, a connection pool runs dry or a node loses its
connections; the web layer answers these with ``503`` and ``Retry-After`` so clients
(and nginx's busy page) wait and retry instead of seeing a ``500``. The enrollment hot
path speaks asyncpg directly, so its errors arrive unwrapped as well as wrapped by
SQLAlchemy.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    sa.TimeoutError,  # no pooled connection came free in time
    sa.OperationalError,  # refused or lost connection, server shutting down, SQLite busy
    sa.InterfaceError,  # the connection closed under a statement
    asyncpg.PostgresConnectionError,  # cannot connect now ("shutting down"), failure
    asyncpg.InterfaceError,  # "connection is closed": the server went away mid-request
    # "another operation is in progress": the server's shutdown notice arrived between
    # two statements and the connection is closing; the transaction did not commit.
    asyncpg.InternalClientError,
    asyncpg.exceptions.OperatorInterventionError,  # admin or crash shutdown, cancelled
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,  # connect timed out
)

# What the web layer hands to ``database_unavailable``: the classes above, and
# SQLAlchemy's generic wrapper, which carries some of them only as its cause.
CANDIDATES: tuple[type[Exception], ...] = (
    sa.DBAPIError,
    *(kind for kind in _UNAVAILABLE if issubclass(kind, Exception)),
)


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error``, or what it wraps, means the database cannot answer right now."""
    seen: BaseException | None = error
    for _ in range(8):  # a cause chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, _UNAVAILABLE):
            return True
        if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False
