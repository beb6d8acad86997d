"""Documents attached to an application: applicants upload, list, download and delete
their own; staff list and download any application's."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from rushgate.domain.errors import ValidationFailed
from rushgate.http.deps import AdminUser, ApplicantUser, ContainerDep
from rushgate.http.document_schemas import DocumentOut
from rushgate.http.errors import ApiError
from rushgate.http.schemas import ParamText
from rushgate.http.uploads import MultipartStream
from rushgate.services.documents import Download, Upload
from rushgate.services.ports.documents import DocumentRecord

router = APIRouter(prefix="/api/v1", tags=["admissions: documents"])

# Ids are BIGINT keys: anything else is refused here rather than by the database.
DocumentId = Annotated[int, Path(ge=1, le=2**63 - 1)]

#: The upload route, for the body-size middleware: bodies here may be as large as
#: RUSHGATE_MAX_UPLOAD_BYTES plus :data:`FORM_OVERHEAD_BYTES`, whatever the general limit.
UPLOAD_PATH = re.compile(r"/api/v1/admissions/[^/]+/application/documents")
#: What a form adds around the file: boundaries, part headers, the ``kind`` field.
FORM_OVERHEAD_BYTES = 16 * 1024

_UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["kind", "file"],
                    # Other fields are refused (see _read_upload).
                    "additionalProperties": False,
                    "properties": {
                        "kind": {
                            "type": "string",
                            "description": "One of the round's required_documents, or other.",
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "PDF, JPEG or PNG; must be the last field.",
                        },
                    },
                },
                "encoding": {"file": {"contentType": "application/pdf, image/jpeg, image/png"}},
            }
        },
    }
}
_UPLOAD_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed_multipart"},
    403: {"description": "window_closed: the deadline has passed"},
    404: {"description": "not_found: no such round, or no application in it yet"},
    409: {"description": "invalid_transition (not editable), conflict (too many documents)"},
    413: {"description": "payload_too_large: over RUSHGATE_MAX_UPLOAD_BYTES"},
    415: {"description": "unsupported_media_type: not a PDF/JPEG/PNG, or name/type lie"},
    422: {"description": "validation_failed: kind or file missing or invalid"},
}


_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file, as an attachment",
        "content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}},
    },
    404: {"description": "not_found"},
}


def document_out(document: DocumentRecord) -> DocumentOut:
    return DocumentOut(
        id=document.pk,
        kind=document.kind,
        filename=document.filename,
        content_type=document.content_type,
        size=document.size,
        sha256=document.sha256,
        uploaded_at=document.uploaded_at,
    )


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for a download: an ASCII fallback and the UTF-8 name
    (RFC 6266), so Korean file names survive in every browser."""
    fallback = "".join(ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _download(download: Download) -> StreamingResponse:
    document = download.document
    return StreamingResponse(
        download.chunks,
        media_type=document.content_type,  # from the sniffed bytes, never the client's
        headers={
            "Content-Length": str(document.size),
            "Content-Disposition": _attachment(document.filename),
            "X-Content-Type-Options": "nosniff",
            # Opened directly anyway, a document runs nothing and embeds nothing.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )


async def _read_upload(request: Request) -> Upload:
    """``kind`` first, then ``file`` (last); the file's bytes are left in the stream."""
    form = MultipartStream(request)
    kind: str | None = None
    while (part := await form.next_part()) is not None:
        if part.name == "kind" and part.filename is None and kind is None:
            kind = await form.text(part)
        elif part.name == "file" and part.filename is not None:
            if kind is None:
                raise ValidationFailed(
                    "the form needs a kind before its file",
                    errors=[{"field": "kind", "message": "required, before the file"}],
                )
            return Upload(
                kind=kind,
                filename=part.filename,
                declared_type=part.content_type,
                chunks=form.last_file(part),
            )
        else:
            raise ValidationFailed(
                "unexpected form field",
                errors=[{"field": part.name, "message": "only kind, then file, are accepted"}],
            )
    errors = [{"field": "file", "message": "required"}]
    if kind is None:
        errors.insert(0, {"field": "kind", "message": "required"})
    raise ValidationFailed("the form is incomplete", errors=errors)


@router.post(
    "/admissions/{round_code}/application/documents",
    status_code=status.HTTP_201_CREATED,
    responses=_UPLOAD_PROBLEMS,
    openapi_extra=_UPLOAD_FORM,
)
async def upload_document(
    round_code: ParamText, request: Request, container: ContainerDep, applicant: ApplicantUser
) -> DocumentOut:
    """Attach a PDF, JPEG or PNG while the application can be edited. The file is
    streamed: refused the moment it passes the size limit, its type judged from its
    first bytes, and nothing is kept of a refused upload."""
    try:
        upload = await _read_upload(request)
        record = await container.documents.upload(applicant.user_pk, round_code, upload)
    except ClientDisconnect:
        # Nothing was kept (see DocumentStore.put); no one is left to read an answer,
        # and a client going away is no server error worth a traceback.
        raise ApiError(400, "client_disconnected", "the upload was interrupted") from None
    return document_out(record)


@router.get("/admissions/{round_code}/application/documents")
async def list_documents(
    round_code: ParamText, container: ContainerDep, applicant: ApplicantUser
) -> list[DocumentOut]:
    documents = await container.documents.documents(applicant.user_pk, round_code)
    return [document_out(d) for d in documents]


@router.get(
    "/admissions/{round_code}/application/documents/{document_id}",
    response_class=StreamingResponse,
    responses=_DOWNLOAD,
)
async def download_document(
    round_code: ParamText,
    document_id: DocumentId,
    container: ContainerDep,
    applicant: ApplicantUser,
) -> StreamingResponse:
    return _download(await container.documents.download(applicant.user_pk, round_code, document_id))


@router.delete(
    "/admissions/{round_code}/application/documents/{document_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        403: {"description": "window_closed"},
        404: {"description": "not_found"},
        409: {"description": "invalid_transition"},
    },
)
async def delete_document(
    round_code: ParamText,
    document_id: DocumentId,
    container: ContainerDep,
    applicant: ApplicantUser,
) -> Response:
    await container.documents.delete(applicant.user_pk, round_code, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/admin/admissions/{round_code}/applications/{receipt_number}/documents")
async def staff_list_documents(
    round_code: ParamText, receipt_number: ParamText, container: ContainerDep, _: AdminUser
) -> list[DocumentOut]:
    documents = await container.documents.staff_documents(round_code, receipt_number)
    return [document_out(d) for d in documents]


@router.get(
    "/admin/admissions/{round_code}/applications/{receipt_number}/documents/{document_id}",
    response_class=StreamingResponse,
    responses=_DOWNLOAD,
)
async def staff_download_document(
    round_code: ParamText,
    receipt_number: ParamText,
    document_id: DocumentId,
    container: ContainerDep,
    _: AdminUser,
) -> StreamingResponse:
    return _download(
        await container.documents.staff_download(round_code, receipt_number, document_id)
    )
