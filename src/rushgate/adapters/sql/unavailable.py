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

DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sa.TimeoutError,  # no pooled connection came free in time
    sa.OperationalError,  # refused or lost connection, server shutting down, SQLite busy
    sa.InterfaceError,  # the connection closed under a statement
    asyncpg.PostgresConnectionError,  # cannot connect now, connection failure
    asyncpg.ConnectionDoesNotExistError,  # the connection was closed mid-request
    asyncpg.exceptions.OperatorInterventionError,  # admin or crash shutdown, cancelled
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused, reset, broken pipe
    TimeoutError,  # connect timed out
)
