"""Application documents over HTTP: streamed uploads with a size limit and a type judged by
the bytes, nothing kept of a refusal, downloads that browsers cannot be tricked into
running, and nobody reaching another applicant's files."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from rushgate.adapters.security import Argon2Hasher
from rushgate.adapters.sql.tables import application_documents
from rushgate.composition import Container
from rushgate.config import Settings
from rushgate.domain.admissions import ApplicationStatus
from rushgate.domain.clock import FixedClock
from rushgate.services.documents import MAX_DOCUMENTS, UPLOAD_GRACE
from rushgate.services.ports.admissions import ApplicationRecord
from tests.admissions_seed import CLOSES, ROUND, add_application, set_status
from tests.http.api import Api, assert_problem
from tests.http.board_api import Board

# Above the test app's general body limit (256 KiB): the upload route has its own.
LIMIT = 300 * 1024
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100
DOCS = "/admissions/2027-hs/application/documents"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_upload_bytes": LIMIT})


@pytest.fixture
async def board(api: Api, container: Container, hasher: Argon2Hasher) -> Board:
    return await Board.seeded(api, container, hasher)


@pytest.fixture
async def kims(board: Board) -> ApplicationRecord:
    """Kim's application: submitted (so it has a receipt number), editable until the
    deadline."""
    return await add_application(
        board.container.storage,
        await board.applicant_pk("kim"),
        status=ApplicationStatus.SUBMITTED,
    )


async def upload(
    board: Board,
    who: str = "kim",
    content: bytes = PDF,
    filename: str = "성적증명서.pdf",
    content_type: str | None = "application/pdf",
    kind: str = "transcript",
    path: str = DOCS,
) -> httpx.Response:
    file = (filename, content) if content_type is None else (filename, content, content_type)
    return await board.request(who, "POST", path, data={"kind": kind}, files={"file": file})


async def uploaded(board: Board, content: bytes = PDF, **kwargs: Any) -> dict[str, Any]:
    r = await upload(board, content=content, **kwargs)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def stored_files(container: Container) -> list[Path]:
    root = container.settings.effective_documents_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def stored_rows(container: Container) -> int:
    async with container.storage.primary_reads.connect() as conn:
        total = await conn.execute(select(func.count()).select_from(application_documents))
        return int(total.scalar_one())


async def assert_nothing_stored(container: Container) -> None:
    assert stored_files(container) == []
    assert await stored_rows(container) == 0


async def test_upload_list_download_delete(board: Board, kims: ApplicationRecord) -> None:
    body = await uploaded(board)
    assert body == {
        "id": body["id"],
        "kind": "transcript",
        "filename": "성적증명서.pdf",
        "content_type": "application/pdf",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "uploaded_at": body["uploaded_at"],
    }
    [stored] = stored_files(board.container)
    assert stored.read_bytes() == PDF
    assert "성적증명서" not in str(stored), "the user's file name never becomes a path"
    assert stored.stat().st_mode & 0o077 == 0, "documents are readable by the service only"

    listed = await board.request("kim", "GET", DOCS)
    assert listed.status_code == 200
    assert listed.json() == [body]

    r = await board.request("kim", "GET", f"{DOCS}/{body['id']}")
    assert r.status_code == 200
    assert r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-length"] == str(len(PDF))
    assert r.headers["content-disposition"] == (
        f"attachment; filename=\"_____.pdf\"; filename*=UTF-8''{quote('성적증명서.pdf')}"
    )

    r = await board.request("kim", "DELETE", f"{DOCS}/{body['id']}")
    assert r.status_code == 204
    assert (await board.request("kim", "GET", DOCS)).json() == []
    assert_problem(await board.request("kim", "GET", f"{DOCS}/{body['id']}"), 404, "not_found")
    await assert_nothing_stored(board.container)


async def test_type_comes_from_the_bytes(board: Board, kims: ApplicationRecord) -> None:
    png = await uploaded(board, PNG, filename="photo.PNG", content_type=None, kind="other")
    jpeg = await uploaded(board, JPEG, filename="scan.jpg", content_type="image/pjpeg")
    octet = await uploaded(board, PDF, filename="a.pdf", content_type="application/octet-stream")
    assert (png["content_type"], png["kind"]) == ("image/png", "other")
    assert jpeg["content_type"] == "image/jpeg"
    assert octet["content_type"] == "application/pdf"
    r = await board.request("kim", "GET", f"{DOCS}/{png['id']}")
    assert r.headers["content-type"] == "image/png"
    assert r.content == PNG


async def test_file_name_is_made_safe(board: Board, kims: ApplicationRecord) -> None:
    body = await uploaded(board, filename="..\\..\\evil<\u202egpj.pdf")
    assert body["filename"] == "evil_gpj.pdf"
    r = await board.request("kim", "GET", f"{DOCS}/{body['id']}")
    assert r.headers["content-disposition"].startswith('attachment; filename="evil_gpj.pdf"')


@pytest.mark.parametrize(
    ("content", "filename", "content_type", "status", "code", "reason"),
    [
        pytest.param(
            b"%PDF-" + b"x" * LIMIT, "big.pdf", "application/pdf", 413, "payload_too_large", None,
            id="oversize",
        ),
        pytest.param(
            b"GIF89a" + b"\x00" * 50, "a.gif", "image/gif", 415, "unsupported_media_type",
            "unknown_format", id="wrong-type",
        ),
        pytest.param(
            EXE, "scan.pdf", "application/pdf", 415, "unsupported_media_type", "unknown_format",
            id="renamed-executable",
        ),
        pytest.param(
            PNG, "scan.png", "application/pdf", 415, "unsupported_media_type", "type_mismatch",
            id="content-type-mismatch",
        ),
        pytest.param(
            PDF, "scan.png", "image/png", 415, "unsupported_media_type", "type_mismatch",
            id="declared-png-is-pdf",
        ),
        pytest.param(
            PDF, "scan.exe", "application/pdf", 415, "unsupported_media_type",
            "extension_mismatch", id="extension-mismatch",
        ),
        pytest.param(
            b"", "empty.pdf", "application/pdf", 415, "unsupported_media_type", "empty",
            id="empty",
        ),
        pytest.param(
            b"%PD", "short.pdf", "application/pdf", 415, "unsupported_media_type",
            "unknown_format", id="shorter-than-a-signature",
        ),
    ],
)  # fmt: skip
async def test_refused_uploads_store_nothing(
    board: Board,
    kims: ApplicationRecord,
    content: bytes,
    filename: str,
    content_type: str,
    status: int,
    code: str,
    reason: str | None,
) -> None:
    r = await upload(board, content=content, filename=filename, content_type=content_type)
    body = assert_problem(r, status, code)
    if reason is not None:
        assert body["reason"] == reason
    await assert_nothing_stored(board.container)
    assert (await board.request("kim", "GET", DOCS)).json() == []


async def test_exactly_the_limit_is_accepted(board: Board, kims: ApplicationRecord) -> None:
    content = b"%PDF-" + b"x" * (LIMIT - 5)
    body = await uploaded(board, content)
    assert body["size"] == LIMIT
    assert board.container.settings.max_body_bytes < LIMIT, "the upload route has its own limit"
    assert_problem(await upload(board, content=content + b"x"), 413, "payload_too_large")
    assert len(stored_files(board.container)) == 1


def _multipart(boundary: str, fields: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, content_type, value in fields:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


async def test_oversize_stream_is_refused_as_it_arrives(
    board: Board, kims: ApplicationRecord
) -> None:
    """An endless upload (no Content-Length) is cut off just past the limit: the server
    neither waits for its end nor keeps what it read."""
    boundary = "rushgate-test-boundary"
    head = _multipart(boundary, [("kind", None, None, b"transcript")]).removesuffix(
        f"--{boundary}--\r\n".encode()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    ).encode()
    chunk = b"x" * 16384
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        sent += len(head)
        yield head
        while True:
            sent += len(chunk)
            yield chunk

    headers = {
        **await board.headers("kim"),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    r = await board.client.post(f"/api/v1{DOCS}", content=endless(), headers=headers)
    assert_problem(r, 413, "payload_too_large")
    assert sent <= LIMIT + 2 * len(chunk) + len(head)
    await assert_nothing_stored(board.container)


async def test_declared_huge_body_is_refused_before_reading(
    board: Board, kims: ApplicationRecord
) -> None:
    read = False

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield b"x"

    headers = {
        **await board.headers("kim"),
        "Content-Type": "multipart/form-data; boundary=b",
        "Content-Length": str(10 * LIMIT),
    }
    r = await board.client.post(f"/api/v1{DOCS}", content=body(), headers=headers)
    assert_problem(r, 413, "payload_too_large")
    assert not read


@pytest.mark.parametrize(
    ("fields", "status", "code", "bad_fields"),
    [
        pytest.param(
            [("file", "a.pdf", "application/pdf", PDF), ("kind", None, None, b"transcript")],
            422, "validation_failed", ["kind"], id="file-before-kind",
        ),
        pytest.param(
            [("kind", None, None, b"transcript")], 422, "validation_failed", ["file"],
            id="no-file",
        ),
        pytest.param([], 422, "validation_failed", ["kind", "file"], id="empty-form"),
        pytest.param(
            [
                ("kind", None, None, b"transcript"),
                ("file", "a.pdf", "application/pdf", PDF),
                ("note", None, None, b"after the file"),
            ],
            422, "validation_failed", ["file"], id="field-after-file",
        ),
        pytest.param(
            [("kind", None, None, b"transcript"), ("owner", None, None, b"lee")],
            422, "validation_failed", ["owner"], id="unknown-field",
        ),
        pytest.param(
            [("kind", None, None, b"x" * 2000), ("file", "a.pdf", "application/pdf", PDF)],
            422, "validation_failed", ["kind"], id="long-kind",
        ),
        pytest.param(
            [("kind", None, None, b"diploma"), ("file", "a.pdf", "application/pdf", PDF)],
            422, "validation_failed", ["kind"], id="kind-not-in-round",
        ),
    ],
)  # fmt: skip
async def test_form_refusals(
    board: Board,
    kims: ApplicationRecord,
    fields: list[tuple[str, str | None, str | None, bytes]],
    status: int,
    code: str,
    bad_fields: list[str],
) -> None:
    boundary = "b0undary"
    headers = {
        **await board.headers("kim"),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    r = await board.client.post(
        f"/api/v1{DOCS}", content=_multipart(boundary, fields), headers=headers
    )
    body = assert_problem(r, status, code)
    assert [e["field"] for e in body["errors"]] == bad_fields
    await assert_nothing_stored(board.container)


async def test_not_a_form(board: Board, kims: ApplicationRecord) -> None:
    r = await board.request("kim", "POST", DOCS, json={"kind": "transcript", "file": "JVBERi0="})
    assert_problem(r, 415, "unsupported_media_type")
    headers = {**await board.headers("kim"), "Content-Type": "multipart/form-data; boundary=b"}
    r = await board.client.post(f"/api/v1{DOCS}", content=b"garbage", headers=headers)
    assert_problem(r, 400, "malformed_multipart")
    r = await board.client.post(f"/api/v1{DOCS}", content=b"--b\r\nX: y\r\n\r\nz", headers=headers)
    assert_problem(r, 400, "malformed_multipart")
    await assert_nothing_stored(board.container)


async def test_upload_after_the_deadline_is_refused(
    board: Board, kims: ApplicationRecord, clock: FixedClock
) -> None:
    kept = await uploaded(board)
    clock.set(CLOSES + timedelta(seconds=1))
    board.api.forget_tokens()
    body = assert_problem(await upload(board), 403, "window_closed")
    assert body["closes_at"] == CLOSES.isoformat()
    assert_problem(await board.request("kim", "DELETE", f"{DOCS}/{kept['id']}"), 403)
    # Still there to read, and nothing new was kept.
    assert [d["id"] for d in (await board.request("kim", "GET", DOCS)).json()] == [kept["id"]]
    assert len(stored_files(board.container)) == 1
    assert await stored_rows(board.container) == 1


async def test_draft_may_upload_before_the_window_opens(board: Board, clock: FixedClock) -> None:
    """Preparing early is allowed for drafts, as saving them is."""
    await add_application(board.container.storage, await board.applicant_pk("lee"))
    clock.set(CLOSES - timedelta(hours=7))
    board.api.forget_tokens()
    assert (await upload(board, "lee")).status_code == 201


async def test_application_under_review_is_not_editable(
    board: Board, kims: ApplicationRecord
) -> None:
    kept = await uploaded(board)
    await set_status(board.container.storage, kims, ApplicationStatus.UNDER_REVIEW)
    assert_problem(await upload(board), 409, "invalid_transition")
    r = await board.request("kim", "DELETE", f"{DOCS}/{kept['id']}")
    assert_problem(r, 409, "invalid_transition")
    assert len(stored_files(board.container)) == 1


async def test_no_application_yet(board: Board) -> None:
    assert_problem(await upload(board, "lee"), 404, "not_found")
    assert_problem(await board.request("lee", "GET", DOCS), 404, "not_found")
    assert_problem(await upload(board, "lee", path=DOCS.replace("2027-hs", "nope")), 404)
    await assert_nothing_stored(board.container)


async def test_documents_per_application_are_bounded(board: Board, kims: ApplicationRecord) -> None:
    for _ in range(MAX_DOCUMENTS):
        await uploaded(board, PNG, filename="p.png", content_type="image/png")
    body = assert_problem(await upload(board), 409, "conflict")
    assert body["limit"] == MAX_DOCUMENTS
    assert len(stored_files(board.container)) == MAX_DOCUMENTS


async def test_applicants_never_reach_each_others_documents(
    board: Board, kims: ApplicationRecord
) -> None:
    await add_application(board.container.storage, await board.applicant_pk("lee"))
    kim_doc = await uploaded(board)
    lee_doc = await uploaded(board, PNG, who="lee", filename="lee.png", content_type="image/png")
    assert [d["id"] for d in (await board.request("lee", "GET", DOCS)).json()] == [lee_doc["id"]]
    hidden = await board.request("lee", "GET", f"{DOCS}/{kim_doc['id']}")
    absent = await board.request("lee", "GET", f"{DOCS}/{kim_doc['id'] + 1000}")
    assert_problem(hidden, 404, "not_found")
    assert hidden.json()["detail"] == absent.json()["detail"]
    assert_problem(await board.request("lee", "DELETE", f"{DOCS}/{kim_doc['id']}"), 404)
    assert [d["id"] for d in (await board.request("kim", "GET", DOCS)).json()] == [kim_doc["id"]]
    assert len(stored_files(board.container)) == 2


@pytest.mark.parametrize(("who", "status"), [("anon", 401), ("s1", 403), ("admin", 403)])
async def test_applicant_routes_need_an_applicant(
    board: Board, kims: ApplicationRecord, who: str, status: int
) -> None:
    kept = await uploaded(board)
    assert_problem(await upload(board, who), status)
    for method, path in (
        ("GET", DOCS),
        ("GET", f"{DOCS}/{kept['id']}"),
        ("DELETE", f"{DOCS}/{kept['id']}"),
    ):
        assert_problem(await board.request(who, method, path), status)
    assert len(stored_files(board.container)) == 1


async def test_staff_list_and_download(board: Board, kims: ApplicationRecord) -> None:
    document = await uploaded(board)
    receipt = kims.receipt_number
    assert receipt is not None
    base = f"/admin/admissions/{ROUND}/applications/{receipt}/documents"
    r = await board.request("admin", "GET", base)
    assert r.status_code == 200, r.text
    assert r.json() == [document]
    r = await board.request("admin", "GET", base.replace(receipt, receipt.lower()))
    assert r.json() == [document], "receipt numbers are forgiving about case"
    r = await board.request("admin", "GET", f"{base}/{document['id']}")
    assert r.status_code == 200
    assert r.content == PDF
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("attachment;")
    other = base.replace(receipt, "2027-A-999999")
    assert_problem(await board.request("admin", "GET", other), 404, "not_found")
    assert_problem(await board.request("admin", "GET", f"{base}/{document['id'] + 1}"), 404)
    for who, status in (("kim", 403), ("s1", 403), ("anon", 401)):
        assert_problem(await board.request(who, "GET", base), status)
        assert_problem(await board.request(who, "GET", f"{base}/{document['id']}"), status)


async def _streamed_upload(board: Board, during: Any) -> httpx.Response:
    """Upload a PDF whose bytes arrive in two halves, running ``during()`` in between."""
    boundary = "mid-upload-boundary"
    body = _multipart(
        boundary,
        [("kind", None, None, b"transcript"), ("file", "a.pdf", "application/pdf", PDF)],
    )
    half = body.index(PDF) + len(PDF) // 2

    async def halves() -> AsyncIterator[bytes]:
        yield body[:half]
        await during()
        yield body[half:]

    headers = {
        **await board.headers("kim"),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    return await board.client.post(f"/api/v1{DOCS}", content=halves(), headers=headers)


async def test_application_locked_while_the_bytes_arrived_keeps_nothing(
    board: Board, kims: ApplicationRecord
) -> None:
    """Checked again when the file is complete: if staff took the application into review
    meanwhile, the stored bytes are deleted and no record is written."""

    async def review() -> None:
        await set_status(board.container.storage, kims, ApplicationStatus.UNDER_REVIEW)

    assert_problem(await _streamed_upload(board, review), 409, "invalid_transition")
    await assert_nothing_stored(board.container)


async def test_upload_that_began_before_the_deadline_is_in_time(
    board: Board, kims: ApplicationRecord, clock: FixedClock
) -> None:
    clock.set(CLOSES - timedelta(minutes=1))
    board.api.forget_tokens()

    async def deadline_passes() -> None:
        clock.set(CLOSES + timedelta(seconds=5))

    r = await _streamed_upload(board, deadline_passes)
    assert r.status_code == 201, r.text
    assert len(stored_files(board.container)) == 1


async def test_trickling_upload_cannot_stretch_the_deadline(
    board: Board, kims: ApplicationRecord, clock: FixedClock
) -> None:
    clock.set(CLOSES - timedelta(minutes=1))
    board.api.forget_tokens()

    async def long_after() -> None:
        clock.set(CLOSES - timedelta(minutes=1) + UPLOAD_GRACE + timedelta(seconds=1))

    assert_problem(await _streamed_upload(board, long_after), 403, "window_closed")
    await assert_nothing_stored(board.container)


async def test_client_that_goes_away_mid_upload_leaves_nothing(
    app: FastAPI, board: Board, kims: ApplicationRecord
) -> None:
    """Driven as raw ASGI: the server sees half the body, then the disconnect."""
    boundary = "gone-boundary"
    body = _multipart(
        boundary,
        [("kind", None, None, b"transcript"), ("file", "a.pdf", "application/pdf", PDF)],
    )
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": body[: len(body) // 2], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    auth = (await board.headers("kim"))["Authorization"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/v1{DOCS}",
        "raw_path": f"/api/v1{DOCS}".encode(),
        "query_string": b"",
        "headers": [
            (b"host", b"rushgate.test"),
            (b"authorization", auth.encode()),
            (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        ],
        "server": ("rushgate.test", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    await assert_nothing_stored(board.container)
