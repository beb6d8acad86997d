"""The applicants' pages: sign-up and email verification, the application form (saved as
a draft, documents attached, submitted), the receipt, the status and the Q&A board.

Every page calls the admissions, documents and Q&A services the JSON API calls; forms
post back to these routes and are answered with a redirect (Post/Redirect/Get), or with
the same page again showing what was refused, next to the field it is about."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect
from starlette.responses import RedirectResponse, Response

from rushgate.domain.errors import (
    DomainError,
    NotFound,
    ValidationFailed,
)
from rushgate.http.client import client_ip
from rushgate.http.deps import CSRF_FIELD, site_cookies
from rushgate.http.errors import ApiError, status_for
from rushgate.http.pages.render import Visitor, check_csrf, render, to_login, visitor
from rushgate.http.uploads import MultipartStream
from rushgate.services.admissions import (
    NAME_MAX,
    PASSWORD_MAX,
    PASSWORD_MIN,
    STATEMENT_MAX,
    ApplicationInput,
    ApplicationView,
    PersonalInput,
)
from rushgate.services.documents import Upload
from rushgate.services.qna import Viewer

router = APIRouter(include_in_schema=False)

#: The upload form's route, for the body-size middleware (as the API's upload route).
UPLOAD_PATH = re.compile(r"/apply/[^/]+/documents")

# Dates are shown as the applicants live them: the school is in Korea.
_SEOUL = ZoneInfo("Asia/Seoul")
PERSONAL_FIELDS = (
    "name",
    "birth_date",
    "phone",
    "guardian_name",
    "guardian_phone",
    "middle_school",
    "address",
)
_ROUND_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def when(at: datetime | None) -> str:
    return "" if at is None else at.astimezone(_SEOUL).strftime("%Y-%m-%d %H:%M (KST)")


def _errors_by_field(error: ValidationFailed) -> dict[str, str]:
    """The first refusal of each field, keyed as the form's inputs are named."""
    found: dict[str, str] = {}
    for entry in error.errors:
        field = str(entry.get("field", "")).removeprefix("personal.")
        found.setdefault(field, str(entry.get("reason") or entry.get("message", "")))
    return found


def _applicant(request: Request) -> Visitor | Response:
    """The signed-in applicant, or where to send anyone else."""
    who = visitor(request)
    if who.principal is None:
        return to_login(request)
    if who.role != "applicant":
        return render(
            request, "applicant/message.html", status_code=403, who=who, message="forbidden"
        )
    return who


def _refused(request: Request, who: Visitor, error: DomainError) -> Response:
    return render(
        request,
        "applicant/message.html",
        status_code=status_for(error),
        who=who,
        message=error.code,
    )


def _csrf_refused(request: Request, who: Visitor | None = None) -> Response:
    return render(
        request, "applicant/message.html", status_code=403, who=who, message="csrf_failed"
    )


# --------------------------------------------------------------------------- sign-up


def _same_site(request: Request) -> bool:
    """A sign-up has no session (so no CSRF token) yet: like the login form, refuse a
    post the browser says another site made."""
    origin = request.headers.get("origin")
    return origin is None or origin.lower() == site_cookies(request).origin


async def _challenge_context(request: Request) -> dict[str, Any]:
    gate = request.app.state.container.challenges
    spec = await gate.spec("signup") if gate.enabled else None
    return {
        "challenge": None
        if spec is None
        else {"kind": spec.kind, "site_key": spec.site_key, "params": spec.params},
    }


# A CAPTCHA widget is the provider's script and frame: the sign-up page (only) allows
# that provider's origins, on top of the pages' policy. Proof of work needs nothing more.
_CAPTCHA_POLICIES = {
    "turnstile": "default-src 'self'; script-src 'self' https://challenges.cloudflare.com; "
    "frame-src https://challenges.cloudflare.com; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'",
    "hcaptcha": "default-src 'self'; script-src 'self' https://hcaptcha.com "
    "https://*.hcaptcha.com; frame-src https://hcaptcha.com https://*.hcaptcha.com; "
    "style-src 'self' https://hcaptcha.com https://*.hcaptcha.com; img-src 'self' data:; "
    "connect-src 'self' https://hcaptcha.com https://*.hcaptcha.com; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
}
# Where each kind's answer arrives in the form: the widgets name their own fields.
_ANSWER_FIELDS = ("challenge", "cf-turnstile-response", "h-captcha-response")


