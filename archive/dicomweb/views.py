"""DICOMweb (PS3.18) over HTTP: QIDO-RS searches, WADO-RS retrieves, STOW-RS stores.

Thin views. Every route finds its objects through `_visible` (the access policy, in one
place): what a user may not see is a 404, exactly like what does not exist, and the attempt
is audited. Errors are standard: 400 with a reason, 404, 406 for a media type that cannot be
produced, 415 for a body that is not what STOW-RS takes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from accounts.policy import visible_studies
from accounts.tokens import token_or_session_required
from archive.models import Instance, Series, Study
from audit.models import Action, AuditEvent, Outcome
from audit.services import record

from . import grants, search, stow, wado
from .attributes import Level
from .multipart import MediaRange, multipart_response, parse_accept
from .query import QueryError, parse

DICOM_JSON = "application/dicom+json"
FRAME_LIST = re.compile(r"^[1-9]\d{0,8}(,[1-9]\d{0,8})*$")


class NotFound(Exception):
    def __init__(self, what: str, uid: str) -> None:
        super().__init__(f"{what} {uid} not found")
        self.what = what
        self.uid = uid


def error(status: int, message: str) -> JsonResponse:
    """PS3.18 leaves the error body open; JSON with the reason is what scripts can read."""
    return JsonResponse({"error": message, "status": status}, status=status)


def dicomweb_view(methods: list[str]):
    """Authentication, method check and the standard error mapping for every route."""

    def decorate(view):
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except NotFound as exc:
                record(
                    request,
                    Action.ACCESS_DENIED,
                    Outcome.DENIED,
                    object_type=exc.what,
                    object_id=exc.uid[:64],
                    detail={"route": request.path[:200]},
                )
                return error(404, str(exc))
            except QueryError as exc:
                return error(400, str(exc))
            except wado.NotAcceptable as exc:
                return error(406, str(exc))
            except wado.Unprocessable as exc:
                return error(422, str(exc))

        wrapped.__name__ = view.__name__
        wrapped.__doc__ = view.__doc__
        return require_http_methods(methods)(token_or_session_required(wrapped))

    return decorate


def _visible(request: HttpRequest) -> QuerySet:
    """The one place DICOMweb asks the access policy what this user may see."""
    return visible_studies(request.user)


def _base(request: HttpRequest) -> str:
    return request.build_absolute_uri("/dicomweb")


def _study(request: HttpRequest, study_uid: str) -> Study:
    study = _visible(request).filter(study_instance_uid=study_uid).first()
    if study is None:
        raise NotFound("study", study_uid)
    return study


def _instances(
    request: HttpRequest, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
) -> QuerySet:
    if sop_uid is not None and series_uid is not None:
        # Frames and rendered images come here many times a second: one query when found.
        found = Instance.objects.filter(
            sop_instance_uid=sop_uid,
            series__series_instance_uid=series_uid,
            series__study__study_instance_uid=study_uid,
            series__study__in=_visible(request),
        ).select_related("series__study")
        if found:
            return found
    study = _study(request, study_uid)
    instances = Instance.objects.filter(series__study=study).select_related("series__study")
    if series_uid is not None:
        if not Series.objects.filter(study=study, series_instance_uid=series_uid).exists():
            raise NotFound("series", series_uid)
        instances = instances.filter(series__series_instance_uid=series_uid)
    if sop_uid is not None:
        instances = instances.filter(sop_instance_uid=sop_uid)
        if not instances:
            raise NotFound("instance", sop_uid)
    return instances.order_by("series__series_number", "series_id", "instance_number", "id")


def _instance_list(
    request: HttpRequest, study_uid: str, series_uid: str | None, sop_uid: str | None
) -> list[Instance]:
    """The instances a retrieve answers with; a 404 when there are none. A study or series
    can be left empty: a re-sent instance with other bytes is filed under the Study and
    Series UIDs it now carries (READINGROOM_RESEND_POLICY=version)."""
    instances = list(_instances(request, study_uid, series_uid, sop_uid))
    if not instances:
        raise NotFound(
            *(
                ("instances of series", series_uid)
                if series_uid
                else ("instances of study", study_uid)
            )
        )
    return instances


def _json(payload, status: int = 200, headers: dict | None = None) -> HttpResponse:
    # orjson: UTF-8 out, and NaN or infinity become null, never the invalid JSON `NaN`.
    response = HttpResponse(orjson.dumps(payload), status=status, content_type=DICOM_JSON)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _accepts_json(request: HttpRequest) -> bool:
    for media in parse_accept(request.headers.get("Accept", "")):
        if media.media_type in ("application/dicom+json", "application/json", "*/*"):
            return True
        if media.media_type in ("application/*",):
            return True
    return False


# QIDO-RS --------------------------------------------------------------------------------------


@dicomweb_view(["GET"])
def search_studies(request: HttpRequest) -> HttpResponse:
    return _search(request, Level.STUDY)


@dicomweb_view(["GET"])
def search_series(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    return _search(request, Level.SERIES, study_uid=study_uid)


@dicomweb_view(["GET"])
def search_instances(
    request: HttpRequest, study_uid: str | None = None, series_uid: str | None = None
) -> HttpResponse:
    return _search(request, Level.INSTANCE, study_uid=study_uid, series_uid=series_uid)


def _search(
    request: HttpRequest,
    level: Level,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> HttpResponse:
    if not _accepts_json(request):
        return error(406, "QIDO-RS answers application/dicom+json only")
    scope = Level.SERIES if series_uid else Level.STUDY if study_uid else None
    query = parse(request.GET, level, scope)
    visible = _visible(request)
    if study_uid is not None:
        _study(request, study_uid)  # 404 for an unknown or invisible study
    if (
        series_uid is not None
        and not Series.objects.filter(
            study__in=visible, study__study_instance_uid=study_uid, series_instance_uid=series_uid
        ).exists()
    ):
        raise NotFound("series", series_uid)
    base = _base(request)
    if level == Level.STUDY:
        results = search.search_studies(visible, query, base)
    elif level == Level.SERIES:
        results = search.search_series(visible, query, base, study_uid)
    else:
        results = search.search_instances(visible, query, base, study_uid, series_uid)
    record(
        request,
        Action.STUDY_SEARCH,
        detail={"level": level.value, "query": request.GET.urlencode()[:500], "n": len(results)},
    )
    headers = {}
    if query.warnings:
        headers["Warning"] = ", ".join(f'299 ReadingRoom: "{w}"' for w in query.warnings)[:1000]
    return _json(results, headers=headers)


# WADO-RS: instances and metadata ----------------------------------------------------------------


@dicomweb_view(["GET"])
def retrieve(
    request: HttpRequest,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> HttpResponse:
    """Study, series or instance as multipart/related; type="application/dicom"."""
    instances = _instance_list(request, study_uid, series_uid, sop_uid)
    ranges = parse_accept(request.headers.get("Accept", ""))
    choices = [wado.choose_syntax(instance, ranges) for instance in instances]
    if sop_uid is not None and choices[0].convert:
        # One instance: convert before answering so a failure is a 4xx, not a cut stream.
        body = wado.converted(instances[0], choices[0].transfer_syntax_uid)
        parts = [(body, {"Content-Type": _dicom_type(choices[0])})]
    else:
        parts = (
            (_instance_body(instance, choice), {"Content-Type": _dicom_type(choice)})
            for instance, choice in zip(instances, choices, strict=True)
        )
    _audit_retrieve(request, instances[0].series.study, "instances", len(instances))
    return multipart_response(parts, "application/dicom")


def _dicom_type(choice: wado.SyntaxChoice) -> str:
    return f"application/dicom; transfer-syntax={choice.transfer_syntax_uid}"


def _instance_body(instance: Instance, choice: wado.SyntaxChoice):
    if not choice.convert:
        return wado.file_chunks(instance)
    try:
        return wado.converted(instance, choice.transfer_syntax_uid)
    except wado.Unprocessable:
        # Mid-stream there is no status left to change: send the stored copy with its own
        # transfer syntax in the part's Content-Type rather than dropping the instance.
        return wado.file_chunks(instance)


@dicomweb_view(["GET"])
def retrieve_metadata(
    request: HttpRequest,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> HttpResponse:
    if not _accepts_json(request):
        return error(406, "metadata is available as application/dicom+json only")
    instances = _instance_list(request, study_uid, series_uid, sop_uid)
    base = _base(request)
    payload = [wado.metadata(i, search.instance_url(base, i)) for i in instances]
    _audit_retrieve(request, instances[0].series.study, "metadata", len(instances))
    return _json(payload)


@dicomweb_view(["GET"])
def retrieve_bulkdata(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, tag: str
) -> HttpResponse:
    instance = _instances(request, study_uid, series_uid, sop_uid)[0]  # evaluated: no 2nd query
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", tag):
        return error(400, "bulk data is addressed by an eight-digit hexadecimal tag")
    if tag.upper() == "7FE00010":
        frames = list(range(1, (instance.number_of_frames or 1) + 1))
        return _frames_response(request, instance, frames)
    try:
        value = wado.bulk_value(instance, tag)
    except LookupError as exc:
        raise NotFound("bulk data", f"{sop_uid}/{tag}") from exc
    _audit_retrieve(request, instance.series.study, "bulkdata", 1)
    return multipart_response([(value, {})], wado.NATIVE)


# WADO-RS: frames, rendered, thumbnails --------------------------------------------------------


@dicomweb_view(["GET"])
def retrieve_frames(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frames: str
) -> HttpResponse:
    instance = _instances(request, study_uid, series_uid, sop_uid)[0]  # evaluated: no 2nd query
    if not FRAME_LIST.match(frames):
        return error(400, "frames are a comma-separated list of frame numbers from 1")
    numbers = [int(n) for n in frames.split(",")]
    if len(set(numbers)) != len(numbers):
        # Every part is decoded into memory before the answer starts: repeats would let one
        # short URL make a worker hold thousands of copies of a frame.
        return error(400, "a frame list names each frame at most once")
    return _frames_response(request, instance, numbers)


def _frames_response(request: HttpRequest, instance: Instance, numbers: list[int]) -> HttpResponse:
    from viewer import services as viewer

    count = instance.number_of_frames or 0
    missing = [n for n in numbers if n > count]
    if missing:
        raise NotFound("frame", f"{instance.sop_instance_uid} frame {missing[0]} (of {count})")
    stored_type = wado.stored_media_type(instance.transfer_syntax_uid)
    decode = _frame_representation(
        parse_accept(request.headers.get("Accept", "")), stored_type, instance
    )
    try:
        if decode:
            parts = [(viewer.native_frame(instance, n), {}) for n in numbers]
            media_type = wado.NATIVE
        else:
            parts = [(viewer.stored_frame(instance, n), {}) for n in numbers]
            media_type = stored_type
    except viewer.RenderError as exc:
        return error(422, exc.message)
    _audit_retrieve(request, instance.series.study, "frames", len(numbers))
    extra = (
        f"; transfer-syntax={instance.transfer_syntax_uid}"
        if not decode and media_type != wado.NATIVE
        else ""
    )
    return multipart_response(parts, media_type, extra_params=extra)


def _frame_representation(ranges: list[MediaRange], stored_type: str, instance: Instance) -> bool:
    """True to send decoded native pixels, False for the frames as stored; 406 if neither."""
    for media in ranges:
        wanted = media.part_type if media.media_type == "multipart/related" else media.media_type
        syntax = media.transfer_syntax
        if wanted in ("*/*", "") and syntax in (None, wado.ANY):
            return False
        if wanted == wado.NATIVE:
            if syntax == wado.ANY or stored_type == wado.NATIVE:
                return False
            if syntax in (None, "1.2.840.10008.1.2.1"):
                return True
            continue
        if wanted == stored_type and syntax in (None, wado.ANY, instance.transfer_syntax_uid):
            return False
    raise wado.NotAcceptable(
        f"frames of {instance.sop_instance_uid} are stored as {stored_type}: ask for that or "
        "for application/octet-stream"
    )


@dicomweb_view(["GET"])
def rendered(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int = 1
) -> HttpResponse:
    from viewer import services as viewer

    from .render_params import params_from_request

    generation = grants.grants.generation  # before the access check: see grants.py
    instance = _instances(request, study_uid, series_uid, sop_uid)[0]  # evaluated: no 2nd query
    params = params_from_request(request.GET, request.headers.get("Accept", ""))
    try:
        image = viewer.render_frame(instance, frame, params)
    except viewer.FrameOutOfRange as exc:
        raise NotFound("frame", f"{sop_uid} frame {frame}") from exc
    except viewer.RenderError as exc:
        return error(422, exc.message)
    audited_at = _audit_image(request, instance.series.study)
    grants.grant_for_request(request, study_uid, audited_at, generation)
    response = HttpResponse(image.content, content_type=image.media_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@dicomweb_view(["GET"])
def thumbnail(
    request: HttpRequest,
    study_uid: str,
    series_uid: str | None = None,
    sop_uid: str | None = None,
) -> HttpResponse:
    from viewer import services as viewer

    from .render_params import params_from_request

    instances = _instances(request, study_uid, series_uid, sop_uid)
    params = params_from_request(request.GET, request.headers.get("Accept", ""), thumbnail=True)
    instance = viewer.representative_instance(instances)
    if instance is None:
        raise NotFound("image", sop_uid or series_uid or study_uid)
    try:
        image = viewer.render_frame(instance, viewer.representative_frame(instance), params)
    except viewer.RenderError as exc:
        return error(422, exc.message)
    _audit_image(request, instance.series.study)
    response = HttpResponse(image.content, content_type=image.media_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _audit_retrieve(request: HttpRequest, study: Study, what: str, count: int) -> None:
    record(request, Action.DICOMWEB_RETRIEVE, study=study, detail={"what": what, "n": count})


def _audit_image(request: HttpRequest, study: Study) -> datetime:
    """Image views are audited once per user, study and few minutes, not per frame: a cine
    loop is dozens of requests a second, and the trail should say who looked, not count
    frames. The check is an indexed lookup of the trail itself, so it holds across processes."""
    now = timezone.now()
    since = now - timedelta(seconds=settings.IMAGE_AUDIT_INTERVAL_SECONDS)
    seen = (
        AuditEvent.objects.filter(
            study=study, user=request.user, action=Action.IMAGE_VIEW, time__gte=since
        )
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    if seen is None:
        record(request, Action.IMAGE_VIEW, study=study, detail={"route": request.path[:200]})
        return now
    return seen


# STOW-RS --------------------------------------------------------------------------------------


@dicomweb_view(["POST"])
def store(request: HttpRequest, study_uid: str | None = None) -> HttpResponse:
    return stow.handle(request, study_uid, _base(request))


def studies_root(request: HttpRequest) -> HttpResponse:
    """/studies: GET searches (QIDO-RS), POST stores (STOW-RS)."""
    return store(request) if request.method == "POST" else search_studies(request)


def study_root(request: HttpRequest, study_uid: str) -> HttpResponse:
    """/studies/{uid}: GET retrieves the study, POST stores instances of that study."""
    if request.method == "POST":
        return store(request, study_uid)
    return retrieve(request, study_uid)
