"""Pages of the archive: the received-studies list and one study's detail.

Thin views: fetch through the access policy (invisible means 404), render.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.policy import visible_studies
from audit.models import Action
from audit.services import record

from .lookup import priors_of, visible_study_or_404


@login_required
def home(request: HttpRequest) -> HttpResponse:
    studies = (
        visible_studies(request.user)
        .select_related("organization", "patient_record")
        .annotate(
            num_series=Count("series", distinct=True),
            num_instances=Count("series__instances"),
        )
        .order_by("-last_received_at")[:200]
    )
    studies = list(studies)
    record(request, Action.STUDY_SEARCH, detail={"page": "home", "results": len(studies)})
    return render(request, "archive/home.html", {"studies": studies})


@login_required
def study_detail(request: HttpRequest, study_uid: str) -> HttpResponse:
    visible = visible_studies(request.user)
    study = visible_study_or_404(request, study_uid, "study_detail", visible)
    record(request, Action.STUDY_VIEW, study=study)
    series = study.series.annotate(
        num_instances=Count("instances"),
        num_images=Count("instances", filter=Q(instances__number_of_frames__gt=0)),
    ).order_by("series_number", "pk")
    priors = priors_of(study, visible)
    return render(
        request,
        "archive/study_detail.html",
        {"study": study, "series": series, "priors": priors},
    )
