"""Logs: one structured record per line, JSON for machines or coloured for people.

Every record, whether from ``structlog`` or the standard library's ``logging`` (the
project's modules, uvicorn, SQLAlchemy), goes through one handler on the root logger and
leaves with the same keys: ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``,
``event``, ``service``, ``node`` and, inside a request, ``request_id``. Loki (or any log
store) should index only the low-cardinality keys — ``service``, ``node``, ``level``,
``logger`` — as labels and read the rest with its JSON parser.

No personal data: the access line names the route's template (``/api/v1/sections/{id}``),
never the raw path or query, and no client address (nginx's own log has it).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog
from structlog.types import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]

ACCESS_LOGGER = "rushgate.access"

# The request id of the request being served; middleware sets it on every request (each
# runs in a task of its own, so it never leaks into the next one).
request_id: ContextVar[str | None] = ContextVar("rushgate_request_id", default=None)

# What a request id from outside may look like: nginx's $request_id is 32 hex digits; other
# proxies use UUIDs. Anything else is replaced, so a client cannot write into our logs.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,128}")


def accept_request_id(header: bytes | None) -> str:
    """The proxy's id when it looks like one, else a fresh one."""
    if header:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        if _REQUEST_ID.fullmatch(text):
            return text
    return os.urandom(16).hex()


class AccessLog:
    """The one line per request, written straight to the log stream.

    Built by hand rather than through ``logging`` and structlog's processor chain: that
    chain costs about 75 µs a record, a tenth of an enroll's CPU, paid on every request
    of a rush; this costs a few. The line has the same keys as every other record."""

    def __init__(self) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)

    def write(self, route: str, method: str, status: int, duration: float) -> None:
        target = _target
        if target is None:  # logging not configured here (a test app): the slow path
            if self._logger.isEnabledFor(logging.INFO):
                self._logger.info(
                    "request",
                    extra={
                        "route": route,
                        "method": method,
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                    },
                )
            return
        if not self._logger.isEnabledFor(logging.INFO):
            return
        stream, static, as_json = target
        now = datetime.now(UTC)
        if as_json:
            # By hand, in the key order of the other records; every value but the route
            # and method is ours, and those two are escaped.
            rid = request_id.get()
            rid_json = "null" if rid is None else f'"{rid}"'
            line = (
                f'{{"event": "request", "request_id": {rid_json}, '
                f'"level": "info", "logger": "{ACCESS_LOGGER}", '
                f'"timestamp": "{now.isoformat()[:-6]}Z", {static}, '
                f'"route": {json.dumps(route, ensure_ascii=False)}, '
                f'"method": {json.dumps(method)}, "status": {status}, '
                f'"duration_ms": {round(duration * 1000, 2)}}}'
            )
        else:
            line = (
                f"{now:%Y-%m-%dT%H:%M:%S}Z [info     ] request  {method} {route} {status} "
                f"{duration * 1000:.2f} ms request_id={request_id.get()}"
            )
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail a request
            pass


# Where AccessLog writes, once configure() ran: (stream, the static fields as JSON
# members, JSON or not).
_target: tuple[TextIO, str, bool] | None = None


def _add_request_id(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    current = request_id.get()
    if current is not None:
        event.setdefault("request_id", current)
    return event


def _add_static(fields: dict[str, str]) -> Processor:
    def add(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        for key, value in fields.items():
            event.setdefault(key, value)
        return event

    return add


def _drop_color_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # uvicorn attaches a copy of each message with terminal colours for its own formatter.
    event.pop("color_message", None)
    return event


def configure(
    *,
    fmt: LogFormat = "auto",
    level: str = "info",
    service: str = "rushgate",
    node: str,
    stream: TextIO | None = None,
) -> LogFormat:
    """Send every log record of this process through one structured handler.

    Idempotent: calling it again replaces the handler (a test, or ``serve`` configuring
    the supervisor before uvicorn's workers configure themselves). Returns the format
    chosen (``auto`` resolved)."""
    stream = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_static({"service": service, "node": node}),
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
    ]
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        # The traceback as Python prints it, in one string field ("exception"): what people
        # and log searches for "Traceback" expect. The console renderer prints it itself.
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("rushgate")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == "rushgate":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers write through the root handler, not their own (serve passes
    # log_config=None, so uvicorn leaves them unconfigured); its access line is replaced
    # by the app's, which names the route template instead of the raw path and query.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    global _target
    static = json.dumps({"service": service, "node": node}, ensure_ascii=False)[1:-1]
    _target = (stream, static, fmt == "json")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return fmt


def get(name: str) -> Any:
    """A structured logger (``log.info("event", key=value)``)."""
    return structlog.stdlib.get_logger(name)
