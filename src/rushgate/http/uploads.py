"""Streaming ``multipart/form-data``: a file's bytes go from the socket onwards chunk by
chunk, as they arrive.

Starlette's ``request.form()`` reads the whole body first (spooling files to temporary
files) and only then hands the form over, so a size limit or a type check could act only
after everything arrived. Here the body is parsed as it comes in (python-multipart's
push parser), small text fields are read into memory with a cap, and the file is handed
on as an async iterator of its bytes: whoever consumes it decides when to stop.

The file must be the last field (as S3's browser uploads require too): what comes before
it is known before its first byte is, and nothing after it has to be buffered.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from rushgate.domain.errors import ValidationFailed
from rushgate.http.errors import ApiError

#: Most parts a form may have (this API's forms have two).
MAX_PARTS = 8
#: Largest text field read into memory.
MAX_TEXT_BYTES = 1024


def _decode(raw: bytes) -> str:
    """Header parameters arrive as bytes; browsers send names in UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@dataclass
class Part:
    name: str
    filename: str | None  # set for a file field (possibly empty)
    content_type: str | None


@dataclass
class _Headers:
    items: list[tuple[bytes, bytes]] = field(default_factory=list)
    name: bytes = b""
    value: bytes = b""


class MultipartStream:
    """One request's form, read part by part. Refusals: ``415 unsupported_media_type``
    when the body is not ``multipart/form-data``, ``400 malformed_multipart`` when it is
    broken, ``422 validation_failed`` when a field is too long, not UTF-8 or holds NUL."""

    def __init__(self, request: Request) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type"))
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise ApiError(415, "unsupported_media_type", "send the form as multipart/form-data")
        self._body = request.stream()
        self._events: deque[tuple[str, object]] = deque()
        self._headers = _Headers()
        self._parts = 0
        self._ended = False
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._on_part_begin,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_end": self._on_end,
                },
            )
        except ValueError as exc:  # FormParserError: e.g. an absurdly long boundary
            raise _malformed(str(exc)) from exc

    # --- parser callbacks (synchronous: they only queue events) --------------------------

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise _malformed(f"a form has at most {MAX_PARTS} fields here")
        self._headers = _Headers()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._headers.name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._headers.value += data[start:end]

    def _on_header_end(self) -> None:
        headers = self._headers
        headers.items.append((headers.name.strip().lower(), headers.value.strip()))
        headers.name, headers.value = b"", b""

    def _on_headers_finished(self) -> None:
        found = dict(self._headers.items)
        disposition, options = parse_options_header(found.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise _malformed("every part needs Content-Disposition: form-data; name=…")
        filename = options.get(b"filename")
        content_type = found.get(b"content-type")
        self._events.append(
            (
                "part",
                Part(
                    name=_decode(options[b"name"]),
                    filename=None if filename is None else _decode(filename),
                    content_type=None if content_type is None else content_type.decode("latin-1"),
                ),
            )
        )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(("end_part", None))

    def _on_end(self) -> None:
        self._ended = True
        self._events.append(("end", None))

    # --- reading ------------------------------------------------------------------------

    async def _next_event(self) -> tuple[str, object]:
        while not self._events:
            chunk = await anext(self._body, None)
            if chunk is None:
                raise _malformed("the form ended before its closing boundary")
            if chunk:
                try:
                    self._parser.write(chunk)
                except MultipartParseError as exc:
                    raise _malformed(str(exc)) from exc
        return self._events.popleft()

    async def next_part(self) -> Part | None:
        """The next part's headers, or ``None`` after the last one. The previous part's
        content must have been read."""
        kind, value = await self._next_event()
        if kind == "end":
            return None
        if kind != "part" or not isinstance(value, Part):
            raise _malformed("unexpected data between parts")
        return value

    async def text(self, part: Part) -> str:
        """A text field's value (at most :data:`MAX_TEXT_BYTES`, UTF-8)."""
        value = bytearray()
        while True:
            kind, data = await self._next_event()
            if kind == "end_part":
                break
            assert isinstance(data, bytes)
            value += data
            if len(value) > MAX_TEXT_BYTES:
                raise ValidationFailed(
                    "a form field is too long",
                    errors=[{"field": part.name, "message": f"at most {MAX_TEXT_BYTES} bytes"}],
                )
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(
                "a form field is not UTF-8 text",
                errors=[{"field": part.name, "message": "must be UTF-8 text"}],
            ) from None
        if "\x00" in text:  # as in JSON bodies: PostgreSQL text cannot hold it
            raise ValidationFailed(
                "a form field holds a NUL character",
                errors=[{"field": part.name, "message": "must not contain NUL (U+0000)"}],
            )
        return text

    async def last_file(self, part: Part) -> AsyncIterator[bytes]:
        """The bytes of ``part``, which must be the form's last field: after its data, the
        form is read to its end (and refused if another field follows)."""
        while True:
            kind, data = await self._next_event()
            if kind == "end_part":
                break
            assert isinstance(data, bytes)
            if data:
                yield data
        if await self.next_part() is not None:
            raise ValidationFailed(
                "the file must be the form's last field",
                errors=[{"field": part.name, "message": "send the other fields before it"}],
            )


def _malformed(detail: str) -> ApiError:
    return ApiError(400, "malformed_multipart", detail)
