"""Worklist pages and actions. Thin: parse, authorise through the policy and the view's
listing, call one service verb, answer. Refusals are 4xx with a message, never a 500.
Row and table fragments exist so the page can update in place after a live event."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Organization, Role
from accounts.policy import SCHEDULING_ROLES, is_platform_admin, reading_group_ids, visible_cases
from audit.models import Action
from audit.services import record

from . import queries, routing, services
from .forms import PreferenceForm
from .models import CaseStatus, NotificationPreference, Priority


def _view_of(request: HttpRequest) -> str:
    available = queries.views_for(request.user)
    if not available:
        raise Http404("No worklist for this account")
    wanted = request.GET.get("view", "")
    if wanted and wanted not in available:
        raise Http404("No such worklist view for this account")
    return wanted or available[0]


def _filters(request: HttpRequest) -> queries.Filters:
    return queries.parse_filters(request.GET)


def _context(request: HttpRequest, view: str, filters: queries.Filters) -> dict:
    rows, total = queries.listing(request.user, view, filters)
    record(request, Action.WORKLIST_VIEW, detail={"view": view, "results": len(rows)})
    return {"view": view, "rows": rows, "total": total, "filters": filters}


@login_required
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    view = _view_of(request)
    try:
        filters = _filters(request)
    except queries.BadFilter as bad:
        return HttpResponseBadRequest(str(bad))
    context = _context(request, view, filters)
    groups = _scheduled_groups(request.user) if view == "scheduler" else []
    context.update(
        views=queries.views_for(request.user),
        priorities=Priority.choices,
        statuses=CaseStatus.choices,
        facilities=_facilities(request.user),
        loads=_loads(groups) if view == "scheduler" else [],
        next_case=view == "reader",
    )
    return render(request, "worklist/page.html", context)


@login_required
@require_GET
def table(request: HttpRequest) -> HttpResponse:
    """The rows only: what the page swaps in after a reconnect (a gap may have lost events)."""
    view = _view_of(request)
    try:
        filters = _filters(request)
    except queries.BadFilter as bad:
        return HttpResponseBadRequest(str(bad))
    context = _context(request, view, filters)
    return render(request, "worklist/_table.html", context)


@login_required
@require_GET
def row(request: HttpRequest, case_id: int) -> HttpResponse:
    """One rendered row as this user's view lists it; 404 when it does not (any more)."""
    view = _view_of(request)
    try:
        filters = _filters(request)
    except queries.BadFilter as bad:
        return HttpResponseBadRequest(str(bad))
    case = queries.one_row(request.user, view, filters, case_id)
    if case is None:
        raise Http404("Not on this worklist")
    record(request, Action.WORKLIST_VIEW, study=case.study, detail={"view": view, "case": case.pk})
    return render(request, "worklist/_row.html", {"case": case, "view": view})


def _facilities(user):
    """Facility filter choices: those the user's groups read for, or their own facility."""
    from django.db.models import Q

    from accounts.policy import active_memberships

    facilities = Organization.objects.filter(kind=Organization.Kind.SENDING_FACILITY)
    if is_platform_admin(user):
        return facilities.order_by("name")
    own = [m.organization_id for m in active_memberships(user)]
    return (
        facilities.filter(
            Q(agreements_as_sender__reading_group_id__in=reading_group_ids(user)) | Q(pk__in=own)
        )
        .distinct()
        .order_by("name")
    )


def _scheduled_groups(user) -> list[int]:
    if is_platform_admin(user):
        return list(
            Organization.objects.filter(kind=Organization.Kind.READING_GROUP).values_list(
                "pk", flat=True
            )
        )
    return sorted(reading_group_ids(user, SCHEDULING_ROLES))


def _loads(groups: list[int]) -> list[dict]:
    loads = services.reader_loads(groups)
    readers = {}
    for group in groups:
        for m in services.group_readers(group):
            count, weight = loads.get(m.user_id, (0, 0))
            readers[m.user_id] = {"user": m.user, "count": count, "weight": weight}
    return sorted(readers.values(), key=lambda r: (r["weight"], r["user"].username))


@login_required
@require_GET
def load(request: HttpRequest) -> HttpResponse:
    groups = _scheduled_groups(request.user)
    if not groups:
        raise Http404("Not a scheduler")
    return render(request, "worklist/_load.html", {"loads": _loads(groups)})


def _scheduler_case(request: HttpRequest, case_id: int):
    groups = _scheduled_groups(request.user)
    case = visible_cases(request.user).filter(pk=case_id, reading_group_id__in=groups).first()
    if case is None:
        raise Http404("No such case")
    return case


@login_required
@require_GET
def readers(request: HttpRequest, case_id: int) -> HttpResponse:
    """The case group's readers, ineligible ones greyed with the reason."""
    case = _scheduler_case(request, case_id)
    loads = services.reader_loads([case.reading_group_id])
    options = [
        {
            "user": m.user,
            "reasons": routing.ineligibility(m, case.facility, case.subspecialty),
            "load": loads.get(m.user_id, (0, 0)),
        }
        for m in services.group_readers(case.reading_group_id)
    ]
    return render(request, "worklist/_readers.html", {"case": case, "options": options})


