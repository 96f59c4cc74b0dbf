"""The viewer's pages and the small JSON/SVG endpoints its JavaScript calls.

Thin: every study is found through the access policy (`visible_study_or_404`); images come
from the DICOMweb `rendered` routes; the work is in viewer.workspace and viewer.services.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.policy import can_annotate_study, visible_studies
from archive.lookup import visible_study_or_404
from archive.models import Instance, Series
from archive.storage import is_valid_uid
from audit.models import Action
from audit.services import record

from . import documents, ecg, services, workspace
from .errors import FrameOutOfRange, RenderError
from .models import KeyImage, Measurement

# Why a POST of marks is refused (accounts.policy.annotatable_studies).
_READ_ONLY = (
    "these images are read-only for you (a prior from another hospital, or a referring view)"
)

# A framed document may only be framed by our own pages and may run nothing.
DOCUMENT_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'self'"


def _json_error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _image_of(study, sop: object) -> Instance | None:
    """The study's image with this SOP Instance UID. Anything that is not a valid UID (ingest
    indexes valid ones only) names no image and never reaches the database, which refuses
    NUL (PostgreSQL) and unpaired surrogates (psycopg)."""
    if not isinstance(sop, str) or not is_valid_uid(sop):
        return None
    return (
        Instance.objects.filter(series__study=study, sop_instance_uid=sop)
        .select_related("series__study")
        .first()
    )


@login_required
@require_GET
def study_page(request: HttpRequest, study_uid: str) -> HttpResponse:
    visible = visible_studies(request.user)
    study = visible_study_or_404(request, study_uid, "viewer", visible)
    prior_uid = request.GET.get("prior")
    data = workspace.workspace(study, visible, prior_uid)
    record(request, Action.STUDY_VIEW, study=study, detail={"page": "viewer"})
    return render(
        request,
        "viewer/study.html",
        {
            "study": study,
            "data": data,
            "first": workspace.first_frame(data),
            "measurements": Measurement.objects.filter(study=study).select_related("instance"),
            **_reporting(request, study),
        },
    )


def _reporting(request: HttpRequest, study) -> dict:
    """Whether this user reports the study, and the report fields a distance can fill (so a
    measurement labelled here lands in the right field of the report)."""
    from accounts.policy import reportable_studies

    if not reportable_studies(request.user).filter(pk=study.pk).exists():
        return {"can_report": False, "report_labels": []}
    from reports.services import ReportError, choose_template

    try:
        fields = choose_template(study).fields()
    except ReportError:
        fields = []
    labels = [(f["key"], f["label"]) for f in fields if f.get("unit") in ("cm", "mm")]
    return {"can_report": True, "report_labels": labels}


def _instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> Instance:
    study = visible_study_or_404(request, study_uid, "viewer")
    return get_object_or_404(
        Instance.objects.select_related("series__study"),
        series__study=study,
        series__series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
    )


@login_required
@require_GET
def stack_geometry(request: HttpRequest, study_uid: str, series_uid: str) -> JsonResponse:
    study = visible_study_or_404(request, study_uid, "viewer")
    series = get_object_or_404(Series, study=study, series_instance_uid=series_uid)
    described = workspace.stack_geometry(series)
    record(request, Action.STUDY_VIEW, study=study, detail={"geometry": series_uid})
    response = JsonResponse({"instances": described})
    response["Cache-Control"] = "private, max-age=300"
    return response


def _choice(request: HttpRequest, name: str, allowed: tuple[float, ...], default: float) -> float:
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RenderError("bad_scale", f"{name} must be one of {allowed}") from None
    if value not in allowed:
        raise RenderError("bad_scale", f"{name} must be one of {', '.join(map(str, allowed))}")
    return value


@login_required
@require_GET
def ecg_svg(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    try:
        speed = _choice(request, "speed", (12.5, 25.0, 50.0), 25.0)
        gain = _choice(request, "gain", (5.0, 10.0, 20.0), 10.0)
        ds = services._dataset(instance)
        svg = ecg.render_svg(ecg.read_ecg(ds), speed_mm_s=speed, gain_mm_mv=gain)
    except RenderError as exc:
        return HttpResponse(
            exc.message,
            status=422 if exc.code != "bad_scale" else 400,
            content_type="text/plain; charset=utf-8",
        )
    record(request, Action.IMAGE_VIEW, study=instance.series.study, detail={"ecg": sop_uid})
    return HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")


@login_required
@require_GET
@xframe_options_sameorigin
def document(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponse:
    """An Encapsulated PDF as the PDF itself; a Structured Report as a readable page."""
    instance = _instance(request, study_uid, series_uid, sop_uid)
    record(request, Action.IMAGE_VIEW, study=instance.series.study, detail={"document": sop_uid})
    try:
        ds = services._dataset(instance)  # an unreadable stored file: RenderError, a 422
        if "EncapsulatedDocument" in ds:
            response = HttpResponse(documents.encapsulated_pdf(ds), content_type="application/pdf")
            response["Content-Disposition"] = 'inline; filename="document.pdf"'
        else:
            root = documents.structured_report(ds)
            response = render(request, "viewer/sr.html", {"root": root, "ds_title": root.concept})
    except RenderError as exc:
        response = HttpResponse(exc.message, status=422, content_type="text/plain; charset=utf-8")
    response["Content-Security-Policy"] = DOCUMENT_CSP
    return response


def _measurement_json(m: Measurement) -> dict:
    return {
        "id": m.pk,
        "sop": m.instance.sop_instance_uid,
        "frame": m.frame,
        "kind": m.kind,
        "points": m.points,
        "value": m.value,
        "unit": m.unit,
        "calibration": m.calibration,
        "stats": m.stats,
        "label": m.label,
        "by": m.created_by.get_username(),
    }


@login_required
@require_http_methods(["GET", "POST"])
def measurements(request: HttpRequest, study_uid: str) -> JsonResponse:
    """GET: the study's measurements. POST {series, sop, frame, kind, points, label}: the
    server computes the value from the image's calibration and saves it."""
    study = visible_study_or_404(request, study_uid, "viewer")
    if request.method == "POST" and not can_annotate_study(request.user, study):
        return _json_error(403, f"{_READ_ONLY}: measurements are not saved")
    if request.method == "GET":
        rows = Measurement.objects.filter(study=study).select_related("instance", "created_by")
        found = [_measurement_json(m) for m in rows]
        record(request, Action.STUDY_VIEW, study=study, detail={"measurements": len(found)})
        return JsonResponse({"measurements": found})
    try:
        body = json.loads(request.body or b"{}")
        if not isinstance(body, dict):
            raise ValueError
    except (ValueError, RecursionError):  # RecursionError: arrays nested 100,000 deep
        return _json_error(400, "the body must be a JSON object")
    instance = _image_of(study, body.get("sop"))
    if instance is None:
        return _json_error(404, "no such image in this study")
    label = body.get("label") or ""  # null or absent: no label
    if not isinstance(label, str):
        return _json_error(400, "label must be text")
    try:
        frame = int(body.get("frame", 1))
        saved = services.save_measurement(
            request.user,
            instance,
            frame,
            str(body.get("kind", "")),
            body.get("points"),
            label,
            speed=body.get("speed"),
        )
    except FrameOutOfRange as exc:
        return _json_error(400, exc.message)
    except RenderError as exc:  # the image itself cannot be measured (undecodable, colour)
        return _json_error(422, exc.message)
    except (services.MeasurementError, ValueError, TypeError, OverflowError) as exc:
        return _json_error(400, str(exc) or "bad measurement")
    record(request, Action.ANNOTATE, study=study, detail={"measurement": saved.pk})
    return JsonResponse(_measurement_json(saved), status=201)


