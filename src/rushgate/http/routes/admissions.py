"""Applicants: sign-up, email verification and their own application in a round."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from rushgate.domain.admissions import AdmissionRound
from rushgate.domain.errors import NotFound
from rushgate.http.admission_schemas import (
    ApplicantOut,
    ApplicationIn,
    ApplicationOut,
    HistoryOut,
    PersonalOut,
    ReceiptOut,
    RoundOut,
    SignUp,
    TrackOut,
    VerifyRequest,
)
from rushgate.http.deps import ApplicantUser, ContainerDep, CurrentUser
from rushgate.http.routes.challenge import (
    CHALLENGE_PARAMETER,
    CHALLENGE_RESPONSES,
    require_challenge,
)
from rushgate.http.schemas import ParamText
from rushgate.services.admissions import ApplicationInput, ApplicationView, PersonalInput
from rushgate.services.ports.admissions import Applicant

router = APIRouter(prefix="/api/v1", tags=["admissions"])


def round_out(round_: AdmissionRound) -> RoundOut:
    return RoundOut(
        code=round_.code,
        name=round_.name,
        opens_at=round_.window.opens_at,
        closes_at=round_.window.closes_at,
        tracks=[TrackOut(code=t.code, name=t.name, capacity=t.capacity) for t in round_.tracks],
        required_documents=list(round_.required_documents),
        receipt_prefix=round_.receipt_prefix,
    )


def application_out(view: ApplicationView) -> ApplicationOut:
    p = view.personal
    return ApplicationOut(
        round=view.round_code,
        status=view.status,
        track=view.track,
        personal=None
        if p is None
        else PersonalOut(
            name=p.name,
            birth_date=p.birth_date.isoformat(),
            phone=p.phone,
            guardian_name=p.guardian_name,
            guardian_phone=p.guardian_phone,
            middle_school=p.middle_school,
            address=p.address,
        ),
        statement=view.statement,
        consent_at=view.consent_at,
        receipt_number=view.receipt_number,
        submitted_at=view.submitted_at,
        updated_at=view.updated_at,
        version=view.version,
    )


def _applicant_out(applicant: Applicant, required: bool) -> ApplicantOut:
    return ApplicantOut(
        email=applicant.email,
        name=applicant.name,
        locale=applicant.locale,
        verified=applicant.verified_at is not None,
        verification_required=required,
    )


@router.post(
    "/applicants",
    status_code=status.HTTP_201_CREATED,
    responses={409: {"description": "conflict: the email is taken"}, **CHALLENGE_RESPONSES},
    openapi_extra=CHALLENGE_PARAMETER,
)
async def sign_up(body: SignUp, request: Request, container: ContainerDep) -> ApplicantOut:
    """Log in afterwards at ``/api/v1/auth/token`` with the email as username. With a bot
    challenge configured, the solved challenge goes in the ``X-Rushgate-Challenge``
    header."""
    if container.challenges.enabled:
        await require_challenge(container.challenges, "signup", request)
    service = container.admissions
    applicant = await service.sign_up(
        email=body.email, password=body.password, name=body.name, locale=body.locale
    )
    return _applicant_out(applicant, service.verification_required)


@router.post("/applicants/verify", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email(body: VerifyRequest, container: ContainerDep) -> Response:
    await container.admissions.verify_email(body.token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/applicants/verify", status_code=status.HTTP_204_NO_CONTENT)
async def verify_email_link(token: ParamText, container: ContainerDep) -> Response:
    """The link in the verification mail."""
    await container.admissions.verify_email(token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/applicants/me")
async def me(principal: ApplicantUser, container: ContainerDep) -> ApplicantOut:
    service = container.admissions
    return _applicant_out(await service.me(principal.user_pk), service.verification_required)


@router.get("/admissions/{round_code}")
async def get_round(round_code: ParamText, container: ContainerDep, _: CurrentUser) -> RoundOut:
    return round_out(await container.admissions.round(round_code))


@router.put(
    "/admissions/{round_code}/application",
    responses={201: {"description": "created"}, 403: {"description": "window_closed"}},
)
async def save_application(
    round_code: ParamText,
    body: ApplicationIn,
    principal: ApplicantUser,
    container: ContainerDep,
    response: Response,
) -> ApplicationOut:
    """Save the draft any time before the deadline; after submitting, edit it while the
    filing window is open (every version is kept in the history)."""
    p = body.personal
    view, created = await container.admissions.save(
        principal.user_pk,
        round_code,
        ApplicationInput(
            track=body.track,
            personal=None
            if p is None
            else PersonalInput(
                name=p.name,
                birth_date=p.birth_date,
                phone=p.phone,
                guardian_name=p.guardian_name,
                guardian_phone=p.guardian_phone,
                middle_school=p.middle_school,
                address=p.address,
            ),
            statement=body.statement,
            consent=body.consent,
        ),
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return application_out(view)


@router.get("/admissions/{round_code}/application")
async def get_application(
    round_code: ParamText, principal: ApplicantUser, container: ContainerDep
) -> ApplicationOut:
    return application_out(await container.admissions.application(principal.user_pk, round_code))


@router.post(
    "/admissions/{round_code}/application/submit",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "submitted before: the same receipt"},
        403: {"description": "window_closed / email_unverified"},
    },
)
async def submit_application(
    round_code: ParamText, principal: ApplicantUser, container: ContainerDep, response: Response
) -> ApplicationOut:
    view, filed_now = await container.admissions.submit(principal.user_pk, round_code)
    if not filed_now:
        response.status_code = status.HTTP_200_OK
    return application_out(view)


@router.post("/admissions/{round_code}/application/withdraw")
async def withdraw_application(
    round_code: ParamText, principal: ApplicantUser, container: ContainerDep
) -> ApplicationOut:
    return application_out(await container.admissions.withdraw(principal.user_pk, round_code))


@router.get("/admissions/{round_code}/application/history")
async def application_history(
    round_code: ParamText, principal: ApplicantUser, container: ContainerDep
) -> list[HistoryOut]:
    entries = await container.admissions.history(principal.user_pk, round_code)
    return [
        HistoryOut(at=e.at, action=e.action, status=e.status, by_applicant=e.by_applicant)
        for e in entries
    ]


@router.get("/admissions/{round_code}/application/receipt")
async def application_receipt(
    round_code: ParamText, principal: ApplicantUser, container: ContainerDep
) -> ReceiptOut:
    """The receipt, to print again at any time."""
    view = await container.admissions.application(principal.user_pk, round_code)
    if view.receipt_number is None or view.submitted_at is None:
        raise NotFound("this application has not been submitted", round=round_code)
    applicant = await container.admissions.me(principal.user_pk)
    return ReceiptOut(
        receipt_number=view.receipt_number,
        round=view.round_code,
        round_name=view.round_name,
        applicant=applicant.name,
        track=view.track,
        submitted_at=view.submitted_at,
        status=view.status,
    )
