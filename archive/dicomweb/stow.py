"""STOW-RS (PS3.18 10.5): store the Part 10 instances of a multipart/related request.

Every part goes through archive.services.ingest_instance, the same verb as C-STORE, so the
rules for bad objects, re-sends and durability are the same. The answer lists each instance
as stored (Referenced SOP Sequence) or failed with the C-STORE status as Failure Reason; 200
when all were stored, 202 when some failed, 409 when none was.
"""

from __future__ import annotations

import io
import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from pydicom.dataset import Dataset
from pydicom.filereader import dcmread

from accounts.models import Membership, Organization, Role
from accounts.policy import active_memberships, is_platform_admin
from archive import services
from archive.dicomfile import DicomFileError, split_part10
from archive.failures import STATUS_FOR_CODE
from audit.models import Action, Outcome
from audit.services import record

from .multipart import MultipartError, SpooledBody, parse_accept, parse_content_type, part_spans

UPLOAD_ROLES = {Role.TECHNOLOGIST, Role.ORG_ADMIN}
# Failure Reason values beyond the C-STORE statuses (PS3.18 Table 10.5.3-2 / PS3.4 GG.4-1).
REFUSED_SOP_CLASS = 0x0122
STUDY_UID_MISMATCH = 0xA900
WARNING_COERCED = 0xB000
# RFC 2046 5.1.1: 1 to 70 of these characters, not ending in a space.
BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def handle(request: HttpRequest, study_uid: str | None, base: str) -> HttpResponse:
    from .views import DICOM_JSON, error

    media_type, params = parse_content_type(request.headers.get("Content-Type", ""))
    if media_type != "multipart/related":
        return error(415, 'STOW-RS takes multipart/related; type="application/dicom"')
    if params.get("type", "application/dicom").lower() != "application/dicom":
        return error(415, "only application/dicom parts are accepted (no JSON/XML + bulk data)")
    if "boundary" not in params:
        return error(400, "Content-Type has no boundary parameter")
    if not BOUNDARY.fullmatch(params["boundary"]):
        return error(400, "the boundary must be 1 to 70 characters allowed by RFC 2046")
    xml = _wants_xml(request)
    if xml is None:
        return error(406, "STOW-RS answers application/dicom+json or application/dicom+xml")
    source_org = _source_organization(request)
    if isinstance(source_org, str):
        return error(403, source_org)
    try:
        body = SpooledBody(request, settings.STOW_MAX_BYTES)
    except MultipartError as exc:
        return error(413, str(exc))
    try:
        spans = list(part_spans(body.map, params["boundary"]))  # the whole body is well formed
        if not spans:
            return error(400, "the request has no parts")
        source = services.IngestSource(
            organization=source_org, label=f"STOW-RS {request.user.get_username()}"[:64]
        )
        parts = ((headers, body.map[start:end]) for headers, start, end in spans)
        response = _store_parts(parts, source, study_uid, base)
    except MultipartError as exc:
        return error(400, f"malformed multipart body: {exc}")
    finally:
        body.close()
    stored = len(response.get("ReferencedSOPSequence", []))
    failed = len(response.get("FailedSOPSequence", []))
    status = 200 if not failed else 409 if not stored else 202
    record(
        request,
        Action.DICOMWEB_STORE,
        Outcome.SUCCESS if stored else Outcome.FAILURE,
        obj=source_org,
        detail={"stored": stored, "failed": failed, "study": study_uid or ""},
    )
    if xml:
        return HttpResponse(_to_xml(response), status=status, content_type="application/dicom+xml")
    return HttpResponse(response.to_json(), status=status, content_type=DICOM_JSON)


def _wants_xml(request: HttpRequest) -> bool | None:
    for media in parse_accept(request.headers.get("Accept", "")):
        if media.media_type in ("application/dicom+json", "application/json", "*/*"):
            return False
        if media.media_type in ("application/dicom+xml", "application/xml"):
            return True
    return None