def _signup_page(
    request: Request,
    challenge: dict[str, Any],
    *,
    status_code: int = 200,
    values: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
) -> Response:
    page = render(
        request,
        "applicant/signup.html",
        status_code=status_code,
        values=values or {"email": "", "name": ""},
        errors=errors or {},
        error=error,
        password_min=PASSWORD_MIN,
        password_max=PASSWORD_MAX,
        name_max=NAME_MAX,
        **challenge,
    )
    spec = challenge["challenge"]
    if spec is not None and spec["kind"] in _CAPTCHA_POLICIES:
        page.headers["Content-Security-Policy"] = _CAPTCHA_POLICIES[spec["kind"]]
    return page


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    return _signup_page(request, await _challenge_context(request))


@router.post("/signup")
async def sign_up(request: Request) -> Response:
    form = await request.form()
    values = {
        "email": str(form.get("email", ""))[:254].strip(),
        "name": str(form.get("name", ""))[:500],
    }
    password = str(form.get("password", ""))[:1024]
    if not _same_site(request):
        return _signup_page(
            request,
            await _challenge_context(request),
            status_code=403,
            values=values,
            error="csrf_failed",
        )
    container = request.app.state.container
    t = request.app.state.pages.translator(request)
    try:
        if container.challenges.enabled:
            answer = next((str(form[f]) for f in _ANSWER_FIELDS if form.get(f)), None)
            await container.challenges.require("signup", answer, remote_ip=client_ip(request))
        await container.admissions.sign_up(
            email=values["email"], password=password, name=values["name"], locale=t.locale
        )
    except ValidationFailed as invalid:
        return _signup_page(
            request,
            await _challenge_context(request),
            status_code=422,
            values=values,
            errors=_errors_by_field(invalid),
            error="validation_failed",
        )
    except DomainError as refusal:
        code = "email_taken" if refusal.code == "conflict" else refusal.code
        errors = {"email": "taken"} if code == "email_taken" else {}
        return _signup_page(
            request,
            await _challenge_context(request),
            status_code=status_for(refusal),
            values=values,
            errors=errors,
            error=code,
        )
    return RedirectResponse("/signup/sent", status_code=303)


@router.get("/signup/sent")
async def signup_sent(request: Request) -> Response:
    required = request.app.state.container.admissions.verification_required
    return render(request, "applicant/signup_sent.html", verification_required=required)


@router.get("/verify")
async def verify_page(request: Request) -> Response:
    token = request.query_params.get("token", "")[:2048]
    try:
        if not token or "\x00" in token:
            raise NotFound("no verification token")
        await request.app.state.container.admissions.verify_email(token)
    except DomainError:
        return render(request, "applicant/verify.html", status_code=400, verified=False)
    return render(request, "applicant/verify.html", verified=True)


# --------------------------------------------------------------------------- home