@login_required
@require_POST
def delete_measurement(request: HttpRequest, study_uid: str, pk: int) -> JsonResponse:
    study = visible_study_or_404(request, study_uid, "viewer")
    deleted, _ = Measurement.objects.filter(study=study, pk=pk, created_by=request.user).delete()
    if not deleted:
        return _json_error(404, "no such measurement of yours")
    record(request, Action.ANNOTATE, study=study, detail={"measurement_deleted": pk})
    return JsonResponse({"deleted": pk})


@login_required
@require_POST
def key_image(request: HttpRequest, study_uid: str) -> JsonResponse:
    study = visible_study_or_404(request, study_uid, "viewer")
    if not can_annotate_study(request.user, study):
        return _json_error(403, f"{_READ_ONLY}: key images are not marked")
    instance = _image_of(study, request.POST.get("sop"))
    if instance is None:
        return _json_error(404, "no such image in this study")
    try:
        marked = services.toggle_key_image(
            request.user, instance, int(request.POST.get("frame", 1))
        )
    except (ValueError, RenderError) as exc:
        return _json_error(400, str(exc))
    record(
        request,
        Action.ANNOTATE,
        study=study,
        detail={"key_image": marked, "sop": instance.sop_instance_uid},
    )
    keys = KeyImage.objects.filter(study=study, created_by=request.user).count()
    return JsonResponse({"key": marked, "count": keys})