def _source_organization(request: HttpRequest) -> Organization | str:
    """The sending facility the upload is filed under: the user's one upload membership, or
    the `organization` query parameter (a slug) when they have several, or are an admin."""
    memberships: list[Membership] = [
        m
        for m in active_memberships(request.user)
        if m.role in UPLOAD_ROLES and m.organization.kind == Organization.Kind.SENDING_FACILITY
    ]
    wanted = request.GET.get("organization")
    if wanted:
        for membership in memberships:
            if membership.organization.slug == wanted:
                return membership.organization
        if is_platform_admin(request.user):
            org = Organization.objects.filter(
                slug=wanted, kind=Organization.Kind.SENDING_FACILITY
            ).first()
            if org is not None:
                return org
        return f"you may not store studies for organisation {wanted!r}"
    if len(memberships) == 1:
        return memberships[0].organization
    if memberships:
        return "you upload for several organisations: add ?organization=<slug>"
    return "storing studies needs a technologist or organisation-admin role at a sending facility"


def _store_parts(parts, source, study_uid: str | None, base: str) -> Dataset:
    response = Dataset()
    response.RetrieveURL = f"{base}/studies/{study_uid}" if study_uid else ""
    referenced, failed = [], []
    cache = services.IngestCache()
    for headers, content in parts:
        part_type, _ = parse_content_type(headers.get("content-type", "application/dicom"))
        data = content
        sop_class, sop_instance, item_study, item_series = _identify(data)
        reason, message = None, ""
        if part_type != "application/dicom":
            reason, message = (
                REFUSED_SOP_CLASS,
                f"part of type {part_type} is not application/dicom",
            )
        elif study_uid is not None and item_study and item_study != study_uid:
            reason, message = STUDY_UID_MISMATCH, "instance belongs to another study than the URL"
        else:
            try:
                ts, dataset = split_part10(data)
                outcome = services.ingest_instance(dataset, ts, source, cache=cache)
            except DicomFileError as exc:
                reason, message = STATUS_FOR_CODE.get(exc.code, 0xC000), exc.message
            else:
                if not outcome.accepted:
                    reason = STATUS_FOR_CODE.get(outcome.code, 0x0110)
                    message = outcome.message
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        if reason is None:
            item.RetrieveURL = (
                f"{base}/studies/{item_study}/series/{item_series}/instances/{sop_instance}"
            )
            referenced.append(item)
        else:
            item.FailureReason = reason
            # Not in the standard item, but a client cannot act on a bare number.
            item.TextValue = message[:1024]
            failed.append(item)
    if referenced:
        response.ReferencedSOPSequence = referenced
    if failed:
        response.FailedSOPSequence = failed
    return response


def _identify(data: bytes) -> tuple[str, str, str, str]:
    """SOP class, SOP instance, study and series UIDs of a part, as far as they can be read."""
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=_IDS)
    except Exception:
        return "", "", "", ""
    return tuple(str(ds.get(keyword, "") or "") for keyword in _IDS)


_IDS = ["SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"]


def _to_xml(response: Dataset) -> str:
    """PS3.19 Native DICOM Model XML of the response data set."""
    from xml.sax.saxutils import escape

    def attributes(ds: Dataset) -> list[str]:
        out = []
        for element in ds:
            tag = f"{element.tag:08X}"
            head = f'<DicomAttribute tag="{tag}" vr="{element.VR}" keyword="{element.keyword}">'
            if element.VR == "SQ":
                items = [
                    f'<Item number="{n}">{"".join(attributes(item))}</Item>'
                    for n, item in enumerate(element.value, 1)
                ]
                out.append(head + "".join(items) + "</DicomAttribute>")
            elif element.value not in (None, ""):
                out.append(
                    head
                    + f'<Value number="1">{escape(str(element.value))}</Value></DicomAttribute>'
                )
            else:
                out.append(head + "</DicomAttribute>")
        return out

    body = "".join(attributes(response))
    return f'<?xml version="1.0" encoding="UTF-8"?><NativeDicomModel>{body}</NativeDicomModel>'