def _json_error(error: services.WorklistError) -> JsonResponse:
    return JsonResponse({"error": error.message, "code": error.code}, status=error.status)


def _acted(case_id: int, request: HttpRequest) -> None:
    """Actions answer 404 for cases the user cannot see, like pages do."""
    if not visible_cases(request.user).filter(pk=case_id).exists():
        raise Http404("No such case")


def _is_id(raw: str) -> bool:
    """A row id as a form sends it: ASCII digits ("²".isdigit() is true, int("²") fails)."""
    return raw.isascii() and raw.isdigit()


def _reader_from(request: HttpRequest):
    raw = request.POST.get("reader", "")
    if not _is_id(raw):
        raise services.WorklistError("Choose a reader.", "no_reader")
    reader = get_user_model().objects.filter(pk=int(raw), is_active=True).first()
    if reader is None:
        raise services.WorklistError("No such reader.", "no_reader")
    return reader


@login_required
@require_POST
def assign(request: HttpRequest, case_id: int) -> JsonResponse:
    _scheduler_case(request, case_id)
    try:
        case = services.assign_case(
            case_id, _reader_from(request), by=request.user, request=request
        )
    except services.WorklistError as refused:
        return _json_error(refused)
    return JsonResponse({"ok": True, "case_id": case.pk, "assignee": str(case.assignee)})


@login_required
@require_POST
def bulk_assign(request: HttpRequest) -> JsonResponse:
    ids = request.POST.getlist("case")
    if not ids or not all(_is_id(i) for i in ids) or len(ids) > 500:
        return JsonResponse({"error": "Select 1-500 cases.", "code": "no_cases"}, status=400)
    for case_id in ids:
        _scheduler_case(request, int(case_id))
    try:
        reader = _reader_from(request)
    except services.WorklistError as refused:
        return _json_error(refused)
    results = services.bulk_assign([int(i) for i in ids], reader, request.user, request=request)
    return JsonResponse({"results": {str(k): v for k, v in results.items()}})


@login_required
@require_POST
def lock(request: HttpRequest, case_id: int) -> JsonResponse:
    _acted(case_id, request)
    try:
        state = services.take_lock(case_id, request.user, request=request)
    except services.WorklistError as refused:
        return _json_error(refused)
    since = state.since.isoformat() if state.since else None
    status = 200 if state.won else 409
    message = "" if state.won else f"Locked by {state.holder} since {since}."
    return JsonResponse(
        {"ok": state.won, "holder": state.holder, "since": since, "error": message}, status=status
    )


@login_required
@require_POST
def heartbeat(request: HttpRequest, case_id: int) -> JsonResponse:
    _acted(case_id, request)
    if not services.touch_lock(case_id, request.user):
        return JsonResponse({"error": "You do not hold this case's lock."}, status=409)
    return JsonResponse({"ok": True})


@login_required
@require_POST
def unlock(request: HttpRequest, case_id: int) -> JsonResponse:
    _acted(case_id, request)
    if not services.release_lock(case_id, request.user, request=request):
        return JsonResponse({"error": "You do not hold this case's lock."}, status=409)
    return JsonResponse({"ok": True})


@login_required
@require_POST
def break_lock(request: HttpRequest, case_id: int) -> JsonResponse:
    _scheduler_case(request, case_id)
    if request.POST.get("confirm") != "yes":
        return JsonResponse(
            {"error": "Confirm breaking the lock (confirm=yes).", "code": "confirm"}, status=400
        )
    try:
        holder = services.break_lock(case_id, request.user, request=request)
    except services.WorklistError as refused:
        return _json_error(refused)
    return JsonResponse({"ok": True, "holder": holder})


@login_required
@require_POST
def claim(request: HttpRequest, case_id: int) -> JsonResponse:
    _acted(case_id, request)
    try:
        case = services.claim_case(case_id, request.user, request=request)
    except services.WorklistError as refused:
        return _json_error(refused)
    return JsonResponse({"ok": True, "case_id": case.pk})


@login_required
@require_POST
def next_case(request: HttpRequest) -> JsonResponse:
    if not reading_group_ids(request.user, {Role.READER}):
        raise Http404("Not a reader")
    case = services.next_case(request.user, request=request)
    if case is None:
        return JsonResponse({"error": "No case is waiting for you.", "code": "empty"}, status=404)
    return JsonResponse(
        {"ok": True, "case_id": case.pk, "study_uid": case.study.study_instance_uid}
    )


@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    pref, _ = NotificationPreference.objects.get_or_create(user=request.user)
    form = PreferenceForm(request.POST or None, instance=pref)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("worklist:preferences")
    return render(request, "worklist/preferences.html", {"form": form})