@router.get("/apply")
async def applicant_home(request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    service = request.app.state.container.admissions
    me = await service.me(who.principal.user_pk)
    wanted = request.query_params.get("round", "").strip()
    if wanted:
        if _ROUND_CODE.fullmatch(wanted):
            return RedirectResponse(f"/apply/{wanted}", status_code=303)
        return render(
            request,
            "applicant/home.html",
            status_code=422,
            who=who,
            me=me,
            wanted=wanted[:64],
            round_error=True,
            verification_required=service.verification_required,
            rounds=await service.current_rounds(),
            now=request.app.state.container.clock.now(),
        )
    return render(
        request,
        "applicant/home.html",
        who=who,
        me=me,
        wanted="",
        round_error=False,
        verification_required=service.verification_required,
        rounds=await service.current_rounds(),
        now=request.app.state.container.clock.now(),
    )


# --------------------------------------------------------------------------- the form


def _values_of(view: ApplicationView | None) -> dict[str, Any]:
    if view is None:
        return {"track": "", "statement": "", "consent": False} | dict.fromkeys(PERSONAL_FIELDS, "")
    p = view.personal
    personal: dict[str, str] = dict.fromkeys(PERSONAL_FIELDS, "")
    if p is not None:
        personal = {
            "name": p.name,
            "birth_date": p.birth_date.isoformat(),
            "phone": p.phone,
            "guardian_name": p.guardian_name,
            "guardian_phone": p.guardian_phone,
            "middle_school": p.middle_school,
            "address": p.address,
        }
    return {
        "track": view.track or "",
        "statement": view.statement,
        "consent": view.consent_at is not None,
    } | personal


def _values_from(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: str(form.get(name, ""))[:500] for name in (*PERSONAL_FIELDS, "track")
    }
    values["statement"] = str(form.get("statement", ""))[: STATEMENT_MAX * 2]
    values["consent"] = form.get("consent") == "yes"
    return values


def _input_of(values: Mapping[str, Any]) -> ApplicationInput:
    personal = None
    if any(str(values[name]).strip() for name in PERSONAL_FIELDS):
        personal = PersonalInput(**{name: str(values[name]) for name in PERSONAL_FIELDS})
    return ApplicationInput(
        track=str(values["track"]) or None,
        personal=personal,
        statement=str(values["statement"]),
        consent=bool(values["consent"]),
    )


async def _form_page(
    request: Request,
    who: Visitor,
    round_code: str,
    *,
    status_code: int = 200,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
    upload_error: str | None = None,
) -> Response:
    assert who.principal is not None
    container = request.app.state.container
    user_pk = who.principal.user_pk
    try:
        round_ = await container.admissions.round(round_code)
    except NotFound as missing:
        return _refused(request, who, missing)
    try:
        view: ApplicationView | None = await container.admissions.application(user_pk, round_code)
    except NotFound:
        view = None
    documents = [] if view is None else await container.documents.documents(user_pk, round_code)
    now = container.clock.now()
    return render(
        request,
        "applicant/form.html",
        status_code=status_code,
        who=who,
        round=round_,
        view=view,
        values=values if values is not None else _values_of(view),
        errors=errors or {},
        error=error,
        upload_error=upload_error,
        documents=documents,
        editable=view is None or view.status.value in ("draft", "submitted"),
        open_now=round_.window.accepts(now),
        saved=request.query_params.get("saved") == "1",
        uploaded=request.query_params.get("uploaded") == "1",
        deleted=request.query_params.get("deleted") == "1",
        max_bytes=container.documents.max_bytes,
        max_mib=round(container.documents.max_bytes / 1024 / 1024, 1),
        when=when,
        statement_max=STATEMENT_MAX,
    )


@router.get("/apply/{round_code}")
async def application_form(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    return await _form_page(request, who, round_code)


@router.post("/apply/{round_code}")
async def save_application(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, who)
    values = _values_from(form)
    try:
        await request.app.state.container.admissions.save(
            who.principal.user_pk, round_code, _input_of(values)
        )
    except ValidationFailed as invalid:
        return await _form_page(
            request,
            who,
            round_code,
            status_code=422,
            values=values,
            errors=_errors_by_field(invalid),
            error="validation_failed",
        )
    except DomainError as refusal:
        return await _form_page(
            request,
            who,
            round_code,
            status_code=status_for(refusal),
            values=values,
            error=refusal.code,
        )
    return RedirectResponse(f"/apply/{round_code}?saved=1#main", status_code=303)


@router.post("/apply/{round_code}/submit")
async def submit_application(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    if not check_csrf(request, await request.form()):
        return _csrf_refused(request, who)
    try:
        await request.app.state.container.admissions.submit(who.principal.user_pk, round_code)
    except ValidationFailed as incomplete:
        return await _form_page(
            request,
            who,
            round_code,
            status_code=422,
            errors={k: "required" for k in _errors_by_field(incomplete)},
            error="incomplete",
        )
    except DomainError as refusal:
        return await _form_page(
            request, who, round_code, status_code=status_for(refusal), error=refusal.code
        )
    return RedirectResponse(f"/apply/{round_code}/receipt", status_code=303)


# --------------------------------------------------------------------------- documents


async def _read_upload(stream: MultipartStream) -> tuple[dict[str, str], Upload | None]:
    """The text fields (``csrf_token``, ``kind``) and the file, which comes last so its
    bytes stream on; ``None`` when no file was chosen. Nothing of the file is read here:
    the route checks the token before the service reads a byte."""
    fields: dict[str, str] = {}
    while (part := await stream.next_part()) is not None:
        if part.filename is None and part.name in (CSRF_FIELD, "kind") and part.name not in fields:
            fields[part.name] = await stream.text(part)
        elif part.name == "file":
            if not part.filename:
                return fields, None  # browsers send an empty part when none was chosen
            return fields, Upload(
                kind=fields.get("kind", ""),
                filename=part.filename,
                declared_type=part.content_type,
                chunks=stream.last_file(part),
            )
        else:
            raise ValidationFailed(
                "unexpected form field", errors=[{"field": part.name, "message": "unexpected"}]
            )
    return fields, None


@router.post("/apply/{round_code}/documents")
async def upload_document(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    container = request.app.state.container
    try:
        fields, upload = await _read_upload(MultipartStream(request))
        if not check_csrf(request, fields):
            return _csrf_refused(request, who)
        if upload is None:
            return await _form_page(
                request, who, round_code, status_code=422, upload_error="upload_no_file"
            )
        await container.documents.upload(who.principal.user_pk, round_code, upload)
    except ClientDisconnect:
        return Response(status_code=400)  # no one is left to read an answer
    except ApiError as broken:
        return await _form_page(
            request, who, round_code, status_code=broken.status, upload_error=broken.code
        )
    except DomainError as refusal:
        return await _form_page(
            request, who, round_code, status_code=status_for(refusal), upload_error=refusal.code
        )
    return RedirectResponse(f"/apply/{round_code}?uploaded=1#documents", status_code=303)


async def _own_document(request: Request, who: Visitor, round_code: str, document_id: str) -> Any:
    assert who.principal is not None
    documents = await request.app.state.container.documents.documents(
        who.principal.user_pk, round_code
    )
    for document in documents:
        if str(document.pk) == document_id:
            return document
    raise NotFound("no such document", document=document_id[:20])


@router.get("/apply/{round_code}/documents/{document_id}/delete")
async def confirm_delete(round_code: str, document_id: str, request: Request) -> Response:
    """Asks first: deleting works without script, and a mistaken click costs nothing."""
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    try:
        document = await _own_document(request, who, round_code, document_id)
    except DomainError as refusal:
        return _refused(request, who, refusal)
    return render(
        request,
        "applicant/delete_document.html",
        who=who,
        round_code=round_code,
        document=document,
    )


@router.post("/apply/{round_code}/documents/{document_id}/delete")
async def delete_document(round_code: str, document_id: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    if not check_csrf(request, await request.form()):
        return _csrf_refused(request, who)
    try:
        document = await _own_document(request, who, round_code, document_id)
        await request.app.state.container.documents.delete(
            who.principal.user_pk, round_code, document.pk
        )
    except DomainError as refusal:
        return await _form_page(
            request, who, round_code, status_code=status_for(refusal), upload_error=refusal.code
        )
    return RedirectResponse(f"/apply/{round_code}?deleted=1#documents", status_code=303)


# --------------------------------------------------------------------------- receipt, status


@router.get("/apply/{round_code}/receipt")
async def receipt_page(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    container = request.app.state.container
    try:
        round_ = await container.admissions.round(round_code)
        view = await container.admissions.application(who.principal.user_pk, round_code)
        if view.receipt_number is None:
            raise NotFound("this application has not been submitted", round=round_code)
        me = await container.admissions.me(who.principal.user_pk)
        documents = await container.documents.documents(who.principal.user_pk, round_code)
    except DomainError as refusal:
        return _refused(request, who, refusal)
    tracks = {t.code: t.name for t in round_.tracks}
    return render(
        request,
        "applicant/receipt.html",
        who=who,
        round=round_,
        view=view,
        me=me,
        track_name=tracks.get(view.track or "", view.track or ""),
        documents=documents,
        when=when,
    )


@router.get("/apply/{round_code}/status")
async def status_page(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    container = request.app.state.container
    try:
        view = await container.admissions.application(who.principal.user_pk, round_code)
        history = await container.admissions.history(who.principal.user_pk, round_code)
    except DomainError as refusal:
        return _refused(request, who, refusal)
    return render(request, "applicant/status.html", who=who, view=view, history=history, when=when)


# --------------------------------------------------------------------------- Q&A


async def _questions_page(
    request: Request,
    who: Visitor,
    round_code: str,
    *,
    status_code: int = 200,
    values: Mapping[str, Any] | None = None,
    errors: Mapping[str, str] | None = None,
    error: str | None = None,
) -> Response:
    assert who.principal is not None
    qna = request.app.state.container.qna
    viewer = Viewer(who.principal.user_pk, staff=False)
    cursor = request.query_params.get("cursor") or None
    try:
        round_ = await request.app.state.container.admissions.round(round_code)
        page = await qna.questions(viewer, round_code, cursor=cursor)
        faq = await qna.faq(round_code)
    except DomainError as refusal:
        return _refused(request, who, refusal)
    return render(
        request,
        "applicant/questions.html",
        status_code=status_code,
        who=who,
        round=round_,
        page=page,
        faq=faq,
        values=values or {"title": "", "body": "", "public": True},
        errors=errors or {},
        error=error,
        asked=request.query_params.get("asked") == "1",
        when=when,
    )


@router.get("/apply/{round_code}/questions")
async def questions(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    return await _questions_page(request, who, round_code)


@router.post("/apply/{round_code}/questions")
async def ask(round_code: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    form = await request.form()
    if not check_csrf(request, form):
        return _csrf_refused(request, who)
    values = {
        "title": str(form.get("title", ""))[:1000],
        "body": str(form.get("body", ""))[:20_000],
        "public": form.get("public") == "yes",
    }
    try:
        await request.app.state.container.qna.ask(
            who.principal.user_pk,
            round_code,
            title=values["title"],
            body=values["body"],
            public=values["public"],
        )
    except ValidationFailed as invalid:
        return await _questions_page(
            request,
            who,
            round_code,
            status_code=422,
            values=values,
            errors=_errors_by_field(invalid),
            error="validation_failed",
        )
    except DomainError as refusal:
        return await _questions_page(
            request,
            who,
            round_code,
            status_code=status_for(refusal),
            values=values,
            error=refusal.code,
        )
    return RedirectResponse(f"/apply/{round_code}/questions?asked=1", status_code=303)


@router.get("/apply/{round_code}/questions/{question_id}")
async def question(round_code: str, question_id: str, request: Request) -> Response:
    who = _applicant(request)
    if isinstance(who, Response):
        return who
    assert who.principal is not None
    try:
        if not question_id.isdigit() or len(question_id) > 18:
            raise NotFound("no such question", question=question_id[:20])
        found = await request.app.state.container.qna.question(
            Viewer(who.principal.user_pk, staff=False), round_code, int(question_id)
        )
    except DomainError as refusal:
        return _refused(request, who, refusal)
    return render(
        request,
        "applicant/question.html",
        who=who,
        round_code=round_code,
        question=found,
        when=when,
    )
