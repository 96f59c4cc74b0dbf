"""Identity steward pages: the review queue, one person's records and link history, and the
link / keep-apart / unlink / unmerge actions. Thin: rules live in identity.services and who
may act on which records in accounts.policy.stewarded_records.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.policy import stewarded_records, visible_studies
from audit.models import Action
from audit.services import record as audit

from . import services
from .forms import LinkForm, ReasonForm
from .models import LinkEvent, PairDecision, Person


def _invalid(form: Form) -> HttpResponse | None:
    """A 400 naming each field and what is wrong with it (never echoing the value sent), or
    None when the form is valid."""
    if form.is_valid():
        return None
    text = form.errors.as_text()
    return HttpResponse(text, status=400, content_type="text/plain; charset=utf-8")


def _scope(request: HttpRequest):
    records = stewarded_records(request.user)
    if records is None:
        raise Http404("No such page")
    return records


@login_required
def review_queue(request: HttpRequest) -> HttpResponse:
    records = _scope(request)
    pairs = (
        PairDecision.objects.filter(
            status=PairDecision.Status.PENDING,
            record_a__in=records.values("pk"),
            record_b__in=records.values("pk"),
        )
        .select_related("record_a__organization", "record_b__organization")
        .order_by("-score", "pk")[:100]
    )
    pairs = list(pairs)
    audit(request, Action.IDENTITY_REVIEW, detail={"pairs": len(pairs)})
    return render(request, "identity/review.html", {"pairs": pairs})


@login_required
@require_POST
def decide_pair(request: HttpRequest, pk: int) -> HttpResponse:
    records = _scope(request)
    pair = get_object_or_404(
        PairDecision.objects.select_related("record_a", "record_b"),
        pk=pk,
        record_a__in=records.values("pk"),
        record_b__in=records.values("pk"),
    )
    action = request.POST.get("action")
    try:
        detail = {"pair": pair.pk}
        if action == "link":
            event = services.link_records(
                pair.record_a, pair.record_b, request.user, "review queue"
            )
            audit_action = Action.IDENTITY_LINK
            detail |= _link_detail(event)
        elif action == "keep_apart":
            services.keep_apart(pair.record_a, pair.record_b, request.user)
            audit_action = Action.IDENTITY_KEEP_APART
        else:
            return HttpResponse("action must be link or keep_apart", status=400)
    except services.IdentityError as exc:
        messages.error(request, str(exc))
        return redirect("identity:review")
    for rec in (pair.record_a, pair.record_b):
        audit(request, audit_action, patient_record=rec, detail=detail)
    messages.success(request, "Linked." if action == "link" else "Kept apart.")
    return redirect("identity:review")


@login_required
def person_detail(request: HttpRequest, pk: int) -> HttpResponse:
    records = _scope(request)
    person = get_object_or_404(Person, pk=pk)
    mine = list(
        records.filter(person=person).select_related("organization").order_by("organization")
    )
    if not mine:
        raise Http404("No such person")
    ids = [r.pk for r in mine]
    events = LinkEvent.objects.filter(Q(source=person) | Q(target=person)).select_related("by")
    studies = (
        visible_studies(request.user)
        .filter(person=person)
        .select_related("organization", "patient_record")
        .order_by("-study_date")
    )
    decisions = PairDecision.objects.filter(Q(record_a__in=ids) | Q(record_b__in=ids)).exclude(
        status=PairDecision.Status.SEPARATE
    )[:50]
    for rec in mine:
        audit(request, Action.IDENTITY_REVIEW, patient_record=rec, detail={"person": person.pk})
    return render(
        request,
        "identity/person.html",
        {
            "person": person,
            "records": mine,
            "events": events[:50],
            "studies": studies,
            "decisions": decisions,
        },
    )


@login_required
@require_POST
def unlink(request: HttpRequest, pk: int) -> HttpResponse:
    rec = get_object_or_404(_scope(request), pk=pk)
    form = ReasonForm(request.POST)
    if (bad := _invalid(form)) is not None:
        return bad
    try:
        event = services.unlink_record(rec, request.user, form.cleaned_data["reason"])
    except services.IdentityError as exc:
        messages.error(request, str(exc))
        return redirect("identity:person", pk=rec.person_id)
    audit(request, Action.IDENTITY_UNLINK, patient_record=rec, detail={"event": event.pk})
    messages.success(request, f"{rec.patient_id} now stands alone as {event.target}.")
    return redirect("identity:person", pk=event.source_id)


@login_required
@require_POST
def unmerge(request: HttpRequest, pk: int) -> HttpResponse:
    records = _scope(request)
    event = get_object_or_404(LinkEvent, pk=pk, kind=LinkEvent.Kind.LINK)
    moved = list(records.filter(pk__in=event.records))
    if len(moved) != len(event.records):
        raise Http404("No such link")
    form = ReasonForm(request.POST)
    if (bad := _invalid(form)) is not None:
        return bad
    try:
        services.unmerge(event, request.user, form.cleaned_data["reason"])
    except services.IdentityError as exc:
        messages.error(request, str(exc))
        return redirect("identity:person", pk=event.target_id)
    for rec in moved:
        audit(request, Action.IDENTITY_UNLINK, patient_record=rec, detail={"unmerged": event.pk})
    messages.success(request, "Unmerged: the records are back as they were before the link.")
    return redirect("identity:person", pk=event.target_id)


@login_required
@require_POST
def link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link another record (by MRN and sending organisation) to this person."""
    records = _scope(request)
    person = get_object_or_404(Person, pk=pk)
    anchor = records.filter(person=person).first()
    if anchor is None:
        raise Http404("No such person")
    form = LinkForm(request.POST)
    if (bad := _invalid(form)) is not None:
        return bad
    wanted = form.cleaned_data
    other = records.filter(
        patient_id=wanted["patient_id"], organization__slug=wanted["organization"]
    ).first()
    if other is None:
        messages.error(request, "No record with that MRN at that organisation.")
        return redirect("identity:person", pk=pk)
    try:
        event = services.link_records(anchor, other, request.user, wanted["reason"])
    except services.IdentityError as exc:
        messages.error(request, str(exc))
        return redirect("identity:person", pk=pk)
    for rec in (anchor, other):
        audit(request, Action.IDENTITY_LINK, patient_record=rec, detail=_link_detail(event))
    messages.success(request, f"Linked {other.patient_id} ({other.issuer_label}).")
    return redirect("identity:person", pk=anchor.person_id)


def _link_detail(event: LinkEvent) -> dict:
    """What a link's audit events carry besides the pair's own records: the link event, which
    lists every record that moved (the other records of both children become each other's
    priors too), and the person they now form."""
    return {"manual": True, "event": event.pk, "person": event.target_id}
